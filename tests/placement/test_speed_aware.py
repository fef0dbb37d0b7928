"""Mixed accelerators: the slower devices limit the step, and the ``speed-aware`` placement
puts the ranks with more work on the faster ones (``placement/strategies.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.analysis import critical_path
from simcluster.placement import bind, strategy_placement
from simcluster.placement.bind import rank_work
from simcluster.sim import simulate
from simcluster.topology.cluster import Cluster
from simcluster.workload.generate.registry import generate
from tests.conftest import TEST_ACCEL, cluster_from, workload

A100, H100 = "A100-SXM4-80GB", "H100-SXM5-80GB"


def mixed(first: str, second: str, gpus: int = 2) -> Cluster:
    """One server of ``first`` then one of ``second`` (NVSwitch inside, one NIC per GPU on
    one switch), in that topology order."""
    return cluster_from({
        "name": "mixed",
        "nodes": [{"name": name, "count": 1, "accelerator": model, "accelerators": gpus,
                   "nics": {"count": gpus, "bandwidth_GBps": 50.0}}
                  for name, model in (("a", first), ("b", second))],
        "fabric": {"topology": "single-switch"}})


def _transformer(**extra: Any):
    params = {"layers": 2, "hidden": 1024, "heads": 8, "ffn": 4096, "vocab": 32768,
              "seq_len": 1024, "tp": 2, "global_batch": 4, "fold": False, **extra}
    return generate("transformer", params)


def test_the_slower_devices_are_on_the_critical_path() -> None:
    # Two data-parallel replicas of the same work, one on A100s and one on H100s: the
    # H100 replica waits at each gradient all-reduce, so every compute segment of the
    # critical path runs on an A100.
    cluster = mixed(H100, A100)
    wl = _transformer(dp=2)
    run = simulate(bind(wl, cluster))
    path = critical_path(run)
    devices = bind(wl, cluster).placement.devices
    on = {cluster.specs[devices[r]].model for r, c in zip(path["rank"].to_pylist(),
                                                          path["category"].to_pylist())
          if c == "compute"}
    assert on == {A100}
    waits = run.timeline.group_by("rank").aggregate([("wait_us", "sum")])
    wait = dict(zip(waits["rank"].to_pylist(), waits["wait_us_sum"].to_pylist()))
    assert min(wait[r] for r in (0, 1)) > max(wait[r] for r in (2, 3))  # H100s wait


def test_speed_aware_puts_the_heavier_tp_group_on_the_faster_server() -> None:
    # Ranks 0, 1 (TP group t0) do 5 GFLOP each, ranks 2, 3 (t1) 1 GFLOP; the slow server
    # (100 TFLOP/s) comes first in topology order, the fast one (400 TFLOP/s) second.
    test = {"peak_tflops": {"bf16": 100.0}}
    cluster = cluster_from({
        "name": "toy", "accelerator_models": {"slow": {**TEST_ACCEL, **test},
                                              "fast": {**TEST_ACCEL, "peak_tflops": {
                                                  "bf16": 400.0}}},
        "nodes": [{"name": n, "count": 1, "accelerator": n, "accelerators": 2,
                   "fabric": "pcie", "nics": {"count": 1}}
                  for n in ("slow", "fast")], "fabric": {"topology": "single-switch"}})
    groups = {"tp.t0": (0, 1), "tp.t1": (2, 3)}
    work = [5e9, 5e9, 1e9, 1e9]
    p = strategy_placement(cluster, 4, "speed-aware", groups, work)
    assert p.devices == ("fast0/gpu0", "fast0/gpu1", "slow0/gpu0", "slow0/gpu1")
    p = strategy_placement(cluster, 4, "speed-aware", groups, work[::-1])
    assert p.devices == ("slow0/gpu0", "slow0/gpu1", "fast0/gpu0", "fast0/gpu1")
    rows = [{"rank": r, "kind": "compute", "flops": int(f), "dtype": "bf16"}
            for r, f in enumerate(work)]
    wl = workload(rows, {k: list(v) for k, v in groups.items()})
    assert rank_work(wl) == work
    packed, aware = (simulate(bind(wl, cluster, s)).makespan_us
                     for s in ("packed", "speed-aware"))
    # Compute-bound ops at one efficiency: packed runs 5 GFLOP at 100 TFLOP/s, speed-aware
    # max(5 GFLOP at 400, 1 GFLOP at 100) = 1.25 GFLOP at 100: 4x shorter.
    assert packed / aware == pytest.approx(4.0)


def test_speed_aware_gives_the_pipeline_stage_with_the_lm_head_to_the_h100s() -> None:
    # PP = 2: the last stage also runs the output layer and the loss, so it has more work.
    # Packed puts stage 0 on the first server (H100); speed-aware swaps the stages.
    cluster = mixed(H100, A100)
    wl = _transformer(pp=2, global_batch=8)
    w = rank_work(wl)
    assert w[2] > w[0]  # ranks 2, 3: stage 1
    aware = bind(wl, cluster, "speed-aware")
    assert [cluster.specs[d].model for d in aware.placement.devices] == [A100, A100, H100, H100]
    packed = simulate(bind(wl, cluster)).makespan_us
    assert simulate(aware).makespan_us < packed


def test_a_job_mix_places_speed_aware_jobs_by_their_work_as_bind_does() -> None:
    # The job mix places strategy jobs itself (on the accelerators left free); it must
    # weigh each rank's work as bind does, so the stage with the LM head gets the H100s.
    import simcluster as sc

    cluster = mixed(H100, A100)
    wl = _transformer(pp=2, global_batch=8)
    mix = sc.JobMix([sc.Job(wl, "speed-aware")], cluster)
    assert mix.placements()[0].devices == bind(wl, cluster, "speed-aware").placement.devices
    assert [cluster.specs[d].model for d in mix.placements()[0].devices] == [A100, A100, H100,
                                                                           H100]

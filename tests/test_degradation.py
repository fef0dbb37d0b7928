"""Failures and degradation as what-ifs of a Scenario: the step-time cost against the healthy
cluster, and groups that a failure cuts apart (``degradation.py``, ``placement/reach.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import simcluster as sc
from simcluster.degradation import degradation
from simcluster.errors import PartitionError, PlacementError
from simcluster.scenario import Scenario, WhatIf
from simcluster.workload.native import write_workload
from tests.cli.test_cli import _run as _cli
from tests.conftest import TEST_ACCEL, workload
from tests.topology.test_transform import EXACT, GB, UPLINK, _two_sends, fat_tree_k4


def _all_reduce(ranks: int) -> sc.Workload:
    return workload([{"rank": r, "kind": "collective", "collective": "all_reduce",
                      "comm_bytes": GB, "group": "g"} for r in range(ranks)],
                    {"g": list(range(ranks))})


def test_the_cost_of_a_failed_uplink_is_the_hand_computed_one() -> None:
    # Healthy, the two 1 GB flows take one uplink each (40 ms); with pod0-edge0 -> agg0 down
    # they share the other at 12.5 GB/s each (80 ms).
    s = Scenario(workload(_two_sends()), fat_tree_k4(), whatif=WhatIf(fail=(UPLINK,)))
    d = degradation(s)
    assert (d.healthy_us, d.degraded_us) == pytest.approx((40_000.0, 80_000.0))
    assert d.cost_us == pytest.approx(40_000.0) and d.slowdown == pytest.approx(2.0)
    assert d.to_json()["failed"] == [UPLINK]


@pytest.mark.parametrize("element, devices", [
    ("n2/nic0", ("n0/gpu0", "n2/gpu0")),             # its only NIC: n2 is cut off
    ("fabric/pod0-edge1", ("n0/gpu0", "n2/gpu0")),   # n2's and n3's edge switch
])
def test_a_partitioned_group_names_the_group_the_ranks_and_the_failure(
        element: str, devices: tuple[str, str]) -> None:
    s = Scenario(_all_reduce(4), fat_tree_k4(), whatif=WhatIf(fail=(element,)))
    with pytest.raises(PartitionError, match=f"group 'g' is partitioned with {element} down"
                       ) as exc:
        s.run()
    assert (exc.value.group, exc.value.ranks, exc.value.devices, exc.value.failed) == (
        "g", (0, 2), devices, (element,))


def test_a_partition_error_keeps_its_fields_through_pickling() -> None:
    # Sweep points run on Dask workers: the error travels pickled.
    import pickle

    e = PartitionError("msg", "g", (0, 2), ("n0/gpu0", "n2/gpu0"), ("n2/nic0",))
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.group, back.ranks, back.devices, back.failed) == (
        "msg", "g", (0, 2), ("n0/gpu0", "n2/gpu0"), ("n2/nic0",))


def test_a_send_recv_pair_cut_apart_is_a_partition() -> None:
    s = Scenario(workload(_two_sends()), fat_tree_k4(), whatif=WhatIf(fail=("n3/nic0",)))
    with pytest.raises(PartitionError) as exc:
        s.run()
    assert (exc.value.group, exc.value.ranks) == ("send/recv", (1, 3))


def test_a_failed_gpu_leaves_the_job_one_short() -> None:
    s = Scenario(_all_reduce(16), fat_tree_k4(), whatif=WhatIf(fail=("n5/gpu0",)))
    with pytest.raises(PlacementError, match="has 15 accelerators"):
        s.run()
    # With fewer ranks than GPUs, packed places over the 15 that remain: rank 5 moves on.
    r = Scenario(_all_reduce(8), fat_tree_k4(), whatif=WhatIf(fail=("n5/gpu0",))).run()
    assert r.bound.placement.devices[5] == "n6/gpu0"


def _files(tmp_path: Path, ranks: int) -> tuple[str, str]:
    topo = tmp_path / "ft4.yaml"
    topo.write_text(yaml.safe_dump({
        "name": "ft4", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 16, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "pcie": {"bandwidth_GBps": 100.0},
                   "nics": {"count": 1, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "fat-tree", "k": 4},
        "network": {"latency_scale": 0.0, "link_efficiency": EXACT}}))
    wl = _all_reduce(ranks) if ranks else workload(_two_sends())
    return str(write_workload(wl, tmp_path / "w.parquet")), str(topo)


def test_cli_partition_exits_2_naming_group_and_element_with_no_output(
        capsys, tmp_path: Path) -> None:
    wl, topo = _files(tmp_path, 4)
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "replay", wl, "-t", topo, "--fail", "fabric/pod0-edge1",
                        "--out", str(out))
    assert code == 2 and "Traceback" not in err
    assert "group 'g' is partitioned with fabric/pod0-edge1 down" in err
    assert not out.exists()


def test_cli_prints_the_step_time_cost(capsys, tmp_path: Path) -> None:
    wl, topo = _files(tmp_path, 0)
    code, out, _ = _cli(capsys, "replay", wl, "-t", topo, "--fail", UPLINK, "--json")
    assert code == 0
    d = json.loads(out)["degradation"]
    assert (d["healthy_step_us"], d["degraded_step_us"]) == pytest.approx((40_000.0, 80_000.0))
    code, out, _ = _cli(capsys, "replay", wl, "-t", topo, "--flap", "n0/nic0=0.5")
    # n0's NIC at half its rate: n0 -> n2 takes 80 ms, the step with it.
    assert code == 0 and "40.000 ms healthy -> 80.000 ms" in " ".join(out.split())


def _small_transformer(dp: int):
    from simcluster.workload.generate.registry import generate

    return generate("transformer", {"layers": 2, "hidden": 256, "heads": 4, "ffn": 1024,
                                    "vocab": 1024, "seq_len": 128, "tp": 2, "dp": dp,
                                    "global_batch": 8})


def test_restart_drains_the_server_and_regenerates_with_fewer_replicas() -> None:
    # 4 servers x 4 GPUs; TP 2 x DP 8 fills them. n1/gpu2 fails: n1 is drained, 12 GPUs
    # remain, DP 6 and 5 do not split the global batch of 8, so DP 4 (8 ranks, 2
    # micro-batches per replica instead of 1).
    from simcluster.degradation import restarted
    from tests.conftest import servers

    asked = Scenario(_small_transformer(8), servers(4, 4),
                     whatif=WhatIf(fail=("n1/gpu2",)))
    again = restarted(asked, "same-shape")
    s = again.scenario
    assert (again.before["dp"], again.after["dp"], again.search) == (8, 4, None)
    assert s.whatif.fail == ("n1/gpu2", "n1")
    assert s.workload.num_ranks == 8 and s.workload.meta.extra["config"]["dp"] == 4
    assert s.workload.ops.equals(_small_transformer(4).ops)
    result = s.run()
    assert not any(d.startswith("n1/") for d in result.bound.placement.devices)
    d = degradation(s, result, asked, again)
    assert d.ranks == (16, 8) and d.degraded_us > d.healthy_us
    assert d.to_json()["restart"]["after"]["dp"] == 4


def test_restart_keeps_a_workload_that_still_fits_and_refuses_others() -> None:
    from simcluster.degradation import restarted
    from simcluster.errors import WorkloadError
    from tests.conftest import servers

    wl = _small_transformer(4)
    s = restarted(Scenario(wl, servers(4, 4), whatif=WhatIf(fail=("n0/gpu0",))),
                  "same-shape").scenario
    assert s.workload is wl and s.whatif.fail == ("n0/gpu0", "n0")
    with pytest.raises(WorkloadError, match="only a generated transformer"):
        restarted(Scenario(_all_reduce(16), servers(4, 4), whatif=WhatIf(fail=("n0/gpu0",))),
                  "same-shape")


def test_cli_restart_reports_the_ranks(capsys, tmp_path: Path) -> None:
    topo = tmp_path / "s.yaml"
    topo.write_text(yaml.safe_dump({
        "name": "s", "accelerator_models": {"T": {**TEST_ACCEL, "hbm_GiB": 80.0}},
        "nodes": [{"name": "n", "count": 4, "accelerator": "T", "accelerators": 4,
                   "nvlink": {"bandwidth_GBps": 400.0}, "nics": {"count": 4}}],
        "fabric": {"topology": "single-switch"}}))
    wl = str(write_workload(_small_transformer(8), tmp_path / "w.parquet"))
    code, out, err = _cli(capsys, "replay", wl, "-t", str(topo), "--fail", "n1/gpu2",
                          "--restart", "same-shape", "--json")
    assert code == 0, err
    d = json.loads(out)["degradation"]
    assert d["ranks"] == {"healthy": 16, "degraded": 8} and d["failed"] == ["n1/gpu2", "n1"]

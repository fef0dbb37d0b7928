"""A job restarted on the GPUs that remain in the next-best configuration: the search on
the degraded cluster (``search/restart.py``, ``degradation.restarted``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simcluster.degradation import degradation, layout_of, restarted
from simcluster.errors import WorkloadError
from simcluster.scenario import Scenario, WhatIf
from simcluster.search import SearchOptions, SearchSpace
from simcluster.search.restart import restart_worlds, smallest_fit
from simcluster.topology import load_cluster
from simcluster.workload.generate.registry import generate
from simcluster.workload.native import write_workload
from tests.conftest import TEST_ACCEL, cli_exit_2

pytest.importorskip("distributed")

MODEL = {"layers": 2, "hidden": 256, "heads": 8, "ffn": 1024, "vocab": 1024, "seq_len": 128,
         "global_batch": 48}
SPACE = SearchSpace(tp=(1, 2, 4, 8), pp=(1,), micro_batch=(1,), recompute=("none",),
                    zero=(0,), interleave=(1,))
TWO_DOWN = ("n0/gpu0", "n1/gpu3")  # two GPUs on two servers: 6 of 8 servers remain


def _topology(tmp_path: Path, servers: int, hbm_GiB: float = 80.0) -> Path:
    """``servers`` servers of 8 test GPUs on NVLink (400 GB/s), one 25 GB/s NIC per GPU on
    one switch."""
    path = tmp_path / f"t{servers}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"servers{servers}", "accelerator_models": {"T": {**TEST_ACCEL,
                                                                  "hbm_GiB": hbm_GiB}},
        "nodes": [{"name": "n", "count": servers, "accelerator": "T", "accelerators": 8,
                   "nvlink": {"bandwidth_GBps": 400.0},
                   "nics": {"count": 8, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "single-switch"}}))
    return path


def _asked(tmp_path: Path) -> Scenario:
    """TP 8 x DP 8 on 8 servers, with a GPU down on two of them."""
    return Scenario(generate("transformer", {**MODEL, "tp": 8, "dp": 8}),
                    load_cluster(_topology(tmp_path, 8)), whatif=WhatIf(fail=TWO_DOWN))


def test_restart_worlds_lay_each_shape_on_the_most_gpus_the_batch_splits_over() -> None:
    # Global batch 48 on 40 GPUs: TP 8 -> DP 4 (48 / 5 does not split); TP 2 -> DP 16 (32
    # GPUs; 48 / 17..20 do not split); TP 4 -> DP 8 (32 GPUs; 48 / 9, 48 / 10 do not split).
    assert restart_worlds(48, 40, SearchSpace(tp=(2, 4, 8), pp=(1,))) == (32,)
    assert restart_worlds(48, 40, SearchSpace(tp=(1, 8), pp=(1, 5))) == (24, 32, 40)


def test_best_restart_is_the_fastest_layout_on_the_gpus_left_not_fewer_replicas(
        tmp_path: Path, dask_client) -> None:
    asked = _asked(tmp_path)
    options = SearchOptions(space=SPACE, budget_fraction=1.0)
    best = restarted(asked, "best", options, client=dask_client)
    same = restarted(asked, "same-shape")
    # Both drain n0 and n1: 48 GPUs. Fewer replicas keeps TP 8: DP 6.
    assert best.scenario.whatif.fail == (*TWO_DOWN, "n0", "n1")
    assert same.after == {**same.before, "dp": 6}
    # Every layout of the space on the 48 GPUs, simulated: the search chose the fastest.
    steps = {tp: Scenario(generate("transformer", {**MODEL, "tp": tp, "dp": 48 // tp,
                                                    "sequence_parallel": tp > 1}),
                          asked.cluster, whatif=best.scenario.whatif).run().step_time_us
             for tp in SPACE.tp}
    fastest = min(steps, key=steps.__getitem__)
    assert best.after["tp"] == fastest != 8
    assert best.search is not None and best.search["feasible"] == 4
    result = best.scenario.run()
    assert result.step_time_us == best.search["step_time_us"] == steps[fastest]
    assert result.step_time_us < same.scenario.run().step_time_us
    assert not any(d.startswith(("n0/", "n1/")) for d in result.bound.placement.devices)
    cost = degradation(best.scenario, result, asked, best).to_json()
    assert cost["ranks"] == {"healthy": 64, "degraded": 48}
    assert cost["restart"]["after"] == best.after and cost["restart"]["mode"] == "best"
    # Deterministic: the same search again chooses the same.
    again = restarted(asked, "best", options, client=dask_client)
    assert again.to_json() == best.to_json()


def test_a_job_that_still_fits_is_kept_whatever_the_mode(tmp_path: Path) -> None:
    wl = generate("transformer", {**MODEL, "tp": 8, "dp": 6})
    r = restarted(Scenario(wl, load_cluster(_topology(tmp_path, 8)),
                           whatif=WhatIf(fail=TWO_DOWN)), "best")
    assert r.scenario.workload is wl and r.after == {} and r.search is None


# A model that fits on 16 GPUs of 0.06 GiB only as TP 8 x PP 2, and on 8 not at all.
TIGHT = {"layers": 4, "hidden": 1024, "heads": 8, "ffn": 4096, "vocab": 1024,
         "seq_len": 128, "global_batch": 16}


def test_smallest_fit_is_the_fewest_gpus_with_a_configuration_that_fits() -> None:
    cap = int(0.06 * 2**30)
    found = smallest_fit(TIGHT, 8, 16, 8, cap, SearchSpace())
    assert found is not None
    assert layout_of(found) == {"tp": 8, "pp": 2, "dp": 1, "micro_batch": 1,
                                "recompute": "none", "zero": 0, "sequence_parallel": True,
                                "schedule": "1f1b"}
    assert smallest_fit(TIGHT, 8, 15, 8, cap, SearchSpace()) is None


def test_nothing_fits_on_the_gpus_left_exits_2_naming_them_and_the_smallest(
        tmp_path: Path, capsys) -> None:
    topo = _topology(tmp_path, 2, hbm_GiB=0.06)
    wl = write_workload(generate("transformer", {**TIGHT, "tp": 8, "pp": 2, "dp": 1}),
                        tmp_path / "w.parquet")
    out = tmp_path / "run"
    err = cli_exit_2(["replay", str(wl), "-t", str(topo), "--fail", "n1/gpu0", "--restart",
                      "best", "--out", str(out)], out, capsys)
    assert "Traceback" not in err
    text = " ".join(err.split())
    assert "fits on the 8 GPUs left" in text
    assert "the smallest configuration that fits needs 16 GPUs (tp 8, pp 2, dp 1" in text


def test_restart_best_refuses_what_the_search_cannot_take(tmp_path: Path) -> None:
    asked = _asked(tmp_path)
    with pytest.raises(WorkloadError, match="--flap with it; use --restart same-shape"):
        restarted(Scenario(asked.workload, asked.cluster,
                           whatif=WhatIf(fail=TWO_DOWN, flap={"n2/nic0": 0.1})), "best")
    with pytest.raises(WorkloadError, match="--restart 'fastest': use best"):
        restarted(asked, "fastest")

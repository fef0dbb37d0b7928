"""Co-search: Pareto layers, the limiting parameter, and a small space against exhaustive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simcluster.scenario import Scenario, WhatIf
from simcluster.search import SearchOptions, SearchSpace
from simcluster.search.cosearch import Limit, cosearch, limit_of, pareto_layers
from simcluster.search.driver import NothingFitsError, Trial
from simcluster.search.hardware import HardwareSpec
from simcluster.search.space import Candidate
from simcluster.topology import load_cluster
from simcluster.workload.generate.registry import generate
from tests.conftest import ROOT
from tests.search.test_driver import MODEL, SPACE

TOPO = ROOT / "topologies" / "dgx-h100.yaml"
# USD/h per GPU: 1 + 0.002 x TFLOP/s + 0.01 x GiB: (989.5, 16) 3.139, (989.5, 80) 3.779,
# (1979, 16) 5.118, (1979, 80) 5.758 (over the 5.5 budget).
HW = HardwareSpec.model_validate({
    "space": {"peak_tflops": [989.5, 1979], "hbm_GiB": [16, 80]},
    "cost": {"base": 1.0, "per_unit": {"peak_tflops": 0.002, "hbm_GiB": 0.01}},
    "budget": {"usd_per_hour": 5.5}})


def test_pareto_layers_peel_fronts() -> None:
    # (1,5) (2,3) (4,1) are the front; (3,4) is beaten by (2,3) only; (5,5) by (3,4) too;
    # (2,3) twice: equal points share a layer; (1,6) is beaten by (1,5) on y alone.
    pts = [(3, 4), (1, 5), (5, 5), (2, 3), (4, 1), (2, 3), (1, 6)]
    assert pareto_layers(pts) == [1, 0, 2, 0, 0, 0, 1]
    assert pareto_layers([]) == []


class _Hand:
    """A hand-made estimate: 1e4 / peak_tflops + 1e3 / scale_out_GBps us, whatever the
    configuration; memory plays no part."""

    def step_us(self, params: dict[str, Any], hw: dict[str, float]) -> float:
        return 1e4 / hw["peak_tflops"] + 1e3 / hw["scale_out_GBps"]

    def spec(self, hw: dict[str, float]) -> Any:
        return type("Spec", (), {"hbm_bytes": int(hw["hbm_GiB"] * 2**30)})

    def per_server(self, hw: dict[str, float]) -> int:
        return int(hw["scale_up_size"])


@pytest.mark.parametrize(("out_price", "expected"), [
    # +10 % peak: 100 -> 90.909 us of 120 (a 7.58 % cut) for 0.1 USD/h; +10 % scale-out:
    # 20 -> 18.18 us (1.52 %) for 0.05 USD/h at 0.01/GB/s, 0.005 USD/h at 0.001/GB/s.
    (0.01, Limit("peak_tflops", (100 - 1e4 / 110) / 120, 0.1)),
    (0.001, Limit("scale_out_GBps", (20 - 1e3 / 55) / 120, 0.005)),
])
def test_the_limit_is_the_cheapest_cut(out_price: float, expected: Limit) -> None:
    spec = HardwareSpec.model_validate({
        "space": {"peak_tflops": [100]},
        "cost": {"base": 1.0, "per_unit": {"peak_tflops": 0.01, "scale_out_GBps": out_price,
                                           "hbm_GiB": 0.0}}})
    base = {"peak_tflops": 100.0, "hbm_GiB": 80.0, "hbm_GBps": 1000.0,
            "scale_up_GBps": 400.0, "scale_out_GBps": 50.0, "scale_up_size": 8}
    params = {"tp": 1, "pp": 1, "dp": 8}
    got = limit_of(Trial(params, None, point={"hw.peak_tflops": 100.0}), spec, base,
                   _Hand(), lambda cap, per_server: [Candidate(params, None)]
                   )  # type: ignore[arg-type]
    assert got.param == expected.param
    assert got.time_cut == pytest.approx(expected.time_cut)
    assert got.usd_per_hour == pytest.approx(expected.usd_per_hour)


def test_cosearch_finds_the_exhaustive_optimum(tmp_path: Path, dask_client) -> None:
    report = cosearch(MODEL, TOPO, 8, tmp_path / "s", HW, SearchOptions(space=SPACE),
                      client=dask_client)
    s = report.search
    assert (report.variants, report.over_budget) == (3, 1)
    prices = {(989.5, 16.0): 3.139, (989.5, 80.0): 3.779, (1979.0, 16.0): 5.118}
    for t in s.trials:
        assert t.point["price"] == pytest.approx(
            prices[(t.point["hw.peak_tflops"], t.point["hw.hbm_GiB"])])
    # Memory is pruned per variant: some configurations fit in 80 GiB and not in 16.
    fit = {hbm: sum(t.infeasible is None for t in s.trials
                    if t.point == {"hw.peak_tflops": 989.5, "hw.hbm_GiB": hbm,
                                   "price": prices[(989.5, hbm)]})
           for hbm in (16.0, 80.0)}
    assert 0 < fit[16.0] < fit[80.0]
    feasible = [t for t in s.trials if t.infeasible is None]
    assert s.simulated == len(feasible) // 4
    # Exhaustive: every pair that fits, simulated on its hardware through the Scenario.
    steps = {t.key(): _hw_step(t) for t in feasible}
    assert s.best[0].full["step_time_us"] <= min(steps.values()) * 1.02
    # The front is exactly the full simulations no other one beats on time and cost.
    full = [t.full for t in s.trials if t.full and t.full["status"] == "ok"]
    tokens = MODEL["global_batch"] * 512
    for r, t in ((t.full, t) for t in s.trials if t.full and t.full["status"] == "ok"):
        assert r["step_time_us"] == pytest.approx(steps[t.key()], rel=1e-12)
        assert r["usd_per_1m_tokens"] == pytest.approx(
            t.point["price"] * 8 * r["step_time_us"] / 3.6e9 / tokens * 1e6)
    xy = [(r["step_time_us"], r["usd_per_1m_tokens"]) for r in full]
    front = {r["point_id"] for r, (x, y) in zip(full, xy)
             if not any(a <= x and b <= y and (a, b) != (x, y) for a, b in xy)}
    assert {t.full["point_id"] for t in report.front} == front
    summary = json.loads((tmp_path / "s" / "search.json").read_text())
    assert [p["point_id"] for p in summary["front"]] == [t.full["point_id"]
                                                         for t in report.front]
    assert summary["hardware"]["over_budget"] == 1
    assert all(p["limit"]["param"] in (None, "peak_tflops", "hbm_GiB", "hbm_GBps",
                                       "scale_up_GBps", "scale_out_GBps")
               for p in summary["front"])


def _hw_step(t: Trial) -> float:
    hw = {k[3:]: v for k, v in t.point.items() if k.startswith("hw.")}
    return Scenario(generate("transformer", t.params), load_cluster(TOPO),
                    whatif=WhatIf(hardware=hw)).run().step_time_us


def test_the_domain_size_is_searched_with_the_configuration(tmp_path: Path,
                                                            dask_client) -> None:
    # 16 H100 as 2 servers of 8 or 1 domain of 16; TP 16 exists only in the domain of 16.
    # USD/h per GPU: 1 + 0.05 x size: 1.4 (8), 1.8 (16).
    topo = ROOT / "topologies" / "h100-2node.yaml"
    hw = HardwareSpec.model_validate({
        "space": {"scale_up_size": [8, 16]},
        "cost": {"base": 1.0, "per_unit": {"scale_up_size": 0.05}}})
    space = SearchSpace(tp=(4, 8, 16), pp=(1,), micro_batch=(1,), recompute=("none",),
                        zero=(0,), interleave=(1,))
    model = {**MODEL, "layers": 2}
    report = cosearch(model, topo, 16, tmp_path / "s", hw,
                      SearchOptions(space=space, budget_fraction=1.0), client=dask_client)
    shapes = sorted((t.point["hw.scale_up_size"], t.params["tp"]) for t in report.search.trials)
    assert shapes == [(8.0, 4), (8.0, 8), (16.0, 4), (16.0, 8), (16.0, 16)]
    assert {t.point["hw.scale_up_size"]: t.point["price"] for t in report.search.trials} == {
        8.0: pytest.approx(1.4), 16.0: pytest.approx(1.8)}
    # Each simulation is the Scenario on the rebuilt topology.
    for t in report.search.trials:
        if t.full is not None:
            assert t.full["step_time_us"] == pytest.approx(Scenario(
                generate("transformer", t.params), load_cluster(topo),
                whatif=WhatIf(hardware={"scale_up_size": t.point["hw.scale_up_size"]}),
            ).run().step_time_us, rel=1e-12)
    # The cheaper size on the front is limited by nothing or a larger domain; the size-16
    # points cannot grow theirs within 16 GPUs.
    for t, lim in zip(report.front, report.limits):
        if t.point["hw.scale_up_size"] == 16.0:
            assert lim.param != "scale_up_size"


def test_cosearch_says_nothing_fits_with_the_class_a_restart_catches(tmp_path: Path) -> None:
    # 405B on 8 GPUs of at most 80 GiB: no variant's memory holds it. The error is the
    # class search raises (a restart turns it into the GPU count that would do).
    with pytest.raises(NothingFitsError):
        cosearch({"preset": "llama3-405b", "global_batch": 8}, TOPO, 8, tmp_path / "s", HW,
                 SearchOptions(space=SPACE))
    assert not (tmp_path / "s").exists()

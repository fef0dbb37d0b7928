"""Search: rungs, budget, extrapolation, and errors; on a space small enough to check."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from simcluster.analysis import mean_step_time_us
from simcluster.placement import bind
from simcluster.scenario import WhatIf
from simcluster.search import SearchError, SearchOptions, SearchSpace, search
from simcluster.search.driver import Trial, _fidelities
from simcluster.sim import simulate
from simcluster.topology import load_cluster
from simcluster.workload.generate.registry import generate, transformer_config
from tests.conftest import ROOT

distributed = pytest.importorskip("distributed")

TOPO = ROOT / "topologies" / "dgx-h100.yaml"
MODEL = {"preset": "llama2-7b", "layers": 8, "seq_len": 512, "global_batch": 32}
SPACE = SearchSpace(tp=(1, 2, 4), pp=(1, 2), micro_batch=(1, 2), recompute=("none",),
                    zero=(0, 1), interleave=(1,))


def _step(params: dict, comm_sms: float | None = None) -> float:
    cluster = load_cluster(TOPO)
    if comm_sms is not None:  # the SMs collectives take from compute (sim/interference.py)
        cluster = WhatIf(comm_sms=comm_sms).applied_to(cluster)
    return mean_step_time_us(simulate(bind(generate("transformer", params), cluster)))


@pytest.mark.parametrize(("tp", "pp", "schedule", "dp"), [
    (1, 1, "1f1b", 8), (1, 2, "1f1b", 4), (2, 2, "1f1b-interleaved:2", 2)])
def test_low_fidelity_extrapolates_to_the_full_step(tp: int, pp: int, schedule: str,
                                                    dp: int) -> None:
    # Two short pipelines (m1, m2 micro-batches) and a line through them give the step with
    # m micro-batches: 1F1B adds one steady-state period per micro-batch. Exactly so for the
    # schedule alone (comm_sms 0); compute slowed by communication (the default) moves the
    # shortest interleaved pipeline (2 micro-batches, no steady state) off the line by 6e-5.
    params = {**MODEL, "global_batch": 64, "tp": tp, "pp": pp, "dp": dp, "micro_batch": 1,
              "schedule": schedule, "recompute": "none", "zero": 0,
              "sequence_parallel": tp > 1}
    (m1, v1), (m2, v2) = _fidelities(Trial(params, None))
    m = transformer_config(params).micro_batches
    assert m1 + m2 < m
    for comm_sms, rel in ((0.0, 1e-9), (None, 1e-4)):
        a, b = _step({**params, **v1}, comm_sms), _step({**params, **v2}, comm_sms)
        assert b + (m - m2) * (b - a) / (m2 - m1) == pytest.approx(_step(params, comm_sms),
                                                                   rel=rel)


def test_search_finds_the_optimum_within_its_budget(tmp_path: Path,
                                                    dask_client) -> None:
    report = search(MODEL, TOPO, 8, tmp_path / "s", SearchOptions(space=SPACE),
                    client=dask_client)
    feasible = [t for t in report.trials if t.infeasible is None]
    assert report.feasible == len(feasible) >= 12
    assert report.simulated == len(feasible) // 4
    # Distinct configurations behind every simulation the search made: within the budget.
    rows = [pq.read_table(p).to_pylist()[0] for p in (tmp_path / "s" / "points").glob("*.parquet")]
    configs = {tuple(r[k] for k in ("tp", "pp", "dp", "micro_batch", "zero")) for r in rows}
    assert len(configs) <= report.simulated
    # Exhaustive: every configuration that fits, in full.
    best = min(_step(t.params) for t in feasible)
    assert report.best[0].full["step_time_us"] <= best * 1.02
    summary = json.loads((tmp_path / "s" / "search.json").read_text())
    assert summary["simulated_configurations"] == report.simulated
    assert pq.read_table(tmp_path / "s" / "candidates.parquet").num_rows == len(report.trials)


def test_rerun_simulates_nothing_new(tmp_path: Path, dask_client) -> None:
    opts = SearchOptions(space=SPACE, budget=3)
    search(MODEL, TOPO, 8, tmp_path / "s", opts, client=dask_client)
    log = (tmp_path / "s" / "evaluations.log").read_text().splitlines()
    again = search(MODEL, TOPO, 8, tmp_path / "s", opts, client=dask_client)
    assert (tmp_path / "s" / "evaluations.log").read_text().splitlines() == log
    assert again.best[0].full is not None


def test_search_errors(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="has 8 accelerators"):
        search(MODEL, TOPO, 16, tmp_path)
    with pytest.raises(SearchError, match="--ep 2: model 'llama2-7b' is dense"):
        search(MODEL, TOPO, 8, tmp_path, SearchOptions(space=SearchSpace(ep=(2,))))
    with pytest.raises(SearchError, match="use time or cost"):
        search(MODEL, TOPO, 8, tmp_path, SearchOptions(objective="speed"))
    with pytest.raises(SearchError, match="none of the .* configurations fits in memory"):
        search({"preset": "llama3-405b", "global_batch": 8}, TOPO, 8, tmp_path,
               SearchOptions(space=SPACE))
    unpriced = tmp_path / "t.yaml"
    unpriced.write_text("name: t\nnodes:\n  - {accelerator: A100-SXM4-80GB, accelerators: 8}\n")
    with pytest.raises(SearchError, match="needs a price"):
        search(MODEL, unpriced, 8, tmp_path, SearchOptions(objective="cost", space=SPACE))
    assert not list(tmp_path.glob("*.parquet"))


def test_rerun_recomputes_an_unreadable_point(tmp_path: Path, dask_client) -> None:
    opts = SearchOptions(space=SPACE, budget=3)
    first = search(MODEL, TOPO, 8, tmp_path / "s", opts, client=dask_client)
    assert first.recomputed == ()
    summary = (tmp_path / "s" / "search.json").read_text()
    victim = min((tmp_path / "s" / "points").glob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:50])  # truncated
    again = search(MODEL, TOPO, 8, tmp_path / "s", opts, client=dask_client)
    assert again.recomputed == (victim,)
    assert again.best[0].full == first.best[0].full
    assert (tmp_path / "s" / "search.json").read_text() == summary

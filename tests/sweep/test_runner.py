"""Sweeps on Dask: one row per point, resumable, and robust to a worker killed mid-sweep."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from simcluster.sweep import load_sweep, run_sweep
from simcluster.sweep.point import RESULT_COLUMNS, evaluate_point, result_path
from tests.conftest import ROOT

distributed = pytest.importorskip("distributed")

TOPO = str(ROOT / "topologies" / "h100-2node.yaml")


def _sweep(tmp_path: Path, axes: dict[str, Any], **base: Any):
    path = tmp_path / "sweep.yaml"
    workload = {"generate": "data-parallel", "ranks": 16, "layers": 2, **base}
    path.write_text(yaml.safe_dump({"name": "t", "base": {"topology": TOPO, "workload": workload,
                                                          "price": 2.0},
                                    "axes": axes}, sort_keys=False))
    return load_sweep(path)


def _log(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "evaluations.log").read_text().splitlines()]


def test_rows_have_inputs_and_outcomes_and_a_rerun_skips(tmp_path: Path,
                                                         dask_client) -> None:
    sweep = _sweep(tmp_path, {"layers": [2, 4], "scale_link.ib": [0.5, 1.0],
                              "placement": ["packed", "spread"]})
    out = tmp_path / "out"
    first = run_sweep(sweep, out, client=dask_client)
    assert (first.total, first.computed, first.skipped, first.failed) == (8, 8, 0, 0)
    table = pq.read_table(out / "results.parquet")
    assert table.num_rows == 8
    assert table.column_names == ["layers", "scale_link.ib", "placement", *RESULT_COLUMNS]
    rows = table.to_pylist()
    assert all(r["status"] == "ok" and r["step_time_us"] > 0 and r["gpus"] == 16 for r in rows)
    # $2/h per accelerator, 16 accelerators: $/step = 32 * step / 3.6e9.
    assert all(r["usd_per_step"] == pytest.approx(32 * r["step_time_us"] / 3.6e9) for r in rows)
    # More layers: a longer step, whatever else is the same.
    by = {(r["layers"], r["scale_link.ib"], r["placement"]): r["step_time_us"] for r in rows}
    assert all(by[(4, ib, pl)] > by[(2, ib, pl)] for _, ib, pl in by)
    again = run_sweep(sweep, out, client=dask_client)
    assert (again.computed, again.skipped) == (0, 8)
    assert pq.read_table(out / "results.parquet").equals(table)
    # Lose two rows (an interrupted run): the rerun computes exactly those.
    for p in sweep.points[:2]:
        result_path(out, p.id).unlink()
    third = run_sweep(sweep, out, client=dask_client)
    assert (third.computed, third.skipped) == (2, 6)
    assert pq.read_table(out / "results.parquet").equals(table)


def test_errors_and_oom_are_rows_not_crashes(tmp_path: Path, dask_client) -> None:
    # 32 ranks do not fit on 16 GPUs (an error row); a huge model does not fit in memory.
    sweep = _sweep(tmp_path, {"ranks": [16, 32], "hidden": [1024, 65536]})
    result = run_sweep(sweep, tmp_path / "out", client=dask_client)
    rows = {(r["ranks"], r["hidden"]): r for r in
            pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()}
    assert rows[(16, 1024)]["status"] == "ok"
    assert rows[(32, 1024)]["status"] == "error" and "32" in rows[(32, 1024)]["error"]
    assert rows[(16, 65536)]["status"] == "oom" and rows[(16, 65536)]["oom"] is True
    assert result.failed == 3


def test_a_point_is_published_once(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, {"layers": [2]})
    p = sweep.points[0]
    base = sweep.spec.base.model_dump()
    first = evaluate_point(p.id, p.values, base, str(sweep.folder), str(tmp_path))
    second = evaluate_point(p.id, p.values, base, str(sweep.folder), str(tmp_path))
    assert first == second
    assert Counter(e["event"] for e in _log(tmp_path)) == {"start": 1, "finish": 1}


def test_killed_worker_loses_nothing_and_rerun_computes_nothing(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, {"layers": [2, 3, 4, 5, 6, 7], "micro_batch": [1, 2]}, hidden=2048)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_a_busy_worker(done: int, total: int) -> None:
        if killed or done < 3:
            return
        for _ in range(200):  # find a worker in the middle of a point, and kill it
            events = _log(out)
            finished = {e["point_id"] for e in events if e["event"] == "finish"}
            busy = [e for e in events if e["event"] == "start" and e["point_id"] not in finished]
            if busy:
                killed.append(busy[-1]["pid"])
                os.kill(busy[-1]["pid"], signal.SIGKILL)
                return
            time.sleep(0.01)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = run_sweep(sweep, out, client=client, progress=kill_a_busy_worker)
    assert killed, "no worker was caught mid-point"
    assert (result.computed, result.failed) == (12, 0)
    table = pq.read_table(out / "results.parquet")
    assert sorted(table.column("point_id").to_pylist()) == sorted(p.id for p in sweep.points)
    events = _log(out)
    finishes = Counter(e["point_id"] for e in events if e["event"] == "finish")
    assert set(finishes.values()) == {1}  # every point finished exactly once
    # The killed worker's point was started again elsewhere; its first try left no row.
    restarted = [pid for pid, n in Counter(e["point_id"] for e in events
                                            if e["event"] == "start").items() if n > 1]
    assert len(restarted) >= 1
    assert not list((out / "points").glob(".*.tmp"))  # no partial file left behind
    rerun = run_sweep(sweep, out, client=None, workers=1)
    assert (rerun.computed, rerun.skipped) == (0, 12)


def test_transformer_points_derive_dp_and_prune_oom_analytically(tmp_path: Path,
                                                                 dask_client) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "base": {"topology": TOPO, "workload": {
            "generate": "transformer", "preset": "llama2-7b", "layers": 4, "seq_len": 1024,
            "global_batch": 16}},
        "axes": {"tp": [2, 4], "pp": [1, 2], "preset": ["llama2-7b", "llama3-405b"]},
        "constraints": ["gpus % (tp * pp) == 0"]}, sort_keys=False))
    sweep = load_sweep(path, gpus_of=lambda p: 16)
    run_sweep(sweep, tmp_path / "out", client=dask_client)
    rows = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()
    assert len(rows) == 8
    small = [r for r in rows if r["preset"] == "llama2-7b"]
    big = [r for r in rows if r["preset"] == "llama3-405b"]
    assert all(r["status"] == "ok" and 0 < r["mfu"] < 1 and r["gpus"] == 16 for r in small)
    assert all(r["bubble"] is not None and 0 <= r["exposed_comm_fraction"] < 1 for r in small)
    # 405B cut to 4 layers keeps its 128k x 16k embedding: with TP 2 and no pipeline, stage 0
    # needs 143.7 GiB; it is refused by the memory model, not simulated. The rest fit.
    oom = {(r["tp"], r["pp"]) for r in big if r["status"] == "oom"}
    assert oom == {(2, 1)}
    assert "analytic, not simulated" in [r for r in big if r["tp"] == 2 and r["pp"] == 1][0][
        "error"]
    assert all(r["peak_memory_fraction"] <= 1 for r in big if r["status"] == "ok")
    # Pipelining halves what each GPU holds: pp 2 has a lower peak than pp 1 at equal tp.
    by = {(r["tp"], r["pp"]): r for r in small}
    assert by[(2, 2)]["peak_memory_bytes"] < by[(2, 1)]["peak_memory_bytes"]


def test_unreadable_point_files_are_recomputed_on_resume(tmp_path: Path, dask_client) -> None:
    sweep = _sweep(tmp_path, {"layers": [2, 3, 4, 5]})
    out = tmp_path / "out"
    run_sweep(sweep, out, client=dask_client)
    results = (out / "results.parquet").read_bytes()
    files = [result_path(out, p.id) for p in sweep.points]
    truncated, garbage, foreign, fine = files
    truncated.write_bytes(truncated.read_bytes()[:100])  # a write cut short
    garbage.write_bytes(b"PAR1" + bytes(64) + b"PAR1")     # not Parquet inside
    foreign.write_bytes(fine.read_bytes())                 # another point's row
    again = run_sweep(sweep, out, client=dask_client)
    assert set(again.recomputed) == {truncated, garbage, foreign}
    assert (again.total, again.computed, again.skipped, again.failed) == (4, 3, 1, 0)
    assert (out / "results.parquet").read_bytes() == results  # the same rows again
    finishes = Counter(e["point_id"] for e in _log(out) if e["event"] == "finish")
    assert finishes == {p.id: 2 if i < 3 else 1 for i, p in enumerate(sweep.points)}
    third = run_sweep(sweep, out, client=dask_client)
    assert (third.computed, third.recomputed) == (0, ())


def test_a_worker_meeting_an_unreadable_file_still_returns_the_row(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, {"layers": [2]})
    p, base = sweep.points[0], sweep.spec.base.model_dump()
    good = evaluate_point(p.id, p.values, base, str(sweep.folder), str(tmp_path))
    result_path(tmp_path, p.id).write_bytes(b"truncated")
    assert evaluate_point(p.id, p.values, base, str(sweep.folder), str(tmp_path)) == good
    # Merging refuses the unreadable file instead of dropping the row silently.
    from simcluster.sweep import SweepError, merge

    with pytest.raises(SweepError, match="cannot read this point's row"):
        merge(tmp_path, [p.id])

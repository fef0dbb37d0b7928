"""Sweeps over a job mix: where should a new job go so that the job already on the cluster
slows down least? Exact rows on a dumbbell cluster, and a spec without jobs keeps its ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import simcluster as sc
from simcluster.sweep import load_sweep
from simcluster.sweep.errors import SweepError
from simcluster.sweep.point import MIX_COLUMNS, RESULT_COLUMNS, evaluate_point
from tests.conftest import dumbbell_spec, one_send


def _placement(folder: Path, name: str, devices: list[str]) -> str:
    (folder / name).write_text("ranks: [" + ", ".join(devices) + "]\n", encoding="utf-8")
    return name


def _spec(tmp_path: Path, **base: object) -> Path:
    (tmp_path / "dumbbell.yaml").write_text(yaml.safe_dump(dumbbell_spec(per_side=3)))
    sc.write_workload(one_send(), tmp_path / "send.parquet")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": {"topology": "dumbbell.yaml",
                                             "workload": {"trace": "send.parquet"}, **base},
                                    "axes": {"placement": [
                                        _placement(tmp_path, "across.yaml", ["a1", "a4"]),
                                        _placement(tmp_path, "one-side.yaml", ["a1", "a2"])]}}))
    return path


def test_a_new_job_across_the_bottleneck_slows_the_existing_one_and_beside_it_does_not(
        tmp_path: Path) -> None:
    # The existing job sends 1 GB from a0 to a3 over the 100 GB/s link: 10,000 us alone.
    # Across (a1 -> a4), both share the link from the start: 20,000 us each, 2x slower.
    # On one side (a1 -> a2), the new job's 1 GB crosses two 1,000 GB/s links: 1,000 us,
    # and the existing job keeps its 10,000 us.
    existing = _placement(tmp_path, "existing.yaml", ["a0", "a3"])
    sweep = load_sweep(_spec(tmp_path, jobs=[{"trace": "send.parquet",
                                              "placement": existing}]))
    rows = {p.values["placement"]: evaluate_point(p.id, p.values, sweep.spec.base.document(),
                                                  str(sweep.folder), str(tmp_path))
            for p in sweep.points}
    across, beside = rows["across.yaml"], rows["one-side.yaml"]
    assert across["status"] == beside["status"] == "ok"
    assert across["step_time_us"] == pytest.approx(10_000.0, rel=1e-12)  # alone
    assert across["together_step_us"] == pytest.approx(20_000.0, rel=1e-12)
    assert (across["slowdown"], across["others_slowdown"]) == pytest.approx((2.0, 2.0))
    assert beside["step_time_us"] == pytest.approx(1000.0, rel=1e-12)
    assert (beside["slowdown"], beside["others_slowdown"]) == pytest.approx((1.0, 1.0))
    assert set(RESULT_COLUMNS + MIX_COLUMNS) <= set(across)


def test_a_spec_without_jobs_keeps_its_rows_and_ids(tmp_path: Path) -> None:
    sweep = load_sweep(_spec(tmp_path))
    assert "jobs" not in sweep.spec.base.document()
    p = sweep.points[0]
    row = evaluate_point(p.id, p.values, sweep.spec.base.document(), str(sweep.folder),
                         str(tmp_path))
    assert not set(MIX_COLUMNS) & set(row)


def test_a_jobs_missing_trace_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"base\.jobs\[0\]\.trace|base\.jobs\.0\.trace"):
        load_sweep(_spec(tmp_path, jobs=[{"trace": "nowhere.parquet"}]))

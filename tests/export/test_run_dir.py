"""Run folders: the files, determinism, and no partial output on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from simcluster.atomic import atomic_path, staged_dir
from simcluster.export import OUTPUT_FILES, write_run
from tests.conftest import replay, star, workload


@pytest.fixture
def run():
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce", "comm_bytes": 10**6,
             "group": "g"} for r in range(3)]
    return replay(workload(rows, {"g": [0, 1, 2]}), star(3, latency_ns=100.0))


def test_files_and_their_contents(tmp_path: Path, run) -> None:
    out = write_run(run, tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    tl = pq.read_table(out / "timeline.parquet")
    assert tl.num_rows == 3 and tl.column_names[:6] == ["rank", "stream", "op_id", "name",
                                                       "kind", "device"]
    assert pq.read_table(out / "links.parquet").num_rows == 6
    assert pq.read_table(out / "ranks.parquet").num_rows == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["makespan_us"] == run.makespan_us


def test_byte_identical_outputs(tmp_path: Path, run) -> None:
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce", "comm_bytes": 10**6,
             "group": "g"} for r in range(3)]
    again = replay(workload(rows, {"g": [0, 1, 2]}), star(3, latency_ns=100.0))
    a = write_run(run, tmp_path / "a")
    b = write_run(again, tmp_path / "b")
    for name in OUTPUT_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_staged_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with staged_dir(out) as stage:
            (stage / "timeline.parquet").write_text("partial")
            raise RuntimeError("boom")
    assert not out.exists()
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(RuntimeError):
        with staged_dir(existing) as stage:
            (stage / "a").write_text("partial")
            raise RuntimeError("boom")
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half-written")
            raise ValueError
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]

"""The native Parquet format: round trips, versions, and every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcluster.errors import WorkloadError
from simcluster.workload import read_workload, write_workload
from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel
from tests.conftest import ROOT, workload


@pytest.fixture
def small():
    return data_parallel(DataParallelConfig(ranks=2, dims=TransformerDims(layers=2, hidden=64,
                                                                          seq_len=32, vocab=128)))


def test_round_trip_is_exact(tmp_path: Path, small) -> None:
    p = write_workload(small, tmp_path / "w.parquet")
    back = read_workload(p)
    assert back.ops.equals(small.ops)
    assert back.groups == small.groups and back.meta == small.meta


def test_writes_are_deterministic(tmp_path: Path, small) -> None:
    a = write_workload(small, tmp_path / "a.parquet").read_bytes()
    b = write_workload(small, tmp_path / "b.parquet").read_bytes()
    assert a == b


def test_truncated_file(tmp_path: Path, small) -> None:
    data = write_workload(small, tmp_path / "w.parquet").read_bytes()
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkloadError, match="cut.parquet: not a readable Parquet file.*truncated"):
        read_workload(bad)


def test_not_parquet_at_all(tmp_path: Path) -> None:
    bad = tmp_path / "trace.parquet"
    bad.write_text('{"traceEvents": []}')
    with pytest.raises(WorkloadError, match="not a readable Parquet file"):
        read_workload(bad)


def test_foreign_parquet(tmp_path: Path) -> None:
    p = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), p)
    with pytest.raises(WorkloadError, match="not a simcluster workload.*columns: x"):
        read_workload(p)


def test_newer_version_is_refused(tmp_path: Path, small) -> None:
    p = write_workload(small, tmp_path / "w.parquet")
    t = pq.read_table(p)
    meta = dict(t.schema.metadata)
    meta[b"simcluster.version"] = b"99"
    pq.write_table(t.replace_schema_metadata(meta), p)
    with pytest.raises(WorkloadError, match="format version 99.*upgrade simcluster"):
        read_workload(p)


def test_missing_columns(tmp_path: Path, small) -> None:
    p = write_workload(small, tmp_path / "w.parquet")
    t = pq.read_table(p)
    pq.write_table(t.drop_columns(["kind", "stream"]).replace_schema_metadata(t.schema.metadata), p)
    with pytest.raises(WorkloadError, match="missing required column\\(s\\) kind, stream"):
        read_workload(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="file not found"):
        read_workload(tmp_path / "none.parquet")


def test_bundled_sample_loads() -> None:
    wl = read_workload(ROOT / "traces" / "dp-transformer-16.parquet")
    assert wl.num_ranks == 16 and wl.groups == {"dp": tuple(range(16))}


_ops = st.lists(
    st.fixed_dictionaries({
        "rank": st.integers(0, 3),
        "kind": st.sampled_from(["compute", "host"]),
        "duration_us": st.floats(0, 1e6, allow_nan=False),
        "stream": st.sampled_from(["a", "b", "cuda:7"]),
        "name": st.text(min_size=1, max_size=12),
        "alloc_bytes": st.integers(0, 2**40),
    }),
    min_size=1, max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows=_ops)
def test_round_trip_of_arbitrary_valid_workloads(tmp_path_factory, rows) -> None:
    wl = workload(rows)
    p = tmp_path_factory.mktemp("rt") / "w.parquet"
    assert read_workload(write_workload(wl, p)).ops.equals(wl.ops)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_never_crash(tmp_path_factory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("rb") / "w.parquet"
    p.write_bytes(b"PAR1" + data)
    with pytest.raises(WorkloadError):
        read_workload(p)


def test_version_1_unless_fixed_durations_are_used(tmp_path: Path, small) -> None:
    p = write_workload(small, tmp_path / "w.parquet")
    assert pq.read_schema(p).metadata[b"simcluster.version"] == b"1"
    fixed = workload([{"rank": 0, "kind": "send", "fixed_duration": True, "duration_us": 2.0}])
    p2 = write_workload(fixed, tmp_path / "f.parquet")
    assert pq.read_schema(p2).metadata[b"simcluster.version"] == b"2"
    assert read_workload(p2).ops.column("fixed_duration").to_pylist() == [True]


def test_files_without_the_fixed_duration_column_still_read(tmp_path: Path, small) -> None:
    p = write_workload(small, tmp_path / "w.parquet")
    t = pq.read_table(p)
    pq.write_table(t.drop_columns(["fixed_duration"]).replace_schema_metadata(t.schema.metadata),
                   p)
    back = read_workload(p)
    assert back.ops.column("fixed_duration").null_count == back.num_ops


def test_splits_round_trip_and_files_without_them_load_even(tmp_path: Path) -> None:
    rows = [{"rank": r, "kind": "collective", "collective": "all_to_all", "comm_bytes": 6,
             "group": "g", "splits": [r, 6 - r]} for r in range(2)]
    wl = workload(rows, {"g": [0, 1]})
    back = read_workload(write_workload(wl, tmp_path / "v.parquet"))
    assert back.ops.column("splits").to_pylist() == [[0, 6], [1, 5]]
    old = tmp_path / "old.parquet"  # a file written before the column existed
    pq.write_table(pq.read_table(tmp_path / "v.parquet").drop_columns(["splits"]), old)
    assert read_workload(old).ops.column("splits").to_pylist() == [None, None]

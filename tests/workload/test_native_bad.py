"""Native workload files that are corrupt or foreign: each is a WorkloadError that says what
is wrong (null or non-object metadata, a column name that is not UTF-8, a truncated file, a
Parquet file of another program), never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcluster.errors import WorkloadError
from simcluster.workload.native import read_workload, write_workload
from tests.bounded import run_cli
from tests.conftest import ROOT

TRACE = ROOT / "traces" / "dp-transformer-16.parquet"


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return pq.read_table(TRACE)


def _with_meta(table: pa.Table, path: Path, key: bytes, value: bytes | None) -> Path:
    meta = dict(table.schema.metadata)
    if value is None:
        meta.pop(key)
    else:
        meta[key] = value
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


@pytest.mark.parametrize("value,says", [
    (b"null", "metadata simcluster.meta is null; it must be a JSON object"),
    (b"[1, 2]", "metadata simcluster.meta is [1, 2]; it must be a JSON object"),
    (b"7", "metadata simcluster.meta is 7"),
    (b'{"world_size": "16"}', 'simcluster.meta.world_size is "16"; it must be a whole number'),
    (b'{"world_size": 1e400}', "simcluster.meta.world_size is Infinity"),
    (b'{"world_size": -1}', "simcluster.meta.world_size is -1"),
    (b'{"extra": [1]}', "simcluster.meta.extra is [1]; it must be an object or null"),
    (b'{"name": {"a": 1}}', "simcluster.meta.name is"),
    (b"{", "metadata simcluster.meta is not valid JSON"),
    (b"\xff\xfe", "metadata simcluster.meta is not valid JSON"),
    (b"[" * 100_000, "metadata simcluster.meta is not valid JSON"),
])
def test_bad_meta(table: pa.Table, tmp_path: Path, value: bytes, says: str) -> None:
    p = _with_meta(table, tmp_path / "w.parquet", b"simcluster.meta", value)
    with pytest.raises(WorkloadError) as exc:
        read_workload(p)
    assert str(exc.value).startswith(f"{p}: ") and says in str(exc.value)


@pytest.mark.parametrize("value,says", [
    (b"null", "metadata simcluster.groups is null; it must be an object of group -> ranks"),
    (b'{"world": "0,1"}', 'simcluster.groups.world is "0,1"; it must be a list of ranks'),
    (b'{"world": [0, -1]}', "simcluster.groups.world is [0, -1]"),
    (b'{"world": [[0]]}', "simcluster.groups.world is [[0]]"),
])
def test_bad_groups(table: pa.Table, tmp_path: Path, value: bytes, says: str) -> None:
    p = _with_meta(table, tmp_path / "w.parquet", b"simcluster.groups", value)
    with pytest.raises(WorkloadError) as exc:
        read_workload(p)
    assert says in str(exc.value)


def test_column_name_not_utf8(tmp_path: Path) -> None:
    """A column path whose bytes are not UTF-8 (written in place of a valid name of the same
    length, so the file is otherwise intact)."""
    good = tmp_path / "good.parquet"
    write_workload(read_workload(TRACE), good)
    data = good.read_bytes()
    assert b"copy_kind" in data
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(data.replace(b"copy_kind", b"copy\xff\xfeind"))
    with pytest.raises(WorkloadError) as exc:
        read_workload(bad)
    assert str(bad) in str(exc.value)
    assert "column name or other text of the Parquet schema is not valid UTF-8" in str(exc.value)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9, 0.999])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    data = TRACE.read_bytes()
    p = tmp_path / "t.parquet"
    p.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(WorkloadError, match="not a readable Parquet file"):
        read_workload(p)


def test_foreign_parquet_cli(tmp_path: Path) -> None:
    p = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), p)
    m = run_cli("trace", "info", str(p), timeout_s=60)
    assert m.code == 2 and "Traceback" not in m.stderr
    assert "a Parquet file but not a simcluster workload" in m.stderr
    assert "columns: x, y" in m.stderr


def test_null_meta_cli(table: pa.Table, tmp_path: Path) -> None:
    p = _with_meta(table, tmp_path / "w.parquet", b"simcluster.meta", b"null")
    m = run_cli("trace", "info", str(p), timeout_s=60)
    assert m.code == 2 and "simcluster.meta is null" in m.stderr and "Traceback" not in m.stderr


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
              st.text(max_size=5)),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c,
                                                                 max_size=3)), max_leaves=8)
meta_objects = st.fixed_dictionaries({}, optional={
    k: json_values for k in ("name", "source", "world_size", "recorded_device",
                             "recorded_topology", "extra")})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([b"simcluster.meta", b"simcluster.groups", b"simcluster.version"]),
       st.one_of(json_values, meta_objects).map(lambda v: json.dumps(v).encode()),
       st.booleans())
def test_any_metadata_reads_or_is_a_workload_error(key: bytes, value: bytes,
                                                   drop: bool) -> None:
    table = pq.read_table(TRACE)
    with tempfile.TemporaryDirectory() as tmp:
        p = _with_meta(table, Path(tmp) / "w.parquet", key, None if drop else value)
        try:
            wl = read_workload(p)
        except WorkloadError as exc:
            assert str(p) in str(exc)
            return
        assert wl.num_ops == table.num_rows


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_bytes_read_or_are_a_workload_error(data: st.DataObject) -> None:
    raw = bytearray(TRACE.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "m.parquet"
        p.write_bytes(bytes(raw))
        try:
            read_workload(p)
        except WorkloadError as exc:
            assert str(p) in str(exc)


def test_string_data_not_utf8(table: pa.Table, tmp_path: Path) -> None:
    """An op name whose bytes are not UTF-8 (the file is otherwise intact)."""
    names = table.column("name").to_pylist()
    names[3] = "ZZMARKZZ"
    good = tmp_path / "good.parquet"
    pq.write_table(table.set_column(table.column_names.index("name"), "name",
                                    pa.array(names, pa.string())), good, compression="none",
                   write_statistics=False)
    data = good.read_bytes()
    assert data.count(b"ZZMARKZZ") == 1
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(data.replace(b"ZZMARKZZ", b"ZZ\xff\xfeRKZZ"))
    with pytest.raises(WorkloadError) as exc:
        read_workload(bad)
    assert str(exc.value).startswith(f"{bad}: not a readable Parquet file (")
    assert "Invalid UTF8" in str(exc.value)

"""Chakra decoding survives any byte string: wire-type mismatches, truncated varints, lengths
past the end, attributes of the wrong type all end as a WorkloadError that names the file and
the message (or node) with its byte offset; mutated real traces and random bytes import or
raise WorkloadError, never anything else."""

from __future__ import annotations

import random
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcluster.errors import WorkloadError
from simcluster.workload.chakra import import_chakra
from simcluster.workload.chakra.etfile import COMM_COLL_NODE, COMP_NODE, decode_attr
from simcluster.workload.protowire import WireError
from tests.conftest import SHARED
from tests.workload.etwriter import attr, et_file, f_bytes, f_str, f_varint, key, node, varint


def _import(tmp_path: Path, nodes: list[bytes]) -> None:
    import_chakra(et_file(tmp_path / "t.0.et", nodes))


@pytest.mark.parametrize("body,field", [
    (f_bytes(1, b"12"), "field 1 (id) is length-delimited, expected varint"),
    (f_varint(1, 1) + f_bytes(3, b"\x04"), "field 3 (type) is length-delimited"),
    (f_varint(1, 1) + f_bytes(6, b"1.5"), "field 6 (start_time_micros) is length-delimited"),
    (f_varint(1, 1) + f_bytes(7, b"12"), "field 7 (duration_micros) is length-delimited"),
    (f_varint(1, 1) + f_varint(2, 5), "field 2 (name) is varint, expected length-delimited"),
    (f_varint(1, 1) + key(5, 1) + b"\0" * 8, "field 5 (dependencies) is fixed 64-bit"),
    (f_varint(1, 1) + f_varint(10, 3), "field 10 (attribute) is varint"),
    (f_varint(1, 1) + f_bytes(10, f_str(1, "x") + f_varint(3, 7)),
     "field 3 (attribute 'x' value) is varint, expected fixed 64-bit"),
    (f_varint(1, 1) + f_bytes(10, f_str(1, "x") + f_bytes(9, b"7")),
     "field 9 (attribute 'x' value) is length-delimited, expected varint"),
    (f_varint(1, 1) + f_bytes(10, f_str(1, "x") + f_varint(29, 1)),
     "field 29 (attribute 'x' value) is varint, expected length-delimited"),
    (f_varint(1, 1) + f_bytes(10, f_str(1, "x") + f_varint(10, 1)),
     "field 10 (attribute 'x' list) is varint"),
    (f_varint(1, 1) + f_bytes(10, f_str(1, "x") + f_bytes(30, f_varint(1, 4))),
     "field 1 (list values) is varint, expected length-delimited"),
])
def test_wire_type_mismatch_names_file_node_and_offset(tmp_path: Path, body: bytes,
                                                       field: str) -> None:
    good = node(0, "a", COMP_NODE, duration=1)
    with pytest.raises(WorkloadError) as exc:
        _import(tmp_path, [good, body])
    msg = str(exc.value)
    assert f"{tmp_path / 't.0.et'}: not a readable Chakra ET: node message 1 at byte " in msg
    assert field in msg


@pytest.mark.parametrize("data,where", [
    (b"\x80\x80", "the length prefix at byte 0: truncated varint"),
    (varint(1) + b"\x80", "the metadata message at byte 1: truncated varint"),
    (varint(3) + f_str(1, "v") + varint(50) + b"abc", "the length prefix at byte 4: message "
                                                      "at byte 5 declares 50 bytes"),
    (varint(3) + key(1, 3) + b"ab", "unsupported wire type 3"),
    (varint(1) + b"\x00", "field number 0"),
    (varint(11) + b"\xff" * 11, "varint longer than 10 bytes"),
])
def test_malformed_bytes(tmp_path: Path, data: bytes, where: str) -> None:
    p = tmp_path / "m.0.et"
    p.write_bytes(data)
    with pytest.raises(WorkloadError) as exc:
        import_chakra(p)
    assert str(p) in str(exc.value) and where in str(exc.value)


@pytest.mark.parametrize("value,want", [
    ("1MB", "a whole number from 0 to 2**63-1"), ([1, 2], "a whole number"),
    (float("nan"), "a whole number"), (-5, "a whole number from 0"),
    (2.5, "a whole number"), (True, "a whole number"),
])
def test_attribute_of_the_wrong_type(tmp_path: Path, value: object, want: str) -> None:
    for r in range(2):
        et_file(tmp_path / f"j.{r}.et", [node(0, "ar", COMM_COLL_NODE, attrs={
            "comm_type": 0, "comm_size": value})])
    with pytest.raises(WorkloadError) as exc:
        import_chakra(tmp_path)
    msg = str(exc.value)
    assert "j.0.et: node 0 ('ar'): attribute comm_size is " in msg and want in msg


def test_uint64_size_past_int64_is_an_error(tmp_path: Path) -> None:
    big = f_str(1, "comm_size") + f_varint(13, 2**64 - 1)  # uint64_val
    for r in range(2):
        et_file(tmp_path / f"j.{r}.et", [node(0, "ar", COMM_COLL_NODE, attrs={"comm_type": 0})
                                         + f_bytes(10, big)])
    with pytest.raises(WorkloadError, match="attribute comm_size is 18446744073709551615"):
        import_chakra(tmp_path)


def test_lists_of_every_width_decode() -> None:
    assert decode_attr(f_str(1, "d") + f_bytes(4, f_bytes(1, struct.pack("<2d", 1.5, 2))))[1] \
        == [1.5, 2.0]
    assert decode_attr(f_str(1, "q") + f_bytes(26, key(1, 1) + struct.pack("<q", -3)))[1] \
        == [-3]
    assert decode_attr(f_str(1, "s") + f_bytes(30, f_str(1, "a") + f_str(1, "b")))[1] \
        == ["a", "b"]
    assert decode_attr(f_str(1, "u") + f_bytes(14, f_bytes(1, varint(5) + varint(300))))[1] \
        == [5, 300]
    with pytest.raises(WireError, match="packed list of <d values has 3 bytes"):
        decode_attr(f_str(1, "d") + f_bytes(4, f_bytes(1, b"abc")))


# -- fuzzing ---------------------------------------------------------------------------------

def _real_seeds() -> list[Path]:
    root = SHARED / "chakra" / "microbenchmarks"
    return sorted(root.glob("*/4npus_1MB")) if root.is_dir() else []


def _synthetic_seed(folder: Path) -> Path:
    for r in range(2):
        et_file(folder / f"s.{r}.et", [
            node(0, "gemm", COMP_NODE, duration=10, attrs={"is_cpu_op": False, "tid": 7}),
            node(1, "ar", COMM_COLL_NODE, data_deps=(0,),
                 attrs={"comm_type": 0, "comm_size": 1 << 20, "pg_name": "dp", "x": 0.5,
                        "dims": [1, 2]}),
        ])
    return folder


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif op == 3:
            del buf[pos:pos + rng.randint(1, 8)]
        else:
            del buf[pos:]
    return bytes(buf)


def _import_or_workload_error(folder: Path) -> None:
    try:
        wl = import_chakra(folder)
    except WorkloadError as exc:
        assert str(folder) in str(exc)
        return
    assert wl.num_ops > 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(0, 3))
def test_mutated_traces_import_or_fail_cleanly(seed: int, which: int) -> None:
    """Mutations of a real microbenchmark (one rank's file mutated; the synthetic seed when
    ../shared/data is absent)."""
    rng = random.Random(seed)
    seeds = _real_seeds()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if seeds:
            src = seeds[which % len(seeds)]
            files = sorted(src.glob("*.et"))
            for f in files:
                (folder / f.name).write_bytes(f.read_bytes())
        else:
            _synthetic_seed(folder)
            files = sorted(folder.glob("*.et"))
        target = folder / files[which % len(files)].name
        target.write_bytes(_mutate(target.read_bytes(), rng))
        _import_or_workload_error(folder)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_import_or_fail_cleanly(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "r.0.et").write_bytes(data)
        _import_or_workload_error(Path(tmp))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.sampled_from([0, 1, 2, 5]),
                          st.binary(max_size=12)), max_size=12))
def test_random_fields_import_or_fail_cleanly(fields: list[tuple[int, int, bytes]]) -> None:
    """Well-framed messages of random fields of every wire type: every decoder branch."""
    def field(number: int, wire: int, raw: bytes) -> bytes:
        if wire == 0:
            return key(number, 0) + varint(int.from_bytes(raw[:9] or b"\0", "little"))
        if wire == 1:
            return key(number, 1) + raw[:8].ljust(8, b"\0")
        if wire == 5:
            return key(number, 5) + raw[:4].ljust(4, b"\0")
        return f_bytes(number, raw)

    body = b"".join(field(*f) for f in fields)
    attr_body = f_bytes(10, b"".join(field(*f) for f in fields))
    with tempfile.TemporaryDirectory() as tmp:
        et_file(Path(tmp) / "f.0.et", [body, node(1, "n", COMP_NODE, duration=1) + attr_body])
        _import_or_workload_error(Path(tmp))


def test_real_traces_import_unchanged_by_the_checks(shared_data: Path) -> None:
    """Every real microbenchmark imports (the checks reject nothing real)."""
    for folder in sorted((shared_data / "chakra" / "microbenchmarks").glob("*/*")):
        assert import_chakra(folder).num_ops > 0


def test_attr_helper_round_trip() -> None:
    assert decode_attr(attr("comm_size", 5)) == ("comm_size", 5)


def test_chained_skipped_nodes_are_bounded(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Many ops depending on a long chain of skipped nodes: a bounded walk, then an error."""
    import simcluster.workload.chakra.ops as ops
    from simcluster.workload.chakra.etfile import METADATA_NODE
    chain = [node(0, "c0", METADATA_NODE)] + [
        node(i, f"c{i}", METADATA_NODE, data_deps=(i - 1,)) for i in range(1, 50)]
    leaves = [node(100 + i, f"op{i}", COMP_NODE, data_deps=(49,), duration=1) for i in range(50)]
    et_file(tmp_path / "k.0.et", chain + leaves)
    assert import_chakra(tmp_path).num_ops == 50
    monkeypatch.setattr(ops, "SKIPPED_WALK_MAX", 1000)
    with pytest.raises(WorkloadError, match=r"k\.0\.et: node \d+: dependencies passing through "
                                            r"skipped .* more than 1,000 steps"):
        import_chakra(tmp_path)

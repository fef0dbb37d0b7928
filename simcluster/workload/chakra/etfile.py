"""Chakra ET files decoded: one ``<prefix>.<rank>.et`` file -> its metadata and ``Node``s.

A file is a stream of varint-length-prefixed protobuf messages (``et_def.proto``): one
``GlobalMetadata``, then ``Node`` messages. They are decoded with
:mod:`simcluster.workload.protowire` (no protobuf dependency). What the nodes mean as ops is
:mod:`.ops`'s business.

Every field this module reads is checked for its wire type (``et_def.proto``); fields it does
not read are skipped whatever their type, as protobuf does. Any byte string therefore either
decodes or is a :class:`~simcluster.errors.WorkloadError` that names the file, the message
(metadata or node index) and its byte offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.workload.importing import rank_from_name
from simcluster.workload.protowire import (
    FIXED32,
    FIXED64,
    LENGTH,
    VARINT,
    WireError,
    expect_wire,
    fixed,
    iter_delimited_at,
    iter_fields,
    packed_varints,
    signed32,
    signed64,
    zigzag,
)

# NodeType and CollectiveCommType of et_def.proto.
INVALID_NODE, METADATA_NODE, MEM_LOAD_NODE, MEM_STORE_NODE = 0, 1, 2, 3
COMP_NODE, COMM_SEND_NODE, COMM_RECV_NODE, COMM_COLL_NODE = 4, 5, 6, 7
COMM_TYPES = {
    0: "all_reduce", 1: "reduce", 2: "all_gather", 3: "gather", 4: "scatter", 5: "broadcast",
    6: "all_to_all", 7: "reduce_scatter", 8: "reduce_scatter", 9: "barrier",
}

# AttributeProto value fields: number -> decoder of one scalar.
_SCALARS: dict[int, Any] = {
    3: lambda v: fixed(v, "<d"), 5: lambda v: fixed(v, "<f"), 7: signed32, 9: signed64,
    11: lambda v: v & 0xFFFFFFFF, 13: lambda v: v, 15: zigzag, 17: zigzag,
    19: lambda v: fixed(v, "<I"), 21: lambda v: fixed(v, "<Q"), 23: lambda v: fixed(v, "<i"),
    25: lambda v: fixed(v, "<q"), 27: bool, 29: lambda v: v.decode("utf-8", "replace"),
    31: bytes,
}
_LIST_WIDTH = {4: "<d", 6: "<f", 20: "<I", 22: "<Q", 24: "<i", 26: "<q"}
# The wire type of each scalar value field of AttributeProto.
_SCALAR_WIRE = {3: FIXED64, 5: FIXED32, 7: VARINT, 9: VARINT, 11: VARINT, 13: VARINT,
                15: VARINT, 17: VARINT, 19: FIXED32, 21: FIXED64, 23: FIXED32, 25: FIXED64,
                27: VARINT, 29: LENGTH, 31: LENGTH}


@dataclass(frozen=True)
class EtNode:
    """One decoded ``Node`` (times in us)."""

    id: int
    name: str
    type: int
    data_deps: tuple[int, ...]
    ctrl_deps: tuple[int, ...]
    start_us: float | None
    duration_us: float | None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EtFile:
    """One rank's decoded trace."""

    path: Path
    rank: int
    version: str
    metadata: dict[str, Any]
    nodes: list[EtNode]


def decode_attr(buf: bytes) -> tuple[str, Any]:
    """Decode an ``AttributeProto`` into (name, value); lists become Python lists.

    Raises:
        WireError: malformed bytes, or a field of the wrong wire type.
    """
    name, value = "", None
    for number, wire, raw in iter_fields(buf):
        if number == 1:
            expect_wire(number, wire, (LENGTH,), "attribute name")
            name = bytes(raw).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number in _SCALARS:
            expect_wire(number, wire, (_SCALAR_WIRE[number],), f"attribute {name!r} value")
            value = _SCALARS[number](raw)
        elif number % 2 == 0 and 4 <= number <= 32:
            expect_wire(number, wire, (LENGTH,), f"attribute {name!r} list")
            value = _decode_list(number, bytes(raw))  # type: ignore[arg-type]
    return name, value


def _decode_list(number: int, buf: bytes) -> list[Any]:
    """A ``*List`` message: its field 1 (``values``), packed or not.

    Raises:
        WireError: malformed bytes, or values of the wrong wire type.
    """
    scalar = _SCALARS[number - 1]
    wire_one = _SCALAR_WIRE[number - 1]
    packable = wire_one != LENGTH
    out: list[Any] = []
    for field_number, wire, raw in iter_fields(buf):
        if field_number != 1:
            continue
        expect_wire(1, wire, (wire_one, LENGTH) if packable else (LENGTH,), "list values")
        if wire == LENGTH and number in _LIST_WIDTH:  # packed fixed-width
            fmt = _LIST_WIDTH[number]
            data = bytes(raw)  # type: ignore[arg-type]
            if len(data) % struct.calcsize(fmt):
                raise WireError(f"packed list of {fmt} values has {len(data)} bytes")
            out += [x[0] for x in struct.iter_unpack(fmt, data)]
        elif wire == LENGTH and packable:  # packed varints
            out += [scalar(v) for v in packed_varints(raw)]  # type: ignore[arg-type]
        else:
            out.append(scalar(raw))
    return out


def _uint(number: int, wire: int, raw: int | bytes, what: str) -> int:
    """A varint field's value, after checking its wire type."""
    expect_wire(number, wire, (VARINT,), what)
    return raw  # type: ignore[return-value]


def decode_node(buf: bytes) -> EtNode:
    """Decode one ``Node`` message.

    Raises:
        WireError: malformed bytes, or a field of the wrong wire type.
    """
    node_id = 0
    name = ""
    ntype = INVALID_NODE
    deps: dict[int, list[int]] = {4: [], 5: []}
    start = dur = None
    attrs: dict[str, Any] = {}
    for number, wire, raw in iter_fields(buf):
        if number == 1:
            node_id = _uint(number, wire, raw, "id")
        elif number == 2:
            expect_wire(number, wire, (LENGTH,), "name")
            name = bytes(raw).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number == 3:
            ntype = _uint(number, wire, raw, "type")
        elif number in (4, 5):
            expect_wire(number, wire, (VARINT, LENGTH), "dependencies")
            deps[number] += packed_varints(raw) if wire == LENGTH else [raw]  # type: ignore
        elif number == 6:
            start = float(_uint(number, wire, raw, "start_time_micros"))
        elif number == 7:
            dur = float(_uint(number, wire, raw, "duration_micros"))
        elif number == 10:
            expect_wire(number, wire, (LENGTH,), "attribute")
            key, value = decode_attr(raw)  # type: ignore[arg-type]
            attrs[key] = value
    return EtNode(node_id, name, ntype, tuple(deps[5]), tuple(deps[4]), start, dur, attrs)


def _decode_metadata(buf: bytes) -> tuple[str, dict[str, Any]]:
    """Decode the ``GlobalMetadata`` message: (version, attributes).

    Raises:
        WireError: malformed bytes, or a field of the wrong wire type.
    """
    version, meta = "", {}
    for number, wire, raw in iter_fields(buf):
        if number == 1:
            expect_wire(number, wire, (LENGTH,), "version")
            version = bytes(raw).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number == 2:
            expect_wire(number, wire, (LENGTH,), "attribute")
            key, value = decode_attr(raw)  # type: ignore[arg-type]
            meta[key] = value
    return version, meta


def read_et(path: Path, rank: int) -> EtFile:
    """Read one ``.et`` file.

    Raises:
        WorkloadError: unreadable, truncated or not a Chakra trace; the message names the
            message (metadata or node index) and its byte offset.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read ({exc.strerror}).") from None
    where = "the length prefix at byte 0"
    version, meta, nodes = "", {}, []
    try:
        for k, (offset, message) in enumerate(iter_delimited_at(data)):
            if k == 0:
                where = f"the metadata message at byte {offset:,}"
                version, meta = _decode_metadata(message)
            else:
                where = f"node message {k - 1:,} at byte {offset:,}"
                nodes.append(decode_node(message))
            where = f"the length prefix at byte {offset + len(message):,}"
    except (WireError, UnicodeDecodeError, struct.error) as exc:
        raise WorkloadError(
            f"{path}: not a readable Chakra ET: {where}: {exc}; it may be truncated, or "
            "another format. Chakra files are varint-length-prefixed protobuf messages "
            "(et_def.proto)."
        ) from None
    if not data:
        raise WorkloadError(f"{path}: empty file; a Chakra trace starts with its metadata.")
    return EtFile(path=path, rank=rank, version=version, metadata=meta, nodes=nodes)


def find_et_files(directory: Path) -> list[tuple[int, Path]]:
    """The ``<prefix>.<rank>.et`` files of a directory, sorted by rank.

    Raises:
        WorkloadError: no ``.et`` files, a file without a rank, or two files for one rank.
    """
    files = sorted(directory.glob("*.et"))
    if not files:
        raise WorkloadError(f"{directory}: no .et files; Chakra traces are named "
                            "<prefix>.<rank>.et.")
    by_rank: dict[int, Path] = {}
    for f in files:
        r = rank_from_name(f)
        if r is None:
            raise WorkloadError(f"{f}: no rank in the file name; name it <prefix>.<rank>.et.")
        if r in by_rank:
            raise WorkloadError(f"{directory}: {by_rank[r].name} and {f.name} are both rank {r}; "
                                "keep one trace per rank.")
        by_rank[r] = f
    return sorted(by_rank.items())

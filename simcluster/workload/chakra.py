"""Chakra execution traces (ASTRA-sim's input) -> Workload.

A Chakra ET (``et_def.proto``) is one file per rank, ``<prefix>.<rank>.et``: a stream of
varint-length-prefixed protobuf messages, one ``GlobalMetadata`` then ``Node`` messages. It
is decoded here with :mod:`simcluster.workload.protowire` (no protobuf dependency).

Node -> op:

=====================  ========================================================================
node type              op
=====================  ========================================================================
COMP_NODE              ``compute`` (``host`` when ``is_cpu_op``), its recorded duration or,
                       without one, ``num_ops`` FLOPs and ``tensor_size`` bytes
COMM_COLL_NODE         ``collective``: ``comm_type`` -> the collective, ``comm_size`` -> bytes;
                       a CPU-side one (``is_cpu_op`` true, no size) is ``host`` time
COMM_SEND/RECV_NODE    ``send``/``recv`` with ``comm_dst``/``comm_src`` and ``comm_size``
MEM_LOAD/STORE_NODE    ``memcpy`` H2D/D2H of ``tensor_size`` bytes
METADATA, INVALID      skipped (counted)
=====================  ========================================================================

Dependencies are ``data_deps`` and ``ctrl_deps``; ones that name absent nodes or the node
itself are dropped and counted. Ops are numbered in a topological order of the data
dependencies (ties by start time, then node id), so stream order never contradicts one; a
data-dependency cycle is an error. Control dependencies that go against that order are
dropped and counted: converted PyTorch traces link an op and its kernel both ways.
Streams: ``tid`` (a CPU thread for CPU ops, a device stream otherwise) when given,
else ``compute``/``comm``/``cpu``.

Sizes (``comm_size``) are read as nccl-tests sizes (``docs/formats.md``): the per-rank buffer
of an all-reduce, the whole gathered output of an all-gather, the whole input of a
reduce-scatter, the total a rank sends in an all-to-all. ASTRA-sim's ring and direct
algorithms use it the same way (a ring all-gather moves ``(p-1)/p`` of it per rank).

Collectives are modelled (network model) when at least two ranks are present and every
member of their group is; otherwise they are fixed-duration at their recorded
``duration_micros`` (the feeder trace holds rank 0 only). Groups come from ``pg_name`` when
nodes carry it, else every rank is in one group, ``world``.
"""

from __future__ import annotations

import heapq
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.workload.importing import ImportReport, finish, rank_from_name
from simcluster.workload.model import OPS_SCHEMA, OpsBuilder, Workload, WorkloadMeta
from simcluster.workload.protowire import (
    LENGTH,
    WireError,
    fixed,
    iter_delimited,
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
_UNSUPPORTED_COLLECTIVES = ("gather", "scatter")

# Attributes this importer reads, and ones it knows but does not need.
_USED_ATTRS = {"is_cpu_op", "comm_type", "comm_size", "comm_src", "comm_dst", "pg_name",
               "num_ops", "tensor_size", "tid"}
_KNOWN_ATTRS = {"comm_tag", "comm_priority", "involved_dim", "op_type", "rf_id", "fw_parent",
                "fw_tid", "op_schema", "seq_id", "scope", "is_cpu_op"}

# AttributeProto value fields: number -> decoder of one scalar.
_SCALARS: dict[int, Any] = {
    3: lambda v: fixed(v, "<d"), 5: lambda v: fixed(v, "<f"), 7: signed32, 9: signed64,
    11: lambda v: v & 0xFFFFFFFF, 13: lambda v: v, 15: zigzag, 17: zigzag,
    19: lambda v: fixed(v, "<I"), 21: lambda v: fixed(v, "<Q"), 23: lambda v: fixed(v, "<i"),
    25: lambda v: fixed(v, "<q"), 27: bool, 29: lambda v: v.decode("utf-8", "replace"),
    31: bytes,
}
_LIST_WIDTH = {4: "<d", 6: "<f", 20: "<I", 22: "<Q", 24: "<i", 26: "<q"}


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
    """Decode an ``AttributeProto`` into (name, value); lists become Python lists."""
    name, value = "", None
    for number, wire, raw in iter_fields(buf):
        if number == 1:
            name = bytes(raw).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number == 2:
            continue
        elif number in _SCALARS:
            value = _SCALARS[number](raw)
        elif number % 2 == 0 and 4 <= number <= 32:
            value = _decode_list(number, bytes(raw))  # type: ignore[arg-type]
    return name, value


def _decode_list(number: int, buf: bytes) -> list[Any]:
    """A ``*List`` message: its field 1, packed or not."""
    scalar = _SCALARS[number - 1]
    out: list[Any] = []
    for _, wire, raw in iter_fields(buf):
        if wire == LENGTH and number in _LIST_WIDTH:  # packed fixed-width
            fmt = _LIST_WIDTH[number]
            if len(raw) % struct.calcsize(fmt):
                raise WireError(f"packed list of {fmt} values has {len(raw)} bytes")
            out += [x[0] for x in struct.iter_unpack(fmt, raw)]
        elif wire == LENGTH and number not in (30, 32):  # packed varints
            out += [scalar(v) for v in packed_varints(raw)]  # type: ignore[arg-type]
        else:
            out.append(scalar(raw))
    return out


def decode_node(buf: bytes) -> EtNode:
    """Decode one ``Node`` message."""
    node_id = 0
    name = ""
    ntype = INVALID_NODE
    deps: dict[int, list[int]] = {4: [], 5: []}
    start = dur = None
    attrs: dict[str, Any] = {}
    for number, wire, raw in iter_fields(buf):
        if number == 1:
            node_id = int(raw)  # type: ignore[arg-type]
        elif number == 2:
            name = bytes(raw).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number == 3:
            ntype = int(raw)  # type: ignore[arg-type]
        elif number in (4, 5):
            deps[number] += packed_varints(raw) if wire == LENGTH else [int(raw)]  # type: ignore
        elif number == 6:
            start = float(raw)  # type: ignore[arg-type]
        elif number == 7:
            dur = float(raw)  # type: ignore[arg-type]
        elif number == 10:
            key, value = decode_attr(raw)  # type: ignore[arg-type]
            attrs[key] = value
    return EtNode(node_id, name, ntype, tuple(deps[5]), tuple(deps[4]), start, dur, attrs)


def read_et(path: Path, rank: int) -> EtFile:
    """Read one ``.et`` file.

    Raises:
        WorkloadError: unreadable, truncated or not a Chakra trace.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read ({exc.strerror}).") from None
    messages = iter_delimited(data)
    try:
        head = next(messages, None)
        if head is None:
            raise WorkloadError(f"{path}: empty file; a Chakra trace starts with its metadata.")
        version, meta = "", {}
        for number, _, raw in iter_fields(head):
            if number == 1:
                version = bytes(raw).decode("utf-8", "replace")  # type: ignore[arg-type]
            elif number == 2:
                key, value = decode_attr(raw)  # type: ignore[arg-type]
                meta[key] = value
        nodes = [decode_node(m) for m in messages]
    except (WireError, UnicodeDecodeError, struct.error) as exc:
        raise WorkloadError(
            f"{path}: not a readable Chakra ET ({exc}); it may be truncated, or another "
            "format. Chakra files are varint-length-prefixed protobuf messages."
        ) from None
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


def _present_deps(node: EtNode, ids: list[int], by_id: dict[int, EtNode],
                  report: ImportReport) -> list[int]:
    """``ids`` without duplicates, the node itself and nodes absent from the trace (counted)."""
    keep = []
    for d in dict.fromkeys(ids):
        if d == node.id:
            report.skipped["dependency of a node on itself"] += 1
        elif d not in by_id:
            report.skipped["dependency on a node not in the trace"] += 1
        else:
            keep.append(d)
    return keep


def _topological(nodes: list[EtNode], path: Path, report: ImportReport
                 ) -> tuple[list[EtNode], dict[int, list[int]]]:
    """Nodes in an order that respects their data dependencies (ties: start time, then id),
    and each node's dependencies.

    Data dependencies must be acyclic (a cycle is an error). Control dependencies are kept
    when they agree with that order; converted PyTorch traces have control dependencies
    that point both ways between an op and its kernel, and those are dropped and counted.
    """
    by_id = {n.id: n for n in nodes}
    if len(by_id) != len(nodes):
        dup = Counter(n.id for n in nodes).most_common(1)[0][0]
        raise WorkloadError(f"{path}: node id {dup} is used twice; node ids must be unique.")
    data = {n.id: _present_deps(n, list(n.data_deps), by_id, report) for n in nodes}
    waiting = {i: len(d) for i, d in data.items()}
    children: dict[int, list[int]] = {i: [] for i in by_id}
    for i, d in data.items():
        for x in d:
            children[x].append(i)

    def key(i: int) -> tuple[float, int]:
        s = by_id[i].start_us
        return (s if s is not None else 0.0, i)

    ready = [key(i) for i, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    order: list[EtNode] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(by_id[i])
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, key(c))
    if len(order) < len(nodes):
        stuck = sorted(i for i, w in waiting.items() if w > 0)
        raise WorkloadError(
            f"{path}: the data dependencies of node(s) {', '.join(map(str, stuck[:6]))} form "
            "a cycle; a trace's data dependencies must be acyclic."
        )
    position = {n.id: k for k, n in enumerate(order)}
    deps = {}
    for n in nodes:
        ctrl = [d for d in _present_deps(n, list(n.ctrl_deps), by_id, report)
                if d not in data[n.id]]
        backward = [d for d in ctrl if position[d] < position[n.id]]
        if len(backward) < len(ctrl):
            report.skipped["control dependencies against the data-dependency order"] += (
                len(ctrl) - len(backward))
        deps[n.id] = data[n.id] + backward
    return order, deps


@dataclass
class _RankContext:
    rank: int
    modelled_comm: bool
    groups: dict[str, tuple[int, ...]]
    present: set[int]


def _stream(node: EtNode, cpu: bool, default: str) -> str:
    tid = node.attrs.get("tid")
    if tid is None:
        return "cpu" if cpu else default
    return f"cpu:{tid}" if cpu else f"cuda:{tid}"


def _comm_values(node: EtNode, ctx: _RankContext, report: ImportReport) -> dict[str, Any] | None:
    """Op columns of a communication node; None if it cannot be an op."""
    a = node.attrs
    size = a.get("comm_size")
    size = int(size) if size is not None else None
    dur = node.duration_us
    if node.type == COMM_COLL_NODE:
        coll = COMM_TYPES.get(int(a.get("comm_type", -1)))
        if coll is None:
            report.unknown[f"comm_type {a.get('comm_type')}"] += 1
            return None
        group = str(a["pg_name"]) if a.get("pg_name") not in (None, "") else "world"
        members = ctx.groups.get(group, ())
        fixed_ = (not ctx.modelled_comm or coll in _UNSUPPORTED_COLLECTIVES
                  or size is None and coll != "barrier")
        if group not in ctx.groups:
            fixed_ = True
        if fixed_ and dur is None:
            report.skipped[f"{coll} without a duration that cannot be modelled"] += 1
            return None
        if fixed_ and coll in _UNSUPPORTED_COLLECTIVES:
            report.notes.append(f"{coll} is not modelled; it replays at its recorded time.")
            coll = "all_gather" if coll == "gather" else "broadcast"
        if group not in ctx.groups or ctx.rank not in members:
            group = _own_group(ctx)
        root = None
        if coll in ("broadcast", "reduce"):
            # Chakra gives no root; PyTorch's broadcasts (DDP) start at the group's first rank.
            root = ctx.groups[group][0]
            report.notes.append("broadcast/reduce nodes carry no root; the group's first rank "
                                "is taken as the root.")
        return {"kind": "collective", "collective": coll, "comm_bytes": size, "group": group,
                "duration_us": dur, "fixed_duration": fixed_ or None, "root": root}
    send = node.type == COMM_SEND_NODE
    peer = a.get("comm_dst" if send else "comm_src")
    peer = int(peer) if peer is not None else None
    modelled = ctx.modelled_comm and peer in ctx.present and size is not None and peer != ctx.rank
    if not modelled and dur is None:
        report.skipped["send/recv without a duration that cannot be modelled"] += 1
        return None
    return {"kind": "send" if send else "recv", "comm_bytes": size,
            "peer": peer if modelled else None, "duration_us": dur,
            "fixed_duration": None if modelled else True}


def _own_group(ctx: _RankContext) -> str:
    """The name of the one-rank group that fixed collectives outside any known group use."""
    name = f"rank{ctx.rank}"
    ctx.groups.setdefault(name, (ctx.rank,))
    return name


def _op_values(node: EtNode, ctx: _RankContext, report: ImportReport
               ) -> tuple[str, dict[str, Any]] | None:
    """(stream, op columns) of a node, or None when it is skipped."""
    a = node.attrs
    cpu = bool(a.get("is_cpu_op", False))
    if node.type in (INVALID_NODE, METADATA_NODE):
        report.skipped["metadata/invalid nodes"] += 1
        return None
    if node.type == COMP_NODE or (node.type == COMM_COLL_NODE and cpu):
        work: dict[str, Any] = {"duration_us": node.duration_us}
        if node.duration_us is None and not cpu and (a.get("num_ops") or a.get("tensor_size")):
            work = {"flops": float(a.get("num_ops") or 0),
                    "bytes_accessed": int(a.get("tensor_size") or 0)}
        elif node.duration_us is None:
            report.skipped["compute nodes with neither a duration nor num_ops/tensor_size "
                           "(replayed as 0 us)"] += 1
            work = {"duration_us": 0.0}
        return _stream(node, cpu, "compute"), {"kind": "host" if cpu else "compute", **work}
    if node.type in (MEM_LOAD_NODE, MEM_STORE_NODE):
        size = a.get("tensor_size")
        if size is None and node.duration_us is None:
            report.skipped["memory nodes with neither tensor_size nor a duration"] += 1
            return None
        return _stream(node, False, "memory"), {
            "kind": "memcpy", "copy_kind": "H2D" if node.type == MEM_LOAD_NODE else "D2H",
            "comm_bytes": int(size) if size is not None else None,
            "duration_us": node.duration_us}
    if node.type in (COMM_COLL_NODE, COMM_SEND_NODE, COMM_RECV_NODE):
        values = _comm_values(node, ctx, report)
        return None if values is None else (_stream(node, False, "comm"), values)
    report.unknown[f"node type {node.type}"] += 1
    return None


def _add_rank(b: OpsBuilder, et: EtFile, ctx: _RankContext, report: ImportReport) -> None:
    order, deps = _topological(et.nodes, et.path, report)
    op_of: dict[int, int] = {}
    for node in order:
        for key in node.attrs:
            if key not in _USED_ATTRS and key not in _KNOWN_ATTRS:
                report.unknown[f"attribute {key}"] += 1
        made = _op_values(node, ctx, report)
        if made is None:
            # A skipped node passes its own dependencies on to the nodes that need it.
            op_of[node.id] = -1
            continue
        stream, values = made
        own = sorted({op_of[d] for d in deps[node.id] if op_of.get(d, -1) >= 0}
                     | _through_skipped(node.id, deps, op_of))
        op_of[node.id] = b.add(ctx.rank, node.name or f"node{node.id}", values.pop("kind"),
                               stream, deps=own or None, **values)


def _through_skipped(node_id: int, deps: dict[int, list[int]], op_of: dict[int, int]
                     ) -> set[int]:
    """Ops reached through skipped nodes among the deps of ``node_id``."""
    out: set[int] = set()
    stack = [d for d in deps[node_id] if op_of.get(d) == -1]
    seen: set[int] = set()
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        for d in deps[x]:
            if op_of.get(d, -1) >= 0:
                out.add(op_of[d])
            elif op_of.get(d) == -1:
                stack.append(d)
    return out


def _groups(files: list[EtFile]) -> dict[str, tuple[int, ...]]:
    """``world`` (every rank present) and each ``pg_name`` with the ranks that use it."""
    groups: dict[str, set[int]] = {"world": {f.rank for f in files}}
    for f in files:
        for n in f.nodes:
            pg = n.attrs.get("pg_name")
            if n.type == COMM_COLL_NODE and pg not in (None, ""):
                groups.setdefault(str(pg), set()).add(f.rank)
    return {g: tuple(sorted(r)) for g, r in groups.items()}


def import_chakra(path: str | Path) -> Workload:
    """Import a directory of Chakra ET files (``<prefix>.<rank>.et``), or one file.

    Ranks are numbered by the file names; they must be 0 .. N-1.

    Returns:
        The Workload; ``meta.extra['import']`` holds the import report (skipped nodes,
        unknown attributes, warnings).

    Raises:
        WorkloadError: no traces, truncated or foreign files, ranks with gaps, dependency
            cycles, or communication that does not match across ranks.
    """
    path = Path(path)
    if path.is_file():
        rank = rank_from_name(path) or 0
        pairs = [(rank, path)]
    elif path.is_dir():
        pairs = find_et_files(path)
    else:
        raise WorkloadError(f"{path}: no such file or directory.")
    ranks = [r for r, _ in pairs]
    if ranks != list(range(len(ranks))) and len(ranks) > 1:
        raise WorkloadError(
            f"{path}: ranks {', '.join(map(str, ranks[:8]))} are not 0..{len(ranks) - 1}; "
            "every rank of the job needs its trace."
        )
    report = ImportReport(source=str(path), files=[str(p) for _, p in pairs])
    files = [read_et(p, i) for i, (_, p) in enumerate(pairs)]
    groups = _groups(files)
    modelled = len(files) > 1
    if not modelled and any(n.type in (COMM_COLL_NODE, COMM_SEND_NODE, COMM_RECV_NODE)
                            for n in files[0].nodes):
        report.warnings.append(
            "one rank only: its communication replays at the recorded durations (the peers "
            "are not in the trace), so it cannot be retargeted to another cluster."
        )
    b = OpsBuilder()
    present = {f.rank for f in files}
    for f in files:
        _add_rank(b, f, _RankContext(f.rank, modelled, groups, present), report)
    table = b.table()
    if table.num_rows == 0:
        raise WorkloadError(f"{path}: the trace has no nodes that replay ({report.lines()}).")
    report.notes = list(dict.fromkeys(report.notes))
    meta = WorkloadMeta(
        name=_prefix(pairs[0][1]), source="chakra", world_size=len(files),
        extra={"chakra": {"version": files[0].version,
                          "metadata": {k: v for k, v in files[0].metadata.items()
                                       if isinstance(v, (int, float, str, bool))}}},
    )
    return finish(table.cast(OPS_SCHEMA), groups, meta, report, str(path))


def _prefix(path: Path) -> str:
    name = path.name.removesuffix(".et")
    head, _, tail = name.rpartition(".")
    return head if tail.isdigit() and head else name


def is_chakra_dir(path: Path) -> bool:
    """Whether ``path`` is a ``.et`` file or a directory holding some."""
    return path.suffix == ".et" if path.is_file() else path.is_dir() and any(path.glob("*.et"))


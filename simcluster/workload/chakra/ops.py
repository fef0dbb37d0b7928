"""Chakra nodes -> op rows of one rank: kind, stream, duration or work, communication.

The node -> op table, the streams and how ``comm_size`` is read are in the package docstring
(:mod:`simcluster.workload.chakra`). A node that cannot be an op is skipped and counted, and
passes its own dependencies on to the nodes that need it.

Attributes are typed by the writer (any attribute may hold any value type), so each one read
here is checked: a size, rank or count that is not a whole number in the int64 range (a
string, a list, NaN, 2**64) is a WorkloadError naming the file, the node and the attribute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcluster.errors import WorkloadError

from simcluster.workload.chakra.etfile import (
    COMM_COLL_NODE,
    COMM_RECV_NODE,
    COMM_SEND_NODE,
    COMM_TYPES,
    COMP_NODE,
    INVALID_NODE,
    MEM_LOAD_NODE,
    MEM_STORE_NODE,
    METADATA_NODE,
    EtFile,
    EtNode,
)
from simcluster.workload.chakra.order import _topological
from simcluster.workload.importing import ImportReport
from simcluster.workload.model import OpsBuilder

_UNSUPPORTED_COLLECTIVES = ("gather", "scatter")

# Attributes this importer reads, and ones it knows but does not need.
_USED_ATTRS = {"is_cpu_op", "comm_type", "comm_size", "comm_src", "comm_dst", "pg_name",
               "num_ops", "tensor_size", "tid"}
_KNOWN_ATTRS = {"comm_tag", "comm_priority", "involved_dim", "op_type", "rf_id", "fw_parent",
                "fw_tid", "op_schema", "seq_id", "scope", "is_cpu_op"}


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class _RankContext:
    rank: int
    modelled_comm: bool
    groups: dict[str, tuple[int, ...]]
    present: set[int]
    path: Path | None = None


def _bad_attr(node: EtNode, key: str, value: Any, ctx: _RankContext, want: str) -> WorkloadError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    where = f"{ctx.path}: " if ctx.path is not None else ""
    return WorkloadError(f"{where}node {node.id} ({node.name!r}): attribute {key} is {shown}; "
                         f"it must be {want}. The trace is corrupt or from an unknown writer.")


def _whole(node: EtNode, key: str, ctx: _RankContext, low: int = 0) -> int | None:
    """The attribute ``key`` as a whole number from ``low`` to 2**63-1 (sizes, ranks, type
    codes); None when absent. An integral float is accepted.

    Raises:
        WorkloadError: any other value.
    """
    v = node.attrs.get(key)
    if v is None:
        return None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= _I64_MAX:
        raise _bad_attr(node, key, v, ctx, f"a whole number from {low:,} to 2**63-1")
    return v


def _amount(node: EtNode, key: str, ctx: _RankContext) -> float | None:
    """The attribute ``key`` as a finite number >= 0 (FLOPs); None when absent.

    Raises:
        WorkloadError: any other value.
    """
    v = node.attrs.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
        raise _bad_attr(node, key, v, ctx, "a finite number >= 0")
    return float(v)


def _stream(node: EtNode, cpu: bool, default: str) -> str:
    tid = node.attrs.get("tid")
    if tid is None:
        return "cpu" if cpu else default
    return f"cpu:{tid}" if cpu else f"cuda:{tid}"


def _comm_values(node: EtNode, ctx: _RankContext, report: ImportReport) -> dict[str, Any] | None:
    """Op columns of a communication node; None if it cannot be an op."""
    a = node.attrs
    size = _whole(node, "comm_size", ctx)
    dur = node.duration_us
    if node.type == COMM_COLL_NODE:
        ctype = _whole(node, "comm_type", ctx, low=_I64_MIN)
        coll = COMM_TYPES.get(-1 if ctype is None else ctype)
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
    peer = _whole(node, "comm_dst" if send else "comm_src", ctx, low=_I64_MIN)
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
        num_ops = tensor_size = None
        if node.duration_us is None and not cpu:
            num_ops, tensor_size = _amount(node, "num_ops", ctx), _whole(node, "tensor_size", ctx)
        if num_ops or tensor_size:
            work = {"flops": num_ops or 0.0, "bytes_accessed": tensor_size or 0}
        elif node.duration_us is None:
            report.skipped["compute nodes with neither a duration nor num_ops/tensor_size "
                           "(replayed as 0 us)"] += 1
            work = {"duration_us": 0.0}
        return _stream(node, cpu, "compute"), {"kind": "host" if cpu else "compute", **work}
    if node.type in (MEM_LOAD_NODE, MEM_STORE_NODE):
        size = _whole(node, "tensor_size", ctx)
        if size is None and node.duration_us is None:
            report.skipped["memory nodes with neither tensor_size nor a duration"] += 1
            return None
        return _stream(node, False, "memory"), {
            "kind": "memcpy", "copy_kind": "H2D" if node.type == MEM_LOAD_NODE else "D2H",
            "comm_bytes": size,
            "duration_us": node.duration_us}
    if node.type in (COMM_COLL_NODE, COMM_SEND_NODE, COMM_RECV_NODE):
        values = _comm_values(node, ctx, report)
        return None if values is None else (_stream(node, False, "comm"), values)
    report.unknown[f"node type {node.type}"] += 1
    return None


# Steps spent following dependencies through skipped nodes, per rank. Real traces spend none
# (converted PyTorch traces skip no node that others depend on); a crafted file of chained
# skipped nodes with many dependents would otherwise cost time quadratic in its size.
SKIPPED_WALK_MAX = 10_000_000


def _add_rank(b: OpsBuilder, et: EtFile, ctx: _RankContext, report: ImportReport) -> None:
    order, deps = _topological(et.nodes, et.path, report)
    op_of: dict[int, int] = {}
    budget = [SKIPPED_WALK_MAX]
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
                     | _through_skipped(node.id, deps, op_of, budget, et.path))
        op_of[node.id] = b.add(ctx.rank, node.name or f"node{node.id}", values.pop("kind"),
                               stream, deps=own or None, **values)


def _through_skipped(node_id: int, deps: dict[int, list[int]], op_of: dict[int, int],
                     budget: list[int], path: Path) -> set[int]:
    """Ops reached through skipped nodes among the deps of ``node_id``.

    Raises:
        WorkloadError: the rank's walks through skipped nodes took more than
            ``SKIPPED_WALK_MAX`` steps (``budget`` holds what is left).
    """
    out: set[int] = set()
    stack = [d for d in deps[node_id] if op_of.get(d) == -1]
    seen: set[int] = set()
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        budget[0] -= len(deps[x]) + 1
        if budget[0] < 0:
            raise WorkloadError(
                f"{path}: node {node_id}: dependencies passing through skipped (metadata or "
                f"invalid) nodes take more than {SKIPPED_WALK_MAX:,} steps to resolve; real "
                "traces need none. The trace is corrupt or crafted.")
        for d in deps[x]:
            if op_of.get(d, -1) >= 0:
                out.add(op_of[d])
            elif op_of.get(d) == -1:
                stack.append(d)
    return out

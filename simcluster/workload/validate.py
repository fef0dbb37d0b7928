"""Check a raw ops table against the workload contract and make a Workload.

Every reader (native Parquet, Kineto, Chakra, generators) ends here, so the simulator can rely
on: the schema of ``OPS_SCHEMA``; rows sorted by (rank, op_id) with op_id unique per rank;
known kinds; every collective with a known group that contains its rank; send/recv with a
valid peer; deps that name ops of the same rank; and a ``seq`` on every communication op.
Checks are vectorised so that million-op workloads validate in well under a second.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.errors import WorkloadError, where
from simcluster.workload.model import (
    COLLECTIVES,
    COPY_KINDS,
    KINDS,
    OPS_SCHEMA,
    REQUIRED_COLUMNS,
    Workload,
    WorkloadMeta,
)

_ROW = "__row"


class _Checker:
    """Formats errors that point at one row of the input."""

    def __init__(self, table: pa.Table, source: str) -> None:
        self.t = table
        self.source = source

    def fail(self, mask: np.ndarray, column: str, problem: str, fix: str) -> None:
        """Raise if any row in ``mask`` is bad, naming the first and the count."""
        bad = np.flatnonzero(mask)
        if bad.size == 0:
            return
        i = int(bad[0])
        row = int(self.t.column(_ROW)[i].as_py())
        rank = self.t.column("rank")[i].as_py()
        op_id = self.t.column("op_id")[i].as_py()
        name = self.t.column("name")[i].as_py()
        more = f" ({bad.size - 1} more row(s) like it)" if bad.size > 1 else ""
        raise WorkloadError(
            f"{where(self.source)}row {row} (rank {rank}, op_id {op_id}, {name!r}): {column}: "
            f"{problem}{more}; {fix}"
        )


def _conform(table: pa.Table, source: str) -> pa.Table:
    """Cast known columns to the schema, add missing optional ones as nulls, keep order."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise WorkloadError(
            f"{where(source)}missing required column(s) {', '.join(missing)} (the file has: "
            f"{', '.join(table.column_names) or 'none'}); see docs/formats.md for the workload "
            "columns."
        )
    cols = {}
    for f in OPS_SCHEMA:
        if f.name not in table.column_names:
            cols[f.name] = pa.nulls(table.num_rows, f.type)
            continue
        col = table.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise WorkloadError(
                    f"{where(source)}column {f.name!r} has type {col.type}, expected {f.type} "
                    f"({exc}); write it with that type."
                ) from None
        if not f.nullable and col.null_count:
            first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise WorkloadError(
                f"{where(source)}row {first}: column {f.name!r} is empty; every op needs "
                f"{f.name}."
            )
        cols[f.name] = col
    cols[_ROW] = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return pa.table(cols)


def _np(t: pa.Table, name: str, fill: object = None) -> np.ndarray:
    col = t.column(name)
    if fill is not None:
        col = col.fill_null(fill)
    return col.to_numpy(zero_copy_only=False)


def _isin(t: pa.Table, name: str, allowed: tuple[str, ...]) -> np.ndarray:
    return pc.is_in(t.column(name), value_set=pa.array(allowed)).fill_null(False).to_numpy(
        zero_copy_only=False
    )


def _codes(t: pa.Table, name: str, values: list[str]) -> np.ndarray:
    """Each row's index of its ``name`` in ``values`` (hashed, not compared per row); -1
    where absent or null."""
    idx = pc.index_in(t.column(name), value_set=pa.array(values, pa.string()))
    return idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _check_values(t: pa.Table, chk: _Checker, world: int,
                  groups: dict[str, tuple[int, ...]]) -> None:
    rank = _np(t, "rank")
    kind = _np(t, "kind")
    chk.fail(rank < 0, "rank", "is negative", "ranks are numbered from 0.")
    if world and (rank >= world).any():
        chk.fail(rank >= world, "rank", f"is not below the world size {world}",
                 "raise world_size in the metadata or renumber the ranks.")
    chk.fail(~_isin(t, "kind", KINDS), "kind", "is not a known kind",
             f"use one of {', '.join(KINDS)}.")
    chk.fail(_np(t, "stream") == "", "stream", "is empty", "name the stream, e.g. 'compute'.")

    for col in ("duration_us", "flops"):
        vals = _np(t, col, 0.0).astype(np.float64)
        chk.fail(~np.isfinite(vals) | (vals < 0), col, "is negative or not finite",
                 "use a number >= 0.")
    for col in ("bytes_accessed", "comm_bytes", "alloc_bytes", "free_bytes"):
        chk.fail(_np(t, col, 0) < 0, col, "is negative", "use a byte count >= 0.")

    is_coll = kind == "collective"
    is_p2p = (kind == "send") | (kind == "recv")
    is_copy = kind == "memcpy"
    has_dur = ~t.column("duration_us").is_null().to_numpy(zero_copy_only=False)
    has_work = (_np(t, "flops", 0.0) > 0) | (_np(t, "bytes_accessed", 0) > 0)
    # A fixed-duration op replays its recorded duration, so it needs one, and nothing else
    # that only a modelled op needs (a size; for send/recv, a peer in the workload).
    fixed = _np(t, "fixed_duration", False).astype(bool)
    chk.fail(fixed & ~has_dur, "duration_us", "a fixed_duration op has no duration",
             "give its duration_us, or set fixed_duration to false.")
    chk.fail((kind == "host") & ~has_dur, "duration_us", "a host op has no duration",
             "give its duration_us.")
    chk.fail((kind == "compute") & ~has_dur & ~has_work, "duration_us",
             "a compute op has neither a duration nor flops/bytes_accessed",
             "give duration_us, or flops and bytes_accessed for the compute model.")

    chk.fail(is_coll & ~_isin(t, "collective", COLLECTIVES), "collective",
             "a collective op without a known collective", f"use one of {', '.join(COLLECTIVES)}.")
    no_bytes = t.column("comm_bytes").is_null().to_numpy(zero_copy_only=False)
    barrier = _np(t, "collective", "") == "barrier"
    chk.fail((is_coll & ~barrier | is_p2p) & no_bytes & ~fixed, "comm_bytes",
             "a communication op has no size",
             "give comm_bytes (see docs/formats.md), or fixed_duration with its duration_us.")
    chk.fail(is_copy & ~_isin(t, "copy_kind", COPY_KINDS), "copy_kind",
             "a memcpy without a known copy_kind", f"use one of {', '.join(COPY_KINDS)}.")
    chk.fail(is_copy & no_bytes & ~has_dur, "comm_bytes", "a memcpy has neither size nor duration",
             "give comm_bytes (or duration_us).")

    known = sorted(groups)
    code = _codes(t, "group", known)
    chk.fail(is_coll & (code < 0), "group", "names no known group",
             f"add it to the groups (known: {', '.join(known[:8]) or 'none'}).")
    if is_coll.any():
        span = int(max(rank.max(initial=0), max((max(rs, default=0) for rs in groups.values()),
                                                default=0))) + 1
        members = np.array([i * span + r for i, g in enumerate(known) for r in groups[g]],
                           dtype=np.int64)
        outside = is_coll & ~np.isin(code * span + rank, members)
        chk.fail(outside, "group", "the rank is not a member of this group",
                 "add the rank to the group or fix the op's group.")
        root = _np(t, "root", -1)
        rooted = is_coll & _isin(t, "collective", ("broadcast", "reduce"))
        bad_root = rooted & ((root < 0) | (root >= span) | ~np.isin(code * span + root,
                                                                     members))
        chk.fail(bad_root, "root", "broadcast/reduce needs a root that is a member of its group",
                 "set root to a rank of the group.")

    peer = _np(t, "peer", -1)
    # A fixed-duration send/recv may talk to a rank that is not in the workload (peer null).
    no_peer = t.column("peer").is_null().to_numpy(zero_copy_only=False)
    chk.fail(is_p2p & ~(fixed & no_peer) & ((peer < 0) | (world > 0) & (peer >= world)), "peer",
             "a send/recv without a valid peer rank", f"set peer to a rank in 0..{world - 1}.")
    chk.fail(is_p2p & (peer == rank), "peer", "a rank sends to itself",
             "a send/recv needs another rank as peer.")


def _check_splits(t: pa.Table, chk: _Checker, groups: dict[str, tuple[int, ...]]) -> None:
    """An all-to-allv's ``splits``: only on an all_to_all, one non-negative byte count per
    member of its group, summing to at most ``comm_bytes`` (the size the collective is
    matched and tuned by: its largest rank's send or receive total)."""
    splits = t.column("splits").combine_chunks()
    has = ~splits.is_null().to_numpy(zero_copy_only=False)
    if not has.any():
        return
    a2a = (_np(t, "kind") == "collective") & (_np(t, "collective", "") == "all_to_all")
    chk.fail(has & ~a2a, "splits", "only an all_to_all collective has splits",
             "remove the splits of this op (or make it an all_to_all).")
    lengths = pc.list_value_length(splits).fill_null(0).to_numpy(zero_copy_only=False)
    group = _np(t, "group", "")
    size = np.zeros(t.num_rows, dtype=np.int64)
    size[has] = [len(groups.get(g, ())) for g in group[has]]
    chk.fail(has & (lengths != size), "splits",
             "does not list one byte count per member of the op's group",
             "give the bytes sent to each member of the group, in the group's rank order.")
    flat = pc.list_flatten(splits).to_numpy(zero_copy_only=False).astype(np.int64)
    owner = np.repeat(np.arange(t.num_rows), lengths)
    negative = np.zeros(t.num_rows, bool)
    negative[owner[flat < 0]] = True
    chk.fail(negative, "splits", "has a negative byte count", "use byte counts >= 0.")
    total = np.bincount(owner, weights=flat.astype(np.float64), minlength=t.num_rows)
    chk.fail(has & (total > _np(t, "comm_bytes", 0)), "splits",
             "sums to more than comm_bytes",
             "set comm_bytes to the largest send or receive total of the collective's ranks.")


def _resolve_deps(t: pa.Table, chk: _Checker) -> None:
    """Every dep must name an op_id of the same rank, other than the op itself."""
    deps = t.column("deps").combine_chunks()
    lengths = pc.list_value_length(deps).fill_null(0).to_numpy(zero_copy_only=False)
    if lengths.sum() == 0:
        return
    flat = pc.list_flatten(deps).to_numpy(zero_copy_only=False)
    owner = np.repeat(np.arange(t.num_rows), lengths)
    rank = _np(t, "rank").astype(np.int64)
    op_id = _np(t, "op_id").astype(np.int64)
    # Rows are sorted by (rank, op_id): look the keys up by binary search.
    keys = rank * (1 << 40) + op_id
    want = rank[owner] * (1 << 40) + flat
    pos = np.searchsorted(keys, want)
    found = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == want)
    bad = np.zeros(t.num_rows, bool)
    bad[owner[~found]] = True
    chk.fail(bad, "deps", "names an op_id that this rank does not have",
             "deps list op_ids of the same rank.")
    self_dep = np.zeros(t.num_rows, bool)
    self_dep[owner[flat == op_id[owner]]] = True
    chk.fail(self_dep, "deps", "the op depends on itself", "remove its own op_id from deps.")


def _fill_seq(t: pa.Table, chk: _Checker) -> pa.Table:
    """Number collectives per (rank, group) and send/recv per (sender, receiver) in op order
    where the input gives no seq; a partly filled seq column is an error."""
    kind = _np(t, "kind")
    comm = (kind == "collective") | (kind == "send") | (kind == "recv")
    seq_null = t.column("seq").is_null().to_numpy(zero_copy_only=False)
    if not (comm & seq_null).any():
        return t
    if (comm & ~seq_null).any():
        chk.fail(comm & seq_null, "seq", "some communication ops have a seq and this one not",
                 "give seq on every collective/send/recv, or on none.")
    rank = _np(t, "rank").astype(np.int64)
    peer = _np(t, "peer", -1).astype(np.int64)
    src = np.where(kind == "recv", peer, rank)
    dst = np.where(kind == "recv", rank, peer)
    _, gcode = np.unique(_np(t, "group", ""), return_inverse=True)
    # One channel per (rank, group) for collectives, per (src, dst) for send/recv.
    channel = np.where(kind == "collective",
                       (rank << 21) + gcode.astype(np.int64),
                       (1 << 62) + (src << 21) + dst)
    channel = np.where(kind == "recv", channel | (1 << 61), channel)
    idx = np.flatnonzero(comm)
    order = idx[np.argsort(channel[idx], kind="stable")]
    ch = channel[order]
    starts = np.r_[True, ch[1:] != ch[:-1]]
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(ch)), 0))
    seq = np.full(t.num_rows, -1, dtype=np.int64)
    seq[order] = np.arange(len(ch)) - run_start
    arr = pa.array(np.where(comm, seq, 0), pa.int64(), mask=~comm)
    return t.set_column(t.schema.get_field_index("seq"), "seq", arr)


def _check_groups(groups: dict[str, tuple[int, ...]], world: int, source: str) -> None:
    for g, ranks in groups.items():
        if not ranks:
            raise WorkloadError(f"{where(source)}group {g!r} has no ranks; list its ranks.")
        if len(set(ranks)) != len(ranks):
            raise WorkloadError(f"{where(source)}group {g!r} lists a rank twice; list each once.")
        bad = [r for r in ranks if r < 0 or (world and r >= world)]
        if bad:
            raise WorkloadError(
                f"{where(source)}group {g!r} has rank {bad[0]} outside 0..{world - 1}; fix it."
            )


def _sorted(t: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """``t`` by rank, then op_id (a stable sort), with its rank and op_id columns as int64
    arrays; a table already in that order (every generated workload) is returned as it is:
    a sort would be the identity, and at 2.3M rows its copy costs seconds."""
    rank = _np(t, "rank").astype(np.int64)
    op_id = _np(t, "op_id").astype(np.int64)
    step = np.diff(rank)
    if np.all((step > 0) | (step == 0) & (np.diff(op_id) >= 0)):
        return t, rank, op_id
    t = t.sort_by([("rank", "ascending"), ("op_id", "ascending")])
    return t, _np(t, "rank").astype(np.int64), _np(t, "op_id").astype(np.int64)


def make_workload(
    table: pa.Table,
    groups: dict[str, list[int] | tuple[int, ...]],
    meta: WorkloadMeta,
    source: str = "",
) -> Workload:
    """Validate a raw ops table and return a Workload.

    Parameters:
        table: ops with at least the columns rank, op_id, name, kind, stream.
        groups: communication groups, name -> ranks.
        meta: provenance; ``world_size`` 0 means max(rank) + 1.
        source: file name for error messages.

    Raises:
        WorkloadError: the first problem found, with its row, rank, op_id and a fix.
    """
    t = _conform(table, source)
    if t.num_rows == 0:
        raise WorkloadError(f"{where(source)}the workload has no ops; it needs at least one.")
    t, rank, op_id = _sorted(t)
    chk = _Checker(t, source)
    dup = np.r_[False, (rank[1:] == rank[:-1]) & (op_id[1:] == op_id[:-1])]
    chk.fail(dup, "op_id", "is used twice on this rank", "give each op of a rank its own op_id.")

    world = meta.world_size or int(rank.max()) + 1
    norm_groups = {str(g): tuple(int(r) for r in rs) for g, rs in sorted(groups.items())}
    _check_groups(norm_groups, world, source)
    _check_values(t, chk, world, norm_groups)
    _check_splits(t, chk, norm_groups)
    _resolve_deps(t, chk)
    t = _fill_seq(t, chk)
    step = t.column("step").fill_null(0)
    t = t.set_column(t.schema.get_field_index("step"), "step", step)
    t = t.drop_columns([_ROW]).cast(OPS_SCHEMA)
    return Workload(ops=t.combine_chunks(), groups=norm_groups, meta=replace(meta, world_size=world))

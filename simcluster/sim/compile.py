"""Compile first: a bound workload's columns become per-stream lists of op tuples before
SimPy starts, so the engine does O(1) Python work per op (``docs/architecture.md``).

Each op gets an execution class (timed, a copy as a flow, a collective, a send/recv), a
duration (recorded, or from the compute model), the dependencies that stream order does not
already guarantee, and for communication its matching key; consecutive timed ops that no one
can observe are fused into one batch.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.errors import SimulationError
from simcluster.placement import Bound
from simcluster.sim.compute import modelled, resolve_durations
from simcluster.sim.gemm_waves import op_tiles
from simcluster.sim.kernel_names import family_codes
from simcluster.sim.options import SimOptions

# Op execution classes; _SLOWED: a timed compute op that communication on its GPU slows
# (``sim/interference.py``).
_TIMED, _COPY_FLOW, _COLLECTIVE, _P2P, _SLOWED = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Program:
    """A workload compiled for the engine (indices are rows of the workload's ops table).

    Attributes:
        n: ops.
        rank: rank of each op.
        names, op_ids: the ops' name and op_id columns (for messages).
        streams: per stream, its items ``(index, class, alloc, free, notify, deps, batch)``
            in order (see :func:`_items`).
        order: op indices in stream order.
        stream_names: each stream's (rank, stream name).
        deps: per op, the deps stream order does not guarantee.
        comm_bytes: per op, its communication bytes (0 for others).
        copy_dir: per op, its copy kind (``H2D``...; empty for others).
        key: per communication op, its rendezvous key (``(group, seq)`` or
            ``("p2p", src, dst, seq)``); None for others.
        key_size: ranks that meet at that key.
        collective: the collective's name (``send``/``recv`` for p2p).
        root: the collective's root rank (-1: none).
    """

    n: int
    rank: list[int]
    names: pa.ChunkedArray
    op_ids: pa.ChunkedArray
    streams: list[list[tuple[Any, ...]]]
    order: np.ndarray
    stream_names: list[tuple[int, str]]
    deps: list[tuple[int, ...]]
    comm_bytes: list[int]
    copy_dir: list[str]
    key: list[Any]
    key_size: list[int]
    collective: list[str]
    root: list[int]


def _col(table: pa.Table, name: str, fill: Any) -> np.ndarray:
    return table.column(name).fill_null(fill).to_numpy(zero_copy_only=False)


def compile_program(bound: Bound, options: SimOptions,
                    slowed_ranks: np.ndarray | None = None) -> Program:
    """Compile ``bound`` for the engine (module docstring). ``slowed_ranks`` (bool per
    rank): ranks whose modelled compute ops communication slows (class ``_SLOWED``).

    Raises:
        SimulationError: a slowdown for a rank that does not exist, or not positive.
    """
    t = bound.workload.ops
    rank = _col(t, "rank", 0).astype(np.int64)
    kind = _col(t, "kind", "")
    cls, dur, comm_bytes, copy_kind = _classify(bound, options, t, rank, kind, slowed_ranks)
    sid, order, bounds, stream_names = _streams(t, rank)
    deps, notify = _deps(t, rank, sid, order, bounds)
    key, key_size, collective, root = _comm_keys(t, bound.workload.groups, rank, kind, cls)
    alloc = _col(t, "alloc_bytes", 0).astype(np.int64)
    free = _col(t, "free_bytes", 0).astype(np.int64)
    streams = _items(order, bounds, sid, rank, cls, dur, alloc, free, notify, deps,
                     options.fuse_timed_ops)
    return Program(n=t.num_rows, rank=rank.tolist(), names=t.column("name"),
                   op_ids=t.column("op_id"), streams=streams, order=order,
                   stream_names=stream_names, deps=deps, comm_bytes=comm_bytes.tolist(),
                   copy_dir=copy_kind.tolist(), key=key, key_size=key_size,
                   collective=collective, root=root)


def _classify(bound: Bound, options: SimOptions, t: pa.Table, rank: np.ndarray,
              kind: np.ndarray, slowed_ranks: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Execution class and duration (us; 0 for flows) of every op, its comm bytes and copy
    direction."""
    devices, cluster = bound.placement.devices, bound.cluster
    specs: list[Any] = []
    slot: dict[int, int] = {}
    rank_spec = np.empty(len(devices), dtype=np.int64)
    for r, dev in enumerate(devices):
        spec = cluster.specs[dev]
        rank_spec[r] = slot.setdefault(id(spec), len(specs))
        if rank_spec[r] == len(specs):
            specs.append(spec)
    recorded = t.column("duration_us").to_numpy(zero_copy_only=False).astype(np.float64)
    comm_bytes = _col(t, "comm_bytes", 0).astype(np.int64)
    copy_kind = _col(t, "copy_kind", "")
    dtype = t.column("dtype").fill_null("").dictionary_encode().combine_chunks()
    family, families = family_codes(t.column("name"))
    flops = _col(t, "flops", 0.0).astype(np.float64)
    nbytes = _col(t, "bytes_accessed", 0).astype(np.float64)
    dur = resolve_durations(
        kind=kind, recorded=recorded, flops=flops, nbytes=nbytes,
        comm_bytes=comm_bytes.astype(np.float64), copy_kind=copy_kind,
        dtype_code=dtype.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        dtype_names=dtype.dictionary.to_pylist(), spec_index=rank_spec[rank], specs=specs,
        model=options.compute, family_code=family, family_names=families,
        tiles=op_tiles(t),
    )
    cls = np.full(len(kind), _TIMED, dtype=np.int64)
    flow_copy = (kind == "memcpy") & (copy_kind != "D2D") & (comm_bytes > 0)
    cls[flow_copy] = _COPY_FLOW
    cls[kind == "collective"] = _COLLECTIVE
    cls[(kind == "send") | (kind == "recv")] = _P2P
    # A memcpy without a size replays its recorded duration.
    timed_copy = (kind == "memcpy") & ~flow_copy & np.isnan(dur)
    dur[timed_copy] = np.nan_to_num(recorded[timed_copy])
    # fixed_duration: the recorded duration, whatever the kind (e.g. a collective whose
    # peers are not in the workload); it runs as a timed op, with no rendezvous or flow.
    fixed = _col(t, "fixed_duration", False).astype(bool)
    cls[fixed] = _TIMED
    dur[fixed] = recorded[fixed]
    if slowed_ranks is not None:
        # Compute ops the model times (a recorded duration already holds the recording's
        # interference), on ranks that communication slows.
        timed_by_model = modelled(kind, recorded, flops, nbytes, options.compute.predict)
        cls[(kind == "compute") & timed_by_model & ~fixed & slowed_ranks[rank]] = _SLOWED
    for r, factor in options.slowdown.items():
        if not (0 <= r < len(devices)) or not factor > 0:
            raise SimulationError(
                f"--slow-rank {r}={factor}: need a rank in 0..{len(devices) - 1} and "
                "a positive factor.")
        dur[(rank == r) & ((kind == "compute") | (kind == "host"))] *= factor
    return cls, np.nan_to_num(dur), comm_bytes, copy_kind


def _items(order: np.ndarray, bounds: np.ndarray, sid: np.ndarray, rank: np.ndarray,
           cls: np.ndarray, dur: np.ndarray, alloc: np.ndarray, free: np.ndarray,
           notify: np.ndarray, deps: list[tuple[int, ...]], fuse: bool = True
           ) -> list[list[tuple[Any, ...]]]:
    """Per stream, its items in order: ``(index, class, alloc, free, notify, deps,
    batch)``, one per op that starts a batch.

    For a timed (or slowed) op, ``batch`` holds ``(index, duration, alloc, free, notify)``
    of the op itself and of the ops of its class fused after it: those that no one else
    can observe starting (no deps of their own, and memory effects ordered the same
    whenever they apply, because the rank touches memory from this stream only). The engine runs a
    batch with one wake-up, not one per op. Other items have an empty batch.

    The items are zipped from columns taken at the batch heads: no per-op tuple beyond
    the batch entries.
    """
    o = order
    c, d, a, f, nt = cls[o], dur[o], alloc[o], free[o], notify[o]
    s = sid[o]
    no_deps = np.fromiter(map(operator.not_, map(deps.__getitem__, o.tolist())), dtype=bool,
                          count=len(o))
    # Ranks whose memory ops all sit on one stream.
    mem = (alloc > 0) | (free > 0)
    mem_streams = np.zeros(int(rank.max()) + 1 if len(rank) else 0, dtype=np.int64)
    pairs = np.unique(np.stack([rank[mem], sid[mem]]), axis=1) if mem.any() else (
        np.zeros((2, 0), dtype=np.int64))
    np.add.at(mem_streams, pairs[0], 1)
    quiet = ~mem[o] | (mem_streams[rank[o]] <= 1)
    timed = (c == _TIMED) | (c == _SLOWED)
    joins = np.zeros(len(o), dtype=bool)
    joins[1:] = (timed[1:] & (c[1:] == c[:-1]) & no_deps[1:] & quiet[1:] & quiet[:-1]
                 & (s[1:] == s[:-1]) & fuse)
    # A slowed op's end is known only when it happens: one that others wait for ends its
    # batch.
    joins[1:] &= ~((c[:-1] == _SLOWED) & nt[:-1])
    heads = np.flatnonzero(~joins)
    tails = list(zip(o.tolist(), d.tolist(), a.tolist(), f.tolist(), nt.tolist()))
    hl = heads.tolist()
    batches = list(map(tuple, map(tails.__getitem__, map(slice, hl, hl[1:] + [len(o)]))))
    for k in np.flatnonzero(~timed[heads]).tolist():
        batches[k] = ()
    oh = o[heads].tolist()
    items = list(zip(oh, c[heads].tolist(), a[heads].tolist(), f[heads].tolist(),
                     nt[heads].tolist(), map(deps.__getitem__, oh), batches))
    # Heads per stream: a stream's first op is always a head.
    cuts = np.searchsorted(heads, bounds).tolist()
    return [items[cuts[k]:cuts[k + 1]] for k in range(len(cuts) - 1)]


def _streams(t: pa.Table, rank: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Stream id per op, ops sorted by stream (op_id order within), stream bounds, and each
    stream's (rank, name)."""
    stream = t.column("stream").dictionary_encode().combine_chunks()
    scode = stream.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    uniq, sid = np.unique(rank * (len(stream.dictionary) + 1) + scode, return_inverse=True)
    order = np.argsort(sid, kind="stable")
    bounds = np.searchsorted(sid[order], np.arange(len(uniq) + 1))
    first = order[bounds[:-1]]
    names = stream.dictionary.to_pylist()
    return sid, order, bounds, list(zip(rank[first].tolist(), [names[c] for c in scode[first]]))


def _deps(t: pa.Table, rank: np.ndarray, sid: np.ndarray, order: np.ndarray,
          bounds: np.ndarray) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Per op, the deps that stream order does not already guarantee (global indices),
    and whether other ops wait on it."""
    n = len(rank)
    deps: list[tuple[int, ...]] = [()] * n
    notify = np.zeros(n, dtype=bool)
    col = t.column("deps").combine_chunks()
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    if not lengths.sum():
        return deps, notify
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n) - bounds[sid[order]]
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int64)
    owner = np.repeat(np.arange(n), lengths)
    keys = rank * (1 << 40) + _col(t, "op_id", 0).astype(np.int64)
    target = np.searchsorted(keys, rank[owner] * (1 << 40) + flat)
    cross = (sid[target] != sid[owner]) | (pos[target] > pos[owner])
    owner, target = owner[cross], target[cross]
    notify[target] = True
    if owner.size:
        cut = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        targets = target.tolist()
        for o, a, b in zip(owner[cut].tolist(), cut.tolist(),
                           np.r_[cut[1:], owner.size].tolist()):
            deps[o] = tuple(targets[a:b])
    return deps, notify


def _comm_keys(t: pa.Table, groups: dict[str, Any], rank: np.ndarray, kind: np.ndarray,
               cls: np.ndarray) -> tuple[list[Any], list[int], list[str], list[int]]:
    """Matching key, rendezvous size, collective name and root of communication ops."""
    n = len(rank)
    group = _col(t, "group", "")
    seq = _col(t, "seq", -1).astype(np.int64)
    peer = _col(t, "peer", -1).astype(np.int64)
    coll = _col(t, "collective", "")
    root = _col(t, "root", -1).astype(np.int64).tolist()
    key: list[Any] = [None] * n
    key_size = [0] * n
    collective: list[str] = [""] * n
    sizes = {g: len(r) for g, r in groups.items()}
    for i in np.flatnonzero(cls == _COLLECTIVE).tolist():
        key[i] = (group[i], int(seq[i]))
        key_size[i] = sizes[group[i]]
        collective[i] = coll[i]
    for i in np.flatnonzero(cls == _P2P).tolist():
        send = kind[i] == "send"
        src, dst = (rank[i], peer[i]) if send else (peer[i], rank[i])
        key[i] = ("p2p", int(src), int(dst), int(seq[i]))
        key_size[i] = 2
        collective[i] = str(kind[i])
    return key, key_size, collective, root

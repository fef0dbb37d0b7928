"""One rank's ops as columns while they are built, and their conversion to Arrow.

The Kineto importer appends ops (kind code, name, stream, recorded start, duration, step)
and dependencies (pairs of op indices) to :class:`OpColumns`, in any order. :func:`to_table`
numbers them: by recorded start (ties: priority, then creation order), made topological over
stream order and dependencies, so that a stream's order never contradicts a dependency.
"""

from __future__ import annotations

import heapq
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.workload.model import OPS_SCHEMA

# Op kinds, coded while building.
HOST, COMPUTE, MEMCPY_OP, COLLECTIVE, SEND, RECV = range(6)
KIND_NAMES = ("host", "compute", "memcpy", "collective", "send", "recv")


@dataclass
class OpColumns:
    """Ops of one rank as columns; deps as (dependent, target) pairs of indices."""

    kind: array = field(default_factory=lambda: array("b"))
    name: list[str] = field(default_factory=list)
    stream: list[str] = field(default_factory=list)
    key: array = field(default_factory=lambda: array("d"))
    prio: array = field(default_factory=lambda: array("b"))
    dur: array = field(default_factory=lambda: array("d"))
    step: array = field(default_factory=lambda: array("i"))
    dep_a: array = field(default_factory=lambda: array("q"))
    dep_b: array = field(default_factory=lambda: array("q"))
    extra: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, kind: int, name: str, stream: str, start: float, dur: float,
            step: int | None, prio: int = 1, **extra: Any) -> int:
        i = len(self.kind)
        self.kind.append(kind)
        self.name.append(name)
        self.stream.append(stream)
        self.key.append(start)
        self.prio.append(prio)
        self.dur.append(dur)
        self.step.append(-1 if step is None else step)
        if extra:
            self.extra[i] = extra
        return i

    def dep(self, dependent: int, target: int) -> None:
        if dependent != target:
            self.dep_a.append(dependent)
            self.dep_b.append(target)


def acyclic_order(ops: OpColumns) -> tuple[np.ndarray, np.ndarray]:
    """op_id of each op: sorted by (start, priority, index), then made topological over
    stream order and deps; deps that would close a cycle are dropped.

    Returns:
        (op_id per op, mask of the deps kept).
    """
    n = len(ops.kind)
    key = np.frombuffer(ops.key, dtype=np.float64) if n else np.zeros(0)
    prio = np.frombuffer(ops.prio, dtype=np.int8) if n else np.zeros(0, np.int8)
    order = np.lexsort((np.arange(n), prio, key))
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    a = np.frombuffer(ops.dep_a, dtype=np.int64) if len(ops.dep_a) else np.zeros(0, np.int64)
    b = np.frombuffer(ops.dep_b, dtype=np.int64) if len(ops.dep_b) else np.zeros(0, np.int64)
    keep = np.ones(len(a), dtype=bool)
    backward = rank_of[b] < rank_of[a]
    if backward.all():
        return rank_of, keep
    # Some deps point forward in the sorted order: check for cycles (Kahn), drop offenders.
    stream_prev: dict[str, int] = {}
    succ: dict[int, list[tuple[int, int]]] = defaultdict(list)  # node -> (child, dep index)
    indeg = np.zeros(n, dtype=np.int64)
    for i in order.tolist():
        s = ops.stream[i]
        if s in stream_prev:
            succ[stream_prev[s]].append((i, -1))
            indeg[i] += 1
        stream_prev[s] = i
    for k, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        succ[y].append((x, k))
        indeg[x] += 1
    heap = [(int(rank_of[i]), i) for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    done = np.zeros(n, dtype=bool)
    topo: list[int] = []
    while len(topo) < n:
        if not heap:
            # A cycle: free the waiting op that comes first, dropping its pending deps.
            stuck = min((i for i in range(n) if not done[i] and indeg[i] > 0),
                        key=lambda i: rank_of[i])
            for k in np.flatnonzero((a == stuck) & keep).tolist():
                if not done[b[k]]:
                    keep[k] = False
                    indeg[stuck] -= 1
            if indeg[stuck] == 0:
                heapq.heappush(heap, (int(rank_of[stuck]), stuck))
            continue
        _, i = heapq.heappop(heap)
        done[i] = True
        topo.append(i)
        for child, k in succ.get(i, ()):
            if k >= 0 and not keep[k]:
                continue
            indeg[child] -= 1
            if indeg[child] == 0:
                heapq.heappush(heap, (int(rank_of[child]), child))
    op_id = np.empty(n, dtype=np.int64)
    op_id[np.array(topo, dtype=np.int64)] = np.arange(n)
    return op_id, keep


def to_table(ops: OpColumns, rank: int) -> tuple[pa.Table, int]:
    """The ops as an Arrow table in OPS_SCHEMA (rows in op_id order), and the number of
    dependencies dropped to break cycles."""
    n = len(ops.kind)
    op_id, keep = acyclic_order(ops)
    dropped = int((~keep).sum())
    order = np.argsort(op_id)
    a = np.frombuffer(ops.dep_a, dtype=np.int64)[keep] if len(ops.dep_a) else np.zeros(0, int)
    b = np.frombuffer(ops.dep_b, dtype=np.int64)[keep] if len(ops.dep_b) else np.zeros(0, int)
    # deps per op (by op_id), sorted and unique
    da, db = op_id[a], op_id[b]
    pairs = np.unique(np.stack([da, db]), axis=1) if len(da) else np.zeros((2, 0), np.int64)
    counts = np.bincount(pairs[0], minlength=n) if n else np.zeros(0, np.int64)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    deps = pa.ListArray.from_arrays(pa.array(offsets), pa.array(pairs[1], pa.int64()),
                                    mask=pa.array(counts == 0))
    kind = np.frombuffer(ops.kind, dtype=np.int8)[order] if n else np.zeros(0, np.int8)
    step = np.frombuffer(ops.step, dtype=np.int32)[order] if n else np.zeros(0, np.int32)
    cols: dict[str, Any] = {
        "rank": pa.array(np.full(n, rank, dtype=np.int32)),
        "op_id": pa.array(np.arange(n, dtype=np.int64)),
        "name": pa.array([ops.name[i] for i in order.tolist()], pa.string()),
        "kind": pa.array([KIND_NAMES[k] for k in kind.tolist()], pa.string()),
        "stream": pa.array([ops.stream[i] for i in order.tolist()], pa.string()),
        "duration_us": pa.array(np.frombuffer(ops.dur, dtype=np.float64)[order] if n
                                else np.zeros(0)),
        "recorded_start_us": pa.array(np.frombuffer(ops.key, dtype=np.float64)[order] if n
                                      else np.zeros(0)),
        "deps": deps,
        "step": pa.array(step, pa.int32(), mask=step < 0),
    }
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    for c in ("collective", "comm_bytes", "group", "copy_kind", "flops", "bytes_accessed",
              "dtype", "root", "fixed_duration", "peer", "gemm_shape", "splits"):
        cols[c] = _sparse_column(c, [(int(pos[i]), ex[c]) for i, ex in ops.extra.items()
                                     if ex.get(c) is not None], n)
    for f in OPS_SCHEMA:
        if f.name not in cols:
            cols[f.name] = pa.nulls(n, f.type)
    return pa.table({f.name: cols[f.name] for f in OPS_SCHEMA}, schema=OPS_SCHEMA), dropped


def _sparse_column(name: str, items: list[tuple[int, Any]], n: int) -> pa.Array:
    """A column of ``n`` rows, null except at the (row, value) ``items``."""
    typ = OPS_SCHEMA.field(name).type
    if not items:
        return pa.nulls(n, typ)
    if pa.types.is_list(typ):
        cells: list[Any] = [None] * n
        for r, v in items:
            cells[r] = v
        return pa.array(cells, typ)
    rows = np.array([r for r, _ in items], dtype=np.int64)
    values = [v for _, v in items]
    mask = np.ones(n, dtype=bool)
    mask[rows] = False
    if pa.types.is_string(typ):
        uniq = sorted(set(values))
        codes = np.full(n, -1, dtype=np.int32)
        codes[rows] = [uniq.index(v) for v in values] if len(uniq) < 16 else np.searchsorted(
            np.array(uniq, dtype=object), np.array(values, dtype=object))
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask),
                                              pa.array(uniq, typ)).cast(typ)
    full = np.zeros(n, dtype=typ.to_pandas_dtype())
    full[rows] = values
    return pa.array(full, typ, mask=mask)

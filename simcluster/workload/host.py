"""The host timeline: the CPU thread that launches a rank's GPU work, as ``host`` ops.

In eager PyTorch one CPU thread issues every kernel in program order: each aten operator
goes through the dispatcher (a few us) and each kernel through ``cudaLaunchKernel`` (a few
us more). When kernels are shorter than that, the GPU waits for the CPU: small models and
high tensor parallelism are launch-bound. :func:`add_host_timeline` expresses this with
ops and dependencies the engine already understands: before every GPU op it inserts a
``host`` op on the rank's ``host`` stream lasting that op's host cost, and the GPU op
depends on it, so

- the host ops run back to back in program order (one stream), and a GPU op cannot start
  before its launch has been issued;
- where the framework synchronises (``.item()`` of a grad norm or loss, the end of a step)
  the host op of the next launch also waits for every GPU op issued before it.

Example: three 2 us kernels, each launched at a 10 us host cost, take 3 x 10 + 2 = 32 us;
kernels of 50 us hide the host after the first launch (10 + 3 x 50 = 160 us).

The per-op costs come from :class:`HostModel`, measured on real profiler traces
(``bench/host_overhead.py``, ``docs/compute.md#host-time``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HOST_STREAM = "host"
LAUNCH_NAME = "launch"


@dataclass(frozen=True)
class HostModel:
    """What the host spends per launched kernel, in us.

    Attributes:
        launch_us: per kernel launch: the runtime call (``cudaLaunchKernel``) and the
            framework's own work around it.
        dispatch_us: per aten operator that reaches the dispatcher (views and metadata
            ops included; those launch nothing but still cost host time).

    The default values are the least-absolute-deviation fit of the gaps between kernel
    launches on six real PyTorch traces (A100 and V100, PyTorch 1.x-2.x, profiler on;
    ``python bench/host_overhead.py``), checked on eight others.

    Example:
        >>> HostModel(launch_us=10.0, dispatch_us=5.0).cost(aten_ops=3)
        25.0
    """

    launch_us: float = 11.35
    dispatch_us: float = 6.28

    def cost(self, aten_ops: int | float = 1) -> float:
        """Host us for one kernel launched after ``aten_ops`` dispatched operators."""
        return self.launch_us + self.dispatch_us * aten_ops


EAGER = HostModel()


def launched(kind: np.ndarray) -> np.ndarray:
    """Which ops a host thread launches: every op on a GPU stream (not ``host`` ops)."""
    return kind != "host"


def add_host_timeline(table: pa.Table, cost_us: np.ndarray, sync_before: np.ndarray
                      ) -> tuple[pa.Table, np.ndarray]:
    """One rank's ops (``op_id`` = row position, ``deps`` by op_id) with a host op before
    every op whose ``cost_us`` > 0 or that ``sync_before`` marks.

    Parameters:
        table: the rank's ops, with at least ``op_id, name, kind, stream, deps, step`` (a
            ``rank`` column, if any, is carried to the host ops).
        cost_us: per op, the host us spent issuing it (0: no launch, e.g. a host op).
        sync_before: per op, whether the host first waits for every GPU op issued before
            it (the last one of each stream).

    Returns:
        The new table (op_ids renumbered 0..n'-1, deps remapped; host ops named
        ``launch`` on stream ``host`` with ``duration_us`` = their cost) and, per old row,
        its new position.

    Example:
        >>> t = pa.table({"op_id": [0, 1], "name": ["a", "b"], "kind": ["compute"] * 2,
        ...               "stream": ["compute"] * 2, "deps": [None, [0]], "step": [0, 0]})
        >>> new, pos = add_host_timeline(t, np.array([10.0, 10.0]), np.array([False, True]))
        >>> new.column("kind").to_pylist(), new.column("deps").to_pylist(), pos.tolist()
        (['host', 'compute', 'host', 'compute'], [None, [0], [1], [1, 2]], [1, 3])
    """
    n = table.num_rows
    if "duration_us" not in table.column_names:  # the host ops' cost goes there
        table = table.append_column("duration_us", pa.nulls(n, pa.float64()))
    cost = np.asarray(cost_us, dtype=np.float64)
    sync = np.asarray(sync_before, dtype=bool)
    ins = (cost > 0) | sync
    pos = np.arange(n, dtype=np.int64) + np.cumsum(ins)
    host_pos = pos[ins] - 1
    m = int(ins.sum())
    total = n + m
    # Deps of the old rows: remapped, plus their own launch.
    col = table.column("deps").combine_chunks()
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pos[pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int64)]
    new_len = lengths + ins
    offsets = np.concatenate([[0], np.cumsum(new_len)])
    values = np.empty(int(offsets[-1]), dtype=np.int64)
    keep = np.ones(len(values), dtype=bool)
    keep[offsets[1:][ins] - 1] = False
    values[keep] = flat
    values[~keep] = host_pos
    old_deps = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values),
                                        mask=pa.array(new_len == 0))
    # Deps of the host ops: at a sync point, the last op of each GPU stream before it.
    host_deps = _sync_deps(table, sync, ins, pos)
    order = np.empty(total, dtype=np.int64)
    order[pos] = np.arange(n)
    order[host_pos] = n + np.arange(m)
    cols: dict[str, pa.Array] = {}
    for field in table.schema:
        name = field.name
        if name == "deps":
            host_part = pa.array(host_deps, field.type)
            arr = pa.concat_arrays([old_deps.cast(field.type), host_part])
        else:
            old = table.column(name).combine_chunks()
            arr = pa.concat_arrays([old, _host_values(name, old, ins, cost, m)])
        cols[name] = arr.take(pa.array(order))
    cols["op_id"] = pa.array(np.arange(total), table.schema.field("op_id").type)
    return pa.table(cols, schema=table.schema), pos


def _host_values(name: str, old: pa.Array, ins: np.ndarray, cost: np.ndarray, m: int
                 ) -> pa.Array:
    """Column ``name`` of the ``m`` host ops (``old``: the column of the other rows)."""
    typ = old.type
    if name == "name":
        return pa.array([LAUNCH_NAME] * m, typ)
    if name == "kind":
        return pa.array(["host"] * m, typ)
    if name == "stream":
        return pa.array([HOST_STREAM] * m, typ)
    if name == "duration_us":
        return pa.array(cost[ins], typ)
    if name in ("step", "rank"):
        return old.filter(pa.array(ins))
    return pa.nulls(m, typ)


def _sync_deps(table: pa.Table, sync: np.ndarray, ins: np.ndarray, pos: np.ndarray
               ) -> list[list[int] | None]:
    """Per host op: at a sync point, the new positions of the last op of every GPU stream
    issued before it; else None."""
    deps: list[list[int] | None] = [None] * int(ins.sum())
    if not sync.any():
        return deps
    kind = table.column("kind").to_numpy(zero_copy_only=False)
    stream = table.column("stream").to_numpy(zero_copy_only=False)
    host_index = np.cumsum(ins) - 1
    gpu = launched(kind)
    per_stream = {s: np.flatnonzero(gpu & (stream == s)) for s in np.unique(stream[gpu])}
    for i in np.flatnonzero(sync).tolist():
        last = [int(pos[ids[k - 1]]) for ids in per_stream.values()
                if (k := int(np.searchsorted(ids, i))) > 0]
        deps[int(host_index[i])] = sorted(last) or None
    return deps

"""The GPU-side analyses of HolisticTraceAnalysis (HTA), with HTA's definitions, on a
timeline: temporal breakdown, kernel-type overlap, kernel breakdown, idle-time breakdown and
communication/computation overlap.

HTA classifies GPU kernels as COMMUNICATION (NCCL), MEMORY (memcpy, memset) or COMPUTATION
(everything else); here a ``collective``, ``send`` or ``recv`` op is COMMUNICATION, a
``memcpy`` MEMORY, a ``compute`` op COMPUTATION, and ``host`` ops (CPU time) are not kernels.
A communication op lasts from its rank's arrival to the collective's end, as an NCCL kernel
does, so waiting for peers counts as communication, as in HTA. Per rank (HTA's
``get_temporal_breakdown``):

- ``kernel_us`` = end of the last kernel - start of the first;
- ``idle_us`` = ``kernel_us`` - the union of all kernels;
- ``compute_us`` = the union of computation kernels;
- ``non_compute_us`` = ``kernel_us - compute_us - idle_us``.

simcluster's own breakdown (``analysis.breakdown``) splits the same time further: what HTA
calls idle is ``host_us + idle_us`` there (plus copies and waits before the first kernel).
All times are in microseconds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis.breakdown import union_by_group
from simcluster.sim.result import Run

TYPES = ("COMPUTATION", "COMMUNICATION", "MEMORY")
_TYPE_OF_KIND = {"compute": 0, "collective": 1, "send": 1, "recv": 1, "memcpy": 2}
IDLE_CATEGORIES = ("host_wait", "kernel_wait", "other")


def _kernels(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pa.Table]:
    """The device ops sorted by rank: rank, type code (index into TYPES), start, end, and
    the rows."""
    t = run.timeline
    t = t.filter(pc.is_in(t.column("kind"), pa.array(list(_TYPE_OF_KIND))))
    t = t.take(pa.array(np.argsort(t.column("rank").to_numpy(), kind="stable")))
    kinds = t.column("kind").to_pylist()
    code = np.fromiter((_TYPE_OF_KIND[k] for k in kinds), dtype=np.int64, count=len(kinds))
    return (t.column("rank").to_numpy().astype(np.int64), code, t.column("start_us").to_numpy(),
            t.column("end_us").to_numpy(), t)


def _rank_slices(rank: np.ndarray, n: int) -> list[slice]:
    """For rank-sorted ``rank``, the slice of each rank 0 .. n-1."""
    bounds = np.searchsorted(rank, np.arange(n + 1)).tolist()
    return [slice(bounds[r], bounds[r + 1]) for r in range(n)]


def _per_rank(run: Run, ranks: int | None) -> tuple[int, np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray]:
    """The device ops of ranks ``0 .. n-1`` and ``n``: n, rank, type code, start, end."""
    rank, code, start, end, _ = _kernels(run)
    n = ranks if ranks is not None else run.memory.num_rows or int(rank.max(initial=-1)) + 1
    keep = rank < n
    return n, rank[keep], code[keep], start[keep], end[keep]


def temporal_breakdown(run: Run, ranks: int | None = None) -> pa.Table:
    """HTA's temporal breakdown per rank (module docstring): ``rank, idle_us, compute_us,
    non_compute_us, kernel_us`` and the three as percentages of ``kernel_us``; ranks
    ``0 .. ranks-1`` (default: all).

    Example:
        >>> t = pa.table({"rank": [0, 0, 0], "kind": ["compute", "collective", "host"],
        ...               "start_us": [0.0, 5.0, 0.0], "end_us": [4.0, 10.0, 10.0]})
        >>> temporal_breakdown(Run(t, pa.table({}), pa.table({}), 10.0)).to_pylist()[0]
        ... # doctest: +NORMALIZE_WHITESPACE
        {'rank': 0, 'idle_us': 1.0, 'compute_us': 4.0, 'non_compute_us': 5.0,
         'kernel_us': 10.0, 'idle_pct': 10.0, 'compute_pct': 40.0, 'non_compute_pct': 50.0}
    """
    n, rank, code, start, end = _per_rank(run, ranks)
    first, last = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(first, rank, start)
    np.maximum.at(last, rank, end)
    span = np.where(last > first, last - first, 0.0)
    busy = union_by_group(rank, start, end, n)
    comp = code == 0
    compute = union_by_group(rank[comp], start[comp], end[comp], n)
    rows = {"idle_us": span - busy, "compute_us": compute, "non_compute_us": busy - compute,
            "kernel_us": span}
    pct = {f"{k[:-3]}_pct": np.round(100 * np.divide(v, span, out=np.zeros(n),
                                                      where=span > 0), 2)
           for k, v in rows.items() if k != "kernel_us"}
    return pa.table({"rank": pa.array(np.arange(n, dtype=np.int32)),
                     **{k: pa.array(v, pa.float64()) for k, v in rows.items()},
                     **{k: pa.array(v) for k, v in pct.items()}})


def kernel_type_overlap(run: Run, ranks: int | None = None) -> pa.Table:
    """Time in each combination of kernel types running at once, summed over ranks
    (HTA's kernel-type table): ``kernel_type`` (``COMPUTATION``, ``COMPUTATION overlapping
    COMMUNICATION``, ...), ``time_us``, ``pct`` (of the kernels' busy time), largest first.

    Example:
        >>> t = pa.table({"rank": [0, 0], "kind": ["compute", "collective"],
        ...               "start_us": [0.0, 2.0], "end_us": [4.0, 6.0]})
        >>> kernel_type_overlap(Run(t, pa.table({}), pa.table({}), 6.0)).to_pydict()
        ... # doctest: +NORMALIZE_WHITESPACE
        {'kernel_type': ['COMMUNICATION', 'COMPUTATION', 'COMPUTATION overlapping COMMUNICATION'],
         'time_us': [2.0, 2.0, 2.0], 'pct': [33.3, 33.3, 33.3]}
    """
    rank, code, start, end, _ = _kernels(run)
    if ranks is not None:
        keep = rank < ranks
        rank, code, start, end = rank[keep], code[keep], start[keep], end[keep]
    totals = np.zeros(8)
    for sl in _rank_slices(rank, int(rank.max(initial=-1)) + 1):
        if sl.start == sl.stop:
            continue
        s_, e_, c_ = start[sl], end[sl], code[sl]
        # Sweep: +bit at a start, -bit at an end, per kernel type's merged intervals.
        times, deltas = [], []
        for k in range(3):
            s, e = _merged(s_[c_ == k], e_[c_ == k])
            times += [s, e]
            deltas += [np.full(len(s), 1 << k), np.full(len(e), -(1 << k))]
        t_all, d_all = np.concatenate(times), np.concatenate(deltas)
        order = np.lexsort((d_all, t_all))  # at one instant, ends before starts
        t_all, running = t_all[order], np.cumsum(d_all[order])
        np.add.at(totals, running[:-1], np.diff(t_all))
    busy = totals[1:].sum()
    names = [" overlapping ".join(TYPES[k] for k in range(3) if m & (1 << k))
             for m in range(8)]
    rows = sorted(((names[m], float(totals[m])) for m in range(1, 8) if totals[m] > 0),
                  key=lambda kv: (-kv[1], kv[0]))
    return pa.table({"kernel_type": pa.array([k for k, _ in rows], pa.string()),
                     "time_us": pa.array([v for _, v in rows], pa.float64()),
                     "pct": pa.array([round(100 * v / busy, 1) if busy else 0.0
                                      for _, v in rows], pa.float64())})


def _merged(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of the intervals as disjoint sorted intervals."""
    if len(start) == 0:
        return start, end
    order = np.argsort(start, kind="stable")
    s, e = start[order], end[order]
    reach = np.maximum.accumulate(e)
    new = np.r_[True, s[1:] > reach[:-1]]
    heads = np.flatnonzero(new)
    return s[heads], np.maximum.reduceat(e, heads)


def kernel_breakdown(run: Run, ranks: int | None = None, top: int = 10,
                     share: float = 0.8) -> pa.Table:
    """Time by kernel, per kernel type, over ranks ``0 .. ranks-1`` (HTA's
    ``get_gpu_kernel_breakdown``): ``kernel_type, name, count, sum_us, mean_us, min_us,
    max_us, std_us, pct`` (of the type's time). Per type, the kernels that make up the first
    ``share`` of its time, at most ``top`` of them; the rest are one row named ``others``."""
    rank, code, start, end, t = _kernels(run)
    keep = rank < ranks if ranks is not None else np.ones(len(rank), dtype=bool)
    names = np.asarray(t.column("name").to_pylist(), dtype=object)[keep]
    dur, code = (end - start)[keep], code[keep]
    out: dict[str, list] = {k: [] for k in ("kernel_type", "name", "count", "sum_us", "mean_us",
                                            "min_us", "max_us", "std_us", "pct")}
    for k, kind in enumerate(TYPES):
        sel = code == k
        if not sel.any():
            continue
        uniq, inv = np.unique(names[sel], return_inverse=True)
        d = dur[sel]
        sums = np.bincount(inv, weights=d)
        order = np.lexsort((uniq, -sums))
        total = float(sums.sum())
        cum = np.cumsum(sums[order])
        shown = [i for j, i in enumerate(order.tolist())
                 if j < top and (j == 0 or cum[j - 1] < share * total)]
        groups = [(str(uniq[i]), inv == i) for i in shown]
        rest = ~np.isin(inv, shown)
        if rest.any():
            groups.append(("others", rest))
        for name, mask in groups:
            v = d[mask]
            for col, val in (("kernel_type", kind), ("name", name), ("count", int(mask.sum())),
                             ("sum_us", float(v.sum())), ("mean_us", float(v.mean())),
                             ("min_us", float(v.min())), ("max_us", float(v.max())),
                             ("std_us", float(v.std())),
                             ("pct", round(100 * float(v.sum()) / total, 1) if total else 0.0)):
                out[col].append(val)
    return pa.table({k: pa.array(v) for k, v in out.items()}) if out["name"] else pa.table(
        {k: pa.array([], pa.string() if k in ("kernel_type", "name") else pa.float64())
         for k in out})


def idle_time_breakdown(run: Run, ranks: int | None = None,
                        kernel_wait_us: float = 5.0) -> pa.Table:
    """Why each stream's kernels waited (HTA's ``get_idle_time_breakdown``): per (rank,
    stream) and category, ``idle_us`` and ``ratio`` (of the stream's idle time). The gap
    before a kernel (from the previous kernel's end on its stream to its start; none before
    the first) is ``host_wait`` when a host op it depends on ended only then (the CPU had not
    launched it yet), else ``kernel_wait`` when shorter than ``kernel_wait_us`` (back-to-back
    launch latency), else ``other`` (waiting for another stream, a peer or a transfer)."""
    t = run.timeline
    rank = t.column("rank").to_numpy().astype(np.int64)
    kind = np.asarray(t.column("kind").to_pylist(), dtype=object)
    start, end = t.column("start_us").to_numpy(), t.column("end_us").to_numpy()
    device = np.isin(kind, list(_TYPE_OF_KIND))
    host_ready = _host_ready(t, rank, kind == "host", device, end)
    if ranks is not None:
        device &= rank < ranks
    idx = np.flatnonzero(device)
    if idx.size == 0:
        return _idle_table([], [], [], [], [])
    names, scode = np.unique(np.asarray(t.column("stream").to_pylist(), dtype=object)[idx],
                             return_inverse=True)
    order = np.lexsort((start[idx], scode, rank[idx]))  # per (rank, stream), in time order
    i, sc = idx[order], scode[order]
    r, s, e = rank[i], start[i], end[i]
    same = np.r_[False, (r[1:] == r[:-1]) & (sc[1:] == sc[:-1])]
    # The end of the stream's work so far: a running maximum that restarts on each stream.
    gid = np.cumsum(~same) - 1
    head = np.flatnonzero(~same)  # the first op of each stream, by group id
    reach = np.empty_like(e)
    for a, b in zip(head.tolist(), [*head[1:].tolist(), len(e)]):
        reach[a:b] = np.maximum.accumulate(e[a:b])
    prev_end = np.r_[0.0, reach[:-1]]
    gap = s - prev_end
    has_gap = same & (gap > 0)
    hr = host_ready[i]
    host = has_gap & (hr >= s - 1e-9) & (hr > prev_end)
    kernel = has_gap & ~host & (gap < kernel_wait_us)
    cat = np.where(host, 0, np.where(kernel, 1, 2))  # IDLE_CATEGORIES order (alphabetical)
    sel = np.flatnonzero(has_gap)
    key = (gid[sel] * 3 + cat[sel])
    uniq, inv = np.unique(key, return_inverse=True)
    idle = np.bincount(inv, weights=gap[sel])
    g_of = uniq // 3
    per_stream = np.bincount(g_of, weights=idle, minlength=len(head))
    return _idle_table(r[head[g_of]].tolist(), names[sc[head[g_of]]].tolist(),
                       [IDLE_CATEGORIES[c] for c in (uniq % 3).tolist()], idle.tolist(),
                       (idle / per_stream[g_of]).tolist())


def _host_ready(t: pa.Table, rank: np.ndarray, is_host: np.ndarray, device: np.ndarray,
                end: np.ndarray) -> np.ndarray:
    """Per op, the latest end among the host ops it depends on (-inf for none); deps are
    op_ids of the same rank."""
    n = t.num_rows
    out = np.full(n, -np.inf)
    deps = t.column("deps").combine_chunks()
    lengths = pc.list_value_length(deps).fill_null(0).to_numpy(zero_copy_only=False)
    if not lengths.sum():
        return out
    owner = np.repeat(np.arange(n), lengths)
    flat = pc.list_flatten(deps).to_numpy(zero_copy_only=False).astype(np.int64)
    keys = rank * (1 << 40) + t.column("op_id").to_numpy().astype(np.int64)
    by_key = np.argsort(keys, kind="stable")
    want = rank[owner] * (1 << 40) + flat
    pos = np.minimum(np.searchsorted(keys[by_key], want), n - 1)
    target = by_key[pos]
    ok = (keys[target] == want) & is_host[target] & device[owner]
    np.maximum.at(out, owner[ok], end[target[ok]])
    return out


def _idle_table(rank: list[int], stream: list[str], category: list[str], idle: list[float],
                ratio: list[float]) -> pa.Table:
    return pa.table({"rank": pa.array(rank, pa.int32()), "stream": pa.array(stream, pa.string()),
                     "idle_category": pa.array(category, pa.string()),
                     "idle_us": pa.array(idle, pa.float64()),
                     "ratio": pa.array(ratio, pa.float64())})


def comm_comp_overlap(run: Run, ranks: int | None = None) -> pa.Table:
    """Per rank, the share of communication time that computation overlaps (HTA's
    ``get_comm_comp_overlap``): ``rank, comm_us, overlapped_us, overlap_pct``."""
    n, rank, code, start, end = _per_rank(run, ranks)
    c, k = code == 1, code == 0
    comm = union_by_group(rank[c], start[c], end[c], n)
    # |comm and compute| = |comm| + |compute| - |comm or compute|
    both = (comm + union_by_group(rank[k], start[k], end[k], n)
            - union_by_group(rank[c | k], start[c | k], end[c | k], n))
    pct = np.round(100 * np.divide(both, comm, out=np.zeros(n), where=comm > 0), 2)
    return pa.table({"rank": pa.array(np.arange(n, dtype=np.int32)), "comm_us": pa.array(comm),
                     "overlapped_us": pa.array(both), "overlap_pct": pa.array(pct)})


def overall(temporal: pa.Table, overlap: pa.Table) -> dict[str, float]:
    """Over all ranks: idle, compute and non-compute time as percentages of the summed kernel
    spans, and the percentage of communication time that computation overlaps.

    Example:
        >>> t = pa.table({"idle_us": [1.0, 3.0], "compute_us": [4.0, 4.0],
        ...               "non_compute_us": [5.0, 3.0], "kernel_us": [10.0, 10.0]})
        >>> o = pa.table({"comm_us": [5.0, 3.0], "overlapped_us": [1.0, 1.0]})
        >>> overall(t, o)
        {'idle_pct': 20.0, 'compute_pct': 40.0, 'non_compute_pct': 40.0, 'comm_overlap_pct': 25.0}
    """
    span = float(pc.sum(temporal.column("kernel_us")).as_py() or 0.0)
    comm = float(pc.sum(overlap.column("comm_us")).as_py() or 0.0)
    out = {f"{k}_pct": round(100 * float(pc.sum(temporal.column(f"{k}_us")).as_py() or 0.0)
                             / span, 2) if span else 0.0
           for k in ("idle", "compute", "non_compute")}
    out["comm_overlap_pct"] = (round(100 * float(pc.sum(overlap.column("overlapped_us")).as_py())
                                     / comm, 2) if comm else 0.0)
    return out

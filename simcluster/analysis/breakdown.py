"""Where each rank's time goes, per step, and which ranks held the others up.

The breakdown partitions each rank's time in a window (a step, or the whole run) into
categories that add up exactly to the window. Each instant belongs to the first category
that covers it, in this order:

1. ``compute_us``: a compute op runs;
2. ``exposed_comm_us``: a collective or send/recv moves data (from the moment all its peers
   arrived, ``start + wait``, to its end) and no compute runs;
3. ``copies_us``: a memcpy runs and nothing above does;
4. ``host_us``: a host op runs and nothing above does;
5. ``sync_wait_us``: the rank waits inside a collective for its peers, and nothing above;
6. ``idle_us``: the rest.

Besides the partition: ``communication_us`` (all time moving data) and
``overlapped_comm_us = communication_us - exposed_comm_us``.

Stragglers: at each collective, the rank that arrived last made the others wait. Per rank,
``last_arrivals`` counts the collectives where it arrived last while another rank waited
more than 1 us, and ``caused_wait_us`` sums the mean wait of the others there. A rank is
flagged as a straggler when it caused more than 5 % of the window in waiting and its busy
time exceeds the median rank's by more than 2 % (ranks that are alike, such as the stages of
a uniform pipeline, are not stragglers of one another). In a folded workload the median is
taken over the ranks that carry full op lists.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.result import Run

COMM_KINDS = ("collective", "send", "recv")
PARTITION = ("compute_us", "exposed_comm_us", "copies_us", "host_us", "sync_wait_us", "idle_us")
_STRAGGLER_SHARE = 0.05
_STRAGGLER_MARGIN = 1.02
_WAIT_NOISE_US = 1.0


def union_by_group(group: np.ndarray, start: np.ndarray, end: np.ndarray, groups: int) -> np.ndarray:
    """Length of the union of intervals [start, end) per group id (0 .. groups-1).

    Vectorised: intervals are shifted so different groups never overlap, sorted once, and
    each interval contributes the part beyond the running maximum end before it.

    Example:
        >>> union_by_group(np.array([0, 0, 1]), np.array([0., 5., 1.]), np.array([10., 12., 2.]), 2)
        array([12.,  1.])
    """
    out = np.zeros(groups)
    keep = end > start
    if not keep.any():
        return out
    g, s, e = group[keep], start[keep], end[keep]
    span = float(e.max() - min(s.min(), 0.0)) + 1.0
    s = s + g * span
    e = e + g * span
    order = np.lexsort((s, g))
    g, s, e = g[order], s[order], e[order]
    reach = np.maximum.accumulate(e)
    prev = np.r_[-np.inf, reach[:-1]]
    contrib = e - np.maximum(s, prev)
    np.maximum(contrib, 0.0, out=contrib)
    return np.bincount(g, weights=contrib, minlength=groups)


def _intervals(run: Run) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rank, start, end) arrays per partition layer, in priority order."""
    t = run.timeline
    rank = t.column("rank").to_numpy().astype(np.int64)
    kind = t.column("kind").to_numpy(zero_copy_only=False)
    start = t.column("start_us").to_numpy()
    end = t.column("end_us").to_numpy()
    wait = t.column("wait_us").to_numpy()
    comm = np.isin(kind, COMM_KINDS)
    active = np.where(comm, start + wait, start)

    def pick(mask: np.ndarray, s: np.ndarray, e: np.ndarray):
        return rank[mask], s[mask], e[mask]

    return {
        "compute_us": pick(kind == "compute", start, end),
        "exposed_comm_us": pick(comm, active, end),
        "copies_us": pick(kind == "memcpy", start, end),
        "host_us": pick(kind == "host", start, end),
        "sync_wait_us": pick(comm, start, active),
    }


def _partition(layers: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], n: int,
               lo: float, hi: float) -> dict[str, np.ndarray]:
    """Partition of [lo, hi) per rank (module docstring), intervals clipped to the window."""
    out: dict[str, np.ndarray] = {}
    acc_r, acc_s, acc_e = [], [], []
    covered = np.zeros(n)
    for name, (r, s, e) in layers.items():
        acc_r.append(r)
        acc_s.append(np.clip(s, lo, hi))
        acc_e.append(np.clip(e, lo, hi))
        now = union_by_group(np.concatenate(acc_r), np.concatenate(acc_s),
                             np.concatenate(acc_e), n)
        out[name] = np.maximum(now - covered, 0.0)
        covered = now
    out["idle_us"] = np.maximum((hi - lo) - covered, 0.0)
    r, s, e = layers["exposed_comm_us"]
    out["communication_us"] = union_by_group(r, np.clip(s, lo, hi), np.clip(e, lo, hi), n)
    out["overlapped_comm_us"] = out["communication_us"] - out["exposed_comm_us"]
    out["busy_us"] = covered - out["sync_wait_us"]
    return out


def step_windows(run: Run) -> list[tuple[int, float, float]]:
    """(step, start_us, end_us) of each step: from the previous step's end (0 first) to the
    end of the step's last op."""
    st = step_times(run).to_pylist()
    return [(r["step"], r["end_us"] - r["time_us"], r["end_us"]) for r in st]


def last_arrivals(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Per rank: collectives it arrived at last while others waited, and the mean wait it
    caused there (summed, us)."""
    t = run.timeline
    n = run.memory.num_rows
    coll = t.filter(pc.equal(t.column("kind"), "collective"))
    counts = np.zeros(n, dtype=np.int64)
    caused = np.zeros(n)
    if coll.num_rows == 0:
        return counts, caused
    group = coll.column("group").to_numpy(zero_copy_only=False)
    seq = coll.column("seq").to_numpy(zero_copy_only=False).astype(np.int64)
    rank = coll.column("rank").to_numpy().astype(np.int64)
    start = coll.column("start_us").to_numpy()
    wait = coll.column("wait_us").to_numpy()
    _, gid = np.unique(group, return_inverse=True)
    key = gid.astype(np.int64) * (int(seq.max()) + 1) + seq
    order = np.lexsort((-start, key))
    key, rank, start, wait = key[order], rank[order], start[order], wait[order]
    first = np.r_[True, key[1:] != key[:-1]]  # the latest arrival of each instance
    inst = np.cumsum(first) - 1
    size = np.bincount(inst)
    total_wait = np.bincount(inst, weights=wait)
    max_wait = np.zeros(len(size))
    np.maximum.at(max_wait, inst, wait)
    last_rank = rank[first]
    real = (max_wait > _WAIT_NOISE_US) & (size > 1)
    np.add.at(counts, last_rank[real], 1)
    np.add.at(caused, last_rank[real], (total_wait / np.maximum(size - 1, 1))[real])
    return counts, caused


def rank_breakdown(run: Run, step: int | None = None, real: int | None = None) -> pa.Table:
    """One row per rank: the partition of the step (or the whole run) and its extras.

    Columns: rank, device, the PARTITION columns (which add up to window_us),
    communication_us, overlapped_comm_us, busy_us, window_us, last_arrivals,
    caused_wait_us, straggler, peak_memory_bytes, memory_capacity_bytes. ``real``: ranks
    ``0 .. real-1`` carry full op lists (a folded workload); the straggler test compares
    against their median (default: all ranks).
    """
    n = run.memory.num_rows
    if step is None:
        lo, hi = 0.0, run.makespan_us
    else:
        lo, hi = next((a, b) for s, a, b in step_windows(run) if s == step)
    part = _partition(_intervals(run), n, lo, hi)
    counts, caused = last_arrivals(run)
    busy = part["busy_us"]
    median = float(np.median(busy[: real or n])) if n else 0.0
    straggler = (caused > _STRAGGLER_SHARE * (hi - lo)) & (busy > _STRAGGLER_MARGIN * median)
    cols = {
        "rank": pa.array(np.arange(n, dtype=np.int32)),
        "device": run.memory.column("device"),
        **{c: pa.array(part[c]) for c in PARTITION},
        "communication_us": pa.array(part["communication_us"]),
        "overlapped_comm_us": pa.array(part["overlapped_comm_us"]),
        "busy_us": pa.array(busy),
        "window_us": pa.array(np.full(n, hi - lo)),
        "last_arrivals": pa.array(counts),
        "caused_wait_us": pa.array(caused),
        "straggler": pa.array(straggler),
        "peak_memory_bytes": run.memory.column("peak_bytes"),
        "memory_capacity_bytes": run.memory.column("capacity_bytes"),
    }
    return pa.table(cols)


def step_breakdown(run: Run, real: int | None = None) -> pa.Table:
    """The partition per (step, rank): ``rank_breakdown`` of every step, stacked, with a
    ``step`` column first."""
    tables = []
    for s, _, _ in step_windows(run):
        t = rank_breakdown(run, s, real)
        tables.append(t.add_column(0, "step", pa.array(np.full(t.num_rows, s, dtype=np.int32))))
    return pa.concat_tables(tables) if tables else rank_breakdown(run).add_column(
        0, "step", pa.array([], pa.int32()))


def step_times(run: Run) -> pa.Table:
    """One row per step: step, end_us (last op of the step ends), time_us.

    A step's time runs from the end of the previous step (0 for the first) to the end of its
    own last op, so the times add up to the makespan.
    """
    t = run.timeline
    if t.num_rows == 0:
        return pa.table({"step": pa.array([], pa.int32()), "end_us": pa.array([], pa.float64()),
                         "time_us": pa.array([], pa.float64())})
    grouped = t.group_by("step").aggregate([("end_us", "max")]).sort_by("step")
    ends = grouped.column("end_us_max").to_numpy()
    ends = np.maximum.accumulate(ends)
    times = np.diff(np.r_[0.0, ends])
    return pa.table({
        "step": grouped.column("step"),
        "end_us": pa.array(ends),
        "time_us": pa.array(times),
    })


def mean_step_time_us(run: Run) -> float:
    """Mean step time (us): the makespan divided by the number of steps."""
    steps = pc.count_distinct(run.timeline.column("step")).as_py() or 1
    return run.makespan_us / steps


def notable_ranks(ranks: pa.Table, k: int) -> list[int]:
    """Row indices (ascending) of the ``k`` ranks that held the others up or idled most: the
    largest ``caused_wait_us + idle_us``, ties in rank order. All rows when there are at most
    ``k``.

    Example:
        >>> t = pa.table({"caused_wait_us": [0.0, 5.0, 1.0], "idle_us": [1.0, 0.0, 0.0]})
        >>> notable_ranks(t, 2)
        [0, 1]
    """
    if ranks.num_rows <= k:
        return list(range(ranks.num_rows))
    score = ranks.column("caused_wait_us").to_numpy() + ranks.column("idle_us").to_numpy()
    return sorted(np.argsort(-score, kind="stable")[:k].tolist())


def breakdown_stats(ranks: pa.Table, columns: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Mean, min and max over ranks of each of ``columns`` (keys ``mean``, ``min``, ``max``).

    Example:
        >>> breakdown_stats(pa.table({"compute_us": [1.0, 3.0]}), ("compute_us",))["mean"]
        {'compute_us': 2.0}
    """
    return {label: {c: float(fn(ranks.column(c).to_numpy())) for c in columns}
            for label, fn in (("mean", np.mean), ("min", np.min), ("max", np.max))}


def rank_classes(ranks: pa.Table, tolerance: float = 0.005) -> list[list[int]]:
    """Ranks grouped by how their time splits: two ranks are alike when each category of the
    partition differs by at most ``tolerance`` of the window (rounded to that grid). Each
    class lists its ranks in order; classes are in the order of their first rank. Symmetric
    ranks (the 8 ranks of a tensor-parallel group, a pipeline stage's replicas) form one
    class, so a plot can draw one representative of each.

    Example:
        >>> t = pa.table({"rank": [0, 1, 2], "window_us": [100.0] * 3,
        ...               **{c: [50.0, 50.1, 10.0] if c == "compute_us" else [0.0] * 3
        ...                  for c in PARTITION}})
        >>> rank_classes(t)
        [[0, 1], [2]]
    """
    window = np.maximum(ranks.column("window_us").to_numpy(), 1e-12)
    keys = np.stack([np.rint(ranks.column(c).to_numpy() / window / tolerance)
                     for c in PARTITION], axis=1)
    classes: dict[tuple[float, ...], list[int]] = {}
    for r, key in zip(ranks.column("rank").to_pylist(), map(tuple, keys.tolist())):
        classes.setdefault(key, []).append(int(r))
    return list(classes.values())

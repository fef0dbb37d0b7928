"""Where each rank's time goes, and how long each step took.

Definitions (all in us, over the run from 0 to the makespan):

- ``compute_us``: time covered by at least one compute op of the rank;
- ``communication_us``: time covered by a collective or send/recv moving data, i.e. from the
  moment all its peers have arrived (start + wait) to its end;
- ``exposed_comm_us``: communication time not overlapped by compute;
- ``sync_wait_us``: time spent inside collectives waiting for peers to arrive;
- ``copies_us``: time covered by memcpy ops; ``host_us``: by host ops;
- ``idle_us``: the makespan minus the time covered by any active op (compute, communication,
  copies, host). Waiting for peers counts as idle.

Categories overlap (a rank can compute and communicate at once), so they need not add up.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.result import Run

COMM_KINDS = ("collective", "send", "recv")


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


def _arrays(run: Run) -> dict[str, np.ndarray]:
    t = run.timeline
    return {
        "rank": t.column("rank").to_numpy().astype(np.int64),
        "kind": t.column("kind").to_numpy(zero_copy_only=False),
        "start": t.column("start_us").to_numpy(),
        "end": t.column("end_us").to_numpy(),
        "wait": t.column("wait_us").to_numpy(),
    }


def rank_breakdown(run: Run) -> pa.Table:
    """One row per rank: the categories of the module docstring plus memory peak.

    Columns: rank, device, compute_us, communication_us, exposed_comm_us, sync_wait_us,
    copies_us, host_us, idle_us, busy_us, peak_memory_bytes, memory_capacity_bytes.
    """
    a = _arrays(run)
    n = run.memory.num_rows
    rank, kind, start, end = a["rank"], a["kind"], a["start"], a["end"]
    active_start = start + a["wait"]
    comm = np.isin(kind, COMM_KINDS)
    compute = kind == "compute"

    def cover(mask: np.ndarray, s: np.ndarray = start) -> np.ndarray:
        return union_by_group(rank[mask], s[mask], end[mask], n)

    compute_us = cover(compute)
    comm_us = cover(comm, active_start)
    both = compute | comm
    either_us = union_by_group(rank[both], np.where(comm, active_start, start)[both], end[both], n)
    busy_us = union_by_group(rank, np.where(comm, active_start, start), end, n)
    sync = np.bincount(rank[comm], weights=a["wait"][comm], minlength=n)
    return pa.table({
        "rank": pa.array(np.arange(n, dtype=np.int32)),
        "device": run.memory.column("device"),
        "compute_us": pa.array(compute_us),
        "communication_us": pa.array(comm_us),
        "exposed_comm_us": pa.array(either_us - compute_us),
        "sync_wait_us": pa.array(sync),
        "copies_us": pa.array(cover(kind == "memcpy")),
        "host_us": pa.array(cover(kind == "host")),
        "idle_us": pa.array(np.maximum(run.makespan_us - busy_us, 0.0)),
        "busy_us": pa.array(busy_us),
        "peak_memory_bytes": run.memory.column("peak_bytes"),
        "memory_capacity_bytes": run.memory.column("capacity_bytes"),
    })


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

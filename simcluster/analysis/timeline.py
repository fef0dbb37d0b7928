"""The timeline at the resolution a person can see: consecutive ops of one kind on one stream
merged into segments, so that a plot of a million-op run draws a few thousand bars.

Two ops of a stream join one segment when they are of the same kind and the gap between them
is at most ``resolution_us`` (a stream runs its ops one after another, so ops never overlap
inside a stream). A segment keeps what a hover needs: how many ops it holds, the time they
ran (``busy_us``, at most its length), the time spent waiting for peers inside them, and the
name of its longest op.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.result import Run


def timeline_segments(run: Run, ranks: Sequence[int], resolution_us: float) -> pa.Table:
    """Segments of the given ranks' streams (module docstring): ``rank, stream, kind,
    start_us, end_us, ops, busy_us, wait_us, name``, ordered by rank, stream, start.

    Example:
        >>> t = pa.table({"rank": [0, 0, 0], "stream": ["s"] * 3, "kind": ["compute"] * 3,
        ...               "name": ["a", "bb", "c"], "start_us": [0.0, 1.0, 9.0],
        ...               "end_us": [1.0, 3.0, 10.0], "wait_us": [0.0] * 3})
        >>> seg = timeline_segments(Run(t, pa.table({}), pa.table({}), 10.0), [0], 2.0)
        >>> seg.select(["start_us", "end_us", "ops", "busy_us", "name"]).to_pylist()[0]
        {'start_us': 0.0, 'end_us': 3.0, 'ops': 2, 'busy_us': 3.0, 'name': 'bb'}
        >>> seg.num_rows
        2
    """
    t = run.timeline
    t = t.filter(pc.is_in(t.column("rank"), pa.array(list(ranks), t.schema.field("rank").type)))
    if t.num_rows == 0:
        return _empty()
    rank = t.column("rank").to_numpy().astype(np.int64)
    stream = t.column("stream").dictionary_encode().combine_chunks()
    scode = stream.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    kind = t.column("kind").dictionary_encode().combine_chunks()
    kcode = kind.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    start, end = t.column("start_us").to_numpy(), t.column("end_us").to_numpy()
    wait = t.column("wait_us").to_numpy()
    order = np.lexsort((end, start, scode, rank))
    rank, scode, kcode = rank[order], scode[order], kcode[order]
    start, end, wait = start[order], end[order], wait[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = ((rank[1:] != rank[:-1]) | (scode[1:] != scode[:-1]) | (kcode[1:] != kcode[:-1])
               | (start[1:] - end[:-1] > resolution_us))
    heads = np.flatnonzero(new)
    seg = np.cumsum(new) - 1
    dur = end - start
    longest = np.lexsort((dur, seg))  # per segment, its longest op last
    last = np.r_[heads[1:], len(order)] - 1
    names = t.column("name").take(pa.array(order[longest[last]]))
    return pa.table({
        "rank": pa.array(rank[heads], pa.int32()),
        "stream": stream.dictionary.take(pa.array(scode[heads])),
        "kind": kind.dictionary.take(pa.array(kcode[heads])),
        "start_us": pa.array(start[heads]),
        "end_us": pa.array(np.maximum.reduceat(end, heads)),
        "ops": pa.array(np.diff(np.r_[heads, len(order)]), pa.int64()),
        "busy_us": pa.array(np.add.reduceat(dur, heads)),
        "wait_us": pa.array(np.add.reduceat(wait, heads)),
        "name": names,
    })


def _empty() -> pa.Table:
    return pa.table({"rank": pa.array([], pa.int32()), "stream": pa.array([], pa.string()),
                     "kind": pa.array([], pa.string()), "start_us": pa.array([], pa.float64()),
                     "end_us": pa.array([], pa.float64()), "ops": pa.array([], pa.int64()),
                     "busy_us": pa.array([], pa.float64()),
                     "wait_us": pa.array([], pa.float64()), "name": pa.array([], pa.string())})

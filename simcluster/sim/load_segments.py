"""Each link's load over time, as segments of constant rate.

The flow network (:class:`~simcluster.sim.network.FlowNetwork`) changes rates only when a flow
starts or ends; between two changes every loaded link carries a constant rate. Storing one
row per loaded link per interval would grow with the number of changes times the loaded
links; most intervals change few links' rates, so a link whose rate is unchanged keeps its
open segment, and only the others close theirs and open a new one.

Times are microseconds, rates bytes per microsecond.
"""

from __future__ import annotations

import numpy as np


class LoadSegments:
    """Open segments (loaded link ids, sorted, with their start and rate, up to ``end``)
    and closed ones in chunks of (link ids, starts, end, rates).

    >>> s = LoadSegments()
    >>> s.extend(0.0, 2.0, np.array([3]), np.array([5.0]))
    >>> s.extend(2.0, 4.0, np.array([3]), np.array([5.0]))  # same rate: one segment
    >>> [a.tolist() for a in s.segments()]
    [[3], [0.0], [4.0], [5.0]]
    """

    def __init__(self) -> None:
        self._links = np.zeros(0, dtype=np.int64)
        self._start = np.zeros(0)
        self._rate = np.zeros(0)
        self._end = 0.0
        self._closed: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = []

    def extend(self, t0: float, t1: float, links: np.ndarray, rates: np.ndarray) -> None:
        """Extend the segments over ``[t0, t1]``, in which ``links`` (sorted, unique) carry
        ``rates`` (bytes/us): a link whose rate is unchanged keeps its open segment; the
        others close theirs at ``t0`` and open a new one."""
        if t0 != self._end:  # no load in between: everything closed then
            self._close(np.ones(len(self._links), dtype=bool), self._end)
            self._links = self._links[:0]
            self._start, self._rate = self._start[:0], self._rate[:0]
        old, start, rate = self._links, self._start, self._rate
        keep = np.zeros(len(old), dtype=bool)
        pos = links.searchsorted(old)
        if len(links):
            at = np.minimum(pos, len(links) - 1)
            keep = (links[at] == old) & (rates[at] == rate)
        self._close(~keep, t0)
        new_start = np.full(len(links), t0)
        new_start[pos[keep]] = start[keep]
        self._links, self._start, self._rate = links, new_start, rates
        self._end = t1

    def _close(self, which: np.ndarray, end: float) -> None:
        if which.any():
            self._closed.append((self._links[which], self._start[which], end,
                                 self._rate[which]))

    def segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every segment: link ids, start (us), end (us), rate (bytes/us), sorted by start
        then link."""
        chunks = [*self._closed, (self._links, self._start, self._end, self._rate)]
        links = np.concatenate([c[0] for c in chunks])
        starts = np.concatenate([c[1] for c in chunks])
        ends = np.repeat([c[2] for c in chunks], [len(c[0]) for c in chunks])
        rates = np.concatenate([c[3] for c in chunks])
        order = np.lexsort((links, starts))
        return links[order], starts[order], ends[order], rates[order]

"""The runtime calls and GPU ops of a rank's window, indexed for the build.

Which GPU ops are kept (launched in the window, or running in it without a launch there), by
stream and in stream order, with compact maps from trace indices to runtime calls and ops;
and, per CPU thread, its *anchors*: the runtime calls that launch GPU work or block on it.
Indices are trace indices of :class:`~simcluster.workload.kineto.events.RankTrace`; times are
absolute us.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from simcluster.workload.kineto.context import Window
from simcluster.workload.kineto.events import MEMCPY, RankTrace

_SYNC_DEVICE = re.compile(r"(?:cuda|hip)DeviceSynchronize|cuCtxSynchronize")
_SYNC_STREAM = re.compile(r"(?:cuda|hip)StreamSynchronize|cuStreamSynchronize")
_SYNC_EVENT = re.compile(r"(?:cuda|hip)EventSynchronize|cuEventSynchronize")


class _IndexMap:
    """A dict from 0..n-1 to ints >= 0, stored in one array (a few bytes per key, where a
    dict takes ~100): ``get``, ``[]``, ``in``, ``items`` (in insertion order)."""

    def __init__(self, n: int) -> None:
        self._a = array("q", [-1]) * n
        self._keys = array("q")

    def __setitem__(self, k: int, v: int) -> None:
        if self._a[k] < 0:
            self._keys.append(k)
        self._a[k] = v

    def __getitem__(self, k: int) -> int:
        v = self._a[k]
        if v < 0:
            raise KeyError(k)
        return v

    def get(self, k: int, default: int | None = None) -> int | None:
        v = self._a[k]
        return default if v < 0 else v

    def __contains__(self, k: int) -> bool:
        return self._a[k] >= 0

    def items(self) -> Iterator[tuple[int, int]]:
        return ((k, self._a[k]) for k in self._keys)


class _CorrIndex:
    """Runtime call by correlation id, as sorted arrays (a dict of a million ids would take
    ~100 MB)."""

    def __init__(self, corr: array) -> None:
        c = np.frombuffer(corr, dtype=np.int64) if len(corr) else np.zeros(0, np.int64)
        self._order = np.argsort(c, kind="stable")
        self._sorted = c[self._order]

    def lookup(self, corrs: np.ndarray) -> np.ndarray:
        """Runtime index of each correlation id, -1 where none (or the id is negative)."""
        if not len(self._sorted):
            return np.full(len(corrs), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, corrs), len(self._sorted) - 1)
        ok = (self._sorted[pos] == corrs) & (corrs >= 0)
        return np.where(ok, self._order[pos], -1)

    def get(self, corr: int) -> int | None:
        r = int(self.lookup(np.array([corr], dtype=np.int64))[0])
        return r if r >= 0 else None


@dataclass
class _Gpu:
    """The kept GPU ops of the window, by stream (arrays indexed by trace index)."""

    start: array                        # (clipped) start per trace index
    dur: array
    launch: _IndexMap                   # trace index -> runtime index (launched in window)
    streams: dict[int, list[int]]       # stream -> trace indices in stream order
    launch_max: dict[int, list[float]]  # stream -> running max of launch times
    op: _IndexMap                       # trace index -> op index

    def last_before(self, stream: int, t: float) -> int | None:
        """The last op of ``stream`` (stream order) launched before time ``t``."""
        lm = self.launch_max.get(stream)
        if not lm:
            return None
        k = bisect.bisect_left(lm, t) - 1
        return self.streams[stream][k] if k >= 0 else None

    def end(self, g: int) -> float:
        return self.start[g] + self.dur[g]


def _select_gpu(tr: RankTrace, win: Window, corr: _CorrIndex) -> _Gpu:
    """GPU ops launched in the window, and those running in it whose launch is not."""
    keep: list[int] = []
    n = len(tr.g_ts)
    start = array("d", [0.0]) * n
    dur = array("d", [0.0]) * n
    launch = _IndexMap(n)
    g_corr = np.frombuffer(tr.g_corr, dtype=np.int64) if n else np.zeros(0, np.int64)
    r_of = corr.lookup(g_corr).tolist()
    for g in range(n):
        ts, d = tr.g_ts[g], tr.g_dur[g]
        r = r_of[g]
        if r >= 0 and win.start <= tr.r_ts[r] < win.end:
            keep.append(g)
            start[g], dur[g], launch[g] = ts, d, r
        elif ts < win.end and ts + d > win.start and (r < 0 or tr.r_ts[r] < win.start):
            s = max(ts, win.start)
            keep.append(g)
            start[g], dur[g] = s, ts + d - s
    streams: dict[int, list[int]] = defaultdict(list)
    for g in sorted(keep, key=lambda g: (start[g], g)):
        streams[tr.g_stream[g]].append(g)
    launch_max: dict[int, list[float]] = {}
    for s, ops in streams.items():
        running, out = float("-inf"), []
        for g in ops:
            r = launch.get(g)
            running = max(running, tr.r_ts[r] if r is not None else float("-inf"))
            out.append(running)
        launch_max[s] = out
    return _Gpu(start, dur, launch, dict(streams), launch_max, _IndexMap(n))


class _Anchor(NamedTuple):
    """A runtime call that launches GPU work or blocks on it."""

    r: int                     # runtime index
    gpu: tuple[int, ...]       # GPU ops it launched (kept), stream order
    sync: str                  # "", "device", "stream", "event"
    blocking_copy: int | None  # a copy it waited for


def _launched(gpu: _Gpu) -> dict[int, list[int]]:
    """Runtime index -> the GPU ops it launched."""
    launched: dict[int, list[int]] = defaultdict(list)
    for g, r in gpu.launch.items():
        launched[r].append(g)
    return launched


def _anchors(tr: RankTrace, gpu: _Gpu, kept_rt: list[int], launched: dict[int, list[int]]
             ) -> dict[int, list[_Anchor]]:
    """Per thread, its anchors in time order: launches and blocking calls."""
    out: dict[int, list[_Anchor]] = defaultdict(list)
    for r in kept_rt:
        name = tr.names[tr.r_name[r]]
        sync = ("device" if _SYNC_DEVICE.search(name) else "stream" if _SYNC_STREAM.search(name)
                else "event" if _SYNC_EVENT.search(name) else "")
        gs = tuple(sorted(launched.get(r, ()), key=lambda g: (gpu.start[g], g)))
        if not gs and not sync:
            continue
        end = tr.r_ts[r] + tr.r_dur[r]
        blocking = next((g for g in gs if tr.g_kind[g] == MEMCPY and gpu.dur[g] > 0
                         and gpu.end(g) <= end), None)
        out[tr.r_thread[r]].append(_Anchor(r, gs, sync, blocking))
    return out

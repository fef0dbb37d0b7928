"""Rebuild the dependency graph that decided one rank's recorded timeline.

Ops (times relative to the import's origin ``t0``, in us):

- **host threads.** Each CPU thread that launches GPU work becomes a stream ``cpu:<tid>``
  that tiles its recorded time: *anchors* (the runtime calls that launch GPU work or block on
  it) separated by ``cpu`` ops for the time between them (Python, ATen, allocator: whatever
  the thread did). A thread replays at its recorded pace unless a blocking call has to wait
  longer than it did. On the thread that holds the ``ProfilerStep#N`` spans, zero-length
  ``ProfilerStep#N`` and ``ProfilerStep#N end`` ops mark where each span starts and ends.
- **GPU streams.** Each stream is ``cuda:<id>``; kernels, copies and memsets keep their
  recorded durations and run in recorded order. A GPU op depends on the host op that
  launched it (``correlation``: ``cudaLaunchKernel``, ``cudaLaunchKernelExC``,
  ``cudaGraphLaunch``, ``cudaMemcpyAsync``, ``hipLaunchKernel``, ``hipExtModuleLaunchKernel``,
  ...: whatever call shares its correlation id). A call that returned more than 5 us after
  its GPU op started (a pageable copy) is split there, and the GPU op waits for the first
  part only.
- **blocking calls.** ``cudaDeviceSynchronize`` waits for the last op of every stream
  launched before it; ``cudaStreamSynchronize`` and ``cudaEventSynchronize`` for the last op
  of one stream: the one the ``cuda_sync`` event names, or else the stream whose last op
  ended last before the call returned (or, if nothing was pending, the stream of the
  thread's last launch). A memcpy call that returned after its copy ended (a synchronous
  copy) waits for the copy. The blocking op lasts what the call took after its target ended
  (the wake-up), so replaying the recorded GPU timeline gives the recorded host timeline.
- **cross-stream waits.** ``cudaStreamWaitEvent`` makes the next op launched on the waiting
  stream depend on the last op launched, before the matching ``cudaEventRecord``, on the
  recorded stream. Newer traces name both in ``cuda_sync`` events (``wait_on_stream``,
  ``wait_on_cuda_event_record_corr_id``). Older ones do not: the wait is paired with the
  thread's latest ``cudaEventRecord``, whose op is the thread's latest launch before it, and
  kept only if that op ended before the waiting op started. A GPU op that started later than
  all of this allows (by more than 5 us) gets a dependency on the op of another stream that
  ended last before it started: the timing says something made it wait.
- **outside the window.** GPU ops whose launch is not in the trace (launched before the
  window, or by a call the profiler did not record) and threads that start after ``t0`` wait
  for ``untraced`` ops: one stream per rank that releases them at their recorded times.

Communication kernels become ``collective``/``send``/``recv`` ops (sizes from
:mod:`.comms`); they are modelled by the network when their size is known and every member
of their group is in the import, else fixed at their recorded duration. Host<->device copies
replay their recorded duration unless ``model_copies`` is set.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from simcluster.workload.kineto.comms import (
    UNSUPPORTED,
    CommInfo,
    from_annotation,
    from_args,
    kernel_collective,
)
from simcluster.workload.kineto.events import KERNEL, MEMCPY, MEMSET, RankTrace, Span
from simcluster.workload.kineto.pyet import EtCollective
from simcluster.workload.kineto.opstable import (
    COLLECTIVE,
    COMPUTE,
    HOST,
    MEMCPY_OP,
    RECV,
    SEND,
    OpColumns,
    to_table,
)
from simcluster.workload.kineto.work import KernelWork, attribute

_SYNC_DEVICE = re.compile(r"(?:cuda|hip)DeviceSynchronize|cuCtxSynchronize")
_SYNC_STREAM = re.compile(r"(?:cuda|hip)StreamSynchronize|cuStreamSynchronize")
_SYNC_EVENT = re.compile(r"(?:cuda|hip)EventSynchronize|cuEventSynchronize")
_EVENT_RECORD = re.compile(r"(?:cuda|hip)EventRecord|cuEventRecord")
_STREAM_WAIT = re.compile(r"(?:cuda|hip)StreamWaitEvent|cuStreamWaitEvent")
_COPY_KINDS = {"htod": "H2D", "dtoh": "D2H", "dtod": "D2D", "ptop": "D2D"}
_COPY = re.compile(r"(HtoD|DtoH|DtoD|PtoP)", re.IGNORECASE)

TIMING_TOLERANCE_US = 5.0  # GPU start delay that needs no explanation (dispatch latency)



@dataclass(frozen=True)
class Window:
    """The part of a rank's trace to import (absolute us) and its steps.

    Attributes:
        start, end: the window.
        steps: (step number, start, end) of the ProfilerStep spans in it, in order.
        main_thread: the thread holding the step spans (its host stream tiles the window).
    """

    start: float
    end: float
    steps: tuple[tuple[int, float, float], ...]
    main_thread: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", [s[1] for s in self.steps])
        object.__setattr__(self, "_bounds", sorted({t for _, a, b in self.steps
                                                    for t in (a, b)}))

    def step_of(self, t: float) -> int | None:
        """The step whose span holds time ``t`` (before the first: the first; between two:
        the earlier)."""
        if not self.steps:
            return None
        k = bisect.bisect_right(self._starts, t) - 1  # type: ignore[attr-defined]
        return self.steps[max(k, 0)][0]

    def bounds_within(self, a: float, b: float) -> list[float]:
        """Step span starts and ends strictly between ``a`` and ``b``, in order."""
        bounds: list[float] = self._bounds  # type: ignore[attr-defined]
        return bounds[bisect.bisect_right(bounds, a):bisect.bisect_left(bounds, b)]


@dataclass(frozen=True)
class RankContext:
    """What one rank's build needs from the whole import.

    Attributes:
        rank: this rank's number in the workload (dense, 0..N-1).
        global_rank: its rank in the recorded job.
        world_size: the recorded job's world size.
        present: global rank -> workload rank, for the ranks imported.
        t0: the import's time origin (absolute us).
        model_copies: model host<->device copies as flows instead of recorded durations.
        et: collectives of this rank's execution trace (``--et``), if given.
    """

    rank: int
    global_rank: int
    world_size: int
    present: dict[int, int]
    t0: float
    model_copies: bool = False
    et: tuple[EtCollective, ...] | None = None


@dataclass
class BuildStats:
    """Counts for the report."""

    counts: Counter[str] = field(default_factory=Counter)
    comm_sources: Counter[str] = field(default_factory=Counter)
    unsized: Counter[str] = field(default_factory=Counter)
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    late_us: float = 0.0
    # compute kernels (not communication): count and recorded time, all and with work
    kernels: int = 0
    kernels_with_work: int = 0
    kernel_us: float = 0.0
    kernel_with_work_us: float = 0.0
    without_work_us: Counter[str] = field(default_factory=Counter)  # reason -> time


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


class _RankBuild:
    """Builds one rank's ops (see the module docstring)."""

    def __init__(self, tr: RankTrace, win: Window, ctx: RankContext, stats: BuildStats,
                 annotations: dict[int, list[Span]]) -> None:
        self.tr, self.win, self.ctx, self.stats = tr, win, ctx, stats
        self.ops = OpColumns()
        self.annotations = annotations
        self.annotation_starts = {th: [sp.ts for sp in spans] for th, spans in annotations.items()}
        self.rt_by_corr = _CorrIndex(tr.r_corr)
        r_ts = np.frombuffer(tr.r_ts, dtype=np.float64) if len(tr.r_ts) else np.zeros(0)
        inside = np.flatnonzero((r_ts >= win.start) & (r_ts < win.end))
        # in time order (files are not)
        self.kept_rt: list[int] = inside[np.argsort(r_ts[inside], kind="stable")].tolist()
        self.gpu = _select_gpu(tr, win, self.rt_by_corr)
        self.release_at: dict[float, int] = {}
        # (host op, GPU op) waits found before the GPU ops exist; linked in build().
        self._pending: list[tuple[int, int]] = []
        self.host_op_of_rt = _IndexMap(len(tr.r_ts))  # runtime index -> op whose end launches
        self.comm_order = self._comm_order()
        self.work = self._kernel_work()

    # -- helpers ----------------------------------------------------------------------------

    def t(self, absolute: float) -> float:
        return absolute - self.ctx.t0

    def release(self, absolute: float) -> int:
        """The ``untraced`` op that ends at ``absolute`` (created once per time)."""
        i = self.release_at.get(absolute)
        if i is None:
            i = self.release_at[absolute] = self.ops.add(
                HOST, "untraced", "untraced", 0.0, 0.0, self.win.step_of(absolute), prio=0)
        return i

    def _finish_releases(self) -> None:
        prev = 0.0
        for absolute, i in sorted(self.release_at.items()):
            at = self.t(absolute)
            self.ops.key[i] = prev
            self.ops.dur[i] = at - prev
            self.ops.name[i] = f"untraced (until {at:.3f} us)"
            prev = at

    # -- host threads -----------------------------------------------------------------------

    def _gap(self, stream: str, a: float, b: float) -> int | None:
        """``cpu`` ops from ``a`` to ``b`` (absolute), split at step boundaries; returns the
        first op made."""
        if b <= a:
            return None
        cuts = self.win.bounds_within(a, b) + [b]
        first = None
        for c in cuts:
            i = self.ops.add(HOST, "cpu", stream, self.t(a), c - a, self.win.step_of(a))
            first = i if first is None else first
            a = c
        return first

    def _sync_targets(self, anchor: _Anchor, thread_last_launch: int | None) -> list[int]:
        tr, gpu = self.tr, self.gpu
        r = anchor.r
        ts, end = tr.r_ts[r], tr.r_ts[r] + tr.r_dur[r]
        info = tr.syncs.get(tr.r_corr[r])
        if anchor.sync == "device" or (info is not None and "context" in info.kind.lower()):
            return [g for s in gpu.streams if (g := gpu.last_before(s, ts)) is not None]
        if info is not None:
            if anchor.sync == "stream" and info.stream >= 0:
                g = gpu.last_before(info.stream, ts)
                self.stats.counts["synchronizations with a known stream"] += 1
                return [g] if g is not None else []
            rec = self.rt_by_corr.get(info.wait_on_record_corr)
            if anchor.sync == "event" and info.wait_on_stream >= 0 and rec is not None:
                g = gpu.last_before(info.wait_on_stream, tr.r_ts[rec])
                self.stats.counts["synchronizations with a known stream"] += 1
                return [g] if g is not None else []
        # Older traces: the stream whose last op ended last before the call returned.
        self.stats.counts["synchronizations with an inferred stream"] += 1
        cands = [g for s in gpu.streams if (g := gpu.last_before(s, ts)) is not None]
        done = [g for g in cands if gpu.end(g) <= end + 0.5]
        if done:
            best = max(done, key=lambda g: (gpu.end(g), g))
            if gpu.end(best) > ts:
                return [best]
        if thread_last_launch is not None:
            g = gpu.last_before(tr.g_stream[thread_last_launch], ts)
            return [g] if g is not None else []
        return []

    def _thread(self, thread: int, anchors: list[_Anchor]) -> None:
        tr, win, gpu = self.tr, self.win, self.gpu
        stream = f"cpu:{tr.threads[thread]}"
        if thread == win.main_thread:
            first, last = win.start, win.end
        else:
            first = max(tr.thread_first.get(thread, win.start), win.start)
            last = min(tr.thread_last.get(thread, win.end), win.end)
            first = min(first, tr.r_ts[anchors[0].r]) if anchors else first
        cursor = first
        made: list[int] = []
        last_launch: int | None = None
        for a in anchors:
            r = a.r
            s = max(tr.r_ts[r], cursor)
            e = max(tr.r_ts[r] + tr.r_dur[r], s)
            g = self._gap(stream, cursor, s)
            if g is not None:
                made.append(g)
            name = tr.names[tr.r_name[r]]
            step = win.step_of(s)
            if a.sync:
                targets = self._sync_targets(a, last_launch)
                ready = max([s] + [gpu.end(x) for x in targets])
                i = self.ops.add(HOST, name, stream, self.t(min(ready, e)), e - min(ready, e),
                                 step)
                for x in targets:
                    self._dep_gpu(i, x)
                self.stats.counts["blocking synchronizations"] += 1
            elif a.blocking_copy is not None:
                c = a.blocking_copy
                launch_end = min(max(gpu.start[c], s), e)
                i = self.ops.add(HOST, name, stream, self.t(s), launch_end - s, step)
                self.host_op_of_rt[r] = i
                wait_from = min(max(gpu.end(c), launch_end), e)
                w = self.ops.add(HOST, f"{name} (wait)", stream, self.t(wait_from),
                                 e - wait_from, step)
                self._dep_gpu(w, c)
                self.stats.counts["synchronous copies"] += 1
            elif a.gpu and e - gpu.start[a.gpu[0]] > TIMING_TOLERANCE_US:
                # The GPU started well before the call returned (a pageable copy, a slow
                # launch): split the call where the GPU op started, which waits for the first
                # part only.
                cut = max(gpu.start[a.gpu[0]], s)
                i = self.ops.add(HOST, name, stream, self.t(s), cut - s, step)
                self.host_op_of_rt[r] = i
                i = self.ops.add(HOST, f"{name} (return)", stream, self.t(cut), e - cut, step)
                self.stats.counts["launch calls that outlast their GPU op's start"] += 1
            else:
                i = self.ops.add(HOST, name, stream, self.t(s), e - s, step)
                self.host_op_of_rt[r] = i
            if a.gpu:
                last_launch = a.gpu[-1]
            made.append(i)
            cursor = e
        g = self._gap(stream, cursor, last)
        if g is not None:
            made.append(g)
        if thread == win.main_thread:
            # Zero-length markers where each step span starts and ends (they replay where
            # the surrounding ops put them; analysis.fidelity measures steps with them).
            for n, s0, s1 in win.steps:
                made.append(self.ops.add(HOST, f"ProfilerStep#{n}", stream, self.t(s0), 0.0,
                                         n, prio=0))
                self.ops.add(HOST, f"ProfilerStep#{n} end", stream, self.t(s1), 0.0, n, prio=0)
        if made and first > self.ctx.t0:
            head = min(made, key=lambda i: (self.ops.key[i], self.ops.prio[i], i))
            self.ops.dep(head, self.release(first))

    def _dep_gpu(self, op: int, g: int) -> None:
        """``op`` waits for GPU op ``g`` (made later; recorded as a pending pair)."""
        self._pending.append((op, g))

    # -- GPU streams ------------------------------------------------------------------------

    def _gpu_ops(self) -> None:
        gpu = self.gpu
        for s, ops in sorted(gpu.streams.items()):
            for g in ops:
                gpu.op[g] = self._gpu_op(g, f"cuda:{s}")
                r = gpu.launch.get(g)
                if r is not None and r in self.host_op_of_rt:
                    self.ops.dep(gpu.op[g], self.host_op_of_rt[r])
                elif r is None:
                    self.ops.dep(gpu.op[g], self.release(gpu.start[g]))
                    self.stats.counts["GPU ops without a launch in the window (released at "
                                      "their recorded start)"] += 1

    def _gpu_op(self, g: int, stream: str) -> int:
        tr, gpu = self.tr, self.gpu
        name = tr.names[tr.g_name[g]]
        r = gpu.launch.get(g)
        step = self.win.step_of(tr.r_ts[r] if r is not None else gpu.start[g])
        start, dur = self.t(gpu.start[g]), gpu.dur[g]
        kind = tr.g_kind[g]
        if kind == MEMSET:
            return self.ops.add(COMPUTE, name, stream, start, dur, step, prio=0,
                                bytes_accessed=tr.g_bytes[g])
        if kind == MEMCPY:
            m = _COPY.search(name)
            copy = _COPY_KINDS.get(m.group(1).lower()) if m else None
            if copy is None:
                self.stats.counts["copies of unknown direction (replayed as recorded)"] += 1
                return self.ops.add(COMPUTE, name, stream, start, dur, step, prio=0)
            fixed = copy != "D2D" and not self.ctx.model_copies
            return self.ops.add(MEMCPY_OP, name, stream, start, dur, step, prio=0,
                                copy_kind=copy, comm_bytes=tr.g_bytes[g],
                                fixed_duration=fixed or None)
        if g in tr.comm_kernel_args:
            return self._comm_op(g, name, stream, start, dur, step)
        work = self.work.get(g)
        stats = self.stats
        stats.kernels += 1
        stats.kernel_us += dur
        if work is not None and (work[0] or work[1]):
            stats.kernels_with_work += 1
            stats.kernel_with_work_us += dur
            return self.ops.add(COMPUTE, name, stream, start, dur, step, prio=0,
                                flops=work[0], bytes_accessed=work[1], dtype=work[2])
        stats.without_work_us[self.work.missing.get(g, "an op whose shapes give no work")] += dur
        return self.ops.add(COMPUTE, name, stream, start, dur, step, prio=0)

    def _kernel_work(self) -> KernelWork:
        """FLOPs and bytes of the compute kernels, from their aten ops (:mod:`.work`)."""
        tr = self.tr
        n = len(tr.g_ts)
        kind = np.frombuffer(tr.g_kind, dtype=np.int8) if n else np.zeros(0, np.int8)
        kernels = np.flatnonzero(kind == KERNEL)
        if tr.comm_kernel_args:
            kernels = np.setdiff1d(kernels, np.fromiter(tr.comm_kernel_args, np.int64))
        corr = np.frombuffer(tr.g_corr, dtype=np.int64) if n else np.zeros(0, np.int64)
        return attribute(tr, self.rt_by_corr.lookup(corr), kernels)

    # -- communication ----------------------------------------------------------------------

    def _comm_order(self) -> dict[int, int]:
        """Trace index of each communication kernel -> its position in issue order (for
        matching an execution trace)."""
        tr = self.tr
        comm = sorted(tr.comm_kernel_args)
        rs = self.rt_by_corr.lookup(np.array([tr.g_corr[g] for g in comm], dtype=np.int64))
        when = {g: (tr.r_ts[r] if r >= 0 else tr.g_ts[g]) for g, r in zip(comm, rs.tolist())}
        order = sorted(comm, key=lambda g: (when[g], g))
        return {g: k for k, g in enumerate(order)}

    def _enclosing(self, g: int) -> list[Span]:
        """Communication annotations around the call that launched ``g``, innermost first."""
        r = self.gpu.launch.get(g)
        if r is None:
            r = self.rt_by_corr.get(self.tr.g_corr[g])
        if r is None:
            return []
        th = self.tr.r_thread[r]
        spans = self.annotations.get(th, [])
        t = self.tr.r_ts[r]
        k = bisect.bisect_right(self.annotation_starts[th], t) if spans else 0
        around = [s for s in spans[max(0, k - 32):k] if s.end >= t]
        return sorted(around, key=lambda s: -s.ts)

    def comm_info(self, g: int) -> CommInfo:
        tr, ctx = self.tr, self.ctx
        args = tr.comm_kernel_args[g]
        info = from_args(args, "kernel args") if ("Collective name" in args
                                                  or "In msg nelems" in args) else CommInfo()
        for span in self._enclosing(g):
            info = info.merged(from_annotation(span.name, span.args, ctx.world_size))
        k = self.comm_order.get(g)
        if ctx.et is not None and k is not None and k < len(ctx.et):
            e = ctx.et[k]
            if info.collective in (None, "sendrecv", e.collective):
                if info.nbytes is not None and e.nbytes is not None:
                    self.stats.counts["execution-trace sizes that agree with the Kineto trace's"
                                      if info.nbytes == e.nbytes else
                                      "execution-trace sizes that differ (Kineto's kept)"] += 1
                info = info.merged(CommInfo(collective=e.collective, nbytes=e.nbytes,
                                            source="execution trace"))
            else:
                self.stats.counts["execution-trace collectives of another kind (not used)"] += 1
        elif ctx.et is not None:
            self.stats.counts["communication kernels beyond the execution trace's list"] += 1
        return info.merged(CommInfo(collective=kernel_collective(tr.names[tr.g_name[g]])))

    def _comm_op(self, g: int, name: str, stream: str, start: float, dur: float,
                 step: int | None) -> int:
        ctx, stats = self.ctx, self.stats
        info = self.comm_info(g)
        coll = info.collective
        if coll in (None, "sendrecv"):
            coll = "all_to_all"
            stats.counts["SendRecv kernels without annotations (taken as all-to-all)"] += 1
        members = info.ranks or tuple(range(ctx.world_size))
        gname = info.group or ("world" if info.ranks is None else
                               "ranks" + "_".join(map(str, members)))
        present = tuple(ctx.present[m] for m in members if m in ctx.present)
        if ctx.rank not in present:
            present = tuple(sorted({*present, ctx.rank}))
        modelled = (info.nbytes is not None and coll not in UNSUPPORTED
                    and len(present) == len(members) and len(members) > 1
                    and coll not in ("send", "recv"))
        if info.nbytes is None:
            stats.unsized[coll] += 1
        else:
            stats.comm_sources[info.source] += 1
        prev = stats.groups.setdefault(gname, present)
        if prev != present:
            stats.groups[gname] = tuple(sorted(set(prev) | set(present)))
        stats.counts["communication kernels modelled by the network" if modelled else
                     "communication kernels at their recorded duration"] += 1
        if coll in ("send", "recv"):
            return self.ops.add(SEND if coll == "send" else RECV, name, stream, start, dur,
                                step, prio=0, comm_bytes=info.nbytes, fixed_duration=True)
        if coll in UNSUPPORTED:
            coll = "all_gather" if coll == "gather" else "broadcast"
        root = min(present) if coll in ("broadcast", "reduce") else None
        return self.ops.add(COLLECTIVE, name, stream, start, dur, step, prio=0, collective=coll,
                            comm_bytes=info.nbytes, group=gname, root=root,
                            fixed_duration=None if modelled else True)

    # -- cross-stream dependencies ------------------------------------------------------------

    def _first_after(self, stream: int, t: float) -> int | None:
        """The first op of ``stream`` launched after time ``t``."""
        lm = self.gpu.launch_max.get(stream)
        if not lm:
            return None
        k = bisect.bisect_right(lm, t)
        ops = self.gpu.streams[stream]
        return ops[k] if k < len(ops) else None

    def _cross_stream(self) -> dict[int, set[int]]:
        """GPU op -> GPU ops of other streams it waits for (trace indices)."""
        tr, gpu = self.tr, self.gpu
        waits: dict[int, set[int]] = defaultdict(set)
        by_thread: dict[int, list[int]] = defaultdict(list)
        for r in self.kept_rt:
            by_thread[tr.r_thread[r]].append(r)
        launched = self.launched
        for rts in by_thread.values():
            last_launch: int | None = None
            recorded: int | None = None
            pending: int | None = None
            for r in rts:
                name = tr.names[tr.r_name[r]]
                if launched.get(r):
                    first = min(launched[r], key=lambda g: (gpu.start[g], g))
                    if pending is not None:
                        self._pair(first, pending, waits)
                        pending = None
                    last_launch = max(launched[r], key=lambda g: (gpu.start[g], g))
                elif _EVENT_RECORD.search(name):
                    recorded = last_launch
                elif _STREAM_WAIT.search(name):
                    info = tr.syncs.get(tr.r_corr[r])
                    rec = self.rt_by_corr.get(info.wait_on_record_corr) if info else None
                    if info is not None and info.stream >= 0 and info.wait_on_stream >= 0 \
                            and rec is not None:
                        target = gpu.last_before(info.wait_on_stream, tr.r_ts[rec])
                        waiter = self._first_after(info.stream, tr.r_ts[r])
                        if target is not None and waiter is not None and \
                                tr.g_stream[target] != info.stream:
                            waits[waiter].add(target)
                            self.stats.counts["cross-stream waits from cuda_sync events"] += 1
                    else:
                        # The event recorded last on this thread; traces without
                        # cudaEventRecord calls: the thread's last launch, where PyTorch
                        # records the events it then waits on.
                        pending = recorded if recorded is not None else last_launch
        self._timing(waits)
        return waits

    def _pair(self, waiter: int, target: int, waits: dict[int, set[int]]) -> None:
        gpu = self.gpu
        if self.tr.g_stream[waiter] == self.tr.g_stream[target]:
            return
        if gpu.end(target) <= gpu.start[waiter] + 0.5:
            waits[waiter].add(target)
            self.stats.counts["cross-stream waits from event record/wait pairs"] += 1
        else:
            self.stats.counts["event record/wait pairs contradicted by timing (dropped)"] += 1

    def _timing(self, waits: dict[int, set[int]]) -> None:
        """Dependencies for GPU ops that waited longer than everything known explains."""
        tr, gpu = self.tr, self.gpu
        ends = {s: np.array([gpu.end(g) for g in ops]) for s, ops in gpu.streams.items()}
        for s, ops in gpu.streams.items():
            prev_end = float("-inf")
            for g in ops:
                ready = prev_end
                r = gpu.launch.get(g)
                if r is not None:
                    ready = max(ready, tr.r_ts[r] + tr.r_dur[r])
                else:
                    ready = max(ready, gpu.start[g])
                for x in waits.get(g, ()):
                    ready = max(ready, gpu.end(x))
                start = gpu.start[g]
                if start - ready > TIMING_TOLERANCE_US:
                    best = None
                    for s2, e2 in ends.items():
                        if s2 == s:
                            continue
                        k = int(np.searchsorted(e2, start + 0.5, side="right")) - 1
                        if k >= 0 and e2[k] > ready and (best is None or e2[k] > gpu.end(best)):
                            best = gpu.streams[s2][k]
                    if best is not None:
                        waits[g].add(best)
                        self.stats.counts["cross-stream waits inferred from timing"] += 1
                    else:
                        self.stats.counts["GPU ops that started late for no visible reason"] += 1
                        self.stats.late_us += start - ready
                prev_end = max(prev_end, gpu.end(g))

    # -- build --------------------------------------------------------------------------------

    def build(self) -> pa.Table:
        tr, win = self.tr, self.win
        self.launched = _launched(self.gpu)
        anchors = _anchors(tr, self.gpu, self.kept_rt, self.launched)
        threads = set(anchors)
        if win.main_thread is not None:
            threads.add(win.main_thread)
        for th in sorted(threads, key=lambda t: tr.threads[t]):
            self._thread(th, anchors.get(th, []))
        self._gpu_ops()
        for op, g in self._pending:
            self.ops.dep(op, self.gpu.op[g])
        for waiter, targets in self._cross_stream().items():
            for x in sorted(targets):
                self.ops.dep(self.gpu.op[waiter], self.gpu.op[x])
        self._finish_releases()
        quiet = {t for t in range(len(tr.threads)) if t not in threads
                 and t in tr.thread_first and tr.thread_first[t] < win.end
                 and tr.thread_last.get(t, 0) > win.start}
        if quiet:
            self.stats.counts["CPU threads that launch no GPU work (not replayed)"] += len(quiet)
        table, dropped = to_table(self.ops, self.ctx.rank)
        if dropped:
            self.stats.counts["dependencies dropped to break a cycle"] += dropped
        return table


def annotations_by_thread(tr: RankTrace) -> dict[int, list[Span]]:
    """Communication annotations per thread, sorted by start."""
    out: dict[int, list[Span]] = defaultdict(list)
    for s in tr.annotations:
        out[s.thread].append(s)
    return dict(out)


def build_rank(tr: RankTrace, win: Window, ctx: RankContext, stats: BuildStats) -> pa.Table:
    """The ops of one rank (rows in op_id order, ``rank`` = ``ctx.rank``).

    Parameters:
        tr: the rank's trace.
        win: the window to import.
        ctx: rank numbering, time origin, options.
        stats: counters and groups, updated.
    """
    return _RankBuild(tr, win, ctx, stats, annotations_by_thread(tr)).build()


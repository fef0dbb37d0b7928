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
  ended last before it started: the timing says something made it wait. If no such op
  ended after what it already waited for, an ``unexplained GPU wait`` op on stream
  ``idle:cuda:<id>`` as long as the delay sits between those causes and the op (unless
  ``unexplained_waits`` is off).
- **outside the window.** GPU ops whose launch is not in the trace (launched before the
  window, or by a call the profiler did not record) and threads that start after ``t0`` wait
  for ``untraced`` ops: one stream per rank that releases them at their recorded times.

Communication kernels become ``collective``/``send``/``recv`` ops (sizes from
:mod:`.comms`); they are modelled by the network when their size is known and every member
of their group is in the import, else fixed at their recorded duration. Host<->device copies
replay their recorded duration unless ``model_copies`` is set.

This module sets up one rank's build and runs its parts: :mod:`.context` (the window, the
rank's context, the counters), :mod:`.selection` (the GPU ops and anchors of the window),
:mod:`.host_threads`, :mod:`.gpu_streams`, :mod:`.comm_ops` and :mod:`.cross_stream` (the
ops and dependencies above, as mixins over :mod:`.rank_state`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa

from simcluster.workload.kineto.context import BuildStats, RankContext, Window
from simcluster.workload.kineto.cross_stream import _CrossStream
from simcluster.workload.kineto.events import RankTrace, Span
from simcluster.workload.kineto.gpu_streams import _GpuStreams
from simcluster.workload.kineto.host_threads import _HostThreads
from simcluster.workload.kineto.opstable import OpColumns, to_table
from simcluster.workload.kineto.rank_state import TIMING_TOLERANCE_US
from simcluster.workload.kineto.selection import (
    _anchors,
    _CorrIndex,
    _IndexMap,
    _launched,
    _select_gpu,
)

# The context and the timing tolerance were defined here; they stay importable from here.
__all__ = ["TIMING_TOLERANCE_US", "BuildStats", "RankContext", "Window",
           "annotations_by_thread", "build_rank"]


class _RankBuild(_HostThreads, _GpuStreams, _CrossStream):
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

"""Cross-stream dependencies of one rank's build: GPU op -> GPU ops of other streams it
waited for, from ``cudaStreamWaitEvent`` (with ``cuda_sync`` events, or paired with the
thread's latest ``cudaEventRecord``) and, for ops that started later than all of that
explains, from the timing (rules in :mod:`.graph`'s docstring)."""

from __future__ import annotations

import bisect
import re
from collections import defaultdict

import numpy as np

from simcluster.workload.kineto.opstable import HOST
from simcluster.workload.kineto.rank_state import TIMING_TOLERANCE_US, _RankState

_EVENT_RECORD = re.compile(r"(?:cuda|hip)EventRecord|cuEventRecord")
_STREAM_WAIT = re.compile(r"(?:cuda|hip)StreamWaitEvent|cuStreamWaitEvent")


class _CrossStream(_RankState):
    """Cross-stream waits of :class:`~.graph._RankBuild`."""

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
            prev: int | None = None
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
                        if self.ctx.unexplained_waits:
                            self._idle_gap(g, prev, start - ready, waits.get(g, ()))
                prev_end = max(prev_end, gpu.end(g))
                prev = g

    def _idle_gap(self, g: int, prev: int | None, gap_us: float, waits: set[int]) -> None:
        """Keep the recorded wait of GPU op ``g`` that nothing in the trace explains: an
        ``idle`` op of ``gap_us`` between everything ``g`` was known to wait for (its launch,
        the previous op of its stream, its cross-stream waits) and ``g``. The wait is kept
        relative to those, not at its recorded time, so a faster or slower replay shifts it."""
        gpu = self.gpu
        stream = f"idle:cuda:{self.tr.g_stream[g]}"
        op = self.ops.add(HOST, "unexplained GPU wait", stream, self.t(gpu.start[g] - gap_us),
                          gap_us, self.win.step_of(gpu.start[g]))
        r = gpu.launch.get(g)
        if r is not None and r in self.host_op_of_rt:
            self.ops.dep(op, self.host_op_of_rt[r])
        for x in ([prev] if prev is not None else []) + sorted(waits):
            self.ops.dep(op, gpu.op[x])
        self.ops.dep(gpu.op[g], op)

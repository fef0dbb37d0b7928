"""The host streams of one rank's build: each CPU thread that launches GPU work becomes a
stream ``cpu:<tid>`` that tiles its recorded time with its anchors (launches, blocking
calls) and ``cpu`` ops between them (rules in :mod:`.graph`'s docstring)."""

from __future__ import annotations

from simcluster.workload.kineto.opstable import HOST
from simcluster.workload.kineto.rank_state import TIMING_TOLERANCE_US, _RankState
from simcluster.workload.kineto.selection import _Anchor


class _HostThreads(_RankState):
    """Host-thread ops of :class:`~.graph._RankBuild`."""

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

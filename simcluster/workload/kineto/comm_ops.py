"""Communication kernels of one rank's build as ``collective``/``send``/``recv`` ops: their
collective, size and group from the kernel's arguments, the enclosing annotations and the
execution trace (``--et``); modelled by the network when the size is known and every member
of the group is imported, else fixed at the recorded duration."""

from __future__ import annotations

import bisect
from dataclasses import replace

import numpy as np

from simcluster.workload.kineto.comms import (
    UNSUPPORTED,
    CommInfo,
    from_annotation,
    from_args,
    kernel_collective,
)
from simcluster.workload.kineto.events import Span
from simcluster.workload.kineto.opstable import COLLECTIVE, RECV, SEND
from simcluster.workload.kineto.rank_state import _RankState


class _CommOps(_RankState):
    """Communication ops of :class:`~.graph._RankBuild`."""

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
                                            source="execution trace", splits=e.splits))
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
        if info.ranks:
            members = len(info.ranks)
            gname = info.group or "ranks" + "_".join(map(str, info.ranks))
            present = tuple(ctx.present[m] for m in info.ranks if m in ctx.present)
        else:  # the whole world: O(ranks imported), not O(world size), per op
            members = ctx.world_size
            gname = info.group or "world"
            present = tuple(ctx.present[m] for m in sorted(ctx.present)
                            if 0 <= m < ctx.world_size)
        if ctx.rank not in present:
            present = tuple(sorted({*present, ctx.rank}))
        modelled = (info.nbytes is not None and coll not in UNSUPPORTED
                    and len(present) == members and members > 1
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
        splits = replace(info, collective=coll).pair_bytes(members) if modelled else None
        if splits is not None:
            stats.counts["all-to-all(v) with their per-member split sizes"] += 1
        return self.ops.add(COLLECTIVE, name, stream, start, dur, step, prio=0, collective=coll,
                            comm_bytes=info.nbytes, group=gname, root=root,
                            fixed_duration=None if modelled else True, splits=splits)

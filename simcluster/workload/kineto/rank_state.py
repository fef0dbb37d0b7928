"""What the parts of one rank's build share (:class:`_RankState`): the trace, the window, the
ops being made and the GPU ops selected; and the ``untraced`` stream that releases ops whose
cause is outside the window.

The parts (:mod:`.host_threads`, :mod:`.gpu_streams`, :mod:`.comm_ops`,
:mod:`.cross_stream`) are mixins over this state; :class:`~.graph._RankBuild` sets it up and
runs them in order.
"""

from __future__ import annotations

from simcluster.workload.kineto.context import BuildStats, RankContext, Window
from simcluster.workload.kineto.events import RankTrace, Span
from simcluster.workload.kineto.opstable import HOST, OpColumns
from simcluster.workload.kineto.selection import _CorrIndex, _Gpu, _IndexMap
from simcluster.workload.kineto.work import KernelWork

TIMING_TOLERANCE_US = 5.0  # GPU start delay that needs no explanation (dispatch latency)


class _RankState:
    """The state of one rank's build (set by ``_RankBuild.__init__``; see the module
    docstring) and the helpers every part uses. Times in ops are us from ``ctx.t0``."""

    tr: RankTrace
    win: Window
    ctx: RankContext
    stats: BuildStats
    ops: OpColumns
    annotations: dict[int, list[Span]]         # thread -> communication annotations
    annotation_starts: dict[int, list[float]]  # thread -> their start times
    rt_by_corr: _CorrIndex
    kept_rt: list[int]                         # runtime calls in the window, in time order
    gpu: _Gpu
    release_at: dict[float, int]               # absolute time -> its ``untraced`` op
    _pending: list[tuple[int, int]]            # (host op, GPU op) waits, linked in build()
    host_op_of_rt: _IndexMap                   # runtime index -> op whose end launches
    comm_order: dict[int, int]
    work: KernelWork
    launched: dict[int, list[int]]             # runtime index -> GPU ops (set by build())

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

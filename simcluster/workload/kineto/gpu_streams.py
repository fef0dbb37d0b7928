"""The GPU streams of one rank's build: each kept GPU op becomes an op on ``cuda:<id>`` at
its recorded duration, a compute kernel with the FLOPs and bytes of its aten op
(:mod:`.work`), a copy or memset, or communication (:mod:`.comm_ops`); each depends on the
host op that launched it, or on the ``untraced`` stream when its launch is not in the
window."""

from __future__ import annotations

import re

import numpy as np

from simcluster.workload.kineto.comm_ops import _CommOps
from simcluster.workload.kineto.events import KERNEL, MEMCPY, MEMSET
from simcluster.workload.kineto.opstable import COMPUTE, MEMCPY_OP
from simcluster.workload.kineto.work import KernelWork, attribute

_COPY_KINDS = {"htod": "H2D", "dtoh": "D2H", "dtod": "D2D", "ptop": "D2D"}
_COPY = re.compile(r"(HtoD|DtoH|DtoD|PtoP)", re.IGNORECASE)


class _GpuStreams(_CommOps):
    """GPU-stream ops of :class:`~.graph._RankBuild`."""

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
            shape = self.work.shape.get(g)
            return self.ops.add(COMPUTE, name, stream, start, dur, step, prio=0,
                                flops=work[0], bytes_accessed=work[1], dtype=work[2],
                                gemm_shape=list(shape) if shape else None)
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

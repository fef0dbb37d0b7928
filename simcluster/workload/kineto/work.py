"""FLOPs and HBM bytes of GPU kernels, inferred from the aten ops that launched them.

A Kineto trace gives a kernel's duration, not its work. To move a recorded duration to
another GPU (``sim/compute.py``, ``ComputeModel.retarget_us``) the compute model needs the
kernel's FLOPs and bytes; traces recorded with ``record_shapes=True`` give the shapes
(``Input Dims``) and element types (``Input type``) of the operator that launched it, and
some (newer PyTorch) the values of its scalar arguments (``Concrete Inputs``). The rules,
all deterministic:

**Which op.** A kernel's op is the innermost ``cpu_op`` on the launching thread whose span
holds the launch call (``cudaLaunchKernel``, ... linked to the kernel by ``correlation``).
Only an ``aten::`` op has rules; a kernel whose innermost op is something else (a compiled
graph, ``fbgemm::``, a ``record_function`` label) or that has no op gets no work.

**FLOPs.** A ``flops`` argument (``torch.profiler(with_flops=True)``) on the op, or on an
enclosing op of the same family (``aten::conv2d`` around ``aten::cudnn_convolution``), is
used as it is. Otherwise, from the shapes:

- matmul family: ``mm`` [M,K]x[K,N] and ``addmm``: 2MKN; ``bmm``/``baddbmm``: 2BMKN;
  ``matmul`` (broadcast batch), ``linear`` (x[...,K], w[N,K]): 2·rows·K·N; ``mv``/``addmv``:
  2MN. The bias of ``addmm`` and the like is not counted. ``einsum`` needs no rule: its
  operands are a ``TensorList`` (no dtype recorded), and it launches its kernels through
  ``bmm``/``mm``, the innermost op.
- convolution: 2·N·Cout·prod(out spatial)·Cin/groups·prod(kernel), i.e. 2·prod(output)·
  prod(weight[1:]). Forward ops (``convolution``, ``_convolution``, ``cudnn_convolution``,
  ``conv1d/2d/3d``, ``miopen_convolution``) need the output's spatial size: from stride,
  padding and dilation in ``Concrete Inputs``, else from the gradient the matching backward
  node received (``*Conv*Backward*`` with the forward op's ``Sequence number``; it must agree
  with the batch and the output channels), else the op is skipped. Backward:
  ``convolution_backward`` and ``cudnn_convolution_backward`` count one forward's FLOPs for
  each gradient asked for (``output_mask`` from ``Concrete Inputs``, else both);
  ``cudnn_convolution_backward_input``/``_weight`` one each (the weight's shape, which
  ``_weight`` lacks, comes from the enclosing ``cudnn_convolution_backward``). Transposed
  convolutions (by name, or ``transposed`` in ``Concrete Inputs``): 2·prod(input)·
  prod(weight[1:]).

**Bytes.** Matmul and convolution: inputs plus output. Every other aten op (elementwise,
reductions, norms, copies; backward ops alike): the sum of its tensor inputs plus an output
of the broadcast shape (the largest input's elements and element size: ``add(bias, x)``
writes ``x``'s size, not ``bias``'s; ``where(mask, x, y)`` ``x``'s type, not the mask's;
an in-place ``add_(x, y)`` reads ``x`` and ``y`` and writes ``x``); write-only ops
(``fill_``, ``zero_``, ``normal_``, ...) count
the first input once, ``copy_`` its two tensors, reductions (``sum``, ``mean``, ``max``, ...)
only their inputs. Ops whose first input is a table they index sparsely (``embedding``,
``index``, ``gather``, ``scatter``, ...) and ops with ``TensorList`` inputs get nothing.
Element sizes come from ``Input type`` (``float`` 4, ``c10::Half``/``c10::BFloat16`` 2,
``double`` and ``long`` 8, ``int`` 4, ``bool`` and ``(un)signed char`` 1, ...); an input of
unknown type is not a tensor.

**dtype.** From the first tensor input: ``c10::Half`` fp16, ``c10::BFloat16`` bf16,
``double`` fp64, ``Float8_*`` fp8, ``signed char`` int8, ``float`` fp32, except that float
convolutions are ``tf32`` (PyTorch's default ``torch.backends.cudnn.allow_tf32=True``; float
matmuls stay fp32, ``torch.backends.cuda.matmul.allow_tf32`` being False by default since
1.12, unless the kernel that ran says TF32: a ``tf32`` or ``tensorop_s1688`` GEMM). A GPU without TF32 (V100) runs tf32 at its fp32 peak (``AcceleratorSpec``).

**GEMM shape.** A matmul's ``(batch, m, n, k)`` goes with its kernels (the ``gemm_shape``
column), for the compute model's tile and wave quantisation.

**Several kernels of one op** share its FLOPs and bytes in proportion to their recorded
durations (all of them, in the whole trace, so a window cut keeps each kernel's share).

This module attributes kernels to their ops (:func:`attribute`); the rules for one op live in
:mod:`.aten_work` (matmuls, elementwise ops) and :mod:`.conv_work` (convolutions), and the
CPU ops they read in :mod:`.cpuops`.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simcluster.workload.kineto.aten_work import (
    CONV,
    CONV_BWD,
    DTYPES,
    ELEMENT_BYTES,
    MM,
    OTHER,
    ConvArgs,
    Work,
    _args,
    _dtype,
    _tensors,
    conv_node_dims,
    describe,
    family,
    is_conv_node,
)
from simcluster.workload.kineto.conv_work import ConvContext, conv_work
from simcluster.workload.kineto.cpuops import CpuOps

# The rules for one op (``aten_work.py``, ``conv_work.py``) and the CPU op columns
# (``cpuops.py``) were part of this module; their public names stay importable from here.
__all__ = [
    "CONV", "CONV_BWD", "DTYPES", "ELEMENT_BYTES", "MM", "OTHER", "ConvArgs", "ConvContext",
    "CpuOps", "KernelWork", "Work", "attribute", "conv_node_dims", "conv_work", "describe",
    "family", "innermost", "is_conv_node", "summary",
]

_FP32, _TF32 = DTYPES.index("fp32"), DTYPES.index("tf32")
# TF32 tensor-core GEMM kernels: cuBLAS/CUTLASS name the TF32 type, or the m16n8k8 MMA shape
# with fp32 accumulation that only TF32 uses on Ampere and Hopper (``tensorop_s1688gemm``).
_TF32_KERNEL = re.compile(r"tf32|tensorop_s1688", re.IGNORECASE)


@dataclass
class KernelWork:
    """Per GPU trace index: FLOPs, bytes (NaN: none) and dtype code; and why not."""

    flops: np.ndarray
    nbytes: np.ndarray
    dtype: np.ndarray
    missing: dict[int, str] = field(default_factory=dict)   # trace index -> reason
    shape: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # GEMMs

    def get(self, g: int) -> tuple[float | None, int | None, str | None] | None:
        f, b = self.flops[g], self.nbytes[g]
        if np.isnan(f) and np.isnan(b):
            return None
        d = int(self.dtype[g])
        return (float(f) if f > 0 else None, round(b) if b > 0 else None,
                DTYPES[d] if d >= 0 else None)


def innermost(ts: np.ndarray, end: np.ndarray, thread: np.ndarray,
              q_thread: np.ndarray, q_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query (thread, time), the innermost op on that thread whose span holds the
    time (-1: none); and each op's parent (the innermost op holding it; -1: none or not
    reached)."""
    owner = np.full(len(q_t), -1, dtype=np.int64)
    parent = np.full(len(ts), -1, dtype=np.int64)
    ops_by: dict[int, list[int]] = defaultdict(list)
    for i in np.lexsort((np.arange(len(ts)), -end, ts)).tolist():
        ops_by[int(thread[i])].append(i)
    qs_by: dict[int, list[int]] = defaultdict(list)
    for q in np.lexsort((np.arange(len(q_t)), q_t)).tolist():
        qs_by[int(q_thread[q])].append(q)
    ts_, end_, qt = ts.tolist(), end.tolist(), q_t.tolist()
    for th, qs in qs_by.items():
        ops = ops_by.get(th, [])
        stack: list[int] = []
        k = 0
        for q in qs:
            t = qt[q]
            while k < len(ops) and ts_[ops[k]] <= t:
                i = ops[k]
                while stack and not (ts_[stack[-1]] <= ts_[i] and end_[i] <= end_[stack[-1]]):
                    stack.pop()
                parent[i] = stack[-1] if stack else -1
                stack.append(i)
                k += 1
            while stack and end_[stack[-1]] < t:
                stack.pop()
            owner[q] = stack[-1] if stack else -1
    return owner, parent


def attribute(tr: Any, launch_of: np.ndarray, kernels: np.ndarray) -> KernelWork:
    """FLOPs, bytes and dtype of each kernel in ``kernels`` (trace indices), from the op
    that launched it (``launch_of``: runtime index per trace index, -1: none).

    ``tr`` is a :class:`~simcluster.workload.kineto.events.RankTrace`.
    """
    n = len(tr.g_ts)
    out = KernelWork(np.full(n, np.nan), np.full(n, np.nan), np.full(n, -1, dtype=np.int8))
    ops = tr.cpu
    if not len(kernels):
        return out
    r = launch_of[kernels]
    has = r >= 0
    for g in kernels[~has].tolist():
        out.missing[g] = "no launch call in the trace"
    kernels, r = kernels[has], r[has]
    if not len(ops.ts):
        for g in kernels.tolist():
            out.missing[g] = "no CPU ops in the trace"
        return out
    ts = np.frombuffer(ops.ts, dtype=np.float64)
    end = np.frombuffer(ops.end, dtype=np.float64)
    thread = np.frombuffer(ops.thread, dtype=np.int32)
    r_ts = np.frombuffer(tr.r_ts, dtype=np.float64)
    r_th = np.frombuffer(tr.r_thread, dtype=np.int32)
    owner, parent = innermost(ts, end, thread, r_th[r], r_ts[r])
    by_owner: dict[int, list[int]] = defaultdict(list)
    for g, o in zip(kernels.tolist(), owner.tolist()):
        if o < 0:
            out.missing[g] = "no CPU op around its launch"
        else:
            by_owner[o].append(g)
    dur = np.frombuffer(tr.g_dur, dtype=np.float64)
    for o, gs in by_owner.items():
        name = ops.names[ops.name[o]]
        w = _op_work(tr, o, parent) if name.startswith("aten::") else None
        if w is None:
            why = (f"launched by {name}" if not name.startswith("aten::") else
                   f"{name} (no rule for its shapes)" if ops.shapes[o] else
                   "aten ops without recorded shapes")
            for g in gs:
                out.missing[g] = why
            continue
        d = dur[gs]
        share = d / d.sum() if d.sum() > 0 else np.full(len(gs), 1.0 / len(gs))
        out.flops[gs] = w.flops * share
        out.nbytes[gs] = w.nbytes * share
        out.dtype[gs] = w.dtype
        if w.shape is not None:
            out.shape.update((g, w.shape) for g in gs)
        if w.dtype == _FP32:  # float GEMMs that ran on TF32 tensor cores say so by name
            for g in gs:
                if _TF32_KERNEL.search(tr.names[tr.g_name[g]]):
                    out.dtype[g] = _TF32
    return out


def _op_work(tr: Any, o: int, parent: np.ndarray) -> Work | None:
    """The work of op ``o`` (an aten op), with its enclosing ops (``parent``) as context."""
    ops: CpuOps = tr.cpu
    fam = family(ops.names[ops.name[o]])
    chain = [o]  # the op and the enclosing ops of its family, innermost first
    p = int(parent[o])
    while p >= 0 and fam != OTHER and family(ops.names[ops.name[p]]) == fam and len(chain) < 8:
        chain.append(p)
        p = int(parent[p])
    arg_flops = next((ops.flops[i] for i in chain if not math.isnan(ops.flops[i])), None)
    if fam in (CONV, CONV_BWD):
        c = ops.conv.get(o)
        w = conv_work(c, [ops.conv.get(i) for i in chain], [ops.seq[i] for i in chain],
                      tr.conv_ctx) if c is not None else None
    else:
        w = ops.work_of(o)
    if arg_flops is not None and arg_flops > 0:
        if w is not None:
            return w._replace(flops=arg_flops)
        c = ops.conv.get(o)
        a = _args(list(c.dims), list(c.types)) if c is not None else None
        return Work(arg_flops, 0.0, _dtype(_tensors(a), tf32=True) if a is not None else -1)
    return w


def summary(missing_time: Counter[str], total_us: float, limit: int = 3) -> str:
    """The largest reasons for kernel time without work, for the import report."""
    items = sorted(missing_time.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{k} ({v / total_us:.0%})" for k, v in items) if total_us > 0 else ""

"""Kernel classes, and the compute model's predictions against recorded kernels.

A kernel's class comes from its name (NVIDIA, AMD and cuDNN naming; first rule that matches):

- ``gemm``: matrix multiplies and convolutions (cuBLAS/cuBLASLt/CUTLASS ``gemm``, ``xmma``,
  ``sm80_``/``sm90_`` GEMM kernels, Tensile ``Cijk_`` on AMD, cuDNN ``conv``/``dgrad``/
  ``wgrad``/``implicit_gemm``);
- ``attention``: flash/fused attention (``flash``, ``fmha``, ``attention``);
- ``norm``: normalisation (``norm``, cuDNN ``bn_``);
- ``reduction``: reductions and softmax (``reduce``, ``softmax``, ``sum``);
- ``memset``, ``copy``: memory kernels (``Memset``, ``Memcpy``, ``copy``);
- ``elementwise``: pointwise kernels (``elementwise``);
- ``other``: everything else.

:func:`predicted_vs_recorded` compares, for every compute op of a recorded workload that
carries FLOPs or bytes, its recorded duration with what the compute model predicts for it on
the recording device.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.compute import ComputeModel
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.workload.model import Workload

CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("gemm", re.compile(r"gemm|xmma|cutlass|^Cijk_|sm\d\d_|matmul|conv|dgrad|wgrad", re.I)),
    ("attention", re.compile(r"flash|fmha|attention", re.I)),
    ("norm", re.compile(r"norm|bn_(fw|bw)", re.I)),
    ("reduction", re.compile(r"reduce|softmax|\bsum\b", re.I)),
    ("memset", re.compile(r"memset", re.I)),
    ("copy", re.compile(r"memcpy|copy", re.I)),
    ("elementwise", re.compile(r"elementwise", re.I)),
)


def kernel_class(name: str) -> str:
    """The class of a kernel from its name (module docstring).

    Example:
        >>> [kernel_class(n) for n in ("volta_sgemm_128x32_nt", "Memset (Device)",
        ...  "void at::native::vectorized_elementwise_kernel<4>", "flash_fwd_kernel")]
        ['gemm', 'memset', 'elementwise', 'attention']
    """
    return next((c for c, pattern in CLASSES if pattern.search(name)), "other")


def predicted_vs_recorded(workload: Workload, spec: AcceleratorSpec,
                          model: ComputeModel | None = None) -> pa.Table:
    """Per compute op with a recorded duration and FLOPs or bytes: ``rank, name, class,
    recorded_us, predicted_us, error`` (``(predicted - recorded) / recorded``), predicted on
    ``spec`` (the recording device) by ``model`` (default: the calibrated model)."""
    model = model or ComputeModel()
    t = workload.ops
    flops = t.column("flops").fill_null(0).to_numpy(zero_copy_only=False).astype(float)
    nbytes = t.column("bytes_accessed").fill_null(0).to_numpy(zero_copy_only=False).astype(float)
    rec = t.column("duration_us").to_numpy(zero_copy_only=False).astype(float)
    keep = (pc.equal(t.column("kind"), "compute").to_numpy(zero_copy_only=False)
            & ((flops > 0) | (nbytes > 0)) & ~np.isnan(rec) & (rec > 0))
    idx = np.flatnonzero(keep)
    dtypes = t.column("dtype").fill_null("").to_pylist()
    pred = np.empty(len(idx))
    for dt in sorted({dtypes[i] for i in idx.tolist()}):
        sel = np.fromiter((dtypes[i] == dt for i in idx.tolist()), dtype=bool, count=len(idx))
        rows = idx[sel]
        pred[sel] = model.roofline_us(flops[rows], nbytes[rows], dt or None, spec)
    names = t.column("name").take(pa.array(idx))
    return pa.table({
        "rank": t.column("rank").take(pa.array(idx)),
        "name": names,
        "class": pa.array([kernel_class(n) for n in names.to_pylist()], pa.string()),
        "recorded_us": pa.array(rec[idx]),
        "predicted_us": pa.array(pred),
        "error": pa.array((pred - rec[idx]) / rec[idx]),
    })


def error_by_class(pairs: pa.Table) -> pa.Table:
    """Per class of :func:`predicted_vs_recorded` rows: ``class, kernels, recorded_us`` (sum),
    ``predicted_us`` (sum), ``time_error`` (of the sums), ``mape`` and ``mean_signed`` (per
    kernel, fractions), largest recorded time first; then an ``all`` row."""
    out: dict[str, list] = {k: [] for k in ("class", "kernels", "recorded_us", "predicted_us",
                                            "time_error", "mape", "mean_signed")}
    cls = np.asarray(pairs.column("class").to_pylist(), dtype=object)
    rec, pred = pairs.column("recorded_us").to_numpy(), pairs.column("predicted_us").to_numpy()
    err = pairs.column("error").to_numpy()
    groups = sorted(set(cls.tolist()), key=lambda c: -float(rec[cls == c].sum()))
    for name, sel in [*((c, cls == c) for c in groups), ("all", np.ones(len(cls), bool))]:
        if not sel.any():
            continue
        r, p = float(rec[sel].sum()), float(pred[sel].sum())
        for k, v in (("class", name), ("kernels", int(sel.sum())), ("recorded_us", r),
                     ("predicted_us", p), ("time_error", (p - r) / r if r else float("nan")),
                     ("mape", float(np.abs(err[sel]).mean())),
                     ("mean_signed", float(err[sel].mean()))):
            out[k].append(v)
    return pa.table(out)

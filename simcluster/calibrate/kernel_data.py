"""Recorded kernels for the compute calibration: the kernels of a profiler trace (or of any
workload with recorded durations and a recording device) that carry FLOPs or bytes.

A :class:`Kernels` set holds, per kernel, what the compute model predicts from (FLOPs, bytes,
dtype, kernel family) and what the trace recorded (duration, us), with the kernel's class for
the report and its ProfilerStep for holding a step out. :func:`read_trace` raises
:class:`~simcluster.errors.CalibrationError` naming the file for everything that stops a
trace from calibrating the model: unreadable, truncated or foreign; no recording GPU, or one
outside the catalog; no kernel with FLOPs or bytes and a recorded duration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.errors import CalibrationError, SimclusterError
from simcluster.sim.gemm_waves import K_SLICE, op_tiles
from simcluster.sim.kernel_names import kernel_class, kernel_family
from simcluster.topology.catalog import AcceleratorSpec, lookup

TRACE_SUFFIXES = (".json", ".json.gz", ".parquet")


@dataclass(frozen=True)
class Kernels:
    """Kernels recorded on one GPU model, one entry per kernel (arrays of equal length).

    Attributes:
        source: the file or folder they were read from.
        spec: the recording GPU.
        flops, nbytes: the work the importer derived (0 where none).
        recorded_us: recorded duration, us.
        dtype: the op's dtype ("" for none).
        family: kernel family (``sim/kernel_names.py``; "" for none).
        klass: kernel class (gemm, attention, elementwise, ...).
        step: ProfilerStep number (-1 for none).
        held_out: whether the kernel is only checked, not fitted on.
        origin: the file each kernel came from.
        tiles: thread-block tiles and k slices of a GEMM kernel (``(0, 1)``: none;
            ``sim/gemm_waves.py``).
    """

    source: str
    spec: AcceleratorSpec
    flops: np.ndarray
    nbytes: np.ndarray
    recorded_us: np.ndarray
    dtype: np.ndarray
    family: np.ndarray
    klass: np.ndarray
    step: np.ndarray
    held_out: np.ndarray
    origin: np.ndarray
    tiles: np.ndarray

    def __len__(self) -> int:
        return len(self.recorded_us)

    def select(self, mask: np.ndarray) -> Kernels:
        """The kernels where ``mask`` is true."""
        return replace(self, **{k: getattr(self, k)[mask] for k in _ARRAYS})


_ARRAYS = ("flops", "nbytes", "recorded_us", "dtype", "family", "klass", "step", "held_out",
           "origin", "tiles")


def is_trace(path: str | Path) -> bool:
    """Whether ``path`` is given as a trace (a folder, ``*.json``, ``*.json.gz`` or a native
    ``*.parquet`` workload) rather than an nccl-tests log."""
    p = Path(path)
    name = p.name.lower()
    return p.is_dir() or name.endswith(TRACE_SUFFIXES)


def read_trace(path: str | Path, held_out: bool = False, k_slice: int = K_SLICE) -> Kernels:
    """The kernels of the trace at ``path`` that carry FLOPs or bytes and a recorded
    duration; ``held_out`` marks them all as check-only; ``k_slice``: the shortest split-K
    slice of their GEMMs (``sim/gemm_waves.py``).

    Raises:
        CalibrationError: see the module docstring.
    """
    from simcluster.workload import load_workload

    try:
        workload = load_workload(path)
    except SimclusterError as exc:
        raise CalibrationError(f"{path}: cannot be read as a profiler trace ({exc}); give a "
                               "PyTorch profiler (Kineto) trace of your training step.") from None
    named = workload.meta.recorded_device
    if not named:
        raise CalibrationError(f"{path}: the trace does not say which GPU recorded it (no "
                               "deviceProperties); a trace calibrates the GPU it ran on.")
    spec = lookup(named)
    if spec is None:
        raise CalibrationError(f"{path}: recorded on {named!r}, which is not in the catalog "
                               "(simcluster devices); the compute model needs its peak FLOP/s "
                               "and HBM bandwidth.")
    return _kernels(str(path), spec, workload.ops, held_out, k_slice)


def _kernels(source: str, spec: AcceleratorSpec, t: pa.Table, held_out: bool,
             k_slice: int = K_SLICE) -> Kernels:
    flops = t.column("flops").fill_null(0).to_numpy(zero_copy_only=False).astype(float)
    nbytes = t.column("bytes_accessed").fill_null(0).to_numpy(zero_copy_only=False).astype(float)
    rec = t.column("duration_us").to_numpy(zero_copy_only=False).astype(float)
    keep = (pc.equal(t.column("kind"), "compute").to_numpy(zero_copy_only=False)
            & ((flops > 0) | (nbytes > 0)) & (rec > 0))
    idx = np.flatnonzero(keep)
    if not len(idx):
        raise CalibrationError(
            f"{source}: no kernel carries FLOPs or bytes with a recorded duration (the "
            "importer derives them from the shapes of aten ops: record with "
            "record_shapes=True); nothing to calibrate on.")
    take = pa.array(idx)
    names = t.column("name").take(take).to_pylist()
    return Kernels(
        source=source, spec=spec, flops=flops[idx], nbytes=nbytes[idx], recorded_us=rec[idx],
        dtype=np.array(t.column("dtype").fill_null("").take(take).to_pylist(), dtype=object),
        family=np.array([kernel_family(n) for n in names], dtype=object),
        klass=np.array([kernel_class(n) for n in names], dtype=object),
        step=np.array(t.column("step").fill_null(-1).take(take).to_pylist(), dtype=np.int64),
        held_out=np.full(len(idx), held_out), origin=np.full(len(idx), source, dtype=object),
        tiles=op_tiles(t, idx, k_slice))


def hold_out_last_step(kernels: Kernels) -> Kernels:
    """``kernels`` with those of the last ProfilerStep held out, when there are two steps or
    more (a step the fit has not seen, of the same job)."""
    steps = np.unique(kernels.step[kernels.step >= 0])
    if len(steps) < 2:
        return kernels
    return replace(kernels, held_out=kernels.held_out | (kernels.step == steps[-1]))


def same_chip(a: AcceleratorSpec, b: AcceleratorSpec) -> bool:
    """Whether the compute model sees ``a`` and ``b`` alike: same vendor, peaks and HBM
    bandwidth (V100 SXM2 16 GB and 32 GB differ only in memory size)."""
    return (a.model == b.model or (a.vendor == b.vendor and a.hbm_GBps == b.hbm_GBps
                                   and a.peak_tflops == b.peak_tflops))


def concat(sets: list[Kernels], spec: AcceleratorSpec) -> Kernels:
    """One set of the kernels of ``sets`` (traces of one chip), predicted on ``spec``."""
    return Kernels(source=", ".join(s.source for s in sets), spec=spec,
                   **{k: np.concatenate([getattr(s, k) for s in sets]) for k in _ARRAYS})

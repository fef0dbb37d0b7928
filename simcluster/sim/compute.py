"""Kernel durations: the recorded one, or a roofline estimate from FLOPs and bytes.

A recorded duration is used as is when the op has one. Otherwise the duration is a roofline
with achievable efficiencies plus the device's launch overhead:

    t = max(flops / (peak[dtype] * eff_flops), bytes_accessed / (hbm_bw * eff_mem)) + launch

The default efficiencies come from measurements on Azure ND H100 v5
(``../shared/data/calibration/azure-nd-h100-v5.md``): cuBLASLt FP8 GEMM reaches 1290-1382 of
1979 TFLOP/s (0.65-0.70) on large square shapes, and STREAM copy reaches 2.90 of 3.35 TB/s
(0.87). They are a first cut; the compute-model issue calibrates shape-dependent curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simcluster.topology.catalog import AcceleratorSpec


@dataclass(frozen=True)
class ComputeModel:
    """Roofline parameters (dimensionless fractions of peak)."""

    flops_efficiency: float = 0.70
    memory_efficiency: float = 0.87

    def roofline_us(
        self, flops: np.ndarray, nbytes: np.ndarray, dtype: str | None, spec: AcceleratorSpec
    ) -> np.ndarray:
        """Roofline duration in us of ops with these FLOPs and bytes on ``spec``."""
        t_flops = flops / (spec.peak_flops_per_us(dtype) * self.flops_efficiency)
        t_mem = nbytes / (spec.hbm_GBps * 1e3 * self.memory_efficiency)
        return np.maximum(t_flops, t_mem) + spec.launch_overhead_us

    def copy_us(self, nbytes: np.ndarray, spec: AcceleratorSpec) -> np.ndarray:
        """Device-to-device copy inside one HBM: read and write every byte."""
        return 2.0 * nbytes / (spec.hbm_GBps * 1e3 * self.memory_efficiency)


def resolve_durations(
    kind: np.ndarray,
    recorded: np.ndarray,
    flops: np.ndarray,
    nbytes: np.ndarray,
    comm_bytes: np.ndarray,
    copy_kind: np.ndarray,
    dtype_code: np.ndarray,
    dtype_names: list[str],
    spec_index: np.ndarray,
    specs: list[AcceleratorSpec],
    model: ComputeModel,
) -> np.ndarray:
    """Duration in us of every compute, host and on-device copy op (NaN for the others).

    Parameters are per-op arrays; ``recorded`` is NaN where no duration was recorded; op i
    has dtype ``dtype_names[dtype_code[i]]`` ("" for none) and runs on
    ``specs[spec_index[i]]``.
    """
    out = np.full(len(kind), np.nan)
    has = ~np.isnan(recorded)
    timed = (kind == "compute") | (kind == "host")
    d2d = (kind == "memcpy") & (copy_kind == "D2D")
    use = (timed | d2d) & has
    out[use] = recorded[use]
    need = np.flatnonzero((timed | d2d) & ~has)
    if need.size == 0:
        return out
    # One vectorised call per (device spec, dtype, copy or not).
    nd = max(len(dtype_names), 1)
    key = (spec_index[need] * nd + dtype_code[need]) * 2 + d2d[need]
    for k in np.unique(key).tolist():
        rows = need[key == k]
        spec = specs[k // 2 // nd]
        if k % 2:
            out[rows] = model.copy_us(comm_bytes[rows], spec)
        else:
            dt = dtype_names[k // 2 % nd] if dtype_names else ""
            out[rows] = model.roofline_us(flops[rows], nbytes[rows], dt or None, spec)
    return out

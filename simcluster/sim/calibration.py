"""Fit the compute model's device parameters to measured GEMM and HBM figures.

Input: a benchmark page in the format of ``../shared/data/calibration/azure-nd-*.md`` (the
Azure AI benchmarking guide): a cuBLASLt GEMM table (``| m | n | k | TFLOPS |``) and a STREAM
table (``| Copy | TB/s |``). Output: a :class:`~simcluster.sim.compute.DeviceCalibration`.

The fit is small on purpose. Three parameters are fitted on the GEMM rows, each with a
physical meaning (see ``docs/compute.md``):

- ``gemm_efficiency``: the fraction of the dense peak that large GEMMs sustain;
- ``fixed_us``: the fixed time of one kernel (launch, ramp-up, last partial wave);
- ``sharpness``: how sharply a kernel turns from memory-bound to compute-bound (the exponent
  of the smooth maximum of the two roofline times).

``memory_efficiency`` is not fitted: it is the STREAM ``Copy`` bandwidth over the catalog's
HBM bandwidth. The fit minimises the squared error of log(time) by grid search, so it is
deterministic and needs nothing beyond numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from simcluster.sim.compute import DeviceCalibration, kernel_us
from simcluster.topology.catalog import AcceleratorSpec

_GEMM_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|", re.M)
_STREAM_ROW = re.compile(r"^\|\s*(Copy|Mul|Add|Triad|Dot)\s*\|\s*([\d.]+)\s*\|", re.M)


@dataclass(frozen=True)
class GemmMeasurement:
    """One measured GEMM: shape and achieved TFLOP/s."""

    m: int
    n: int
    k: int
    tflops: float

    @property
    def flops(self) -> float:
        """2 m n k floating-point operations."""
        return 2.0 * self.m * self.n * self.k

    def nbytes(self, in_bytes: int, out_bytes: int) -> float:
        """Bytes of the operands (A m x k, B k x n) and the result (m x n)."""
        return float(in_bytes * (self.m * self.k + self.k * self.n) + out_bytes * self.m * self.n)

    @property
    def time_us(self) -> float:
        """Measured time of one GEMM, us."""
        return self.flops / (self.tflops * 1e6)


@dataclass(frozen=True)
class BenchmarkPage:
    """What a benchmark page measured."""

    gemms: tuple[GemmMeasurement, ...]
    stream_TBps: dict[str, float]


def parse_benchmark_page(text: str) -> BenchmarkPage:
    """Read the GEMM and STREAM tables of an Azure benchmark page (markdown)."""
    gemms = tuple(GemmMeasurement(int(m), int(n), int(k), float(t))
                  for m, n, k, t in _GEMM_ROW.findall(text))
    stream = {name: float(v) for name, v in _STREAM_ROW.findall(text)}
    return BenchmarkPage(gemms=gemms, stream_TBps=stream)


def fit_device(page: BenchmarkPage, spec: AcceleratorSpec, dtype: str, in_bytes: int,
               out_bytes: int = 2, source: str = "") -> tuple[DeviceCalibration, np.ndarray]:
    """Fit a device calibration to a page's GEMM rows.

    Parameters:
        page: the parsed measurements.
        spec: the measured accelerator (for its peak FLOP/s and HBM bandwidth).
        dtype: the GEMM dtype of the page (selects the peak).
        in_bytes, out_bytes: bytes per element of the GEMM inputs and output.
        source: provenance recorded in the result.

    Returns:
        The calibration and the relative error of each GEMM row (predicted/measured - 1).
    """
    if not page.gemms or "Copy" not in page.stream_TBps:
        raise ValueError("the page has no GEMM table or no STREAM Copy row")
    mem_eff = page.stream_TBps["Copy"] * 1e3 / spec.hbm_GBps
    flops = np.array([g.flops for g in page.gemms])
    nbytes = np.array([g.nbytes(in_bytes, out_bytes) for g in page.gemms])
    measured = np.log(np.array([g.time_us for g in page.gemms]))
    peak = spec.peak_flops_per_us(dtype)
    bw = spec.hbm_GBps * 1e3 * mem_eff
    best: tuple[float, float, float, float] | None = None
    for sharp in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0):
        eff = np.arange(0.40, 1.0, 0.005)[:, None, None]
        fixed = np.arange(0.0, 30.01, 0.25)[None, :, None]
        tc = flops[None, None, :] / (peak * eff)
        tm = nbytes[None, None, :] / bw
        pred = fixed + (tc**sharp + tm**sharp) ** (1.0 / sharp)
        err = ((np.log(pred) - measured) ** 2).sum(axis=2)
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        cand = (float(err[i, j]), sharp, float(eff[i, 0, 0]), float(fixed[0, j, 0]))
        if best is None or cand[0] < best[0] - 1e-12:
            best = cand
    assert best is not None
    _, sharp, eff, fixed = best
    cal = DeviceCalibration(gemm_efficiency=round(eff, 3), memory_efficiency=round(mem_eff, 3),
                            fixed_us=fixed, sharpness=sharp, source=source)
    pred = kernel_us(flops, nbytes, peak, spec.hbm_GBps * 1e3, cal)
    return cal, pred / np.exp(measured) - 1.0


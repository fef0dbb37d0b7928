"""What the compute calibration fits, and the compute model's prediction of recorded kernels.

A :class:`ComputeKnob` is one parameter of a chip's
:class:`~simcluster.sim.compute.DeviceCalibration` (a top-level one, or one a kernel family
has of its own) with the range searched and the kernels that identify it (its *group*):

- ``gemm``: GEMM-class kernels (matmuls, convolutions) with FLOPs: GEMM efficiency and the
  fixed time of a kernel;
- ``small``: the non-GEMM kernels of the ``small`` family (elementwise, reductions, norms,
  copies, memsets): their own fixed time;
- ``memory``: every fitted kernel, for HBM efficiency (memory-bound kernels decide it);
- ``attention``: attention kernels with FLOPs (family ``attention``, or ``flash1`` for
  FlashAttention 1): their efficiency.

:class:`KernelPredictor` gives the model's durations for a set of kernels under a calibration
exactly as the simulator computes them (:func:`~simcluster.sim.compute.kernel_us`, per dtype
and family).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simcluster.calibrate.kernel_data import Kernels
from simcluster.sim.compute import DeviceCalibration, kernel_us, merge_families
from simcluster.sim.gemm_waves import wave_flops
from simcluster.sim.kernel_names import SMALL_FAMILIES

GEMM, SMALL, MEMORY, ATTENTION = "gemm", "small", "memory", "attention"


@dataclass(frozen=True)
class ComputeKnob:
    """One fitted parameter.

    Attributes:
        name: its path under a ``compute:`` entry (``gemm_efficiency``,
            ``families.small.fixed_us``).
        family: the kernel family it belongs to ("" for the chip's own parameters).
        param: the :class:`DeviceCalibration` field.
        group: the kernels that identify it (module docstring).
        lo, hi: the range searched, in its unit.
        unit: ``us``, or empty for a fraction.
        decimals: the written value is rounded to this many decimals.
        meaning: one line, for reports.
        keep: of two knobs the kernels cannot tell apart, the one with the lower ``keep`` is
            held at its value and the other fitted.
    """

    name: str
    family: str
    param: str
    group: str
    lo: float
    hi: float
    unit: str
    decimals: int
    meaning: str
    keep: int = 0

    def value(self, cal: DeviceCalibration) -> float:
        """The knob's value in ``cal`` (a family's own value, else the chip's)."""
        return float(getattr(cal.for_family(self.family), self.param))


KNOBS: tuple[ComputeKnob, ...] = (
    ComputeKnob("gemm_efficiency", "", "gemm_efficiency", GEMM, 0.05, 1.0, "", 3,
                "fraction of the dense peak (of the kernel's dtype) GEMM kernels sustain",
                keep=4),
    ComputeKnob("fixed_us", "", "fixed_us", GEMM, 0.0, 30.0, "us", 2,
                "fixed time of a GEMM (and every non-small) kernel", keep=2),
    ComputeKnob("families.small.fixed_us", "small", "fixed_us", SMALL, 0.0, 15.0, "us", 2,
                "fixed time of a small non-GEMM kernel", keep=3),
    ComputeKnob("memory_efficiency", "", "memory_efficiency", MEMORY, 0.2, 1.0, "", 3,
                "fraction of the HBM bandwidth memory-bound kernels reach", keep=1),
    ComputeKnob("families.attention.gemm_efficiency", "attention", "gemm_efficiency",
                ATTENTION, 0.05, 1.0, "", 3,
                "fraction of the dense peak attention kernels sustain (nominal FLOPs)", keep=5),
    ComputeKnob("families.flash1.gemm_efficiency", "flash1", "gemm_efficiency", ATTENTION,
                0.05, 1.0, "", 3,
                "fraction of the dense peak FlashAttention 1 kernels sustain (nominal FLOPs)",
                keep=5),
)


def group_mask(kernels: Kernels, knob: ComputeKnob) -> np.ndarray:
    """The kernels of ``knob``'s group (module docstring)."""
    if knob.group == GEMM:
        return _gemms(kernels)
    if knob.group == SMALL:
        return _small(kernels)
    if knob.group == ATTENTION:
        return (kernels.family == knob.family) & (kernels.flops > 0)
    return fit_groups(kernels) >= 0


GROUP_NAMES = ("gemm", "small", "attention")


def fit_groups(kernels: Kernels) -> np.ndarray:
    """Per kernel, the index in :data:`GROUP_NAMES` of the group whose error the objective
    counts (-1: none; ``other`` kernels are reported, not fitted)."""
    out = np.full(len(kernels), -1, dtype=np.int64)
    out[_gemms(kernels)] = 0
    out[_small(kernels)] = 1
    out[np.isin(kernels.family, ["attention", "flash1"]) & (kernels.flops > 0)] = 2
    return out


def _gemms(kernels: Kernels) -> np.ndarray:
    """GEMM-class kernels with FLOPs that run at the chip's GEMM parameters."""
    return (kernels.klass == "gemm") & (kernels.family == "") & (kernels.flops > 0)


def _small(kernels: Kernels) -> np.ndarray:
    """The small non-GEMM kernels (the families under ``small``)."""
    return np.isin(kernels.family, sorted(SMALL_FAMILIES))


def with_values(cal: DeviceCalibration, values: dict[ComputeKnob, float]) -> DeviceCalibration:
    """``cal`` with the knobs of ``values`` set (a family's own parameters merged)."""
    top = {k.param: float(v) for k, v in values.items() if not k.family}
    given = {(k.family, k.param): float(v) for k, v in values.items()}
    return replace(cal, **top, families=merge_families(cal.families, given))


class KernelPredictor:
    """The compute model's durations (us) of ``kernels`` under a calibration, computed per
    (dtype, family) group as the simulator does (a GEMM's FLOPs over its wave utilisation,
    ``sim/gemm_waves.py``)."""

    def __init__(self, kernels: Kernels) -> None:
        self.kernels = kernels
        spec = kernels.spec
        self.flops = wave_flops(kernels.flops, kernels.tiles, spec)
        keys = sorted(set(zip(kernels.dtype.tolist(), kernels.family.tolist())))
        self.groups = [(dt, fam, np.flatnonzero((kernels.dtype == dt) & (kernels.family == fam)),
                        spec.peak_flops_per_us(dt or None)) for dt, fam in keys]
        self.hbm_B_per_us = spec.hbm_GBps * 1e3

    def __call__(self, cal: DeviceCalibration) -> np.ndarray:
        k = self.kernels
        out = np.empty(len(k))
        for _, fam, rows, peak in self.groups:
            out[rows] = kernel_us(self.flops[rows], k.nbytes[rows], peak, self.hbm_B_per_us,
                                  cal.for_family(fam))
        return out

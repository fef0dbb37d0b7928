"""Kernel durations: the recorded one, a calibrated roofline, or a recorded one retargeted.

**The model.** An op without a recorded duration takes, on an accelerator with dense peak
``P`` (FLOP/us for its dtype) and HBM bandwidth ``W`` (B/us):

    t_c = flops / (P * gemm_efficiency)              compute time at the sustained GEMM rate
    t_m = bytes_accessed / (W * memory_efficiency)   HBM time at the STREAM rate
    t   = fixed_us + (t_c**k + t_m**k) ** (1/k)      k = sharpness

The smooth maximum makes an op whose compute and memory times are close slower than either
alone (a narrow GEMM is neither purely compute- nor memory-bound), and ``fixed_us`` makes small
kernels reach a lower fraction of peak: GEMM efficiency falls for small shapes, and a memory-
bound op is limited by HBM bandwidth because its ``t_m`` dominates. Both effects follow from
the op's FLOPs and bytes alone, so ops need no shape columns.

**Calibration.** ``gemm_efficiency``, ``fixed_us`` and ``sharpness`` are fitted per chip on the
cuBLASLt GEMM table of the Azure benchmark pages, ``memory_efficiency`` is STREAM Copy over the
catalog's HBM bandwidth (``simcluster.sim.calibration``, figures in ``docs/compute.md``).
Catalog chips without measurements borrow the closest calibrated chip's fractions (listed in
``CHIP_OF``). Accelerators defined in a topology file get the plain roofline
``launch_overhead_us + max(t_c, t_m)`` with efficiencies 0.70 and 0.87 (``UNCALIBRATED``).
A topology's ``compute:`` block overrides any of them per accelerator model
(:func:`with_params`, ``ComputeModel.overrides``): what ``simcluster calibrate`` fits on a
profiler trace.

**Retargeting.** A duration recorded on device A is moved to device B by the ratio of the
model's predictions on the two devices for the op's FLOPs and bytes:
``t_B = t_recorded * t_model(B) / t_model(A)``. What the recording captured beyond the model
(a slow kernel, a fast fused one) carries over, and the device change is what the model says.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from simcluster.sim.gemm_waves import CLOCK_GHZ, wave_flops
from simcluster.sim.kernel_names import SMALL_FAMILIES, descendants, lineage
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.schema import ComputeParams


@dataclass(frozen=True)
class DeviceCalibration:
    """Fitted parameters of one chip (dimensionless fractions of peak, and us).

    Attributes:
        gemm_efficiency: fraction of the dense peak that large GEMMs sustain.
        memory_efficiency: fraction of the HBM bandwidth that STREAM Copy reaches.
        fixed_us: fixed time of one kernel (launch, ramp-up, tail), us.
        sharpness: exponent of the smooth maximum of compute and memory time (inf = max).
        source: the measurements it was fitted on.
        families: per kernel family (:mod:`~simcluster.sim.kernel_names`), the parameters
            it has of its own, as ``(family, parameter, value)``: FlashAttention 1 computes
            at another ``gemm_efficiency``, each class of small non-GEMM kernels has its own
            ``fixed_us`` and ``memory_efficiency``. A family takes its parent's parameters
            (``kernel_names.PARENT``), then its own; one not listed uses the chip's.
        hbm_passes: how many times the kernel moves the bytes an op carries (1: once; a
            two-pass batch norm reads its input twice); a family parameter, set by the
            kernel's name.
        flop_fraction: the fraction of an op's nominal FLOPs the kernel's algorithm performs
            (1: all; a Winograd convolution 1/4); a family parameter, set by the kernel's
            name.
    """

    gemm_efficiency: float
    memory_efficiency: float
    fixed_us: float
    sharpness: float
    source: str = ""
    families: tuple[tuple[str, str, float], ...] = ()
    hbm_passes: float = 1.0
    flop_fraction: float = 1.0

    def for_family(self, family: str) -> DeviceCalibration:
        """This calibration with kernel ``family``'s own parameters (its ancestors' first)."""
        own: dict[str, float] = {}
        for f in lineage(family):
            own.update({name: value for g, name, value in self.families if g == f})
        return replace(self, **own) if own else self


def kernel_us(flops: np.ndarray, nbytes: np.ndarray, peak_per_us: float, hbm_B_per_us: float,
              cal: DeviceCalibration) -> np.ndarray:
    """Duration (us) of kernels with these FLOPs and bytes (module docstring formula)."""
    tc = (np.asarray(flops, dtype=np.float64) * cal.flop_fraction
          / (peak_per_us * cal.gemm_efficiency))
    tm = (np.asarray(nbytes, dtype=np.float64) * cal.hbm_passes
          / (hbm_B_per_us * cal.memory_efficiency))
    k = cal.sharpness
    if np.isinf(k):
        body = np.maximum(tc, tm)
    else:
        # Scale before the power to keep it finite: max * (1 + (min/max)^k)^(1/k).
        hi = np.maximum(tc, tm)
        lo = np.minimum(tc, tm)
        ratio = np.divide(lo, hi, out=np.zeros_like(hi), where=hi > 0)
        body = hi * (1.0 + ratio**k) ** (1.0 / k)
    return cal.fixed_us + body


# Fitted by ``python bench/calibrate_compute.py`` on ../shared/data/calibration (see
# docs/compute.md for the residuals); tests/sim/test_compute.py re-fits and compares.
# Kernel families (docs/compute.md): the FlashAttention 1 efficiency (of the nominal FLOPs)
# is fitted on the published llm-foundry step times of the calibration split
# (bench/fit_attention.py). The recorded kernels' own parameters (RECORDED_FAMILIES) are
# fitted on the A100 Kineto traces (bench/fit_kernel_classes.py), and H100 borrows them (no
# H100 trace; its fixed times at its own clock, ``at_clock`` below): per class of small
# non-GEMM kernel, its fixed time (us at the A100's 1.41 GHz) and the fraction of
# the HBM bandwidth it reaches (1.0: the catalog bandwidth; small tensors stay in L2); for
# one-element-aligned CUTLASS GEMMs, their fraction of the dense peak. ``small`` (3.75 us,
# the earlier one-for-all fit) is their parent: a parameter set on it applies to them all.
# The passes of the two-pass cuDNN batch norms and the FLOP fraction of Winograd
# convolutions follow from their algorithms (kernel_names).
RECORDED_FAMILIES: tuple[tuple[str, str, float], ...] = (
    ("small", "fixed_us", 3.75),
    ("memset", "fixed_us", 1.5), ("memset", "memory_efficiency", 1.0),
    ("copy", "fixed_us", 7.5), ("copy", "memory_efficiency", 0.7),
    ("elementwise", "fixed_us", 3.75), ("elementwise", "memory_efficiency", 1.0),
    ("reduction", "fixed_us", 5.75), ("reduction", "memory_efficiency", 0.19),
    ("norm", "fixed_us", 14.25), ("norm", "memory_efficiency", 1.0),
    ("norm_2pass_fwd", "hbm_passes", 1.5), ("norm_2pass_bwd", "hbm_passes", 5 / 3),
    ("gemm_align1", "gemm_efficiency", 0.295),
    ("winograd", "flop_fraction", 0.25),
)
A100_CALIBRATION = DeviceCalibration(
    gemm_efficiency=0.805, memory_efficiency=0.79, fixed_us=9.0, sharpness=1.5,
    source="azure-nd-a100-v4.md: cuBLASLt FP16 GEMM (8 shapes), STREAM Copy 1.61 TB/s",
    families=(("flash1", "gemm_efficiency", 0.52), *RECORDED_FAMILIES),
)
H100_CALIBRATION = DeviceCalibration(
    gemm_efficiency=0.685, memory_efficiency=0.866, fixed_us=6.25, sharpness=3.0,
    source="azure-nd-h100-v5.md: cuBLASLt FP8 GEMM (9 shapes), STREAM Copy 2.90 TB/s",
    families=(("flash1", "gemm_efficiency", 0.27), *RECORDED_FAMILIES),
)

# Accelerators outside the catalog: the first-cut roofline (``fixed_us`` None: the spec's
# launch overhead), with the efficiencies of large FP8 GEMMs (0.65-0.70 of peak) and STREAM
# (0.87) on ND H100 v5.
UNCALIBRATED = DeviceCalibration(
    gemm_efficiency=0.70, memory_efficiency=0.87, fixed_us=float("nan"), sharpness=float("inf"),
    source="uncalibrated default: 0.70 of peak FLOP/s, 0.87 of HBM bandwidth",
)

# The recorded kernel classes' fixed times (``RECORDED_FAMILIES``) were fitted on A100 traces,
# at the A100's 1.41 GHz boost clock. A small kernel's fixed time is work in clock cycles
# (the block scheduler's launch, the thread blocks' prologue and the drain of the last
# wave), so another chip takes them as the same cycles at its own clock (``CLOCK_GHZ``):
# x 1.41 / 1.53 = 0.92 on V100, x 0.71 on H100 SXM5. ``small`` itself (the generated ops'
# family, and what ``simcluster calibrate`` fits on your own trace) is not rescaled.
RECORDED_CLOCK_GHZ = 1.41
CLOCKED_FAMILIES = descendants("small")


def clock_ratio(model: str) -> float:
    """How much longer a fixed number of cycles takes on accelerator ``model`` than at the
    clock the recorded classes were fitted at (1.0 where the model's clock is unknown)."""
    clock = CLOCK_GHZ.get(model)
    return RECORDED_CLOCK_GHZ / clock if clock else 1.0


@lru_cache(maxsize=256)
def at_clock(cal: DeviceCalibration, model: str) -> DeviceCalibration:
    """``cal`` with the recorded kernel classes' fixed times (us) moved to ``model``'s clock
    (:func:`clock_ratio`); the other parameters as they are. Cached: every roofline call
    asks for its device's calibration."""
    ratio = clock_ratio(model)
    if ratio == 1.0:
        return cal
    return replace(cal, families=tuple(
        (f, name, v * ratio if name == "fixed_us" and f in CLOCKED_FAMILIES else v)
        for f, name, v in cal.families))


CALIBRATIONS: dict[str, DeviceCalibration] = {"A100": A100_CALIBRATION,
                                              "H100": H100_CALIBRATION}

# Which calibrated chip each catalog model uses. Same chip, other memory: A100-40GB uses the
# A100 fit, H200 the H100 fit. V100 has no measurements here: it borrows the A100 fractions
# (an assumption, see docs/compute.md). H800 is the H100 SXM5 chip at the same clocks and
# HBM (only NVLink and FP64 differ); the A100 PCIe cards are the A100 chip at a lower power
# limit (an assumption). Other catalog parts are datasheet-only (``UNCALIBRATED``).
CHIP_OF: dict[str, str] = {
    "A100-SXM4-80GB": "A100", "A100-SXM4-40GB": "A100",
    "H100-SXM5-80GB": "H100", "H200": "H100",
    "V100-SXM2-32GB": "A100", "V100-SXM2-16GB": "A100", "V100-SXM3-32GB": "A100",
    "H800-SXM5-80GB": "H100", "A100-PCIe-80GB": "A100", "A100-PCIe-40GB": "A100",
}


def builtin_calibration(model: str) -> DeviceCalibration:
    """The built-in calibration of accelerator ``model`` (a catalog model name): its chip's
    fit (the recorded classes' fixed times at ``model``'s clock, :func:`at_clock`), or
    :data:`UNCALIBRATED` (a NaN ``fixed_us``: the spec's launch overhead)."""
    chip = CHIP_OF.get(model)
    return at_clock(CALIBRATIONS[chip], model) if chip is not None else UNCALIBRATED


def with_params(base: DeviceCalibration, params: ComputeParams) -> DeviceCalibration:
    """``base`` with the values a topology's ``compute:`` entry gives (the others kept;
    family parameters merged one by one)."""
    top = {k: float(v) for k in ("gemm_efficiency", "memory_efficiency", "fixed_us",
                                 "sharpness") if (v := getattr(params, k)) is not None}
    given = {(f, name): float(v) for f, values in params.families.items()
             for name, v in values.items()}
    families = merge_families(base.families, {**{("", k): v for k, v in top.items()}, **given})
    return replace(base, **top, families=families, source=params.source or base.source)


def merge_families(base: tuple[tuple[str, str, float], ...],
                   given: dict[tuple[str, str], float]) -> tuple[tuple[str, str, float], ...]:
    """``base``'s family parameters with those ``given`` set (family "" for the chip's own).

    A parameter given for a family is dropped from the families below it, so that it applies
    to them too: a fixed time that ``simcluster calibrate`` fits on ``small`` is that of every
    small kernel. A chip parameter given replaces the small classes' own value of it where
    ``small`` has none (their built-in refinements, fitted on the A100 traces): an HBM
    efficiency calibrated on your own trace is that of every kernel without a value of its
    own, as ``simcluster calibrate`` fits it.
    """
    small_has = {name for f, name, _ in base if f == "small"}

    def overridden(f: str, name: str) -> bool:
        return any(name == p and (f in descendants(g) if g else
                                  f in SMALL_FAMILIES and name not in small_has)
                   for g, p in given)

    own = {(f, name): v for f, name, v in base if not overridden(f, name)}
    own.update({k: v for k, v in given.items() if k[0]})
    return tuple((f, name, v) for (f, name), v in own.items())


def overrides_for(compute: dict[str, ComputeParams]) -> dict[str, DeviceCalibration]:
    """Per accelerator model, the calibration a topology's ``compute:`` block (keyed by
    model, as ``Cluster.compute``) gives it."""
    return {model: with_params(builtin_calibration(model), p) for model, p in compute.items()}


@dataclass(frozen=True)
class ComputeModel:
    """The calibrated roofline (module docstring).

    Attributes:
        calibrations: per chip name, the fitted parameters.
        chip_of: catalog model -> chip name.
        default: the calibration of models not in ``chip_of`` (accelerators defined in a
            topology file); a NaN ``fixed_us`` means the spec's launch overhead.
        recorded_spec: the device recorded durations come from; when set, a recorded
            duration on another device is retargeted (module docstring). None: recorded
            durations are used as they are.
        predict: ignore recorded compute durations wherever the op carries FLOPs or bytes,
            and predict them with the roofline instead (ops without work keep theirs): how
            the compute model is checked against real kernels (``replay --predict-kernels``).
        overrides: per accelerator model, a calibration that replaces the chip's (a
            topology's ``compute:`` block, :func:`overrides_for`).
    """

    calibrations: dict[str, DeviceCalibration] = field(
        default_factory=lambda: dict(CALIBRATIONS))
    chip_of: dict[str, str] = field(default_factory=lambda: dict(CHIP_OF))
    default: DeviceCalibration = UNCALIBRATED
    recorded_spec: AcceleratorSpec | None = None
    predict: bool = False
    overrides: dict[str, DeviceCalibration] = field(default_factory=dict)

    def calibration(self, spec: AcceleratorSpec, family: str = "") -> DeviceCalibration:
        """The calibration that ``spec`` uses (for kernels of ``family``): an override as
        given, else its chip's with the recorded classes' fixed times at its clock."""
        chip = self.chip_of.get(spec.model)
        cal = self.calibrations[chip] if chip is not None else self.default
        cal = self.overrides.get(spec.model) or at_clock(cal, spec.model)
        if np.isnan(cal.fixed_us):
            cal = replace(cal, fixed_us=spec.launch_overhead_us)
        return cal.for_family(family)

    def roofline_us(
        self, flops: np.ndarray, nbytes: np.ndarray, dtype: str | None, spec: AcceleratorSpec,
        family: str = "", tiles: np.ndarray | None = None,
    ) -> np.ndarray:
        """Duration in us of ops (of kernel ``family``) with these FLOPs and bytes on
        ``spec``; ``tiles``: per op, the thread-block tiles and k slices of a recorded GEMM
        (``(0, 1)``: none), whose last partial wave of SMs costs a whole one
        (:mod:`~simcluster.sim.gemm_waves`)."""
        return kernel_us(wave_flops(flops, tiles, spec), nbytes, spec.peak_flops_per_us(dtype),
                         spec.hbm_GBps * 1e3, self.calibration(spec, family))

    def copy_us(self, nbytes: np.ndarray, spec: AcceleratorSpec) -> np.ndarray:
        """Device-to-device copy inside one HBM: read and write every byte, at STREAM Copy."""
        eff = self.calibration(spec).memory_efficiency
        return 2.0 * np.asarray(nbytes, dtype=np.float64) / (spec.hbm_GBps * 1e3 * eff)

    def retarget_us(self, recorded: np.ndarray, flops: np.ndarray, nbytes: np.ndarray,
                    dtype: str | None, src: AcceleratorSpec, dst: AcceleratorSpec,
                    family: str = "", tiles: np.ndarray | None = None) -> np.ndarray:
        """Move durations recorded on ``src`` to ``dst`` by the model's ratio.

        Ops with neither FLOPs nor bytes keep their recorded duration (nothing says how they
        scale). The same part with other figures (a hardware what-if keeps the model name, so
        the chip's calibration still applies) is moved by the ratio of its figures.
        """
        recorded = np.asarray(recorded, dtype=np.float64)
        if src == dst:
            return recorded.copy()
        a = self.roofline_us(flops, nbytes, dtype, src, family, tiles)
        b = self.roofline_us(flops, nbytes, dtype, dst, family, tiles)
        has_work = (np.asarray(flops) > 0) | (np.asarray(nbytes) > 0)
        return np.where(has_work, recorded * b / a, recorded)


def modelled(kind: np.ndarray, recorded: np.ndarray, flops: np.ndarray, nbytes: np.ndarray,
             predict: bool) -> np.ndarray:
    """Per op, whether its recorded duration goes unused: there is none, or ``predict`` is
    set and the op is compute with FLOPs or bytes (the model times it instead)."""
    out = np.isnan(recorded)
    if predict:
        out |= (kind == "compute") & ((flops > 0) | (nbytes > 0))
    return out


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
    family_code: np.ndarray | None = None,
    family_names: list[str] | None = None,
    tiles: np.ndarray | None = None,
) -> np.ndarray:
    """Duration in us of every compute, host and on-device copy op (NaN for the others).

    Parameters are per-op arrays; ``recorded`` is NaN where no duration was recorded; op i
    has dtype ``dtype_names[dtype_code[i]]`` ("" for none), kernel family
    ``family_names[family_code[i]]`` (default: none), ``tiles[i]`` GEMM tiles (default and
    0: none, :mod:`~simcluster.sim.gemm_waves`) and runs on ``specs[spec_index[i]]``.
    Recorded compute durations are retargeted when ``model.recorded_spec`` is set and
    differs from the op's device, and predicted instead when ``model.predict`` is set and
    the op has FLOPs or bytes.
    """
    out = np.full(len(kind), np.nan)
    has = ~modelled(kind, recorded, flops, nbytes, model.predict)
    timed = (kind == "compute") | (kind == "host")
    d2d = (kind == "memcpy") & (copy_kind == "D2D")
    use = (timed | d2d) & has
    out[use] = recorded[use]
    families = family_names or [""]
    fam = family_code if family_code is not None else np.zeros(len(kind), dtype=np.int64)
    nd, nf = max(len(dtype_names), 1), len(families)
    key_all = ((spec_index * nd + dtype_code) * nf + fam) * 2 + d2d

    def decode(k: int) -> tuple[AcceleratorSpec, str | None, str]:
        group = k // 2
        dt = dtype_names[group // nf % nd] if dtype_names else ""
        return specs[group // nf // nd], dt or None, families[group % nf]

    src = model.recorded_spec
    if src is not None:
        move = np.flatnonzero((kind == "compute") & has)
        for k in np.unique(key_all[move]).tolist():
            rows = move[key_all[move] == k]
            spec, dt, family = decode(k)
            out[rows] = model.retarget_us(recorded[rows], flops[rows], nbytes[rows],
                                          dt, src, spec, family,
                                          None if tiles is None else tiles[rows])
    need = np.flatnonzero((timed | d2d) & ~has)
    # One vectorised call per (device spec, dtype, kernel family, copy or not).
    key = key_all[need]
    for k in np.unique(key).tolist():
        rows = need[key == k]
        spec, dt, family = decode(k)
        if k % 2:
            out[rows] = model.copy_us(comm_bytes[rows], spec)
        else:
            out[rows] = model.roofline_us(flops[rows], nbytes[rows], dt, spec, family,
                                          None if tiles is None else tiles[rows])
    return out

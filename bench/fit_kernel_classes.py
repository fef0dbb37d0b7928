"""Fit each recorded kernel class's own parameters on the A100 Kineto traces; check on V100.

The compute model's chip parameters were fitted on cuBLASLt GEMMs (``fixed_us`` 9 us on A100:
the ramp-up and tail of large kernels). Inside a framework the small non-GEMM kernels behave
otherwise, and each class differently (``sim/kernel_names.py``): a memset is a 1-2 us driver
kernel, a copy pays more per launch than an elementwise kernel, a reduction with few outputs
reaches a small fraction of HBM bandwidth. Fitted here, per family, on the A100 traces of
``../shared/data/kineto`` (a grid: ``fixed_us`` by 0.25 us up to 20, ``memory_efficiency``
by 0.01 up to 1), and reported on the V100 traces, which no parameter is fitted on (they
borrow the A100 fit, its fixed times in cycles at their own clock: a held-out device as
well as held-out traces):

- ``memset``, ``copy``, ``elementwise``, ``reduction``, ``norm``: ``fixed_us`` and
  ``memory_efficiency``;
- ``gemm_align1`` (CUTLASS GEMMs for one-element-aligned operands): ``gemm_efficiency``.

Objective: the mean squared log error of the predicted kernel durations.

    python bench/fit_kernel_classes.py [FAMILY ...]     (default: every family below)
    python bench/fit_kernel_classes.py --k-slice

``--k-slice`` chooses the shortest split-K slice (``K_SLICE`` in ``sim/gemm_waves.py``):
per candidate (and without split-K), the A100 GEMM-class kernels' least mean squared log
error over the chip's ``gemm_efficiency`` (0.40-0.95 by 0.05) and ``gemm_align1``'s
(0.20-0.75 by 0.05), and their MAPE and summed-time error there.

Prints, per family, the fitted values, and the per-kernel MAPE and the error of the summed
time before and after, on the fitted and the held-out kernels; copy the values into
``CLASS_PARAMS`` in ``sim/compute.py``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validate_kernels import traces

from simcluster.calibrate.kernel_data import Kernels, read_trace
from simcluster.calibrate.kernel_model import KernelPredictor
from simcluster.sim.compute import (CLOCKED_FAMILIES, ComputeModel, DeviceCalibration,
                                    clock_ratio, merge_families)
from simcluster.sim.gemm_waves import K_SLICE

FIT_CHIP = "A100"
GRIDS: dict[str, dict[str, np.ndarray]] = {
    **{f: {"fixed_us": np.arange(0.0, 20.01, 0.25),
           "memory_efficiency": np.arange(0.05, 1.0001, 0.01)}
       for f in ("memset", "copy", "elementwise", "reduction", "norm")},
    "gemm_align1": {"gemm_efficiency": np.arange(0.05, 1.0001, 0.005)},
}


def kernel_sets() -> tuple[list[Kernels], list[Kernels]]:
    """The NVIDIA traces' kernels: (A100, fitted on; others, held out)."""
    sets = [read_trace(path) for path in traces()]
    nvidia = [k for k in sets if k.spec.vendor.lower() == "nvidia"]
    return ([k for k in nvidia if FIT_CHIP in k.spec.model],
            [k for k in nvidia if FIT_CHIP not in k.spec.model])


def with_family(cal: DeviceCalibration, family: str, values: dict[str, float],
                model: str = "") -> DeviceCalibration:
    """``cal`` with ``family``'s parameters set to ``values`` (a fixed time as fitted at the
    A100's clock, moved to accelerator ``model``'s: ``sim/compute.py``, ``at_clock``)."""
    ratio = clock_ratio(model) if family in CLOCKED_FAMILIES else 1.0
    given = {(family, p): float(v) * (ratio if p == "fixed_us" else 1.0)
             for p, v in values.items()}
    return replace(cal, families=merge_families(cal.families, given))


def scores(sets: list[Kernels], family: str, values: dict[str, float] | None,
           ) -> tuple[float, float, float, int]:
    """(mean squared log error, MAPE, error of the summed time, kernels) of ``family``'s
    kernels with its parameters at ``values`` (None: the built-in calibration)."""
    pred, rec = [], []
    for k in sets:
        sub = k.select(k.family == family)
        if not len(sub):
            continue
        cal = ComputeModel().calibration(sub.spec)
        pred.append(KernelPredictor(sub)(cal if values is None else
                                         with_family(cal, family, values, sub.spec.model)))
        rec.append(sub.recorded_us)
    if not rec:
        return float("nan"), float("nan"), float("nan"), 0
    p, r = np.concatenate(pred), np.concatenate(rec)
    return (float(np.mean(np.log(p / r) ** 2)), float(np.mean(np.abs(p / r - 1))),
            float(p.sum() / r.sum() - 1), len(r))


def fit(sets: list[Kernels], family: str) -> dict[str, float]:
    """The grid point of least mean squared log error (the first of equals)."""
    grid = GRIDS[family]
    names = list(grid)
    mesh = np.meshgrid(*(grid[n] for n in names), indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    errs = [scores(sets, family, dict(zip(names, p.tolist())))[0] for p in points]
    best = points[int(np.argmin(errs))]
    return {n: round(float(v), 3) for n, v in zip(names, best)}


K_SLICES = (64, 128, 256, 512, 1024, 10**9)  # 10**9: no split-K


def gemm_scores(sets: list[Kernels], eff: float, eff_align1: float
                ) -> tuple[float, float, float]:
    """(mean squared log error, MAPE, summed-time error) of the GEMM-class kernels of
    ``sets`` at chip GEMM efficiency ``eff`` and ``gemm_align1`` efficiency ``eff_align1``."""
    pred, rec = [], []
    for k in sets:
        sub = k.select(k.klass == "gemm")
        if not len(sub):
            continue
        cal = replace(ComputeModel().calibration(sub.spec), gemm_efficiency=float(eff))
        pred.append(KernelPredictor(sub)(with_family(cal, "gemm_align1",
                                                     {"gemm_efficiency": eff_align1})))
        rec.append(sub.recorded_us)
    p, r = np.concatenate(pred), np.concatenate(rec)
    return (float(np.mean(np.log(p / r) ** 2)), float(np.mean(np.abs(p / r - 1))),
            float(p.sum() / r.sum() - 1))


def scan_k_slice() -> None:
    """Print, per candidate shortest split-K slice, the A100 GEMMs' best fit (docstring)."""
    paths = traces()
    for k_slice in K_SLICES:
        sets = [s for s in (read_trace(p, k_slice=k_slice) for p in paths)
                if s.spec.vendor.lower() == "nvidia" and FIT_CHIP in s.spec.model]
        grid = [(e, e1) for e in np.arange(0.40, 0.951, 0.05) for e1 in np.arange(0.20, 0.751, 0.05)]
        errs = [gemm_scores(sets, e, e1) for e, e1 in grid]
        i = int(np.argmin([x[0] for x in errs]))
        label = "no split-K" if k_slice >= 10**9 else f"K_SLICE {k_slice}"
        mark = " (built in)" if k_slice == K_SLICE else ""
        print(f"{label:>12}{mark}: msle {errs[i][0]:.3f} at gemm_efficiency {grid[i][0]:.2f}, "
              f"gemm_align1 {grid[i][1]:.2f}: MAPE {100 * errs[i][1]:.0f} %, summed time "
              f"{100 * errs[i][2]:+.1f} %")


def main(argv: list[str] | None = None) -> int:
    families = argv if argv is not None else sys.argv[1:]
    if families == ["--k-slice"]:
        scan_k_slice()
        return 0
    unknown = sorted(set(families) - set(GRIDS))
    if unknown:
        print(f"unknown families {unknown}; choose from {list(GRIDS)}", file=sys.stderr)
        return 2
    fitted, held = kernel_sets()
    print("fit on:   " + ", ".join(f"{Path(k.source).name} ({len(k)})" for k in fitted))
    print("held out: " + ", ".join(f"{Path(k.source).name} ({len(k)})" for k in held))
    for family in families or GRIDS:
        values = fit(fitted, family)
        print(f"\n{family}: " + ", ".join(f"{n} {v:g}" for n, v in values.items()))
        for label, sets in (("fit", fitted), ("held out", held)):
            for when, v in (("built-in", None), ("fitted", values)):
                msle, mape, err, n = scores(sets, family, v)
                print(f"  {label:>8} {when:>8}: {n:5d} kernels, MAPE {100 * mape:4.0f} %, "
                      f"summed time {100 * err:+6.1f} %, msle {msle:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

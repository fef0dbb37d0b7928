"""Fit the fixed time of small non-GEMM kernels on the A100 Kineto traces; check it on V100.

The compute model's ``fixed_us`` was fitted on cuBLASLt GEMMs, where it stands for the
ramp-up and tail of large kernels (9 us on A100). Inside a framework, back-to-back
elementwise, reduction, norm, copy and memset kernels take a few microseconds
(``docs/validation.md``, "The compute model against recorded kernels"). Their own fixed time
(the ``small`` kernel family, ``sim/kernel_names.py``) is fitted here on the A100 traces of
``../shared/data/kineto`` and reported on the V100 traces (which borrow the A100 fit: a
held-out device as well as held-out traces). Objective: the mean squared log error of the
predicted kernel durations, over a grid of 0.25 us.

    python bench/fit_small_kernels.py

Prints the objective per candidate on both sets, and the per-kernel MAPE and the error of the
summed time at the best one; copy it into ``SMALL_KERNEL_FIXED_US`` in ``sim/compute.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validate_kernels import traces

from simcluster.calibrate.kernel_data import Kernels, read_trace
from simcluster.calibrate.kernel_model import KNOBS, KernelPredictor, with_values
from simcluster.sim.compute import ComputeModel

FIT_CHIP = "A100"
SMALL_FIXED = next(k for k in KNOBS if k.name == "families.small.fixed_us")


def small_kernels() -> list[Kernels]:
    """Per NVIDIA trace, its small kernels that carry FLOPs or bytes."""
    sets = [read_trace(path) for path in traces()]
    return [k.select(k.family == "small") for k in sets if k.spec.vendor.lower() == "nvidia"]


def predicted(k: Kernels, fixed_us: float) -> np.ndarray:
    cal = with_values(ComputeModel().calibration(k.spec), {SMALL_FIXED: fixed_us})
    return KernelPredictor(k)(cal)


def errors(sets: list[Kernels], fixed_us: float) -> tuple[float, float, float, int]:
    """(mean squared log error, MAPE, error of the summed time, kernels)."""
    pred = np.concatenate([predicted(k, fixed_us) for k in sets])
    rec = np.concatenate([k.recorded_us for k in sets])
    log = np.log(pred / rec)
    return (float(np.mean(log**2)), float(np.mean(np.abs(pred / rec - 1))),
            float(pred.sum() / rec.sum() - 1), len(rec))


def main() -> int:
    every = small_kernels()
    fit = [k for k in every if FIT_CHIP in k.spec.model]
    held = [k for k in every if FIT_CHIP not in k.spec.model]
    print("fit on:  " + ", ".join(f"{Path(k.source).name} ({len(k)})" for k in fit))
    print("held out: " + ", ".join(f"{Path(k.source).name} ({len(k)})" for k in held))
    grid = np.arange(0.5, 9.01, 0.25)
    scores = [errors(fit, f)[0] for f in grid]
    best = float(grid[int(np.argmin(scores))])
    for f, s in zip(grid, scores):
        h = errors(held, f)
        print(f"  fixed {f:5.2f} us: fit msle {s:.4f} | held out msle {h[0]:.4f}")
    for label, sets in (("fit", fit), ("held out", held)):
        for f in (best, ComputeModel().calibration(sets[0].spec).fixed_us):
            msle, mape, time_err, n = errors(sets, f)
            print(f"{label:>8} at {f:.2f} us: {n} kernels, MAPE {100 * mape:.0f} %, "
                  f"summed time {100 * time_err:+.1f} %, msle {msle:.3f}")
    print(f"best fixed time of small kernels: {best:.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

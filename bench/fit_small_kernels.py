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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validate_kernels import traces

import simcluster as sc
from simcluster.sim.compute import ComputeModel, kernel_us
from simcluster.sim.kernel_names import kernel_family
from simcluster.topology.catalog import AcceleratorSpec, lookup

FIT_CHIP = "A100"


@dataclass
class Kernels:
    """The small kernels of one trace that carry FLOPs or bytes."""

    name: str
    spec: AcceleratorSpec
    flops: np.ndarray
    nbytes: np.ndarray
    recorded: np.ndarray
    dtypes: np.ndarray


def small_kernels() -> list[Kernels]:
    out = []
    for path in traces():
        wl = sc.load_workload(path)
        spec = lookup(wl.meta.recorded_device) if wl.meta.recorded_device else None
        if spec is None or spec.vendor.lower() != "nvidia":
            continue
        t = wl.ops
        flops = t["flops"].fill_null(0).to_numpy(zero_copy_only=False).astype(float)
        nbytes = t["bytes_accessed"].fill_null(0).to_numpy(zero_copy_only=False).astype(float)
        rec = t["duration_us"].to_numpy(zero_copy_only=False).astype(float)
        names = t["name"].to_pylist()
        keep = (pc.equal(t["kind"], "compute").to_numpy(zero_copy_only=False)
                & ((flops > 0) | (nbytes > 0)) & (rec > 0)
                & np.array([kernel_family(n) == "small" for n in names]))
        idx = np.flatnonzero(keep)
        dtypes = np.array(t["dtype"].fill_null("").take(pa.array(idx)).to_pylist(), dtype=object)
        out.append(Kernels(path.name, spec, flops[idx], nbytes[idx], rec[idx], dtypes))
    return out


def predicted(k: Kernels, fixed_us: float) -> np.ndarray:
    cal = replace(ComputeModel().calibration(k.spec), fixed_us=fixed_us)
    out = np.empty(len(k.recorded))
    for dt in sorted(set(k.dtypes.tolist())):
        sel = k.dtypes == dt
        out[sel] = kernel_us(k.flops[sel], k.nbytes[sel], k.spec.peak_flops_per_us(dt or None),
                             k.spec.hbm_GBps * 1e3, cal)
    return out


def errors(sets: list[Kernels], fixed_us: float) -> tuple[float, float, float, int]:
    """(mean squared log error, MAPE, error of the summed time, kernels)."""
    pred = np.concatenate([predicted(k, fixed_us) for k in sets])
    rec = np.concatenate([k.recorded for k in sets])
    log = np.log(pred / rec)
    return (float(np.mean(log**2)), float(np.mean(np.abs(pred / rec - 1))),
            float(pred.sum() / rec.sum() - 1), len(rec))


def main() -> int:
    every = small_kernels()
    fit = [k for k in every if FIT_CHIP in k.spec.model]
    held = [k for k in every if FIT_CHIP not in k.spec.model]
    print("fit on:  " + ", ".join(f"{k.name} ({len(k.recorded)})" for k in fit))
    print("held out: " + ", ".join(f"{k.name} ({len(k.recorded)})" for k in held))
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

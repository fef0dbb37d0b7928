"""Fit the compute model to the Azure GEMM/STREAM pages and print the fit and its residuals.

    python bench/calibrate_compute.py [--data ../shared/data/calibration]

The printed parameters are the ones stored in ``simcluster/sim/compute.py``; the residual
tables are in ``docs/compute.md``. A cross-check predicts each H100 GEMM from the A100 fit
(same fractions, H100 peaks) to show how far an uncalibrated chip may be off.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from simcluster.sim.calibration import fit_device, parse_benchmark_page
from simcluster.sim.compute import kernel_us
from simcluster.topology.catalog import ACCELERATORS

PAGES = (("azure-nd-a100-v4.md", "A100-SXM4-80GB", "fp16", 2),
         ("azure-nd-h100-v5.md", "H100-SXM5-80GB", "fp8", 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
                    / "calibration")
    args = ap.parse_args()
    fits = {}
    for fname, model, dtype, in_bytes in PAGES:
        spec = ACCELERATORS[model]
        page = parse_benchmark_page((args.data / fname).read_text(encoding="utf-8"))
        cal, err = fit_device(page, spec, dtype, in_bytes, source=fname)
        fits[model] = (cal, page, spec, dtype, in_bytes)
        print(f"## {model} ({fname}, {dtype})")
        print(f"gemm_efficiency={cal.gemm_efficiency} memory_efficiency={cal.memory_efficiency} "
              f"fixed_us={cal.fixed_us} sharpness={cal.sharpness}")
        print("| m | n | k | measured TFLOP/s | model TFLOP/s | error |")
        print("|---:|---:|---:|---:|---:|---:|")
        for g, e in zip(page.gemms, err):
            print(f"| {g.m} | {g.n} | {g.k} | {g.tflops:.1f} | {g.tflops / (1 + e):.1f} "
                  f"| {100 * -e / (1 + e):+.1f}% |")
        print(f"mean |error| {100 * np.mean(np.abs(err / (1 + err))):.1f}%\n")
    # Cross-check: the A100 fractions applied to the H100 page.
    a100 = fits["A100-SXM4-80GB"][0]
    _, page, spec, dtype, in_bytes = fits["H100-SXM5-80GB"]
    flops = np.array([g.flops for g in page.gemms])
    nbytes = np.array([g.nbytes(in_bytes, 2) for g in page.gemms])
    pred = flops / kernel_us(flops, nbytes, spec.peak_flops_per_us(dtype), spec.hbm_GBps * 1e3,
                             a100) / 1e6
    meas = np.array([g.tflops for g in page.gemms])
    print("## H100 GEMMs predicted with the A100 fractions (uncalibrated-chip check)")
    print(f"mean |error| {100 * np.mean(np.abs(pred / meas - 1)):.1f}%, "
          f"large shapes (>= 8192): "
          f"{100 * np.mean(np.abs((pred / meas - 1)[flops >= 2 * 8192**3])):.1f}%")


if __name__ == "__main__":
    main()

"""Fit the 2023 llm-foundry stack's kernel efficiencies per chip on the calibrate split.

The llm-foundry tables (``bench/data/published``, source S2, 2023) ran PyTorch 1.13/2.0
eager with FlashAttention 1.x. Two parameters of that software stack are fitted jointly per
chip, on the **calibrate** split's llm-foundry rows only (the tables "H100 80GB BF16" up to
64 GPUs, "H100 80GB FP8" and "A100 80GB"; the validate split's "A100 40GB" and "H100 Large
Scale" tables are never read here):

- ``memory_efficiency``: the fraction of the HBM bandwidth its memory-bound kernels reach;
- ``flash1`` ``gemm_efficiency``: FlashAttention 1's fraction of the peak on the nominal
  attention FLOPs (``bench/fit_attention.py`` fits it alone, at the chip's STREAM
  bandwidth).

Every row is mapped and simulated as ``bench/validate_published.py`` does (rows above
``--max-ops`` extrapolated from two smaller micro-batch counts), with the candidate values as
the cluster's ``compute:`` entry. The objective is the mean squared log error of the step
time. It is minimised by Gauss-Newton steps on the logarithms of the two parameters, with
the step time's sensitivities taken by finite differences (three full simulations of the
rows per step), until a step moves both by less than 0.5 %; the result is rounded to 0.01.

    python bench/fit_stack.py [--chip A100 H100]

Copy the values into ``_FOUNDRY_2023_COMPUTE`` (``simcluster/workload/generate/
frameworks.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import validate_published as vp

from simcluster.sim.compute import CALIBRATIONS, CHIP_OF

MAX_OPS = 5e5  # validate_published's default --max-ops
STEP = (0.9, 1.1)  # finite-difference factors of memory_efficiency and flash1


def calibration_rows(chip: str) -> list[vp.Mapped]:
    """The calibrate split's llm-foundry rows on ``chip`` that map."""
    mapped, _ = vp.map_rows(vp.read_csv())
    return [m for m in mapped if m.split == "calibrate" and m.source.startswith("S2")
            and CHIP_OF.get(m.gpu) == chip]


def entry_of(memory: float, flash1: float) -> dict:
    """The topology ``compute:`` entry of these two efficiencies."""
    return {"memory_efficiency": min(1.0, memory),
            "families": {"flash1": {"gemm_efficiency": min(1.0, flash1)}}}


def step_time(m: vp.Mapped, entry: dict) -> float:
    """Simulated step time (s) of row ``m`` with ``entry`` as its GPU's compute entry."""
    p = vp.predict(m, MAX_OPS, 0, compute=entry)
    if p.failure:
        raise RuntimeError(f"row {m.row_id}: {p.failure}")
    return p.predicted_s


def log_times(rows: list[vp.Mapped], memory: float, flash1: float) -> np.ndarray:
    """Log step times of ``rows`` at these efficiencies."""
    entry = entry_of(memory, flash1)
    return np.log([step_time(m, entry) for m in rows])


def summary(pred_log: np.ndarray, measured: np.ndarray) -> str:
    err = np.exp(pred_log) / measured - 1
    return (f"MAPE {100 * np.mean(np.abs(err)):.2f} %, mean signed {100 * np.mean(err):+.2f} %"
            f", too fast {int((err < 0).sum())}/{len(err)}, "
            f"msle {np.mean(np.log1p(err) ** 2):.5f}")


def fit(chip: str, iterations: int = 6) -> tuple[float, float]:
    """Gauss-Newton fit of (memory_efficiency, flash1 efficiency) on ``chip``'s rows."""
    rows = calibration_rows(chip)
    target = np.log([m.measured_s for m in rows])
    base = CALIBRATIONS[chip]
    x = np.log([base.memory_efficiency, base.for_family("flash1").gemm_efficiency])
    print(f"{chip}: {len(rows)} calibrate rows (S2 llm-foundry)", flush=True)
    for _ in range(iterations):
        t0 = log_times(rows, *np.exp(x))
        print(f"  memory {np.exp(x[0]):.4f} flash1 {np.exp(x[1]):.4f}: "
              f"{summary(t0, np.exp(target))}", flush=True)
        cols = []
        for i, factor in enumerate(STEP):
            xi = x.copy()
            xi[i] += np.log(factor)
            cols.append((log_times(rows, *np.exp(xi)) - t0) / np.log(factor))
        dx, *_ = np.linalg.lstsq(np.stack(cols, 1), target - t0, rcond=None)
        dx = np.clip(dx, -0.5, 0.5)  # at most a factor 1.65 per step: the model is not linear
        x = x + dx
        if np.all(np.abs(dx) < 0.005):
            break
    memory, flash1 = (round(float(v), 2) for v in np.exp(x))
    print(f"{chip}: memory_efficiency {memory:.2f}, flash1 {flash1:.2f}; "
          f"{summary(log_times(rows, memory, flash1), np.exp(target))}", flush=True)
    return memory, flash1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chip", nargs="*", default=["A100", "H100"], choices=["A100", "H100"])
    args = ap.parse_args()
    for chip in args.chip:
        fit(chip)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

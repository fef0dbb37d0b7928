"""Fit the FlashAttention-1 efficiency per chip on the calibration split's llm-foundry rows.

The llm-foundry benchmark tables (``bench/data/published``, source S2, 2023) ran
FlashAttention 1.x. Their step times grow with sequence length much faster than attention at
the GEMM efficiency predicts: the attention kernel sustains a lower fraction of peak. That
fraction (``flash1`` in ``sim/compute.py``, of the nominal attention FLOPs ``4 b s^2 h`` per
forward, causal masking not discounted) is the one parameter fitted here, per chip, on the
rows of the **calibrate** split only (the validate split's S2 rows are another table of the
same README and are never read here).

Every row is mapped as ``bench/validate_published.py`` maps it (framework profile
``llm-foundry-2023``: FlashAttention 1, PyTorch's eager cross-entropy) and simulated in full
for each candidate efficiency: a grid of 0.05, then 0.01 around the best. The objective is
the mean squared log error of the step time over the chip's rows.

    python bench/fit_attention.py [--chip A100 H100]

Prints, per chip, the objective along the grid, the best efficiency, and the MAPE and mean
signed error at it; copy the value into the ``flash1`` entry of the chip's calibration ``families``
(``sim/compute.py``). The ``llm-foundry-2023`` profile's own value, fitted jointly with the
stack's HBM efficiency, comes from ``bench/fit_stack.py``; this fit runs the rows at the
chip's calibration (no profile entry).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import validate_published as vp

import simcluster as sc
from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.sim.compute import CALIBRATIONS, ComputeModel, with_params
from simcluster.topology.schema import ComputeParams


def calibration_rows(chip: str) -> list[vp.Mapped]:
    """The calibrate split's llm-foundry rows on ``chip`` that map, and need no
    extrapolation."""
    mapped, _ = vp.map_rows(vp.read_csv())
    return [m for m in mapped if m.split == "calibrate" and m.source.startswith("S2")
            and vp.catalog_gpu(m.gpu)[0] and chip in m.gpu]


def step_times(rows: list[vp.Mapped], chip: str, efficiency: float) -> np.ndarray:
    """Simulated step times (s) of ``rows`` with ``efficiency`` for flash1 on ``chip``."""
    cal = with_params(CALIBRATIONS[chip],
                      ComputeParams(families={"flash1": {"gemm_efficiency": efficiency}}))
    options = SimOptions(compute=ComputeModel(calibrations={**CALIBRATIONS, chip: cal}))
    out = []
    for m in rows:
        wl = sc.generate("transformer", **m.params)
        cluster = vp.cluster_for(m.gpu, m.gpus, m.nics)
        run = simulate(bind(wl, cluster), options)
        out.append(run.makespan_us / 1e6)
    return np.array(out)


def objective(pred: np.ndarray, measured: np.ndarray) -> float:
    return float(np.mean(np.log(pred / measured) ** 2))


def fit(chip: str) -> float:
    rows = calibration_rows(chip)
    measured = np.array([m.measured_s for m in rows])
    print(f"{chip}: {len(rows)} calibrate rows (S2 llm-foundry)")
    tried: dict[float, float] = {}

    def score(e: float) -> float:
        e = round(e, 2)
        if e not in tried:
            tried[e] = objective(step_times(rows, chip, e), measured)
            print(f"  efficiency {e:.2f}: mean squared log error {tried[e]:.5f}", flush=True)
        return tried[e]

    coarse = min(np.arange(0.15, 0.86, 0.05), key=score)
    best = min(np.arange(coarse - 0.04, coarse + 0.045, 0.01), key=score)
    pred = step_times(rows, chip, round(best, 2))
    err = pred / measured - 1
    print(f"{chip}: flash1 efficiency {best:.2f}; MAPE {100 * np.mean(np.abs(err)):.1f} %, "
          f"mean signed {100 * np.mean(err):+.1f} %, worst {100 * err[np.argmax(abs(err))]:+.1f} %")
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chip", nargs="*", default=["A100", "H100"], choices=["A100", "H100"])
    args = ap.parse_args()
    for chip in args.chip:
        best = fit(chip)
        assert math.isfinite(best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

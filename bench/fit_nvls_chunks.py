"""Fit NVLS's per-chunk overhead and base latency on one measured curve, report on another.

NCCL 2.18.5 shrinks NVLS chunks from 128 KiB to 64, 32 and 16 KiB for smaller all-reduces
(``sim/protocols.py``, ``nvls_chunk_bytes``). The model gives each chunk a fixed cost,
``network.nvls_chunk_overhead_us``, so NVLS bandwidth ramps up with size as the chunks
grow, and a pipeline fill of two chunks per concurrent op (``nvls_fill_bytes``);
``network.nvls_efficiency`` stays the plateau's (largest chunks). Both the overhead and
``network.nvls_base_latency_us`` are fitted by grid search on the DGX H100 curve alone, with
NVLS forced, from 2 MiB (where that log runs NVLS: it meets the NVLS-only ND H100 v5 log from
there up; below, NCCL's tuner picks rings), objective: mean |log(predicted / measured
busbw)|. Azure ND H100 v5, the same hardware, is held out, reported from 64 KiB as each log
ran (DGX H100: the tuner's choice; ND H100 v5: NVLS, which its script forced;
``simcluster.validation.FORCED_ALGORITHM``). Runs the simulator (not the fitting shortcut)
at every size.

    python bench/fit_nvls_chunks.py [--data ../shared/data/calibration/nccl_allreduce_single_node.csv]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from simcluster.calibrate.model import with_values
from simcluster.topology import load_cluster
from simcluster.validation import SYSTEMS, Comparison, compare, read_nccl_csv

ROOT = Path(__file__).resolve().parents[1]
FIT, HELD_OUT = "dgx-h100-8gpu", "azure-nd-h100-v5"
SMALLEST, SMALLEST_NVLS = 65536, 2 << 20
OVERHEADS = (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5)  # us per chunk per op
BASES = (0.0, 2.0, 4.0, 6.0, 8.0)  # us


def _compare(system: str, points: list, values: dict[str, float],
             nvls: bool = False) -> Comparison:
    cluster = load_cluster(ROOT / "topologies" / SYSTEMS[system])
    network = with_values(cluster.network, values)
    if nvls:
        network = network.model_copy(update={"algorithm": "nvls"})
    smallest = SMALLEST_NVLS if nvls else SMALLEST
    return compare(system, replace(cluster, network=network),
                   [m for m in points if m.size >= smallest])


def _line(label: str, c: Comparison) -> str:
    worst = float(np.max(np.abs(c.error))) * 100
    return (f"{label:>34}: MAPE {c.mape():5.2f} %, mean signed {c.mean_signed():+6.2f} %, "
            f"worst {worst:5.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "calibration"
                    / "nccl_allreduce_single_node.csv")
    args = ap.parse_args()
    data = read_nccl_csv(args.data)
    scores = []
    for overhead in OVERHEADS:
        for base in BASES:
            values = {"nvls_chunk_overhead_us": overhead, "nvls_base_latency_us": base}
            c = _compare(FIT, data[FIT], values, nvls=True)
            scores.append((float(np.mean(np.abs(np.log1p(c.error)))), overhead, base))
            print(f"  overhead {overhead:4.1f} us, base {base:4.1f} us: "
                  f"mean |log error| {scores[-1][0]:.4f}", flush=True)
    _, overhead, base = min(scores)
    best = {"nvls_chunk_overhead_us": overhead, "nvls_base_latency_us": base}
    print(f"fitted on {FIT}: nvls_chunk_overhead_us = {overhead:.1f}, "
          f"nvls_base_latency_us = {base:.1f}")
    for system in (FIT, HELD_OUT):
        role = "fit" if system == FIT else "held out"
        print(_line(f"{system} ({role}, NVLS, >= 2 MiB)",
                    _compare(system, data[system], best, nvls=True)))
        print(_line(f"{system} ({role}, as logged, >= 64 KiB)",
                    _compare(system, data[system], best)))


if __name__ == "__main__":
    main()

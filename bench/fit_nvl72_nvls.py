"""Fit the NVLS efficiency of a GB200 NVL72 rack on one published nccl-tests log.

The NVLS efficiency fitted on 8-GPU H100 servers (0.782, ``bench/fit_collectives.py``)
makes a 72-GPU NVL72 rack 27-28 % too fast at its plateau: in-switch reduction over 72 GPUs
reaches a smaller fraction of NVLink 5 than over 8 H100s. This script fits that one number
for ``topologies/gb200-nvl72-x2.yaml`` on CoreWeave's single-rack log only
(``bench/data/published/nccl/coreweave_gb200_nvl72_1rack_72gpu_allreduce.txt``), so that
log is in-sample; the two-rack (NVLS-tree across racks) and twenty-rack logs stay out of
sample (docs/validation.md says which is which).

Objective: the plateau. The efficiency is a bandwidth, and the sizes of at least 4 GiB are
where the model's fixed costs are under 1 % of the time: the efficiency makes their mean
log error of busbw zero (bisection; busbw grows with the efficiency).

    python bench/fit_nvl72_nvls.py

Prints the fitted value, to be copied into the topology's ``network.nvls_efficiency``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from simcluster.topology import load_cluster
from simcluster.validation import compare_log, read_nccl_log

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "bench" / "data" / "published" / "nccl" / "coreweave_gb200_nvl72_1rack_72gpu_allreduce.txt"
TOPOLOGY = ROOT / "topologies" / "gb200-nvl72-x2.yaml"
PLATEAU = 4 * 2**30  # bytes: sizes from here are fitted


def plateau_log_error(efficiency: float) -> float:
    """Mean log(predicted / measured busbw) over the log's plateau sizes at ``efficiency``."""
    base = load_cluster(TOPOLOGY)
    cluster = replace(base, network=base.network.model_copy(
        update={"nvls_efficiency": efficiency}))
    log = read_nccl_log(LOG)
    log = replace(log, points=[m for m in log.points if m.size >= PLATEAU])
    cmp_ = compare_log(log, cluster, "all_reduce", 72)
    return float(np.mean(np.log(cmp_.predicted / cmp_.measured)))


def zero_of(error: Callable[[float], float], lo: float = 0.3, hi: float = 1.0) -> float:
    """The efficiency in [lo, hi] where ``error`` (increasing in it) crosses zero, by 30
    bisections, rounded to 3 digits."""
    for _ in range(30):
        mid = (lo + hi) / 2
        if error(mid) > 0:
            hi = mid
        else:
            lo = mid
    return round((lo + hi) / 2, 3)


def main() -> None:
    fitted = zero_of(plateau_log_error)
    print(f"nvls_efficiency = {fitted}  (plateau log error {plateau_log_error(fitted):+.4f})")


if __name__ == "__main__":
    main()

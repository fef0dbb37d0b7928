"""Fit the Infinity Fabric link efficiency of an 8 x MI300-series mesh on a published MI325X log.

The bundled ``topologies/mi300x-8gpu.yaml`` ran its Infinity Fabric links at the NVLink
efficiency (0.774, fitted on A100 NVLink), which put the MI300X all-reduce plateau ~10 %
above the published rccl-tests log. That MI300X log is the validation of the RCCL model, so
nothing is fitted on it. This script fits the one number on another public log instead: the
8 x MI325X single-node plateau of AMD Accelerator Cloud "AAC11"
(``bench/data/published/nccl/aac11_mi325x_1node_8gpu_allreduce_plateau.txt``: 4, 8 and 16 GiB,
``NCCL_ALGO=Ring``). The MI325X is the MI300X's gfx942 chip with the same 7 Infinity Fabric
links of 64 GB/s per direction (catalog), so the fitted efficiency is the fabric's.

Objective: the efficiency that makes the mean log error of busbw over the three sizes zero
(bisection; busbw grows with the efficiency), on the bundled mesh with every GPU an MI325X
and the ring forced as in the log.

    python bench/fit_rccl_link.py

Prints the fitted value, to be copied into the topology's ``network.link_efficiency.nvlink``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from fit_nvl72_nvls import zero_of  # the bench folder is on the path when run as a script

from simcluster.calibrate.model import capacities
from simcluster.topology import load_cluster
from simcluster.topology.transform import with_device
from simcluster.validation import compare_log, read_nccl_log

ROOT = Path(__file__).resolve().parents[1]
LOG = (ROOT / "bench" / "data" / "published" / "nccl"
       / "aac11_mi325x_1node_8gpu_allreduce_plateau.txt")
TOPOLOGY = ROOT / "topologies" / "mi300x-8gpu.yaml"


def log_error(efficiency: float) -> float:
    """Mean log(predicted / measured busbw) over the log's sizes at ``efficiency``."""
    base = with_device(load_cluster(TOPOLOGY), "MI325X")
    network = base.network.model_copy(update={"link_efficiency": {"nvlink": efficiency}})
    cluster = replace(base, network=network, capacity_Bpus=capacities(base, network))
    cmp_ = compare_log(read_nccl_log(LOG), cluster, "all_reduce", 8, algorithm="ring")
    return float(np.mean(np.log(cmp_.predicted / cmp_.measured)))


def main() -> None:
    fitted = zero_of(log_error)
    print(f"link_efficiency.nvlink = {fitted}  (log error {log_error(fitted):+.4f}; "
          f"at the NVLink default 0.774: {log_error(0.774):+.4f})")


if __name__ == "__main__":
    main()

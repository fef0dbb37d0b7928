"""Time a replay with failed elements against the healthy one, and print their step times.

Llama-3 8B, TP 8 x DP 64 (512 GPUs, folded) on the bundled DGX H100 SuperPOD. A failure
turns the closed-form fabric routes off (``topology/routing.py``), so the routes of the
degraded run come from the generic search: this measures what that costs. Median of
``--repeat`` runs each, with the load average before and after.

    python bench/bench_failures.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from simcluster.scenario import Scenario, WhatIf
from simcluster.topology import load_cluster
from simcluster.workload.generate.registry import generate

ROOT = Path(__file__).resolve().parents[1]
CASES = {"healthy": (), "spine0 down": ("fabric/spine0",),
         "su0-rail0 down": ("fabric/su0-rail0",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    wl = generate("transformer", {"preset": "llama3-8b", "tp": 8, "dp": 64,
                                  "global_batch": 64})
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100-superpod.yaml")
    for label, failed in CASES.items():
        times, step = [], 0.0
        for _ in range(args.repeat):
            t = time.perf_counter()
            step = Scenario(wl, cluster, whatif=WhatIf(fail=failed)).run().step_time_us
            times.append(time.perf_counter() - t)
        print(f"{label:>15}: step {step:,.3f} us; replay wall median "
              f"{statistics.median(times):.2f} s of {', '.join(f'{x:.2f}' for x in times)}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

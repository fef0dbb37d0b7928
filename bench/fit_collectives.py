"""Fit the collective model's few free parameters to measured nccl-tests all-reduce curves.

The three 8-GPU systems of ``../shared/data/calibration/nccl_allreduce_single_node.csv``
(DGX H100, Azure ND H100 v5, Azure ND A100 v4) are fitted at once with
``simcluster.calibrate.calibrate_systems`` (numpy only; ``simcluster calibrate`` fits one
system the same way): one value of each physical parameter for all three (NVLink
efficiency, NVLS efficiency and base latency, the per-call overheads of LL128 and Simple),
one host launch cost per system. See ``simcluster/calibrate/`` for which parameters the
curves can identify and docs/network.md ("Fitted parameters") for the objective.

    python bench/fit_collectives.py [--data ../shared/data/calibration/nccl_allreduce_single_node.csv]
                                    [--neutral]

Prints, per parameter, the fitted value and the one the bundled topologies and
``topology/catalog.py`` hold (the values in docs/network.md), and the objective at each.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import simcluster.calibrate as cal
from simcluster.calibrate.model import with_values
from simcluster.topology import load_cluster
from simcluster.validation import SYSTEMS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "calibration"
                    / "nccl_allreduce_single_node.csv")
    ap.add_argument("--neutral", action="store_true",
                    help="start from the middle of each parameter's range instead of the "
                    "current values (the fit must not depend on where it starts)")
    args = ap.parse_args()
    systems = [(load_cluster(ROOT / "topologies" / topo), cal.read_csv(args.data, name))
               for name, topo in SYSTEMS.items()]
    if args.neutral:
        systems = [(replace(c, network=with_values(c.network, {
            k.name: (k.lo + k.hi) / 2 for k in cal.knobs_for(c)})), curves)
            for c, curves in systems]
    start = time.perf_counter()
    results = cal.calibrate_systems(systems)
    took = time.perf_counter() - start
    before = sum(r.objective_before for r in results)
    after = sum(r.objective_after for r in results)
    print(f"objective (sum over systems and size bands of mean |log error| / tolerance): "
          f"{before:.4f} at the current values -> {after:.4f} fitted "
          f"({results[0].evaluations} evaluations, {took:.1f} s)")
    shown: set[str] = set()
    for name, r in zip(SYSTEMS, results):
        for p in r.params:
            if p.status == cal.NOT_IDENTIFIABLE or (p.shared and p.knob.name in shown):
                continue
            shown.add(p.knob.name)
            who = "all systems" if p.shared else name
            change = 100 * (p.after - p.before) / p.before if p.before else float("nan")
            fits = f"[{p.interval[0]:g}, {p.interval[1]:g}]" if p.interval else ""
            print(f"  {p.knob.name:>28} ({who:>16}) = {p.after:9.4f}  {fits:>18}   start "
                  f"{p.before:9.4f} ({change:+.1f} %){'  ' + p.status if p.status != cal.FITTED else ''}")


if __name__ == "__main__":
    main()

"""Predicted vs measured all-reduce bus bandwidth, per size and per size band.

Runs the simulator (not the fitting shortcut) on the bundled topology of each measured
system at every measured size, and prints predicted vs measured busbw with the error, then the
mean absolute percentage error (MAPE) per size band.

    python bench/validate_collectives.py                 # plain text
    python bench/validate_collectives.py --markdown      # the tables of docs/validation.md

Last, per system from 64 KiB up (issue 12's acceptance: each size within 10 %): MAPE, mean
signed error, the worst size and how many sizes miss 10 %.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simcluster.topology import load_cluster
from simcluster.validation import BANDS, SYSTEMS, Comparison, compare, read_nccl_csv

ROOT = Path(__file__).resolve().parents[1]
FROM = 65536  # bytes: the acceptance's smallest size


def from_64k(c: Comparison) -> str:
    """MAPE, mean signed error, the worst size and the misses over 10 % from 64 KiB up."""
    sel = c.sizes >= FROM
    err = c.error[sel]
    worst = int(abs(err).argmax())
    return (f"MAPE {c.mape(FROM):.1f} %, mean signed {c.mean_signed(FROM):+.1f} %, worst "
            f"{100 * err[worst]:+.1f} % at {int(c.sizes[sel][worst]):,} B, "
            f"{int((abs(err) > 0.10).sum())} of {int(sel.sum())} sizes beyond 10 %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "calibration"
                    / "nccl_allreduce_single_node.csv")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    data = read_nccl_csv(args.data)
    summary = []
    for system, topo in SYSTEMS.items():
        cmp_ = compare(system, load_cluster(ROOT / "topologies" / topo), data[system])
        if args.markdown:
            print(f"\n**{system}** (`topologies/{topo}`)\n")
            print("| size (B) | measured busbw (GB/s) | predicted | error | algorithm |")
            print("|---:|---:|---:|---:|---|")
        else:
            print(f"\n{system} (topologies/{topo})")
            print(f"{'size':>12} {'measured':>10} {'predicted':>10} {'error':>8}  algorithm")
        for s, m, p, e, a in zip(cmp_.sizes, cmp_.measured, cmp_.predicted, cmp_.error,
                                 cmp_.algorithms):
            if args.markdown:
                print(f"| {s:,} | {m:.2f} | {p:.2f} | {100 * e:+.1f} % | {a} |")
            else:
                print(f"{s:>12} {m:>10.2f} {p:>10.2f} {100 * e:>+7.1f}%  {a}")
        summary.append((system, [cmp_.mape(lo, hi) for lo, hi in BANDS.values()],
                        from_64k(cmp_)))
    print()
    if args.markdown:
        print("| system | " + " | ".join(f"MAPE {b}" for b in BANDS) + " |")
        print("|---|" + "---:|" * len(BANDS))
        for system, mapes, _ in summary:
            print(f"| {system} | " + " | ".join(f"{m:.1f} %" for m in mapes) + " |")
    else:
        print(f"{'MAPE':>18} " + " ".join(f"{b:>20}" for b in BANDS))
        for system, mapes, _ in summary:
            print(f"{system:>18} " + " ".join(f"{m:>19.1f}%" for m in mapes))
    print()
    for system, _, line in summary:
        print(f"{'- ' if args.markdown else ''}{system}, from 64 KiB: {line}")


if __name__ == "__main__":
    main()

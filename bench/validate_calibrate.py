"""``simcluster calibrate`` on measured nccl-tests logs: the values it fits per system, and how
well the fitted model predicts held-out sizes (fit on a size range, predict the others).

    python bench/validate_calibrate.py [--shared ../shared/data]

Single-server curves: ``../shared/data/calibration`` (the DGX H100 log, and the Azure curves of
the CSV); two servers: ``bench/data/published/nccl/gcp_a3mega_h100_2node_16gpu_allreduce.txt``
on ``h100-2node.yaml`` (400 Gb/s InfiniBand) and ``gcp-a3-mega-2node.yaml`` (the VM's 8 x
200 Gb/s). The CoreWeave SHARP log is left out: CollNet's constants are NCCL's, with no
knob to fit (docs/validation.md compares it).
Prints the figures recorded in docs/network.md ("Calibrating from your own logs").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import simcluster.calibrate as cal
from simcluster.calibrate.quality import BANDS
from simcluster.topology import load_cluster

ROOT = Path(__file__).resolve().parents[1]
GCP = ROOT / "bench" / "data" / "published" / "nccl" / "gcp_a3mega_h100_2node_16gpu_allreduce.txt"
RANGES: tuple[tuple[str, tuple[int, int] | None], ...] = (
    ("all sizes", None), ("1K:1G", (2**10, 2**30)), ("1K:256M", (2**10, 2**28)))


def _cases(shared: Path) -> list[tuple[str, str, list[cal.Curve]]]:
    cases = [("GCP 2 x 8 H100", "h100-2node.yaml", [cal.read_log(GCP)]),
             ("GCP 2 x 8 H100", "gcp-a3-mega-2node.yaml", [cal.read_log(GCP)])]
    data = shared / "calibration"
    if data.is_dir():
        csv = data / "nccl_allreduce_single_node.csv"
        cases = [
            ("DGX H100 log", "dgx-h100.yaml",
             [cal.read_log(data / "dgx-h100-nccl-allreduce.md", "all_reduce")]),
            ("ND H100 v5", "azure-nd-h100-v5.yaml", cal.read_csv(csv, "azure-nd-h100-v5")),
            ("ND A100 v4", "azure-nd-a100-v4.yaml", cal.read_csv(csv, "azure-nd-a100-v4")),
        ] + cases
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    for name, topo, curves in _cases(args.shared):
        cluster = load_cluster(ROOT / "topologies" / topo)
        for label, sizes in RANGES:
            start = time.perf_counter()
            r = cal.calibrate(cluster, curves, fit_sizes=sizes)
            took = time.perf_counter() - start
            fitted = ", ".join(f"{p.knob.name} {p.before:g} -> {p.after:g}"
                               for p in r.params if p.status != cal.NOT_IDENTIFIABLE)
            print(f"{name} on {topo}, fit {label}: objective {r.objective_before:.3f} -> "
                  f"{r.objective_after:.3f}, {took:.1f} s\n    {fitted}")
            for band in BANDS[1:]:
                for held in (False, True):
                    s = r.curves[0].stats(band, held)
                    if s is not None:
                        print(f"    {band.name:>12} {'held out' if held else 'fitted':>8} "
                              f"n={s.points:2d}  MAPE {s.mape_before:5.1f} -> {s.mape_after:5.1f}"
                              f" %  signed {s.signed_before:+6.1f} -> {s.signed_after:+6.1f} %")


if __name__ == "__main__":
    main()

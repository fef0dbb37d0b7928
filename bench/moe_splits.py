"""Uneven all-to-allv against the even model it replaced: a generated Mixtral 8x7B (2 layers,
TP 1, EP 8, DP 16, global batch 128, unfolded) under ``moe_skew`` on the bundled DGX H100
SuperPOD, replayed with its per-pair ``splits`` and with them removed (every pair at the
busiest rank's share, as before the splits existed). Prints the step time and the bytes the
NIC links carried, with ``packed`` (EP groups inside servers) and ``spread`` (across).

    python bench/moe_splits.py [--skew 2.0]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology import load_cluster
from simcluster.workload.generate.presets import PRESETS
from simcluster.workload.generate.transformer import TransformerConfig, transformer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skew", type=float, default=2.0)
    args = ap.parse_args()
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100-superpod.yaml")
    cfg = TransformerConfig(model=replace(PRESETS["mixtral-8x7b"], layers=2), tp=1, dp=16,
                            ep=8, global_batch=128, moe_skew=args.skew, fold=False)
    wl = transformer(cfg)
    t = wl.ops
    even = replace(wl, ops=t.set_column(t.schema.get_field_index("splits"), "splits",
                                        pa.nulls(t.num_rows, pa.list_(pa.int64()))))
    for placement in ("packed", "spread"):
        for label, w in (("per-pair splits", wl), ("even at the busiest share", even)):
            run = simulate(bind(w, cluster, placement))
            links = run.links.to_pydict()
            nic = sum(b for b, r in zip(links["bytes"], links["role"]) if r == "nic")
            print(f"skew {args.skew} {placement:6s} {label:26s} step "
                  f"{run.makespan_us / 1e3:9.3f} ms, NIC links {nic / 1e9:8.2f} GB")


if __name__ == "__main__":
    main()

"""Step time of a generated Mixtral 8x7B (2 layers, EP 8) under each placement strategy on the
bundled DGX H100 SuperPOD, with the generator's rank order and with a replica-fastest one.

The generator numbers ranks so that an EP group's ranks are consecutive (``docs/formats.md``):
``packed`` then already keeps an EP group inside a server and ``ep-packed`` places the same.
Frameworks that number data-parallel replicas fastest do not; the second table renumbers the
same workload that way (rank ``i + S j`` of EP position ``i`` in block ``j`` becomes
``j + B i``, ``B`` blocks), where ``packed`` splits every EP group over servers and
``ep-packed`` puts it back in one. Unfolded (every replica in full): the fold drops the
other EP blocks' all-to-alls, which share links with the first block's once a placement puts
EP groups across servers.

    python bench/ep_placement.py [--dp 16] [--global-batch 64] [--skew 1.0]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology import load_cluster
from simcluster.workload.generate.presets import PRESETS
from simcluster.workload.generate.transformer import TransformerConfig, transformer
from simcluster.workload.model import Workload
from simcluster.workload.validate import make_workload

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("packed", "ep-packed", "tp-packed", "rail-aligned", "spread")


def replica_fastest(wl: Workload, ep: int) -> Workload:
    """The same workload with rank ``i + ep j`` renamed ``j + B i`` (``B = ranks / ep``)."""
    n = wl.num_ranks
    blocks = n // ep
    new = np.array([(r // ep) + blocks * (r % ep) for r in range(n)], dtype=np.int32)
    t = wl.ops
    t = t.set_column(t.schema.get_field_index("rank"), "rank",
                     pa.array(new[t.column("rank").to_numpy()]))
    order = np.lexsort((t.column("op_id").to_numpy(), t.column("rank").to_numpy()))
    groups = {g: tuple(sorted(int(new[r]) for r in rs)) for g, rs in wl.groups.items()}
    return make_workload(t.take(pa.array(order)), groups, wl.meta, source="renumbered")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skew", type=float, default=1.0)
    ap.add_argument("--dp", type=int, default=16)
    ap.add_argument("--global-batch", type=int, default=64)
    args = ap.parse_args()
    model = PRESETS["mixtral-8x7b"]
    cfg = TransformerConfig(model=replace(model, layers=2), tp=1, dp=args.dp, ep=8,
                            global_batch=args.global_batch, moe_skew=args.skew, fold=False)
    wl = transformer(cfg)
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100-superpod.yaml")
    for label, w in (("generator's rank order", wl),
                     ("replica-fastest rank order", replica_fastest(wl, 8))):
        print(f"Mixtral 8x7B, 2 layers, tp 1, ep 8, dp {args.dp}, global batch "
              f"{args.global_batch}, moe_skew {args.skew}, "
              f"{label}:")
        for s in STRATEGIES:
            run = simulate(bind(w, cluster, s))
            print(f"  {s:13s} step {run.makespan_us / 1e3:9.3f} ms")


if __name__ == "__main__":
    main()

"""The search estimate against full simulations with Transformer Engine's TP overlap.

Llama 2 7B's layer (4 layers, 4,096 tokens, sequence parallelism) on one DGX H100 at tp 8,
4 and 2: the simulated step with ``tp_comm_overlap`` on and off, the estimate with it on
(after) and off (before: the estimate that ignored the option gave that figure), their
signed errors against the simulation with the option on, and what the option saves in each.

    python bench/estimate_tp_overlap.py
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import simcluster as sc
from simcluster.search.estimate import Estimator
from simcluster.topology import load_cluster
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import TransformerConfig, transformer

ROOT = Path(__file__).resolve().parents[1]
MODEL = ModelSpec(name="llama2-7b-4L", layers=4, hidden=4096, heads=32, kv_heads=32,
                  ffn=11008, vocab=0, seq_len=4096)
CASES = [(8, 1), (4, 2), (2, 4)]  # (tp, dp)


def main() -> None:
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100.yaml")
    est = Estimator(cluster)
    print("| tp x dp | sim on, ms | before | after | saved: sim / estimate, ms |")
    print("|---|---|---|---|---|")
    for tp, dp in CASES:
        on = TransformerConfig(model=MODEL, tp=tp, dp=dp, sequence_parallel=True,
                               tp_comm_overlap=True, global_batch=2 * dp)
        off = replace(on, tp_comm_overlap=False)
        sim_on = sc.replay(transformer(on), cluster).step_time_us
        sim_off = sc.replay(transformer(off), cluster).step_time_us
        after, before = est.estimate(on).step_us, est.estimate(off).step_us
        print(f"| {tp} x {dp} | {sim_on / 1e3:.2f} | {(before / sim_on - 1) * 100:+.1f} % "
              f"| {(after / sim_on - 1) * 100:+.1f} % | {(sim_off - sim_on) / 1e3:.2f} / "
              f"{(before - after) / 1e3:.2f} |")


if __name__ == "__main__":
    main()

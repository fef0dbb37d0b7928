"""What compute slowed by communication costs the engine: SimPy events and run time of one
generated transformer step with the interference off (``comm_sms`` 0) and on (the default).

The workload runs on DGX H100 servers on one switch; the events are deterministic, the run
time (``Engine.run``, compile excluded) is the median of ``--repeat`` runs.

    python bench/bench_interference.py                                   # llama3-8b TP2 PP2 DP4
    python bench/bench_interference.py --preset gpt3-1.3b --tp 1 --pp 1 --dp 16 --batch 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import simcluster as sc
from simcluster.placement import bind
from simcluster.sim.engine import Engine
from simcluster.sim.interference import heap_entries
from simcluster.topology.build import build
from simcluster.topology.schema import TopologySpec


def cluster(servers: int, comm_sms: float | None):
    """``servers`` DGX H100 on one switch; ``comm_sms`` None: the part's default (16)."""
    spec = {"name": "dgx", "nodes": [{"preset": "dgx-h100", "count": servers}],
            "fabric": {"topology": "single-switch"},
            "network": {} if comm_sms is None else {"comm_sms": comm_sms}}
    return build(TopologySpec.model_validate(spec), source="bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="llama3-8b")
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--pp", type=int, default=2)
    ap.add_argument("--dp", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32, help="global batch")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    wl = sc.generate("transformer", preset=args.preset, tp=args.tp, pp=args.pp, dp=args.dp,
                     micro_batch=1, global_batch=args.batch)
    servers = max(1, args.tp * args.pp * args.dp // 8)
    for comm_sms in (0.0, None):
        walls, events, step = [], 0, 0.0
        for _ in range(args.repeat):
            engine = Engine(bind(wl, cluster(servers, comm_sms)))
            t0 = time.perf_counter()
            run = engine.run()
            walls.append(time.perf_counter() - t0)
            events, step = heap_entries(engine.env, engine.clocks), run.makespan_us
        label = "off (comm_sms 0)" if comm_sms == 0 else "on (default)"
        print(f"interference {label}: ops {wl.num_ops:,} events {events:,} step "
              f"{step / 1e3:,.3f} ms run_s median {statistics.median(walls):.2f} "
              f"({', '.join(f'{w:.2f}' for w in walls)})")


if __name__ == "__main__":
    main()

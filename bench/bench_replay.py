"""Replay synthetic data-parallel workloads at growing scale and print throughput.

For each rank count: a DGX-H100-like cluster of ranks/8 servers (one switch up to 16
servers, else leaf-spine with 16 servers per leaf and 8 spines), and one data-parallel step
of a 12-layer, 200M-parameter transformer (43 ops per rank, 13 all-reduces over all ranks).
The timed part is what ``simcluster.simulate`` does: compile the bound workload, then run
it. Workload generation and topology build are timed separately.

Printed per rank count (median of --repeat runs; ops/s also as the best run):

- ops, SimPy heap entries pushed (``events``) and events per op (deterministic), flows,
  rate recomputations;
- build_s (topology), compile_s, run_s, wall_s = compile + run;
- ops_per_s = ops / wall_s (median), best_ops_per_s, flows_per_s (flows / median wall_s);
- step_ms (simulated), peak_rss_MB of the process so far.

With two or more rank counts it ends with the fitted scaling exponent of the median wall_s
against ranks, and whether it is within N log N (``scaling.py``; issue 19).

    python bench/bench_replay.py                          # 8, 64, 512, 4096 ranks
    python bench/bench_replay.py --ranks 8 64 --repeat 5
    python bench/bench_replay.py --algorithm ring         # every all-reduce one ring
    python bench/bench_replay.py --ranks 1024 2048 4096 8192 16384   # the scaling exponent
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import time

from scaling import verdict  # bench/scaling.py: run as python bench/bench_replay.py
from simcluster.placement import bind
from simcluster.sim.engine import _COLLECTOR, Engine
from simcluster.sim.interference import heap_entries
from simcluster.topology.build import build
from simcluster.topology.schema import TopologySpec
from simcluster.workload.generate import DataParallelConfig, data_parallel


def cluster(ranks: int, algorithm: str = "auto"):
    servers = max(1, ranks // 8)
    spec = {
        "name": f"dgx-h100-x{servers}",
        "nodes": [{"name": "node", "count": servers, "accelerator": "H100-SXM5-80GB",
                   "accelerators": min(8, ranks), "fabric": "nvswitch",
                   "pcie": {"accelerators_per_switch": 1},
                   "nics": {"count": min(8, ranks), "bandwidth_GBps": 50}}],
        "network": {"algorithm": algorithm},
    }
    if servers > 1:
        spec["fabric"] = ({"topology": "single-switch"} if servers <= 16 else
                          {"topology": "leaf-spine", "nodes_per_leaf": 16, "spines": 8})
    return build(TopologySpec.model_validate(spec), source=spec["name"])


def once(bound) -> dict[str, float]:
    with _COLLECTOR.running():  # as simcluster.simulate does
        t0 = time.perf_counter()
        with _COLLECTOR.compiling():
            engine = Engine(bound)
        _COLLECTOR.freeze()
        t1 = time.perf_counter()
        run = engine.run()
        t2 = time.perf_counter()
    events = heap_entries(engine.env, engine.clocks)  # entries pushed on SimPy's heap
    return {"compile_s": t1 - t0, "run_s": t2 - t1, "wall_s": t2 - t0, "events": events,
            "flows": run.info["flows"], "recomputes": run.info["rate_recomputations"],
            "step_ms": run.makespan_us / 1e3}


def bench(ranks: int, repeat: int, algorithm: str) -> dict[str, float]:
    t = time.perf_counter()
    c = cluster(ranks, algorithm)
    build_s = time.perf_counter() - t
    wl = data_parallel(DataParallelConfig(ranks=ranks))
    bound = bind(wl, c)
    runs = [once(bound) for _ in range(repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("compile_s", "run_s", "wall_s")}
    first = runs[0]
    return {
        "ranks": ranks, "ops": wl.num_ops, "events": first["events"],
        "events_per_op": first["events"] / wl.num_ops, "flows": first["flows"],
        "recomputes": first["recomputes"], "build_s": build_s, **med,
        "ops_per_s": wl.num_ops / med["wall_s"],
        "best_ops_per_s": wl.num_ops / min(r["wall_s"] for r in runs),
        "flows_per_s": first["flows"] / med["wall_s"],
        "step_ms": first["step_ms"],
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


COLS = ("ranks", "ops", "events", "events_per_op", "flows", "recomputes", "build_s",
        "compile_s", "run_s", "wall_s", "ops_per_s", "best_ops_per_s", "flows_per_s", "step_ms",
        "peak_rss_MB")
INTS = {"ranks", "ops", "events", "flows", "recomputes", "ops_per_s", "best_ops_per_s",
        "flows_per_s"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="*", default=[8, 64, 512, 4096])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--algorithm", default="auto", choices=["auto", "ring", "tree"],
                    help="force the collectives' algorithm (the topology's network.algorithm)")
    args = ap.parse_args()
    print(f"# load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    print(f"# {datetime.date.today()}  {platform.machine()}  {platform.python_version()}  "
          f"median of {args.repeat}, algorithm {args.algorithm}")
    print(" ".join(f"{c:>14}" for c in COLS))
    walls = []
    for n in args.ranks:
        r = bench(n, args.repeat, args.algorithm)
        walls.append(r["wall_s"])
        print(" ".join(f"{r[c]:>14,.0f}" if c in INTS else f"{r[c]:>14.3f}" for c in COLS),
              flush=True)
    if len(set(args.ranks)) > 1:
        print(f"# wall_s: {verdict(args.ranks, walls)}")
    print(f"# load average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Replay synthetic data-parallel workloads at growing scale and print throughput.

For each rank count: a DGX-H100-like cluster of ranks/8 servers (leaf-spine of 16 servers
per leaf beyond one leaf), a data-parallel step of a 12-layer transformer (43 ops per rank,
13 all-reduces over all ranks), and the simulation timed end to end (compile + run, not
workload generation or topology build). Prints ops simulated, SimPy events, flows, wall
seconds and ops/s.

    python bench/bench_replay.py                 # 8, 64, 512, 4096 ranks
    python bench/bench_replay.py --ranks 8 64    # a subset
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

from simcluster.placement import bind
from simcluster.sim.engine import Engine
from simcluster.topology.build import build
from simcluster.topology.schema import TopologySpec
from simcluster.workload.generate import DataParallelConfig, data_parallel


def cluster(ranks: int):
    servers = max(1, ranks // 8)
    spec = {
        "name": f"dgx-h100-x{servers}",
        "nodes": [{"name": "node", "count": servers, "accelerator": "H100-SXM5-80GB",
                   "accelerators": min(8, ranks), "fabric": "nvswitch",
                   "pcie": {"accelerators_per_switch": 1},
                   "nics": {"count": min(8, ranks), "bandwidth_GBps": 50}}],
    }
    if servers > 1:
        spec["fabric"] = ({"topology": "single-switch"} if servers <= 16 else
                          {"topology": "leaf-spine", "nodes_per_leaf": 16, "spines": 8})
    return build(TopologySpec.model_validate(spec), source=spec["name"])


def bench(ranks: int) -> dict[str, float]:
    c = cluster(ranks)
    wl = data_parallel(DataParallelConfig(ranks=ranks))
    bound = bind(wl, c)
    t0 = time.perf_counter()
    engine = Engine(bound)
    t1 = time.perf_counter()
    run = engine.run()
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KiB on Linux -> ~MB
    return {"ranks": ranks, "ops": wl.num_ops, "flows": run.info["flows"],
            "recomputes": run.info["rate_recomputations"], "compile_s": t1 - t0,
            "run_s": t2 - t1, "wall_s": t2 - t0, "ops_per_s": wl.num_ops / (t2 - t0),
            "step_ms": run.makespan_us / 1e3, "peak_rss_MB": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="*", default=[8, 64, 512, 4096])
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    cols = ("ranks", "ops", "flows", "recomputes", "compile_s", "run_s", "wall_s", "ops_per_s",
            "step_ms", "peak_rss_MB")
    print(" ".join(f"{c:>11}" for c in cols))
    for n in args.ranks:
        r = bench(n)
        print(" ".join(f"{r[c]:>11.0f}" if isinstance(r[c], int) or c in ("ops_per_s",)
                       else f"{r[c]:>11.3f}" for c in cols), flush=True)


if __name__ == "__main__":
    main()

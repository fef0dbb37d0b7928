"""Simulate one large all-reduce on rail-optimized DGX H100 fabrics of 1,024 and 8,192 GPUs.

Each case builds a SuperPOD-like cluster (scalable units of 32 servers, one leaf per rail per
unit, non-blocking spines), then simulates one all_reduce over every GPU with the ring
algorithm (8 rail channels: 8 x ranks coupled flows) and with the automatic choice. Prints
flows, wall seconds for planning + simulation (topology build shown apart), and the
simulated time and busbw. With two or more rank counts it ends with the fitted scaling
exponent of each algorithm's wall_s against ranks, and whether it is within N log N
(``scaling.py``; issue 19).

    python bench/bench_collectives.py                   # 1024 and 8192 ranks
    python bench/bench_collectives.py --ranks 1024 --size 1G --repeat 3   # median of 3
    python bench/bench_collectives.py --ranks 8192 --fabric fat-tree   # k-ary fat-tree instead
    python bench/bench_collectives.py --ranks 1024 2048 4096 8192 16384 --repeat 3  # exponent
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import time

from scaling import verdict  # bench/scaling.py: run as python bench/bench_collectives.py
from simcluster import collective_perf as cp
from simcluster.placement import bind
from simcluster.sim.engine import _COLLECTOR, Engine
from simcluster.topology.build import build
from simcluster.topology.schema import TopologySpec
from simcluster.workload.generate.collective import single_collective


def superpod(ranks: int):
    # 32 servers per scalable unit and 32 spines: each leaf has 32 x 400 Gb/s down and one
    # 400 Gb/s uplink to every spine (non-blocking).
    servers = ranks // 8
    spec = {
        "name": f"dgx-h100-x{servers}",
        "nodes": [{"name": "node", "count": servers, "preset": "dgx-h100"}],
        "fabric": {"topology": "rail-optimized", "nodes_per_leaf": 32, "spines": 32,
                   "oversubscription": 1.0},
    }
    return build(TopologySpec.model_validate(spec), source=spec["name"])


def fat_tree(ranks: int):
    # The smallest even k whose k-ary fat-tree has a port for every NIC (one per GPU).
    servers = ranks // 8
    k = 2
    while k**3 // 4 < ranks:
        k += 2
    spec = {
        "name": f"dgx-h100-x{servers}-fat-tree-k{k}",
        "nodes": [{"name": "node", "count": servers, "preset": "dgx-h100"}],
        "fabric": {"topology": "fat-tree", "k": k},
    }
    return build(TopologySpec.model_validate(spec), source=spec["name"])


def once(cluster, ranks: int, size: int, algorithm: str) -> dict[str, object]:
    network = cluster.network.model_copy(update={"algorithm": algorithm})
    from dataclasses import replace

    c = replace(cluster, network=network)
    wl = single_collective("all_reduce", size, ranks)
    with _COLLECTOR.running():
        t0 = time.perf_counter()
        with _COLLECTOR.compiling():
            engine = Engine(bind(wl, c))
        _COLLECTOR.freeze()
        run = engine.run()
        wall = time.perf_counter() - t0
    t = run.makespan_us
    return {"algorithm": run.timeline["algorithm"][0].as_py(), "flows": run.info["flows"],
            "wall_s": wall, "sim_us": t,
            "busbw": size / t / 1e3 * cp.bus_factor("all_reduce", ranks)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="*", default=[1024, 8192])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--fabric", default="rail-optimized", choices=["rail-optimized", "fat-tree"])
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; wall_s is their median")
    args = ap.parse_args()
    print(f"# load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    size = cp.parse_size(args.size)
    print(f"# {datetime.date.today()}  {platform.machine()}  Python {platform.python_version()}"
          f"  all_reduce of {size} B on {args.fabric}, median of {args.repeat}")
    print(f"{'ranks':>6} {'build_s':>8} {'algorithm':>14} {'flows':>8} {'wall_s':>8} "
          f"{'sim_time_us':>12} {'busbw_GBps':>10} {'peak_rss_MB':>11}")
    walls: dict[str, list[float]] = {"ring": [], "auto": []}
    for n in args.ranks:
        t0 = time.perf_counter()
        cluster = superpod(n) if args.fabric == "rail-optimized" else fat_tree(n)
        build_s = time.perf_counter() - t0
        for algo in ("ring", "auto"):
            runs = [once(cluster, n, size, algo) for _ in range(args.repeat)]
            r = {**runs[0], "wall_s": statistics.median(x["wall_s"] for x in runs)}
            walls[algo].append(r["wall_s"])
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{n:>6} {build_s:>8.2f} {r['algorithm']:>14} {r['flows']:>8} "
                  f"{r['wall_s']:>8.2f} {r['sim_us']:>12.1f} {r['busbw']:>10.1f} {rss:>11.0f}",
                  flush=True)
    if len(set(args.ranks)) > 1:
        for algo, times in walls.items():
            print(f"# wall_s, {algo}: {verdict(args.ranks, times)}")
    print(f"# load average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

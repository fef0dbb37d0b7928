"""Time the analyses and exports of a large replay against the replay itself.

Replays the 4,096-rank data-parallel step of bench_replay.py, then times each analysis
(breakdown, per-step breakdown, critical path, bottlenecks, summary) and export (run folder,
Perfetto JSON of 64 ranks). The target: all analyses together take less time than the replay.

    python bench/bench_analysis.py [--ranks 4096]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time

from bench_replay import cluster

from simcluster.analysis import (
    bottleneck_links,
    by_role,
    critical_path,
    rank_breakdown,
    step_breakdown,
    summarize,
)
from simcluster.export import write_run
from simcluster.export.perfetto import write_perfetto
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.workload.generate import DataParallelConfig, data_parallel


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=4096)
    args = ap.parse_args()
    bound = bind(data_parallel(DataParallelConfig(ranks=args.ranks)), cluster(args.ranks))
    run, replay_s = timed(lambda: simulate(bound))
    print(f"# {datetime.date.today()}  {platform.machine()}  Python {platform.python_version()}"
          f"  {args.ranks} ranks, {run.info['ops']:,} ops")
    print(f"{'replay (compile + run)':<34} {replay_s:8.3f} s")
    total = 0.0
    ranks, t = timed(lambda: rank_breakdown(run))
    rows = [("rank breakdown", t)]
    rows.append(("per-step breakdown", timed(lambda: step_breakdown(run))[1]))
    path, t = timed(lambda: critical_path(run))
    rows.append(("critical path", t))
    rows.append(("bottleneck links + by role", timed(
        lambda: (bottleneck_links(run), by_role(run)))[1]))
    summary, t = timed(lambda: summarize(run, ranks, path=path))
    rows.append(("summary (reusing the above)", t))
    for name, t in rows:
        total += t
        print(f"{name:<34} {t:8.3f} s")
    print(f"{'analyses, total':<34} {total:8.3f} s  ({total / replay_s:.0%} of the replay)")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'write run folder (9 Parquet + JSON)':<34} "
              f"{timed(lambda: write_run(run, tmp, summary, ranks, path))[1]:8.3f} s")
        print(f"{'Perfetto JSON (64 ranks)':<34} "
              f"{timed(lambda: write_perfetto(run, f'{tmp}/t.json'))[1]:8.3f} s")


if __name__ == "__main__":
    main()

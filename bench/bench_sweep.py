"""Sweep benchmark: GPT-3 175B on 1,024 GPUs, 336 configurations, on a local Dask cluster.

Runs `bench/sweeps/gpt3-175b-1024.yaml` (or --spec) into a fresh folder with `--workers`
processes and prints: points by status, wall time, per-point wall times (from
evaluations.log) and the peak RSS of the largest worker process.

    python bench/bench_sweep.py [--spec FILE] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from simcluster.sweep import load_sweep, run_sweep
from simcluster.topology import load_cluster

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=HERE / "sweeps" / "gpt3-175b-1024.yaml")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, help="results folder (default: a temp folder)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    sweep = load_sweep(args.spec, gpus_of=lambda p: len(load_cluster(p).accelerators))
    done = [0]

    def progress(n: int, total: int) -> None:
        if n - done[0] >= 25 or n == total:
            done[0] = n
            print(f"  {n}/{total} points, {time.perf_counter() - t0:.0f} s", flush=True)

    t0 = time.perf_counter()
    result = run_sweep(sweep, out, workers=args.workers, progress=progress)
    wall = time.perf_counter() - t0
    rows = pq.read_table(result.results).to_pylist()
    events = [json.loads(line) for line in (out / "evaluations.log").read_text().splitlines()]
    walls = {e["point_id"]: e["wall_s"] for e in events if e["event"] == "finish"}
    status = Counter(r["status"] for r in rows)
    sim = np.array([walls[r["point_id"]] for r in rows if r["status"] == "ok"])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"spec {args.spec.name}: {len(rows)} points ({dict(sorted(status.items()))}), "
          f"{result.computed} computed with {args.workers} workers")
    print(f"wall {wall:.0f} s ({60 * len(rows) / wall:.1f} points/min)")
    if len(sim):
        print(f"simulated points: {len(sim)}, wall per point median {np.median(sim):.1f} s, "
              f"max {sim.max():.1f} s, sum {sim.sum():.0f} s")
    print(f"peak RSS of the largest worker: {peak_mb:,.0f} MB")
    best = min((r for r in rows if r["status"] == "ok"), key=lambda r: r["step_time_us"])
    print("fastest: " + ", ".join(f"{k}={best[k]}" for k in
                                  ("tp", "pp", "micro_batch", "recompute", "zero"))
          + f": {best['step_time_us'] / 1e6:.2f} s, MFU {100 * best['mfu']:.1f}%")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

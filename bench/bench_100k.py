"""Generate and replay one training step of a Llama-3 405B-class model on ~100,000 H100 GPUs.

Issue 19's scale case: Llama 3.1 405B (``llama3-405b`` preset), TP 8, PP 16, DP 784 (100,352
GPUs), micro-batch 1, 16 micro-batches per replica (global batch 12,544 sequences of 8,192
tokens), 1F1B, full recompute (with selective recompute the first stage runs out of its
80 GB), sequence parallelism, distributed optimizer, bf16, folded (one data-parallel replica
in full, mirrors for the others). The cluster is 12,544 DGX H100 servers on the
rail-optimized fabric of ``bench_collectives.py`` (scalable units of 32 servers, one leaf per
rail per unit, 32 spines, non-blocking).

Each phase is timed on its own (wall and CPU), with the op and flow counts, peak RSS and the
load average; ``--dp`` scales the case down (``--dp 8``: 1,024 GPUs) to see how each phase
grows. ``--budget`` stops before a phase once the run has used that many seconds, and says so.

    python bench/bench_100k.py [--dp 784] [--micro-batches 16] [--budget 900]

One step per process (peak RSS is the process's): run it three times for a median.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import resource
import time
from typing import Any, Callable

from bench_collectives import superpod  # run as python bench/bench_100k.py
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.workload.generate.presets import PRESETS
from simcluster.workload.generate.transformer import TransformerConfig, transformer

TP, PP = 8, 16


def config(dp: int, micro_batches: int) -> TransformerConfig:
    return TransformerConfig(
        model=PRESETS["llama3-405b"], tp=TP, pp=PP, dp=dp, micro_batch=1,
        global_batch=dp * micro_batches, schedule="1f1b", recompute="full",
        sequence_parallel=True, zero=1, dtype="bf16", fold=True)


def timed(what: str, fn: Callable[[], Any], spent: dict[str, float]) -> Any:
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    spent[f"{what}_wall_s"] = time.perf_counter() - w
    spent[f"{what}_cpu_s"] = time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {what}: {spent[f'{what}_wall_s']:.1f} s wall, {spent[f'{what}_cpu_s']:.1f} s CPU;"
          f" peak RSS so far {rss:,.0f} MB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dp", type=int, default=784, help="data-parallel replicas (784: 100,352 "
                    "GPUs; each replica is TP 8 x PP 16 = 16 servers)")
    ap.add_argument("--micro-batches", type=int, default=16)
    ap.add_argument("--budget", type=float, default=900.0,
                    help="seconds after which no further phase starts")
    args = ap.parse_args()
    gpus = TP * PP * args.dp
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  "
          f"{platform.machine()}  Python {platform.python_version()}  load average "
          f"{os.getloadavg()}")
    print(f"Llama 3.1 405B, TP {TP} PP {PP} DP {args.dp} = {gpus:,} GPUs, "
          f"{args.micro_batches} micro-batches per replica, folded")
    spent: dict[str, float] = {}
    start = time.perf_counter()

    def left() -> bool:
        if time.perf_counter() - start > args.budget:
            print(f"  stopped: the budget of {args.budget:.0f} s is spent")
            return False
        return True

    c = timed("topology build", lambda: superpod(gpus), spent)
    if left():
        wl = timed("generate", lambda: transformer(config(args.dp, args.micro_batches)), spent)
        print(f"  ops {wl.num_ops:,} on {wl.num_ranks:,} ranks")
        if left():
            bound = timed("bind", lambda: bind(wl, c), spent)
            if left():
                run = timed("replay", lambda: simulate(bound), spent)
                print(f"  step {run.makespan_us / 1e6:.3f} s simulated; flows "
                      f"{run.info['flows']:,}; rate recomputations "
                      f"{run.info['rate_recomputations']:,}")
    total = time.perf_counter() - start
    print(f"total {total:.1f} s wall; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB; load average "
          f"at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()

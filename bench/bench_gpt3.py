"""Generate and replay one training step of GPT-3 175B on 1,024 GPUs; print the wall time.

The configuration is the issue's example: TP 8, PP 8, DP 16, micro-batch 1, global batch 1536,
interleaved 1F1B with 3 chunks per stage, selective recompute, sequence parallelism, bf16.
The cluster is 128 DGX-A100-like servers (8 A100-SXM4-80GB on NVSwitch, 8 x 200 Gb/s HDR
NICs), 16 servers per leaf switch and 8 spines (non-blocking), built in code.

The workload is folded (one data-parallel replica in full, mirrors for the other 15: see
``simcluster/workload/generate/transformer/``); ``--no-fold`` replays all 1,024 ranks in
full (about 16x the ops; minutes, and GBs of memory).

``--host-us`` adds each rank's host timeline (a launch per GPU op at that cost; with
``--cuda-graphs`` one per layer forward or backward): its cost in ops and replay time.

``--dp`` sets the data-parallel replicas (8 servers each; the global batch must be a
multiple of 8 x dp): with the fold, the ops stay those of replica 0 and only the mirrors grow.

    python bench/bench_gpt3.py [--repeat 3] [--no-fold] [--global-batch 256] [--host-us 30.2]
                               [--dp 64 --global-batch 1024]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import resource
import statistics
import time

from simcluster.analysis import rank_breakdown
from simcluster.analysis.training import training_summary
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology.build import build
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import TopologySpec
from simcluster.workload.generate.presets import PRESETS
from simcluster.workload.generate.transformer import TransformerConfig, transformer


def cluster(servers: int = 128) -> Cluster:
    spec = {
        "name": f"dgx-a100-x{servers}",
        "nodes": [{"name": "node", "count": servers, "accelerator": "A100-SXM4-80GB",
                   "accelerators": 8, "fabric": "nvswitch",
                   "pcie": {"accelerators_per_switch": 2},
                   "nics": {"count": 8, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "leaf-spine", "nodes_per_leaf": 16, "spines": 8},
    }
    return build(TopologySpec.model_validate(spec), source=spec["name"])


def config(fold: bool, global_batch: int = 1536, host_us: float = 0.0,
           cuda_graphs: bool = False, dp: int = 16) -> TransformerConfig:
    return TransformerConfig(
        model=PRESETS["gpt3-175b"], tp=8, pp=8, dp=dp, micro_batch=1, global_batch=global_batch,
        schedule="1f1b-interleaved:3", recompute="selective", sequence_parallel=True,
        dtype="bf16", fold=fold, host_us=host_us, cuda_graphs=cuda_graphs)


def once(c: Cluster, fold: bool, global_batch: int = 1536, host_us: float = 0.0,
         cuda_graphs: bool = False, dp: int = 16) -> dict[str, float]:
    gc.collect()
    t0 = time.perf_counter()
    wl = transformer(config(fold, global_batch, host_us, cuda_graphs, dp))
    t1 = time.perf_counter()
    run = simulate(bind(wl, c))
    t2 = time.perf_counter()
    ranks = rank_breakdown(run)
    tr = training_summary(run, wl, ranks, [c.specs[d] for d in c.accelerators[:wl.num_ranks]])
    assert tr is not None
    return {"generate_s": t1 - t0, "replay_s": t2 - t1, "wall_s": t2 - t0, "ops": wl.num_ops,
            "step_s": run.makespan_us / 1e6, "mfu": tr["mfu"],
            "tflops": tr["tflops_per_gpu"], "bubble": tr["pipeline"]["bubble"],
            "peak_GiB": tr["memory"]["peak_bytes"] / 2**30,
            "flows": run.info["flows"], "recomputes": run.info["rate_recomputations"],
            "link_load_rows": run.link_load.num_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--fold", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--global-batch", type=int, default=1536,
                    help="sequences per step (a multiple of 16 x 8; 256: a shorter step)")
    ap.add_argument("--host-us", type=float, default=0.0,
                    help="host us per launched op (0: no host timeline)")
    ap.add_argument("--cuda-graphs", action="store_true")
    ap.add_argument("--dp", type=int, default=16,
                    help="data-parallel replicas (8 servers each; 16: the 1,024-GPU case)")
    args = ap.parse_args()
    print(f"# load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    t = time.perf_counter()
    c = cluster(max(128, 8 * args.dp))
    build_s = time.perf_counter() - t
    runs = [once(c, args.fold, args.global_batch, args.host_us, args.cuda_graphs, args.dp)
            for _ in range(args.repeat)]
    r = runs[0]
    med = {k: statistics.median(x[k] for x in runs) for k in ("generate_s", "replay_s", "wall_s")}
    print(f"# {datetime.date.today()}  {platform.machine()}  Python {platform.python_version()}"
          f"  median of {args.repeat}")
    print(f"topology build {build_s:.2f} s; ops {r['ops']:,}; flows {r['flows']:,}; "
          f"rate recomputations {r['recomputes']:,}; link-load rows {r['link_load_rows']:,}")
    print(f"generate {med['generate_s']:.1f} s + replay {med['replay_s']:.1f} s = "
          f"{med['wall_s']:.1f} s wall (best {min(x['wall_s'] for x in runs):.1f} s)")
    print(f"step {r['step_s']:.2f} s, MFU {100 * r['mfu']:.1f}%, {r['tflops']:.0f} TFLOP/s per "
          f"GPU, bubble {100 * r['bubble']:.1f}%, peak memory {r['peak_GiB']:.1f} GiB")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"# load average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

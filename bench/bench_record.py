"""`simcluster record`: its speed and memory on a GPT-2-small step, and what the recorded
step replays to beside the generator's and beside a published measurement.

Needs the ``record`` extra (PyTorch). Three parts, each recording in a fresh process:

1. **speed**: the nanoGPT-style test script (``tests/workload/record/nanogpt_train.py``,
   GPT-2 small: 12 layers, hidden 768, 12 heads, vocabulary 50304, 1024 tokens, micro-batch
   12, two micro-batches accumulated, DDP, AdamW, bf16 autocast) recorded at ``--world-size``
   ranks (64): wall time and peak RSS of the recording process (median of ``--repeat``).
2. **recorded vs generated**: the same model, micro-batch 8, no accumulation, recorded at 8
   ranks (eager; ``--compile``: the model ``torch.compile``d, its memory-bound operators
   fused as Inductor would; ``--compile --fused-adamw``: as nanoGPT's ``train.py`` runs on
   GPUs; ``fuse="all"``: the eager script's whole step fused so) and generated
   (``generate transformer`` with the same dimensions, dp 8), all replayed on
   ``topologies/dgx-h100.yaml``: step time, FLOPs per step and compute by kind of rank 0.
3. **published**: nanoGPT's README (karpathy/nanoGPT, "efficiency notes", Dec 2022): GPT-2
   124M without ``torch.compile`` "~250ms / iter", with it "135ms / iter"; ``bench.py`` of
   that time: one GPU,
   batch 8 x 1024, fp16 autocast, attention written out (softmax of the masked scores), no
   clipping. Recorded as such (vocabulary 50257) at world size 1 and replayed on one
   A100-SXM4-40GB (nanoGPT's hardware: an 8X A100 40GB node).

Usage::

    python bench/bench_record.py --world-size 64 --repeat 3
    python bench/bench_record.py --skip-speed      # parts 2 and 3 only
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "workload" / "record" / "nanogpt_train.py"
TOPOLOGY = ROOT / "topologies" / "dgx-h100.yaml"

_CHILD = """
import json, resource, sys, time
from simcluster.workload import write_workload
from simcluster.workload.record import RecordOptions, record_script
out, world, gpus, device, fuse, host, *argv = sys.argv[1:]
t0 = time.perf_counter()
wl = record_script({script!r}, argv, RecordOptions(world_size=int(world),
                   gpus_per_node=int(gpus), device=device, fuse=fuse,
                   host=host == "host"))
wall = time.perf_counter() - t0
write_workload(wl, out)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"wall_s": wall, "rss_bytes": rss, "ops": wl.num_ops}}))
"""


def record(out: Path, world: int, gpus: int, device: str, argv: list[str],
           fuse: str = "compiled", host: bool = True) -> dict:
    """Record the script in a fresh process (with or without its host timeline); its wall
    time (s), peak RSS (bytes), ops."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(script=str(SCRIPT)), str(out), str(world),
         str(gpus), device, fuse, "host" if host else "no-host", *argv],
        capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rank0_flops(path: Path) -> float:
    import pyarrow.compute as pc

    from simcluster.workload import load_workload
    wl = load_workload(path)
    return float(pc.sum(wl.ops.filter(pc.equal(wl.ops["rank"], 0))["flops"]).as_py())


# GEMMs and attention: recorded aten ops (the ones with FLOPs), or the generator's op names.
_GEMM = re.compile(r"^aten::(mm|addmm|bmm|baddbmm|_scaled_dot_product)|"
                   r"\.(qkv|attn|proj|fc1|fc2)(\.|$)|^logits")


# Rank 0's other (memory-bound) kernels by what launches them.
_KINDS = (("fused", re.compile(r"^triton_")), ("casts", re.compile(r"^aten::_to_copy$")),
          ("DDP bucket", re.compile(r"^aten::(copy_|div_)$")),
          ("optimizer", re.compile(r"^aten::_(foreach|fused_adamw)")))


def other_kinds(result: Any) -> str:
    """Rank 0's compute outside GEMMs and attention by kind: count and busy ms each."""
    t = result.run.timeline.to_pylist()
    busy: dict[str, list[float]] = {k: [0, 0.0] for k, _ in (*_KINDS, ("rest", None))}
    for r in t:
        if r["rank"] != 0 or r["kind"] != "compute" or _GEMM.search(r["name"]):
            continue
        kind = next((k for k, pattern in _KINDS if pattern.search(r["name"])), "rest")
        busy[kind][0] += 1
        busy[kind][1] += r["end_us"] - r["start_us"]
    return ", ".join(f"{k} {int(n)} ops {us / 1e3:.2f} ms" for k, (n, us) in busy.items())


def split_compute(result: Any) -> tuple[tuple[int, float], tuple[int, float]]:
    """Rank 0's compute ops: (count, busy us) of GEMMs and attention, and of the rest."""
    t = result.run.timeline.to_pylist()
    rows = [r for r in t if r["rank"] == 0 and r["kind"] == "compute"]
    gemm = [r["end_us"] - r["start_us"] for r in rows if _GEMM.search(r["name"])]
    other = [r["end_us"] - r["start_us"] for r in rows if not _GEMM.search(r["name"])]
    return (len(gemm), sum(gemm)), (len(other), sum(other))


def speed(d: Path, world: int, repeat: int, host: bool) -> None:
    """Part 1: wall time and peak RSS of recording GPT-2 small at ``world`` ranks."""
    runs = [record(d / "gpt2.parquet", world, 8, "H100-SXM5-80GB",
                   ["--micro-batch", "12", "--accum", "2"], host=host)
            for _ in range(repeat)]
    wall = statistics.median(r["wall_s"] for r in runs)
    rss = statistics.median(r["rss_bytes"] for r in runs)
    each = ", ".join(f"{r['wall_s']:.1f}" for r in runs)
    print(f"record GPT-2 small, world size {world}: {runs[0]['ops']:,} ops, "
          f"wall {wall:.1f} s, peak RSS {rss / 2**30:.2f} GiB (median of {repeat}; "
          f"runs: {each} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true", help="leave part 1 out")
    ap.add_argument("--no-host", dest="host", action="store_false",
                    help="record without the host timeline (GPU streams only)")
    ap.add_argument("--host-us", type=float, default=0.0,
                    help="the generated step's host us per launched op (0: none)")
    args = ap.parse_args()
    import simcluster as sc

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if not args.skip_speed:
            speed(d, args.world_size, args.repeat, args.host)
        small = ["--micro-batch", "8", "--accum", "1"]
        record(d / "rec8.parquet", 8, 8, "H100-SXM5-80GB", small, host=args.host)
        record(d / "compiled8.parquet", 8, 8, "H100-SXM5-80GB", [*small, "--compile"],
               host=args.host)
        record(d / "train8.parquet", 8, 8, "H100-SXM5-80GB",
               [*small, "--compile", "--fused-adamw"], host=args.host)
        record(d / "all8.parquet", 8, 8, "H100-SXM5-80GB", small, fuse="all", host=args.host)
        subprocess.run([sys.executable, "-m", "simcluster", "generate", "transformer", "-o",
                        str(d / "gen8.parquet"), "--layers", "12", "--hidden", "768",
                        "--heads", "12", "--ffn", "3072", "--vocab", "50304", "--seq-len",
                        "1024", "--dp", "8", "--micro-batch", "8", "--host-us",
                        str(args.host_us)],
                       check=True, capture_output=True)
        for label, name in (("recorded", "rec8.parquet"), ("compiled", "compiled8.parquet"),
                            ("+fused AdamW", "train8.parquet"), ("fuse all", "all8.parquet"),
                            ("generated", "gen8.parquet")):
            result = sc.replay(d / name, TOPOLOGY)
            gemm, other = split_compute(result)
            print(f"{label:12s} GPT-2 small, dp 8, micro-batch 8 on dgx-h100: step "
                  f"{result.step_time_us / 1e3:.2f} ms, rank 0 {rank0_flops(d / name) / 1e12:.3f} "
                  f"TFLOP per step; rank 0 compute: GEMM + attention {gemm[0]} ops "
                  f"{gemm[1] / 1e3:.2f} ms, other {other[0]} ops {other[1] / 1e3:.2f} ms")
            print(f"             other by kind: {other_kinds(result)}")

        bench = ["--micro-batch", "8", "--accum", "1", "--attention", "manual", "--dtype",
                 "float16", "--clip", "0", "--vocab", "50257"]
        for how, extra, published in (("eager", [], 250), ("torch.compile", ["--compile"], 135)):
            record(d / "nanogpt.parquet", 1, 1, "A100-SXM4-40GB", [*bench, *extra],
                   host=args.host)
            result = sc.replay(d / "nanogpt.parquet")
            print(f"nanoGPT bench.py (GPT-2 124M, batch 8, fp16, {how}) on one A100-SXM4-40GB: "
                  f"predicted {result.step_time_us / 1e3:.1f} ms per iteration; published "
                  f"~{published} ms")


if __name__ == "__main__":
    main()

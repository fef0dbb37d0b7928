"""Predict the published Megatron-LM training throughput and compare.

For every row of ``megatron_published.csv`` (Narayanan et al. 2021 Table 1 on Selene DGX
A100; the 2020 Megatron-LM GPT-2 weak-scaling runs on DGX-2H V100 and DGX A100): generate the
configuration, replay it on a matching cluster, and compare the iteration time. Narayanan's
rows give TFLOP/s per GPU; their iteration time follows from the paper's eq. 3,
``F = 96 B s l h^2 (1 + s/(6h) + V/(16 l h))`` (which counts the recomputed forward), as
``F / (GPUs x TFLOP/s)``. The 2020 rows give the iteration time directly.

Assumptions for settings the rows omit (``docs/validation.md`` states them too):

- full activation recompute (eq. 3 counts it; both papers used it), no flash attention
  (2020-2021 kernels), fp16 mixed precision (fp16 gradients), dropout on;
- gradient all-reduce after the backward pass, as one all-reduce of the contiguous gradient
  buffer, and TP all-reduces in the backward pass, not overlapped with computation (the
  Megatron-LM of that time);
- micro-batch 1 with pipeline parallelism, else the whole per-replica batch (no gradient
  accumulation); the plain 1F1B schedule (no interleaving); the scatter/gather optimisation;
- the framework profile ``megatron-2021`` (``--framework``; ``none``: the generator's
  defaults): the 2020-2021 Megatron-LM kernels around the GEMMs and its vocab-parallel loss
  in PyTorch ops (``workload/generate/frameworks.py``, ``costs.py``);
- clusters: DGX A100 (8 GPUs on NVSwitch, 8 x 200 Gb/s HDR NICs, non-blocking leaf-spine
  fat-tree of 16 servers per leaf); 80 GB A100s for 2021 (Selene), 40 GB for the 2020 runs;
  DGX-2H for V100 (16 V100-SXM3 on NVSwitch, 8 x 100 Gb/s NICs).

    python bench/validate_megatron.py [--csv PATH] [--rows 0 1 2] [--framework NAME]
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology.build import build
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import TopologySpec
from simcluster.workload.generate.frameworks import settings_of
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import TransformerConfig, transformer

DEFAULT_CSV = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration"
               / "megatron_published.csv")


@dataclass(frozen=True)
class Row:
    """One published measurement."""

    table: str
    model: str
    heads: int
    hidden: int
    layers: int
    seq: int
    vocab: int
    tp: int
    pp: int
    dp: int
    gpus: int
    gpu: str
    global_batch: int
    micro_batch: int | None
    iteration_ms: float | None
    tflops: float

    def eq3_flops(self) -> float:
        """Narayanan et al. 2021 eq. 3: FLOPs per iteration, recompute included."""
        b, s, n, h, v = self.global_batch, self.seq, self.layers, self.hidden, self.vocab
        return 96.0 * b * s * n * h * h * (1 + s / (6 * h) + v / (16 * n * h))

    def measured_ms(self) -> float:
        if self.iteration_ms is not None:
            return self.iteration_ms
        return self.eq3_flops() / (self.gpus * self.tflops * 1e12) * 1e3


def read_rows(path: Path) -> list[Row]:
    """Rows of the CSV. The ``gpu`` field of the 2020 A100 rows holds an unquoted comma
    (``A100-SXM4 (DGX-A100, 2020)``): the surplus fields are joined back into it."""
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        g = header.index("gpu")
        for fields in reader:
            extra = len(fields) - len(header)
            if extra > 0:
                fields = fields[:g] + [",".join(fields[g:g + extra + 1])] + fields[g + extra + 1:]
            r = dict(zip(header, fields))
            rows.append(Row(
                table=r["table"], model=r["model"], heads=int(r["heads"]),
                hidden=int(r["hidden"]), layers=int(r["layers"]), seq=int(r["seq_len"]),
                vocab=int(r["vocab"]), tp=int(r["tp"]), pp=int(r["pp"]), dp=int(r["dp"]),
                gpus=int(r["gpus"]), gpu=r["gpu"], global_batch=int(r["global_batch"]),
                micro_batch=int(r["micro_batch"]) if r["micro_batch"] else None,
                iteration_ms=float(r["iteration_ms"]) if r["iteration_ms"] else None,
                tflops=float(r["tflops_per_gpu"])))
    return rows


def accelerator(row: Row) -> str:
    if row.gpu.startswith("V100"):
        return "V100-SXM3-32GB"
    return "A100-SXM4-40GB" if "2020" in row.gpu else "A100-SXM4-80GB"


@dataclass(frozen=True)
class Setup:
    """Overrides of the defaults: the micro-batch of rows that do not give one (None: the
    module docstring's choice); the framework profile (None: the generator's defaults)."""

    micro_batch: int | None = None
    framework: str | None = "megatron-2021"


def cluster(row: Row, net: Setup = Setup()) -> Cluster:
    """The cluster the row ran on (see the module docstring)."""
    v100 = row.gpu.startswith("V100")
    per = 16 if v100 else 8
    servers = max(1, math.ceil(row.gpus / per))
    node = {"name": "node", "count": servers, "accelerator": accelerator(row),
            "accelerators": min(per, row.gpus), "fabric": "nvswitch",
            "pcie": {"accelerators_per_switch": 2},
            "nics": {"count": min(8, row.gpus), "bandwidth_GBps": 12.5 if v100 else 25.0}}
    spec: dict = {"name": f"{'dgx2h' if v100 else 'dgx-a100'}-x{servers}", "nodes": [node]}
    if servers > 1:
        spec["fabric"] = ({"topology": "single-switch"} if servers <= 16 else
                          {"topology": "leaf-spine", "nodes_per_leaf": 16, "spines": 8})
    return build(TopologySpec.model_validate(spec), source=spec["name"])


def config(row: Row, micro_batches: int | None = None,
           net: Setup = Setup()) -> TransformerConfig:
    """The row's configuration: the assumptions of the module docstring, over the framework
    profile ``net.framework`` (``megatron-2021``: its kernels, loss and optimizer)."""
    micro_batch = net.micro_batch
    model = ModelSpec(name=f"gpt-{row.model}", layers=row.layers, hidden=row.hidden,
                      heads=row.heads, kv_heads=row.heads, ffn=4 * row.hidden, vocab=row.vocab,
                      seq_len=row.seq)
    mb = row.micro_batch or micro_batch or (1 if row.pp > 1 else row.global_batch // row.dp)
    batch = row.global_batch if micro_batches is None else micro_batches * mb * row.dp
    settings = settings_of(net.framework, {
        "tp": row.tp, "pp": row.pp, "dp": row.dp, "micro_batch": mb, "global_batch": batch,
        "recompute": "full", "dtype": "fp16", "flash_attention": False, "dp_overlap": False,
        "tp_overlap": False, "bucket_params": 10**15, "schedule": "1f1b",
        "name": f"{row.table}-{row.model}"})
    return TransformerConfig(model=model, **settings)


def simulate_row(row: Row, net: Setup, micro_batches: int | None = None
                 ) -> tuple[float, float, float, int]:
    """Makespan (ms), peak memory and capacity (GiB), ops of the row's replay."""
    wl = transformer(config(row, micro_batches, net))
    run = simulate(bind(wl, cluster(row, net)))
    peak = run.memory.column("peak_bytes").to_numpy().max()
    cap = run.memory.column("capacity_bytes").to_numpy().min()
    return run.makespan_us / 1e3, peak / 2**30, cap / 2**30, wl.num_ops


def estimated_ops(row: Row, net: Setup) -> int:
    """About how many ops the folded workload has (40 per layer and micro-batch)."""
    cfg = config(row, None, net)
    return row.tp * row.pp * cfg.micro_batches * (row.layers // row.pp) * 40


def predict(row: Row, net: Setup, max_ops: float) -> dict[str, float]:
    """Predicted iteration time. Rows whose workload would exceed ``max_ops`` ops are
    simulated with m1 = p and m2 = 3p/2 micro-batches per replica and extrapolated linearly
    to the row's m (1F1B adds one steady-state period per micro-batch; ``--check`` compares
    this with the full replay on smaller rows)."""
    t0 = time.perf_counter()
    cfg = config(row, None, net)
    m = cfg.micro_batches
    if estimated_ops(row, net) <= max_ops or row.pp == 1:
        ms, peak, cap, ops = simulate_row(row, net)
        how = "replayed"
    else:
        m1, m2 = row.pp, row.pp + max(1, row.pp // 2)
        t1, _, _, _ = simulate_row(row, net, m1)
        t2, peak, cap, ops = simulate_row(row, net, m2)
        ms = t2 + (m - m2) * (t2 - t1) / (m2 - m1)
        how = f"extrapolated from m={m1},{m2}"
    return {"ms": ms, "tflops": row.eq3_flops() / (row.gpus * ms * 1e-3) / 1e12,
            "peak_GiB": peak, "cap_GiB": cap, "ops": ops, "how": how,
            "micro_batch": cfg.micro_batch, "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--rows", type=int, nargs="*", help="row indices (default: all)")
    ap.add_argument("--max-ops", type=float, default=3e6,
                    help="extrapolate rows whose workload would have more ops")
    ap.add_argument("--micro-batch", type=int, default=None,
                    help="micro-batch of the rows that do not give one (sensitivity check)")
    ap.add_argument("--check", action="store_true",
                    help="for the chosen rows, compare extrapolation with the full replay")
    ap.add_argument("--framework", default="megatron-2021",
                    help="framework profile of the settings not stated ('none': the "
                         "generator's defaults, the table before issue 12)")
    args = ap.parse_args()
    rows = read_rows(args.csv)
    net = Setup(micro_batch=args.micro_batch,
                framework=None if args.framework == "none" else args.framework)
    if args.check:
        for i in args.rows or []:
            full = predict(rows[i], net, float("inf"))
            ext = predict(rows[i], net, 0)
            print(f"row {i}: replayed {full['ms']:.3f} ms, {ext['how']} {ext['ms']:.3f} ms "
                  f"(relative difference {ext['ms'] / full['ms'] - 1:+.1e})")
        return
    pick = args.rows if args.rows else range(len(rows))
    print("| # | source | model | GPUs | TP | PP | DP | batch | mb | GPU | measured ms | "
          "predicted ms | error | measured TFLOP/s | predicted TFLOP/s | peak mem GiB | how |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    errs = []
    results: dict[int, dict[str, float]] = {}
    for i in pick:
        row = rows[i]
        p = predict(row, net, args.max_ops)
        results[i] = p
        meas = row.measured_ms()
        err = p["ms"] / meas - 1
        errs.append((abs(err), i))
        print(f"| {i} | {row.table} | {row.model} | {row.gpus} | {row.tp} | {row.pp} | "
              f"{row.dp} | {row.global_batch} | {p['micro_batch']} | {accelerator(row)} | "
              f"{meas:,.0f} | {p['ms']:,.0f} | {100 * err:+.1f}% | {row.tflops:.1f} | "
              f"{p['tflops']:.1f} | {p['peak_GiB']:.1f} / {p['cap_GiB']:.0f} | {p['how']} |",
              flush=True)
    mape = 100 * sum(e for e, _ in errs) / len(errs)
    worst = max(errs)
    print(f"\nMAPE {mape:.1f}% over {len(errs)} rows; worst row #{worst[1]} "
          f"({100 * worst[0]:.1f}%)")
    print_ranking(rows, results)


def ranks(values: list[float]) -> list[int]:
    """Rank of each value, 0 for the largest."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    out = [0] * len(values)
    for r, i in enumerate(order):
        out[i] = r
    return out


def print_ranking(rows: list[Row], results: dict[int, dict[str, float]]) -> None:
    """Per model with several settings: do predicted and published TFLOP/s per GPU order the
    settings the same way? And the rank correlation over all rows."""
    by_model: dict[str, list[int]] = {}
    for i in results:
        by_model.setdefault(rows[i].model, []).append(i)
    print("\nRanking of settings by TFLOP/s per GPU, per model with several settings:")
    agree = total = 0
    for model, idx in sorted(by_model.items()):
        if len(idx) < 2:
            continue
        meas = [rows[i].tflops for i in idx]
        pred = [results[i]["tflops"] for i in idx]
        ok = ranks(meas) == ranks(pred)
        agree += ok
        total += 1
        desc = ", ".join(f"#{i} {rows[i].gpus} GPUs {accelerator(rows[i])} TP{rows[i].tp} "
                         f"DP{rows[i].dp}" for i in sorted(idx, key=lambda i: -rows[i].tflops))
        got = [idx[j] for j in sorted(range(len(idx)), key=lambda j: -pred[j])]
        print(f"- {model}: published order {desc}; predicted order "
              f"{'the same' if ok else f'differs: {got}'}")
    print(f"{agree} of {total} models ranked the same")
    idx = sorted(results)
    if len(idx) > 2:
        rm = ranks([rows[i].tflops for i in idx])
        rp = ranks([results[i]["tflops"] for i in idx])
        n = len(idx)
        rho = 1 - 6 * sum((a - b) ** 2 for a, b in zip(rm, rp)) / (n * (n * n - 1))
        print(f"Spearman rank correlation of TFLOP/s per GPU over {n} rows: {rho:.2f}")


if __name__ == "__main__":
    main()

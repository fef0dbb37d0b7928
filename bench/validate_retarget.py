"""Retargeting A100 -> H100: is the predicted speed-up what the compute model and the
published GEMM and HBM figures say it should be?

One generated training step (Llama-2 7B, 32 layers, seq 4096, 8 GPUs data-parallel, ZeRO-1,
bf16, micro-batch 1) replays on the Azure ND A100 v4 server (8 x A100-SXM4-80GB), then with
`--device H100-SXM5-80GB` on the same server (the accelerators change, the links stay), then
on a DGX H100 (H100s with their own NVLink 4 and NICs). For rank 0 it sums the compute-op
time by kind of op and prints the speed-ups next to three references:

- the HBM ratio: measured STREAM Copy, 2.90 TB/s (ND H100 v5) over 1.61 TB/s (ND A100 v4);
- the dense bf16 peak ratio from the datasheets: 989 / 312 TFLOP/s;
- the compute model's ratio for a large (8192^3) bf16 GEMM.

    python bench/validate_retarget.py [--markdown]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from simcluster.analysis import mean_step_time_us
from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.sim.compute import ComputeModel
from simcluster.topology import load_cluster
from simcluster.topology.catalog import ACCELERATORS
from simcluster.topology.transform import with_device
from simcluster.workload.generate.registry import generate

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"preset": "llama2-7b", "tp": 1, "pp": 1, "dp": 8, "micro_batch": 1,
          "global_batch": 8, "zero": 1, "dtype": "bf16"}
KINDS = {"GEMMs (qkv, proj, fc1, fc2, LM head)": r"\.(qkv|proj|fc1|fc2)|^logits",
         "attention core (flash)": r"\.attn",
         "memory-bound (norms, activations, residuals, embedding, loss, optimizer)": r"."}
STREAM_A100, STREAM_H100 = 1.61, 2.90  # TB/s, ../shared/data/calibration (Azure pages)


def by_kind(run) -> dict[str, float]:
    """Compute-op time of rank 0 by kind (us); each op counts under the first match."""
    t = run.timeline
    t = t.filter(pc.and_(pc.equal(t["rank"], 0), pc.equal(t["kind"], "compute")))
    dur = (t["end_us"].to_numpy() - t["start_us"].to_numpy())
    out = dict.fromkeys(KINDS, 0.0)
    for name, d in zip(t["name"].to_pylist(), dur):
        for kind, pattern in KINDS.items():
            if re.search(pattern, name):
                out[kind] += float(d)
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    wl = generate("transformer", PARAMS)
    a100 = load_cluster(ROOT / "topologies" / "azure-nd-a100-v4.yaml")
    clusters = {"A100 (ND A100 v4)": a100,
                "H100 on the same server (--device)": with_device(a100, "H100-SXM5-80GB"),
                "DGX H100 (dgx-h100.yaml)": load_cluster(ROOT / "topologies" / "dgx-h100.yaml")}
    runs = {k: simulate(bind(wl, c), SimOptions.for_workload(wl)) for k, c in clusters.items()}
    base = "A100 (ND A100 v4)"
    kinds = {k: by_kind(r) for k, r in runs.items()}
    steps = {k: mean_step_time_us(r) for k, r in runs.items()}
    model = ComputeModel()
    n = 8192.0
    gemm = [model.roofline_us(np.array([2 * n**3]), np.array([6 * n * n]), "bf16",
                              ACCELERATORS[m])[0] for m in ("A100-SXM4-80GB", "H100-SXM5-80GB")]
    refs = {"HBM (STREAM Copy, measured)": STREAM_H100 / STREAM_A100,
            "dense bf16 peak (datasheets)": 989.0 / 312.0,
            "compute model, 8192^3 bf16 GEMM": gemm[0] / gemm[1]}
    print("| | " + " | ".join(clusters) + " |")
    print("|---|" + "---:|" * len(clusters))
    for kind in KINDS:
        cells = [f"{kinds[k][kind] / 1e3:,.1f} ms" + (
            "" if k == base else f" (x{kinds[base][kind] / kinds[k][kind]:.2f})")
            for k in clusters]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    total = {k: sum(v.values()) for k, v in kinds.items()}
    print("| compute, total | " + " | ".join(
        f"{total[k] / 1e3:,.1f} ms" + ("" if k == base else f" (x{total[base] / total[k]:.2f})")
        for k in clusters) + " |")
    print("| step | " + " | ".join(
        f"{steps[k] / 1e3:,.1f} ms" + ("" if k == base else f" (x{steps[base] / steps[k]:.2f})")
        for k in clusters) + " |")
    print()
    print("| reference speed-up, H100 over A100 | |")
    print("|---|---:|")
    for name, value in refs.items():
        print(f"| {name} | x{value:.2f} |")


if __name__ == "__main__":
    main()

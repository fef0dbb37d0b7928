"""The compute model against real kernels: predicted vs recorded duration per kernel class.

For every recorded PyTorch-profiler trace in ../shared/data/kineto whose kernels carry FLOPs
or bytes (the importer derives them from the shapes of their aten ops), every such compute op
is predicted by the calibrated compute model on the recording device and compared with its
recorded duration. Per trace and class: kernels, recorded and predicted time (sums), the error
of the sums (what a GPU-bound step would see) and the per-kernel MAPE and mean signed error.
No parameter is fitted here. The GEMM parameters were fitted on the Azure cuBLASLt and
STREAM tables; the recorded kernel classes' own parameters on the A100 traces here
(``bench/fit_kernel_classes.py``), so the table of the A100 traces is the fit and the last
table sums only the traces on other GPUs, which no parameter was fitted on (held out).

Then the GPU-inclusive step of each trace (first to last device op of a step on the rank,
mean over steps; ``analysis/fidelity.py``) as recorded, replayed with the recorded kernel
durations, and replayed with every kernel that carries FLOPs or bytes predicted
(``simcluster replay TRACE --predict-kernels``), with the share of the recorded kernel time
that the model predicts.

    python bench/validate_kernels.py [--markdown]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

import numpy as np
import pyarrow as pa

import simcluster as sc
from simcluster.analysis.kernels import error_by_class, predicted_vs_recorded
from simcluster.errors import SimclusterError
from simcluster.topology.catalog import lookup

ROOT = Path(__file__).resolve().parents[1]
KINETO = ROOT.parent / "shared" / "data" / "kineto"


def traces() -> list[Path]:
    """The Kineto traces (single files and the multi-rank DLRM folder)."""
    return [*sorted((KINETO / "single-rank").glob("*.json.gz")), KINETO / "dlrm-v100-8rank"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    print(f"# {datetime.date.today()}  {platform.machine()}  Python "
          f"{platform.python_version()}  load {os.getloadavg()[0]:.2f}")
    every, devices, steps = [], [], []
    for path in traces():
        try:
            wl = sc.load_workload(path)
        except SimclusterError as exc:
            print(f"\n{path.name}: not imported ({exc})")
            continue
        steps.append((path.name, wl))
        spec = lookup(wl.meta.recorded_device) if wl.meta.recorded_device else None
        if spec is None:
            print(f"\n{path.name}: recorded device {wl.meta.recorded_device!r} not in the "
                  "catalog; skipped")
            continue
        pairs = predicted_vs_recorded(wl, spec)
        if pairs.num_rows == 0:
            print(f"\n{path.name} ({spec.model}): no kernel with FLOPs or bytes; skipped")
            continue
        every.append(pairs)
        devices.append(spec)
        show(f"{path.name} ({spec.model})", error_by_class(pairs), args.markdown)
    if every:
        show("all traces", error_by_class(pa.concat_tables(every)), args.markdown)
        fitted = [p for p, spec in zip(every, devices) if "A100" in spec.model]
        show("the A100 traces (the recorded kernel classes' parameters are fitted on them)",
             error_by_class(pa.concat_tables(fitted)), args.markdown)
        held = [p for p, spec in zip(every, devices) if "A100" not in spec.model]
        show("traces no parameter was fitted on (not A100: held out)",
             error_by_class(pa.concat_tables(held)), args.markdown)
    show_steps(steps, args.markdown)


def gpu_step_us(wl: sc.Workload, predict: bool) -> tuple[float, float]:
    """Mean over the recorded steps of the GPU-inclusive step: (recorded, simulated), us."""
    fid = sc.Scenario(wl, predict_kernels=predict).run().fidelity
    col = {c: fid.column(c).to_numpy(zero_copy_only=False).astype(float)
           for c in ("recorded_gpu_us", "simulated_gpu_us")}
    return float(np.nanmean(col["recorded_gpu_us"])), float(np.nanmean(col["simulated_gpu_us"]))


def show_steps(steps: list[tuple[str, sc.Workload]], markdown: bool) -> None:
    """Per trace, the GPU-inclusive step recorded, replayed as recorded and with every
    kernel that has work predicted."""
    head = ("trace", "kernel time predicted", "recorded GPU step (ms)", "replay, recorded "
            "kernels", "replay, kernels predicted")
    print("\n**GPU-inclusive step (mean over steps)**\n" if markdown else
          "\nGPU-inclusive step (mean over steps)")
    if markdown:
        print("| " + " | ".join(head) + " |\n|---|" + "---:|" * (len(head) - 1))
    for name, wl in steps:
        work = wl.meta.extra.get("kineto", {}).get("kernel_work", {})
        share = (work.get("with_work_us", 0.0) / work["kernel_us"]
                 if work.get("kernel_us") else float("nan"))
        rec, as_recorded = gpu_step_us(wl, predict=False)
        _, predicted = gpu_step_us(wl, predict=True)
        cells = (name, f"{100 * share:.0f} %", f"{rec / 1e3:.2f}",
                 f"{as_recorded / 1e3:.2f} ({100 * (as_recorded / rec - 1):+.1f} %)",
                 f"{predicted / 1e3:.2f} ({100 * (predicted / rec - 1):+.1f} %)")
        print("| " + " | ".join(cells) + " |" if markdown else "  ".join(cells))


def show(title: str, table: pa.Table, markdown: bool) -> None:
    """One trace's per-class table."""
    rows = table.to_pylist()
    if markdown:
        print(f"\n**{title}**\n")
        print("| class | kernels | recorded (ms) | predicted (ms) | time error | MAPE | "
              "mean signed |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['class']} | {r['kernels']:,} | {r['recorded_us'] / 1e3:.2f} | "
                  f"{r['predicted_us'] / 1e3:.2f} | {100 * r['time_error']:+.1f} % | "
                  f"{100 * r['mape']:.0f} % | {100 * r['mean_signed']:+.0f} % |")
        return
    print(f"\n{title}")
    print(f"{'class':<12} {'kernels':>8} {'rec ms':>9} {'pred ms':>9} {'time err':>9} "
          f"{'MAPE':>7} {'signed':>7}")
    for r in rows:
        print(f"{r['class']:<12} {r['kernels']:>8,} {r['recorded_us'] / 1e3:>9.2f} "
              f"{r['predicted_us'] / 1e3:>9.2f} {100 * r['time_error']:>+8.1f}% "
              f"{100 * r['mape']:>6.0f}% {100 * r['mean_signed']:>+6.0f}%")


if __name__ == "__main__":
    main()

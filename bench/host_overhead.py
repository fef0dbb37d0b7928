"""The host's cost per launched kernel, measured on the real Kineto traces in ``../shared``.

For every trace: the kernel-launch runtime calls (``cudaLaunchKernel``, ``hipLaunchKernel``
and their variants) on each launching thread, their duration, the gap between one launch and
the next on the same thread, and how many aten operators (``cpu_op`` events, nested ones
included: each is one trip through the dispatcher) start inside that gap. A gap that holds a
blocking runtime call (one that lasts over ``--blocking-us``, 100 us: a synchronize, a
copy to the host) is the host waiting for the GPU, not issuing work, and is left out.

The model (``simcluster.workload.host``): a gap costs ``launch_us + dispatch_us * aten ops``.
It is fitted (least absolute deviations) on the FIT traces and checked on the CHECK traces:
the median gap between launches, predicted vs measured, trace by trace. Columns: launches;
``call``, the median launch call (us); ``gap``, the median kept gap (us); ``ops/l``, aten ops
per kept gap; ``model``, the model's median gap (us).

Usage::

    python bench/host_overhead.py [--data ../shared/data/kineto] [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_NAMES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
                "hipLaunchKernel", "hipExtModuleLaunchKernel", "hipModuleLaunchKernel")
RUNTIME_CATS = ("cuda_runtime", "cuda_driver", "runtime")
OP_CATS = ("cpu_op", "operator")
# Which traces fit the model, which only check it (one file stands for a rank set).
FIT = ("single-rank/a100-2rank-rank0-nccl", "single-rank/v100-resnet50-1gpu",
       "dlrm-v100-8rank/rank-0", "dlrm-v100-8rank/rank-1", "dlrm-v100-8rank/rank-2",
       "dlrm-v100-8rank/rank-3")
CHECK = ("single-rank/a100-16rank-rank0-5streams", "single-rank/v100-2rank-rank1",
         "single-rank/sampled-128rank-rank0", "single-rank/mi250-rocm-minitoy",
         "dlrm-v100-8rank/rank-4", "dlrm-v100-8rank/rank-5", "dlrm-v100-8rank/rank-6",
         "dlrm-v100-8rank/rank-7")
GPUS = {"dlrm": "V100", "a100": "A100", "v100": "V100", "mi250": "MI250", "sampled": "?"}


@dataclass
class TraceHost:
    """One trace's launches: counts (launches, aten ops in the kept gaps), medians in us,
    and the kept gaps as (gap us, aten ops) for the fit."""

    trace: str
    gpu: str
    launches: int
    launch_call_us: float
    gap_us: float
    ops_per_launch: float
    kept: int
    gaps: list[tuple[float, int]]


def _events(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        data = json.load(fh)
    events = data["traceEvents"] if isinstance(data, dict) else data
    return [e for e in events if e.get("ph") == "X" and "ts" in e]


def measure(path: Path, key: str, blocking_us: float) -> TraceHost:
    """The launches of one trace (module docstring)."""
    events = _events(path)
    cat = [str(e.get("cat", "")).lower() for e in events]
    launch = [e for e, c in zip(events, cat) if c in RUNTIME_CATS and e["name"] in LAUNCH_NAMES]
    blocking = [e for e, c in zip(events, cat)
                if c in RUNTIME_CATS and float(e.get("dur", 0)) > blocking_us]
    ops = [e for e, c in zip(events, cat) if c in OP_CATS]
    gaps: list[tuple[float, int]] = []
    for tid in sorted({e["tid"] for e in launch}, key=str):
        ts = np.sort(np.array([float(e["ts"]) for e in launch if e["tid"] == tid]))
        op_ts = np.sort(np.array([float(e["ts"]) for e in ops if e["tid"] == tid]))
        block = np.sort(np.array([float(e["ts"]) for e in blocking if e["tid"] == tid]))
        for a, b in zip(ts[:-1], ts[1:]):
            if np.searchsorted(block, a, "right") < np.searchsorted(block, b, "left"):
                continue  # the host waited for the GPU inside this gap
            n_ops = int(np.searchsorted(op_ts, b, "right") - np.searchsorted(op_ts, a, "right"))
            gaps.append((float(b - a), n_ops))
    gpu = next((g for k, g in GPUS.items() if k in key), "?")
    return TraceHost(
        trace=key, gpu=gpu, launches=len(launch),
        launch_call_us=statistics.median(float(e.get("dur", 0)) for e in launch),
        gap_us=statistics.median(g for g, _ in gaps) if gaps else float("nan"),
        ops_per_launch=sum(n for _, n in gaps) / max(len(gaps), 1), kept=len(gaps), gaps=gaps)


def fit(traces: list[TraceHost], rounds: int = 50) -> tuple[float, float]:
    """``(launch_us, dispatch_us)``: the least-absolute-deviation line through every kept
    gap of ``traces`` (each trace weighted equally), by iteratively reweighted least squares.
    Absolute, not squared, deviations: a gap where Python does other work (data loading,
    the optimizer's loop, the profiler's own bookkeeping) is hundreds of us long and would
    pull a squared fit off the typical gap."""
    rows, target, weight = [], [], []
    for t in traces:
        for g, n in t.gaps:
            rows.append((1.0, float(n)))
            target.append(g)
            weight.append(1.0 / len(t.gaps))
    a, y, w0 = np.array(rows), np.array(target), np.array(weight)
    coef = np.array([float(np.median(y)), 0.0])
    for _ in range(rounds):
        w = np.sqrt(w0 / np.maximum(np.abs(y - a @ coef), 1e-3))
        coef, *_ = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)
    return float(coef[0]), float(coef[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "kineto")
    ap.add_argument("--blocking-us", type=float, default=100.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    found = {k: measure(args.data / f"{k}.json.gz", k, args.blocking_us)
             for k in FIT + CHECK if (args.data / f"{k}.json.gz").exists()}
    fitted = [found[k] for k in FIT if k in found]
    launch_us, dispatch_us = fit(fitted)
    print(f"fit on {len(fitted)} traces: launch_us = {launch_us:.2f}, "
          f"dispatch_us = {dispatch_us:.2f} per aten op")
    print(f"{'trace':42} {'set':5} {'gpu':5} {'launch':>6} {'call':>6} {'gap':>6} "
          f"{'ops/l':>5} {'model':>6} {'err %':>6}")
    out = []
    for k, t in found.items():
        busy = statistics.median(g for g, _ in t.gaps)
        pred = statistics.median(launch_us + dispatch_us * n for _, n in t.gaps)
        err = 100.0 * (pred - busy) / busy if busy else float("nan")
        role = "fit" if k in FIT else "check"
        print(f"{k:42} {role:5} {t.gpu:5} {t.launches:6d} {t.launch_call_us:6.1f} "
              f"{t.gap_us:6.1f} {t.ops_per_launch:5.1f} {pred:6.1f} "
              f"{err:+6.1f}")
        row = {k2: v for k2, v in asdict(t).items() if k2 != "gaps"}
        out.append({**row, "set": role, "model_gap_us": pred})
    check = [r for r in out if r["set"] == "check"]
    if check:
        errs = [100.0 * (r["model_gap_us"] - r["gap_us"]) / r["gap_us"] for r in check]
        print(f"check traces: MAPE {statistics.mean(map(abs, errs)):.1f} %, mean signed "
              f"{statistics.mean(errs):+.1f} %")
    if args.json:
        args.json.write_text(json.dumps({"launch_us": launch_us, "dispatch_us": dispatch_us,
                                         "traces": out}, indent=1) + "\n")


if __name__ == "__main__":
    main()

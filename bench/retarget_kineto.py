"""Recorded PyTorch profiler traces moved to other GPUs: what the compute model predicts.

For each real trace under ../shared/data/kineto that records shapes (``record_shapes=True``):

- the share of its GPU compute kernels (and of their recorded time) that get FLOPs/bytes from
  the aten op that launched them (``workload/kineto/work.py``); the others keep their
  recorded durations on any GPU;
- the simulated ProfilerStep (mean over the steps and ranks) on the recorded GPU, on an
  A100-SXM4-80GB and on an H100-SXM5-80GB, and its ratio to the recorded GPU's;
- the GPU compute time per step (kernels and memsets, summed; mean over ranks) on each, and
  its ratio: the part of the change the GPU makes before the host and communication decide
  how much of it reaches the step.

Single-rank traces replay on one server of the GPU (``recorded_cluster``; other GPUs via
``with_device``, as ``replay --device`` does); the 8-rank DLRM on
``topologies/dgx1-v100.yaml`` with its GPUs swapped (links unchanged). Recorded durations are
retargeted by ``ComputeModel(recorded_spec=...)``, as ``simcluster replay`` does. These are
model predictions, not measurements: no trace here was recorded on the other GPUs.

Usage::

    python bench/retarget_kineto.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from simcluster.analysis.fidelity import step_fidelity
from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.sim.compute import ComputeModel
from simcluster.topology import load_cluster
from simcluster.topology.catalog import lookup
from simcluster.topology.cluster import Cluster
from simcluster.topology.recorded import recorded_cluster
from simcluster.topology.transform import with_device
from simcluster.workload.kineto import import_kineto
from simcluster.workload.model import Workload

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("A100-SXM4-80GB", "H100-SXM5-80GB")
TRACES = ("dlrm-v100-8rank", "single-rank/a100-16rank-rank0-5streams",
          "single-rank/v100-2rank-rank1", "single-rank/sampled-128rank-rank0",
          "single-rank/v100-resnet50-1gpu", "single-rank/mi250-rocm-minitoy")


def _load(data: Path, name: str) -> tuple[Workload, Cluster]:
    path = data / "kineto" / name
    if name == "dlrm-v100-8rank":
        return import_kineto(path), load_cluster(ROOT / "topologies" / "dgx1-v100.yaml")
    wl = import_kineto(path.with_name(path.name + ".json.gz"))
    return wl, recorded_cluster(wl.meta.recorded_device, wl.num_ranks)


def _replay(wl: Workload, cluster: Cluster) -> tuple[float, float]:
    """Mean simulated ProfilerStep (ms) and GPU compute time per step and rank (ms)."""
    opts = SimOptions(compute=ComputeModel(recorded_spec=lookup(wl.meta.recorded_device)))
    run = simulate(bind(wl, cluster), opts)
    steps = step_fidelity(run, wl).column("simulated_us").to_numpy()
    t = run.timeline.filter(pc.equal(run.timeline.column("kind"), "compute"))
    busy = pc.sum(pc.subtract(t.column("end_us"), t.column("start_us"))).as_py() or 0.0
    n_steps = len(wl.meta.extra["kineto"]["ranks"]["0"]["steps"])
    return float(np.mean(steps)) / 1e3, busy / n_steps / wl.num_ranks / 1e3


def measure(data: Path) -> list[dict]:
    rows = []
    for name in TRACES:
        wl, cluster = _load(data, name)
        work = wl.meta.extra["kineto"]["kernel_work"]
        row = {"trace": name.removeprefix("single-rank/"), "gpu": wl.meta.recorded_device,
               "kernels": f"{work['with_work']:,} / {work['kernels']:,}",
               "time_share": work["with_work_us"] / work["kernel_us"]}
        row["step"], row["busy"] = _replay(wl, cluster)
        for dev in TARGETS:
            step, busy = _replay(wl, with_device(cluster, dev))
            row[dev] = (step, step / row["step"], busy, busy / row["busy"])
        rows.append(row)
    return rows


def _markdown(header: list[str], align: str, rows: list[list[str]]) -> str:
    """A Markdown table; ``align``: one letter a column, ``l`` left or ``r`` right."""
    rule = ["---" if c == "l" else "---:" for c in align]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *rows])


def _change(x: tuple[float, float, float, float], step: bool) -> str:
    return (f"{x[0]:.3f} ({100 * (x[1] - 1):+.3f}%)" if step else f"{x[2]:.2f} ({x[3]:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    rows = measure(args.data)
    print(_markdown(
        ["trace", "recorded GPU", "kernels with FLOPs/bytes", "share of kernel time",
         "step on recorded GPU (ms)", "on A100-80GB (ms, change)", "on H100 (ms, change)"],
        "llrrrrr",
        [[r["trace"], r["gpu"], r["kernels"], f"{100 * r['time_share']:.1f}%",
          f"{r['step']:.3f}", *(_change(r[d], True) for d in TARGETS)] for r in rows]))
    print("\nGPU compute time per step (kernels and memsets; ms, ratio to the recorded GPU):\n")
    print(_markdown(
        ["trace", "on recorded GPU", "on A100-80GB", "on H100"], "lrrr",
        [[r["trace"], f"{r['busy']:.2f}", *(_change(r[d], False) for d in TARGETS)]
         for r in rows]))


if __name__ == "__main__":
    main()

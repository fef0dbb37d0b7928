"""The compute calibration on the recorded traces: fit on some, check on others, and replay.

For each case (a GPU, the traces fitted on, the traces held out), runs what
``simcluster calibrate FIT... --check HELD... -t TOPOLOGY -o calibrated.yaml`` does, prints
the parameters and the per-class errors on the fitted and held-out kernels, then replays
every trace with ``--predict-kernels`` on the bundled topology and on the calibrated one and
prints the simulated against the recorded step (ProfilerStep) and GPU compute time (HTA's
compute time: the kernel time of compute kernels, summed over ranks and steps).

    python bench/calibrate_trace.py

Needs ../shared/data. Nothing is timed; the figures go into docs/validation.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow.compute as pc

import simcluster as sc
from simcluster.analysis import hta
from simcluster.calibrate.compute import calibrate_compute, read_traces
from simcluster.calibrate.kernel_output import compute_yaml
from simcluster.calibrate.kernel_quality import by_class
from simcluster.topology import load_cluster

ROOT = Path(__file__).resolve().parents[1]
KINETO = ROOT.parent / "shared" / "data" / "kineto"
ONE = KINETO / "single-rank"
# (name, topology, fitted traces, held-out traces)
CASES = (
    ("A100", ROOT / "topologies" / "azure-nd-a100-v4.yaml",
     [ONE / "a100-16rank-rank0-5streams.json.gz"], [ONE / "sampled-128rank-rank0.json.gz"]),
    ("V100", ROOT / "topologies" / "dgx1-v100.yaml",
     [ONE / "v100-resnet50-1gpu.json.gz"],
     [ONE / "v100-2rank-rank1.json.gz", KINETO / "dlrm-v100-8rank"]),
    ("V100 (fit on the transformer)", ROOT / "topologies" / "dgx1-v100.yaml",
     [ONE / "v100-2rank-rank1.json.gz"],
     [ONE / "v100-resnet50-1gpu.json.gz", KINETO / "dlrm-v100-8rank"]),
)


def compute_ms(run: sc.Run) -> float:
    """HTA's compute time summed over ranks, ms."""
    return float(pc.sum(hta.temporal_breakdown(run).column("compute_us")).as_py()) / 1e3


def replay_line(trace: Path, topology: Path) -> tuple[float, float, float, float]:
    """(recorded step ms, simulated step ms, recorded compute ms, simulated compute ms)."""
    result = sc.replay(trace, topology, predict_kernels=True)
    fid = result.fidelity
    rec = float(pc.sum(fid.column("recorded_us")).as_py()) / 1e3
    sim = float(pc.sum(fid.column("simulated_us")).as_py()) / 1e3
    assert result.recorded is not None
    return rec, sim, compute_ms(result.recorded), compute_ms(result.run)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    for name, topology, fit, held in CASES:
        cluster = load_cluster(topology)
        fits = calibrate_compute(cluster, read_traces(fit, held))
        print(f"\n## {name}: fitted on {', '.join(p.name for p in fit)}; held out "
              f"{', '.join(p.name for p in held)} (and the last step of each fitted trace)")
        for f in fits:
            for p in f.params:
                print(f"- {p.knob.name}: {p.before:g} -> {p.after:g} ({p.status}"
                      f"{': ' + p.reason if p.reason else ''})")
            print("\n| kernels | class | n | recorded ms | summed time | MAPE | mean signed |")
            print("|---|---|---:|---:|---:|---:|---:|")
            for s in by_class(f):
                print(f"| {'held out' if s.held_out else 'fitted'} | {s.label} | {s.kernels:,} "
                      f"| {s.recorded_us / 1e3:.2f} | {100 * s.time_error_before:+.1f} % -> "
                      f"{100 * s.time_error_after:+.1f} % | {100 * s.mape_before:.0f} % -> "
                      f"{100 * s.mape_after:.0f} % | {100 * s.signed_before:+.0f} % -> "
                      f"{100 * s.signed_after:+.0f} % |")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "calibrated.yaml"
            out.write_text(compute_yaml(topology, fits, out))
            print("\n| trace | step rec ms | step sim (default -> calibrated) | GPU compute "
                  "rec ms | GPU compute sim (default -> calibrated) |")
            print("|---|---:|---:|---:|---:|")
            for trace in [*fit, *held]:
                r0, s0, c0, g0 = replay_line(trace, topology)
                _, s1, _, g1 = replay_line(trace, out)
                print(f"| {trace.name} | {r0:.1f} | {100 * (s0 / r0 - 1):+.1f} % -> "
                      f"{100 * (s1 / r0 - 1):+.1f} % | {c0:.1f} | "
                      f"{100 * (g0 / c0 - 1):+.1f} % -> {100 * (g1 / c0 - 1):+.1f} % |")


if __name__ == "__main__":
    main()

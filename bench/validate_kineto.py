"""Replay fidelity of recorded PyTorch profiler traces: simulated vs recorded ProfilerStep.

Cases (all under ../shared/data/kineto):

1. each single-rank trace, replayed on one server of its recorded GPU (built from the
   trace's metadata): the simulated ProfilerStep duration of every step against the
   recorded one. Its communication replays at recorded durations (its peers are absent).
   ``sensitivity``: how much the steps grow when every GPU op takes 25% longer, i.e. how
   much of the step the GPU timeline decides (near 0%: the host decides it, and the check
   exercises the host model only).
2. the 8-rank DLRM trace on ``topologies/dgx1-v100.yaml``, collectives from the network
   model: each rank's ProfilerStep against the recorded one. Then two variants that show
   what the result rests on: every rank starting at 0 instead of its recorded start
   (``--align start``), and the collectives at their recorded kernel durations.
3. the DLRM collectives themselves: per collective, the shortest recorded NCCL kernel over
   the ranks (the rank that arrived last waited least, so its kernel is closest to the pure
   transfer time) against the simulated transfer time (end minus the last arrival).

Usage::

    python bench/validate_kineto.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis.fidelity import step_fidelity
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.sim.result import Run
from simcluster.topology import load_cluster
from simcluster.topology.cluster import Cluster
from simcluster.topology.recorded import recorded_cluster
from simcluster.workload.kineto import KinetoOptions, import_kineto
from simcluster.workload.model import Workload

ROOT = Path(__file__).resolve().parents[1]


def _run(wl: Workload, cluster: Cluster) -> Run:
    return simulate(bind(wl, cluster))


def _scaled_gpu(wl: Workload, factor: float) -> Workload:
    """The workload with every GPU op (compute, memcpy) ``factor`` times longer."""
    gpu = pc.starts_with(wl.ops.column("stream"), "cuda:")
    dur = pc.if_else(gpu, pc.multiply(wl.ops.column("duration_us"), factor),
                     wl.ops.column("duration_us"))
    return replace(wl, ops=wl.ops.set_column(wl.ops.schema.get_field_index("duration_us"),
                                             "duration_us", dur))


def _fixed_collectives(wl: Workload) -> Workload:
    coll = pc.equal(wl.ops.column("kind"), "collective")
    fixed = pc.if_else(coll, True, wl.ops.column("fixed_duration"))
    return replace(wl, ops=wl.ops.set_column(wl.ops.schema.get_field_index("fixed_duration"),
                                             "fixed_duration", fixed))


def single_rank(data: Path) -> list[dict]:
    rows = []
    for path in sorted((data / "kineto" / "single-rank").glob("*.json.gz")):
        t0 = time.perf_counter()
        wl = import_kineto(path)
        t_import = time.perf_counter() - t0
        cluster = recorded_cluster(wl.meta.recorded_device, wl.num_ranks)
        fid = step_fidelity(_run(wl, cluster), wl)
        slow = step_fidelity(_run(_scaled_gpu(wl, 1.25), cluster), wl)
        sens = dict(zip(fid.column("step").to_pylist(),
                        np.array(slow.column("simulated_us").to_pylist())
                        / np.array(fid.column("simulated_us").to_pylist()) - 1.0))
        info = wl.meta.extra["kineto"]
        for r in fid.to_pylist():
            rows.append({"case": path.name.removesuffix(".json.gz"),
                         "device": wl.meta.recorded_device,
                         "rank": info["ranks"][str(r["rank"])]["recorded_rank"],
                         "world": info["recorded_world_size"], "step": r["step"],
                         "recorded_ms": r["recorded_us"] / 1e3,
                         "simulated_ms": r["simulated_us"] / 1e3, "error": r["error"],
                         "sensitivity": float(sens[r["step"]]),
                         "ops": wl.num_ops, "import_s": t_import})
    return rows


def dlrm(data: Path) -> tuple[list[dict], list[dict]]:
    d = data / "kineto" / "dlrm-v100-8rank"
    dgx1 = load_cluster(ROOT / "topologies" / "dgx1-v100.yaml")
    wl = import_kineto(d)
    run = _run(wl, dgx1)
    fid = step_fidelity(run, wl).to_pylist()
    start = step_fidelity(_run(import_kineto(d, KinetoOptions(align="start")), dgx1),
                          wl).to_pylist()
    rec_coll = step_fidelity(_run(_fixed_collectives(wl), dgx1), wl).to_pylist()
    rows = [{"case": "dlrm-v100-8rank (network model)", "rank": a["rank"], "step": a["step"],
             "recorded_ms": a["recorded_us"] / 1e3, "simulated_ms": a["simulated_us"] / 1e3,
             "error": a["error"], "error_align_start": b["error"],
             "error_recorded_collectives": c["error"]}
            for a, b, c in zip(fid, start, rec_coll)]
    return rows, _collectives(wl, run)


def _collectives(wl: Workload, run: Run) -> list[dict]:
    """Per collective (group, seq): shortest recorded kernel vs simulated transfer."""
    t = run.timeline
    ops = wl.ops
    coll = pc.equal(ops.column("kind"), "collective")
    sub = pa.table({
        "seq": ops.column("seq"), "collective": ops.column("collective"),
        "bytes": ops.column("comm_bytes"), "recorded": ops.column("duration_us"),
        "start": t.column("start_us"), "wait": t.column("wait_us"), "end": t.column("end_us"),
    }).filter(coll)
    out = []
    for seq in sorted(set(sub.column("seq").to_pylist())):
        g = sub.filter(pc.equal(sub.column("seq"), seq))
        arrive = max(np.array(g.column("start").to_pylist()) + np.array(
            g.column("wait").to_pylist()))
        out.append({"seq": seq, "collective": g.column("collective")[0].as_py(),
                    "bytes": g.column("bytes")[0].as_py(),
                    "recorded_min_us": min(g.column("recorded").to_pylist()),
                    "recorded_max_us": max(g.column("recorded").to_pylist()),
                    "simulated_us": max(g.column("end").to_pylist()) - arrive})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()

    rows = single_rank(args.data)
    print("## Single-rank traces on their recorded GPU\n")
    print("| trace | GPU | rank (of world) | step | recorded (ms) | simulated (ms) | error | "
          "GPU +25% -> step |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['device']} | {r['rank']} ({r['world']}) | {r['step']} | "
              f"{r['recorded_ms']:.3f} | {r['simulated_ms']:.3f} | {100 * r['error']:+.2f}% | "
              f"{100 * r['sensitivity']:+.1f}% |")
    worst = max(abs(r["error"]) for r in rows)
    print(f"\nworst |error| over {len(rows)} steps of {len({r['case'] for r in rows})} traces: "
          f"{100 * worst:.2f}%")

    drows, colls = dlrm(args.data)
    print("\n## DLRM, 8 ranks, on topologies/dgx1-v100.yaml\n")
    print("| rank | step | recorded (ms) | simulated (ms) | error | error, ranks start at 0 | "
          "error, collectives at recorded time |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in drows:
        print(f"| {r['rank']} | {r['step']} | {r['recorded_ms']:.3f} | {r['simulated_ms']:.3f} "
              f"| {100 * r['error']:+.2f}% | {100 * r['error_align_start']:+.2f}% | "
              f"{100 * r['error_recorded_collectives']:+.2f}% |")
    print(f"\nworst |error|: {100 * max(abs(r['error']) for r in drows):.2f}%")
    print("\n## DLRM collectives: recorded NCCL kernels vs the network model\n")
    print("| # | collective | bytes | recorded min over ranks (us) | recorded max (us) | "
          "simulated transfer (us) |")
    print("|---:|---|---:|---:|---:|---:|")
    for c in colls:
        print(f"| {c['seq']} | {c['collective']} | {c['bytes']:,} | {c['recorded_min_us']:.0f} | "
              f"{c['recorded_max_us']:.0f} | {c['simulated_us']:.1f} |")


if __name__ == "__main__":
    main()

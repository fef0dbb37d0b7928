"""Replay fidelity: simulated vs recorded ProfilerStep durations of an imported trace.

An imported Kineto trace records, per rank, the duration of each ``ProfilerStep#N`` span and
the host stream that held the spans (``meta.extra['kineto']``). A ProfilerStep is a CPU
span, so its simulated duration is measured the same way, on that host stream: between the
zero-length ``ProfilerStep#N`` and ``ProfilerStep#N end`` ops the importer puts where the
span started and ended (without them, from the start of the step's first op to the end of
its last op).

    error = (simulated - recorded) / recorded

The host span says little about the GPU side when the host is the bottleneck, so each row
also compares the GPU-inclusive step: from the first to the last device op of the step
(kernels, collectives, copies) on the rank, in the recorded timeline (the ops' recorded start
times, ``recorded_start_us``) and in the simulated one (``gpu_error``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.result import Run
from simcluster.workload.model import Workload


def step_fidelity(run: Run, workload: Workload, recording: Run | None = None) -> pa.Table:
    """One row per (rank, step): recorded_us, simulated_us, error (fraction), and the
    GPU-inclusive spans recorded_gpu_us, simulated_gpu_us, gpu_error.

    ``recording``: :func:`recorded_run` of the workload, when the caller has it already.
    Returns an empty table when the workload carries no recorded steps.
    """
    info: dict[str, Any] = (workload.meta.extra.get("kineto") or {}).get("ranks") or {}
    t = run.timeline
    rows: dict[str, list[Any]] = {"rank": [], "step": [], "recorded_us": [], "simulated_us": [],
                                  "error": []}
    for r_key, rinfo in sorted(info.items(), key=lambda kv: int(kv[0])):
        stream = rinfo.get("step_stream")
        mask = pc.and_(pc.equal(t.column("rank"), int(r_key)),
                       pc.equal(t.column("stream"), stream or ""))
        sub = t.filter(mask)
        steps = sub.column("step").to_numpy(zero_copy_only=False)
        start = sub.column("start_us").to_numpy()
        end = sub.column("end_us").to_numpy()
        marks = dict(zip(sub.column("name").to_pylist(), start.tolist()))
        for s_key, recorded in sorted(rinfo.get("steps", {}).items(), key=lambda kv: int(kv[0])):
            sel = steps == int(s_key)
            if not sel.any():
                continue
            a, b = marks.get(f"ProfilerStep#{s_key}"), marks.get(f"ProfilerStep#{s_key} end")
            sim = float(b - a) if a is not None and b is not None else float(
                end[sel].max() - start[sel].min())
            rows["rank"].append(int(r_key))
            rows["step"].append(int(s_key))
            rows["recorded_us"].append(float(recorded))
            rows["simulated_us"].append(sim)
            rows["error"].append((sim - recorded) / recorded if recorded > 0 else np.nan)
    if rows["rank"]:  # the spans cost a pass over the timeline: only when there are steps
        gpu_sim = _gpu_spans(run)
        gpu_rec = _gpu_spans(recording if recording is not None else recorded_run(workload))
    else:
        gpu_sim = gpu_rec = {}
    keys = list(zip(rows["rank"], rows["step"]))
    sim_g = np.array([gpu_sim.get(k, np.nan) for k in keys], dtype=float)
    rec_g = np.array([gpu_rec.get(k, np.nan) for k in keys], dtype=float)
    return pa.table({
        "rank": pa.array(rows["rank"], pa.int32()),
        "step": pa.array(rows["step"], pa.int32()),
        "recorded_us": pa.array(rows["recorded_us"], pa.float64()),
        "simulated_us": pa.array(rows["simulated_us"], pa.float64()),
        "error": pa.array(rows["error"], pa.float64()),
        "recorded_gpu_us": pa.array(rec_g),
        "simulated_gpu_us": pa.array(sim_g),
        "gpu_error": pa.array(np.divide(sim_g - rec_g, rec_g, out=np.full(len(keys), np.nan),
                                        where=rec_g > 0)),
    })


_DEVICE_KINDS = ("compute", "collective", "send", "recv", "memcpy")


def _gpu_spans(run: Run | None) -> dict[tuple[int, int], float]:
    """(rank, step) -> first device op start to last device op end (us)."""
    if run is None or run.timeline.num_rows == 0:
        return {}
    t = run.timeline
    t = t.filter(pc.is_in(t.column("kind"), pa.array(_DEVICE_KINDS)))
    t = t.filter(pc.is_valid(t.column("step")))
    agg = t.group_by(["rank", "step"]).aggregate([("start_us", "min"), ("end_us", "max")])
    return {(int(r), int(s)): float(e - b) for r, s, b, e in zip(
        agg.column("rank").to_pylist(), agg.column("step").to_pylist(),
        agg.column("start_us_min").to_pylist(), agg.column("end_us_max").to_pylist())}


def recorded_run(workload: Workload) -> Run | None:
    """The recording as a Run (timeline only): each op from its ``recorded_start_us`` for its
    recorded ``duration_us``, so that timeline analyses (HTA's, the GPU span) can be computed
    on what was measured, the same way as on the simulation. None when the workload carries
    no recorded start times (generated, or imported before they were kept)."""
    t = workload.ops
    start = t.column("recorded_start_us")
    if start.null_count == t.num_rows:
        return None
    s = start.to_numpy(zero_copy_only=False).astype(float)
    d = np.nan_to_num(t.column("duration_us").to_numpy(zero_copy_only=False).astype(float))
    keep = ~np.isnan(s)
    sub = t.filter(pa.array(keep))
    s, d = s[keep], d[keep]
    timeline = pa.table({
        "rank": sub.column("rank"), "stream": sub.column("stream"),
        "op_id": sub.column("op_id"), "name": sub.column("name"), "kind": sub.column("kind"),
        "step": sub.column("step"), "start_us": pa.array(s), "end_us": pa.array(s + d),
        "wait_us": pa.array(np.zeros(len(s))), "deps": sub.column("deps"),
    })
    memory = pa.table({"rank": pa.array(np.arange(workload.num_ranks, dtype=np.int32))})
    span = float((s + d).max() - s.min()) if len(s) else 0.0
    return Run(timeline=timeline, links=pa.table({}), memory=memory, makespan_us=span,
               info={"workload": workload.meta.name, "cluster": "recorded"})


def fidelity_errors(fidelity: pa.Table) -> dict[str, float]:
    """Mean signed, mean absolute and largest absolute ``error`` of a :func:`step_fidelity`
    table (fractions; NaN rows ignored; all NaN for an empty table).

    Example:
        >>> t = pa.table({"error": [0.1, -0.3]})
        >>> {k: round(v, 3) for k, v in fidelity_errors(t).items()}
        {'mean': -0.1, 'mean_abs': 0.2, 'max_abs': 0.3}
    """
    err = fidelity.column("error").to_numpy(zero_copy_only=False).astype(float)
    err = err[~np.isnan(err)]
    if err.size == 0:
        return {"mean": float("nan"), "mean_abs": float("nan"), "max_abs": float("nan")}
    return {"mean": float(err.mean()), "mean_abs": float(np.abs(err).mean()),
            "max_abs": float(np.abs(err).max())}

"""Replay fidelity: simulated vs recorded ProfilerStep durations of an imported trace.

An imported Kineto trace records, per rank, the duration of each ``ProfilerStep#N`` span and
the host stream that held the spans (``meta.extra['kineto']``). A ProfilerStep is a CPU
span, so its simulated duration is measured the same way, on that host stream: between the
zero-length ``ProfilerStep#N`` and ``ProfilerStep#N end`` ops the importer puts where the
span started and ended (without them, from the start of the step's first op to the end of
its last op).

    error = (simulated - recorded) / recorded
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.result import Run
from simcluster.workload.model import Workload


def step_fidelity(run: Run, workload: Workload) -> pa.Table:
    """One row per (rank, step): recorded_us, simulated_us, error (fraction).

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
    return pa.table({
        "rank": pa.array(rows["rank"], pa.int32()),
        "step": pa.array(rows["step"], pa.int32()),
        "recorded_us": pa.array(rows["recorded_us"], pa.float64()),
        "simulated_us": pa.array(rows["simulated_us"], pa.float64()),
        "error": pa.array(rows["error"], pa.float64()),
    })


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

"""What changed between two runs (two what-ifs): step time, breakdown, limits, links, ops."""

from __future__ import annotations

from typing import Any

import numpy as np

from simcluster.analysis.breakdown import PARTITION
from simcluster.sim.result import Run


def _rel(a: float, b: float) -> float | None:
    return (b - a) / a if a else None


def diff_runs(a: Run, sa: dict[str, Any], b: Run, sb: dict[str, Any], top: int = 10
              ) -> dict[str, Any]:
    """Compare run ``b`` against run ``a`` (each with its summary).

    Returns a dict with: ``step_time_us`` (a, b, change), ``breakdown`` (per PARTITION
    category, the mean over ranks in a and b), ``limits`` (critical-path shares in a and b),
    ``links`` (the links whose utilization changed most, matched by src/dst), and ``ops``
    (the ops whose duration changed most, matched by rank/op_id when the two runs replay the
    same workload, else by name summed over ranks).
    """
    out: dict[str, Any] = {
        "a": {"workload": sa.get("workload"), "cluster": sa.get("cluster")},
        "b": {"workload": sb.get("workload"), "cluster": sb.get("cluster")},
        "step_time_us": {"a": sa["step_time_us"], "b": sb["step_time_us"],
                         "change": _rel(sa["step_time_us"], sb["step_time_us"])},
        "breakdown": {c: {"a": sa["mean_breakdown_us"][c], "b": sb["mean_breakdown_us"][c]}
                      for c in PARTITION},
        "limits": {k: {"a": sa["limits"].get(k, 0.0), "b": sb["limits"].get(k, 0.0)}
                   for k in sorted(set(sa["limits"]) | set(sb["limits"]))},
    }
    out["links"] = _links(a, b, top)
    out["ops"] = _ops(a, b, top)
    return out


def _links(a: Run, b: Run, top: int) -> list[dict[str, Any]]:
    def util(run: Run) -> dict[tuple[str, str], tuple[float, float]]:
        t = run.links
        return {(s, d): (u, lim) for s, d, u, lim in zip(
            t.column("src").to_pylist(), t.column("dst").to_pylist(),
            t.column("utilization").to_pylist(), t.column("limiting_us").to_pylist())}

    ua, ub = util(a), util(b)
    rows = []
    for key in sorted(set(ua) | set(ub)):
        (u0, l0), (u1, l1) = ua.get(key, (0.0, 0.0)), ub.get(key, (0.0, 0.0))
        if u0 or u1:
            rows.append({"link": f"{key[0]} -> {key[1]}", "utilization_a": u0,
                         "utilization_b": u1, "limiting_us_a": l0, "limiting_us_b": l1})
    rows.sort(key=lambda r: (-abs(r["utilization_b"] - r["utilization_a"]), r["link"]))
    return rows[:top]


def _ops(a: Run, b: Run, top: int) -> list[dict[str, Any]]:
    def durations(run: Run, by_id: bool) -> dict[Any, float]:
        t = run.timeline
        d = (t.column("end_us").to_numpy() - t.column("start_us").to_numpy())
        names = t.column("name").to_pylist()
        if by_id:
            labels = [f"rank {r} {n} (op {o})" for r, n, o in zip(
                t.column("rank").to_pylist(), names, t.column("op_id").to_pylist())]
            return dict(zip(labels, d.tolist()))
        out: dict[Any, float] = {}
        for n, v in zip(names, d.tolist()):
            out[n] = out.get(n, 0.0) + v
        return out

    same = a.timeline.num_rows == b.timeline.num_rows and a.timeline.column("name").equals(
        b.timeline.column("name"))
    da, db = durations(a, same), durations(b, same)
    keys = sorted(set(da) | set(db))
    deltas = np.array([db.get(k, 0.0) - da.get(k, 0.0) for k in keys])
    order = np.argsort(-np.abs(deltas), kind="stable")[:top]
    return [{"op": keys[i], "duration_a_us": da.get(keys[i], 0.0),
             "duration_b_us": db.get(keys[i], 0.0), "change_us": float(deltas[i])}
            for i in order.tolist() if deltas[i] != 0]

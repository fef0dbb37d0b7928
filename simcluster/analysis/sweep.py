"""Sweep results -> the configurations worth looking at: the Pareto front and the top k.

Works on ``results.parquet`` rows (see ``sweep/point.py``). Only points that ran (``status``
``ok``) and fit in memory take part; the rest are counted, not ranked.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

OBJECTIVES = {"time": "step_time_us", "cost": "usd_per_1m_tokens", "cost-per-step": "usd_per_step"}


def feasible(results: pa.Table) -> list[dict[str, Any]]:
    """Rows that ran and fit in memory, with a step time."""
    return [r for r in results.to_pylist()
            if r.get("status") == "ok" and not r.get("oom") and r.get("step_time_us")]


def cost_column(rows: list[dict[str, Any]]) -> str:
    """``usd_per_1m_tokens`` where the workloads say their tokens, else ``usd_per_step``."""
    return ("usd_per_1m_tokens" if any(r.get("usd_per_1m_tokens") is not None for r in rows)
            else "usd_per_step")


def pareto_front(rows: list[dict[str, Any]], x: str, y: str) -> list[dict[str, Any]]:
    """Rows no other row beats on both ``x`` and ``y`` (lower is better), sorted by ``x``.

    Rows missing either value are left out; rows equal on both are all kept.
    """
    pts = sorted((r for r in rows if r.get(x) is not None and r.get(y) is not None),
                 key=lambda r: (r[x], r[y], r["point_id"]))
    front: list[dict[str, Any]] = []
    for r in pts:
        tie = bool(front) and (r[x], r[y]) == (front[-1][x], front[-1][y])
        if tie or not front or r[y] < front[-1][y]:
            front.append(r)
    return front


def top(rows: list[dict[str, Any]], objective: str, k: int) -> list[dict[str, Any]]:
    """The ``k`` best rows by ``objective`` (a key of ``OBJECTIVES``; lower is better)."""
    col = OBJECTIVES[objective]
    ranked = sorted((r for r in rows if r.get(col) is not None),
                    key=lambda r: (r[col], r["point_id"]))
    return ranked[:k]


def axis_columns(results: pa.Table) -> list[str]:
    """The columns that are the points' inputs (everything before ``point_id``)."""
    names = results.column_names
    return names[: names.index("point_id")] if "point_id" in names else []

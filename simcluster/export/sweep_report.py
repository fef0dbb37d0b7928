"""Sweep folder -> one HTML page: step time vs cost with the Pareto front (interactive), and
the top configurations by time and by cost (needs plotly)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pyarrow as pa

from simcluster.analysis.sweep import (
    OBJECTIVES,
    axis_columns,
    cost_column,
    feasible,
    pareto_front,
    top,
)
from simcluster.atomic import atomic_path
from simcluster.export.html import figure_html, page, table
from simcluster.export.plots import go


def pareto_figure(rows: list[dict[str, Any]], front: list[dict[str, Any]], cost: str) -> Any:
    """Every feasible point (grey) and the front (line), step time vs cost."""
    g = go()
    pts = [r for r in rows if r.get(cost) is not None]
    label = {"usd_per_1m_tokens": "USD per 1M tokens", "usd_per_step": "USD per step"}[cost]
    fig = g.Figure()
    fig.add_trace(g.Scatter(x=[r["step_time_us"] / 1e3 for r in pts], y=[r[cost] for r in pts],
                            mode="markers", marker={"color": "#999999", "size": 6},
                            name=f"feasible points ({len(pts)})",
                            text=[r.get("point_id") for r in pts],
                            hovertemplate="%{text}: %{x:.3f} ms, %{y:.4g}<extra></extra>"))
    fig.add_trace(g.Scatter(x=[r["step_time_us"] / 1e3 for r in front],
                            y=[r[cost] for r in front], mode="lines+markers",
                            marker={"color": "#C44E52"}, name=f"Pareto front ({len(front)})",
                            text=[r.get("point_id") for r in front],
                            hovertemplate="%{text}: %{x:.3f} ms, %{y:.4g}<extra></extra>"))
    fig.update_xaxes(title="step time (ms)")
    fig.update_yaxes(title=label)
    fig.update_layout(template="plotly_white", height=450, margin={"t": 20})
    return fig


def _num(v: Any, pattern: str, scale: float = 1.0) -> str:
    return "-" if v is None else pattern.format(v * scale)


def axis_cell(value: Any) -> str:
    """A point's value of an axis as table text: a ``fail`` list as its elements.

    Example:
        >>> axis_cell(["node0/nic0", "fabric/spine0"]), axis_cell([]), axis_cell(0.5)
        ('node0/nic0, fabric/spine0', 'none', '0.5')
    """
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def display_row(r: dict[str, Any]) -> dict[str, str]:
    """A result row's outcome as short strings, by column title (for tables)."""
    return {
        "step (ms)": _num(r["step_time_us"], "{:.3f}", 1e-3),
        "tokens/s": _num(r.get("tokens_per_s"), "{:,.0f}"),
        "MFU": _num(r.get("mfu"), "{:.1f}%", 100.0),
        "$/1M tokens": _num(r.get("usd_per_1m_tokens"), "{:.4f}"),
        "$/step": _num(r.get("usd_per_step"), "{:.5f}"),
        "bottleneck": r.get("bottleneck") or "-",
        "peak mem": _num(r.get("peak_memory_fraction"), "{:.0f}%", 100.0),
    }


def _rows_table(rows: list[dict[str, Any]], axes: list[str]) -> str:
    heads = list(display_row({"step_time_us": 0.0}))
    return table(axes + heads, [[axis_cell(r.get(a)) for a in axes] + list(display_row(r).values())
                                for r in rows])


def render_sweep_html(results: pa.Table, name: str, k: int = 10) -> str:
    """The whole page for ``results.parquet``."""
    rows = feasible(results)
    axes = axis_columns(results)
    cost = cost_column(rows)
    front = pareto_front(rows, "step_time_us", cost)
    status = [r.get("status") for r in results.to_pylist()]
    counts = ", ".join(f"{s} {status.count(s)}" for s in sorted(set(status), key=str))
    plot = (figure_html(pareto_figure(rows, front, cost), "pareto")
            if front else "<p>no point has both a step time and a cost: give a price "
                          "(topology cost:, or price: in the spec) to plot the front.</p>")
    by_cost = [o for o, c in OBJECTIVES.items() if c == cost][0]
    return page(f"simcluster sweep: {name}", f"""<h1>simcluster sweep: {html.escape(name)}</h1>
<p>{results.num_rows} points ({html.escape(counts)}); {len(rows)} ran and fit in memory.</p>
<h2>Step time vs cost</h2>{plot}
<h2>Pareto front</h2>{_rows_table(front, axes)}
<h2>Fastest {k}</h2>{_rows_table(top(rows, "time", k), axes)}
<h2>Cheapest {k}</h2>{_rows_table(top(rows, by_cost, k), axes)}""", scripts=bool(front))


def write_sweep_report(results: pa.Table, name: str, out: str | Path, k: int = 10) -> Path:
    """Write the page to ``out`` (atomically)."""
    out = Path(out)
    text = render_sweep_html(results, name, k)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out

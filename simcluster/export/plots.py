"""Interactive plots of a run (Plotly figures), for the HTML report and for notebooks.

Every figure is built from aggregated data, so its size does not grow with the number of
ops: the timeline draws merged segments (``analysis.timeline``) of one representative rank
per class of alike ranks (``analysis.breakdown.rank_classes``), the link heatmap a fixed grid
of time bins (``analysis.links.utilization_grid``). In Jupyter a figure shows itself,
zoomable, with hovers; ``fig.write_html(path)`` saves it. Needs the ``report`` extra
(``pip install 'simcluster[report]'``: plotly).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.analysis.breakdown import PARTITION
from simcluster.analysis.links import busiest_links, utilization_grid
from simcluster.analysis.timeline import timeline_segments
from simcluster.errors import SimclusterError
from simcluster.sim.result import Run

KIND_COLORS = {"compute": "#4C72B0", "collective": "#DD8452", "send": "#C44E52",
               "recv": "#C44E52", "memcpy": "#55A868", "host": "#8172B3"}
PART_COLORS = {"compute_us": "#4C72B0", "exposed_comm_us": "#DD8452", "copies_us": "#55A868",
               "host_us": "#8172B3", "sync_wait_us": "#CCB974", "idle_us": "#DDDDDD"}
LIMIT_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3",
                "#8C8C8C", "#CCB974", "#64B5CD")
PLOTS = ("timeline", "links", "breakdown", "limits")
TIMELINE_BINS = 2000  # segments closer than makespan / TIMELINE_BINS merge
MAX_CLASSES = 16      # classes of alike ranks drawn in the timeline


def go() -> Any:
    """``plotly.graph_objects``, or a clear error if plotly is missing."""
    try:
        import plotly.graph_objects as graph_objects
    except ImportError:
        raise SimclusterError("plots and HTML reports need plotly: pip install "
                              "'simcluster[report]'.") from None
    return graph_objects


def _layout(fig: Any, title: str, height: float) -> Any:
    fig.update_layout(title=title, height=int(height), template="plotly_white",
                      margin={"l": 10, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.15})
    return fig


def representatives(classes: list[list[int]], max_classes: int = MAX_CLASSES
                    ) -> list[tuple[int, str]]:
    """(rank, label) of the first rank of each class, at most ``max_classes`` of them.

    Example:
        >>> representatives([[0, 1, 2], [3]])
        [(0, 'r0 (x3)'), (3, 'r3')]
    """
    return [(c[0], f"r{c[0]} (x{len(c)})" if len(c) > 1 else f"r{c[0]}")
            for c in classes[:max_classes]]


def timeline_figure(run: Run, reps: list[tuple[int, str]], note: str = "") -> Any:
    """Gantt chart of the representatives' streams: one bar per merged segment, colored by
    kind; hover for the ops it holds, its longest op and the time waited for peers."""
    g = go()
    labels = dict(reps)
    seg = timeline_segments(run, list(labels), max(run.makespan_us, 1e-9) / TIMELINE_BINS)
    rows = sorted(set(zip(seg.column("rank").to_pylist(), seg.column("stream").to_pylist())),
                  key=lambda rs: ([r for r, _ in reps].index(rs[0]), rs[1]))
    ylabel = {rs: f"{labels[rs[0]]} {rs[1]}" for rs in rows}
    fig = g.Figure()
    kinds = seg.column("kind").to_pylist()
    start = seg.column("start_us").to_numpy() / 1e3
    length = seg.column("end_us").to_numpy() / 1e3 - start
    y = [ylabel[rs] for rs in zip(seg.column("rank").to_pylist(), seg.column("stream").to_pylist())]
    hover = [f"{n} ({o:,} ops, busy {b / 1e3:.3f} ms, waited {w / 1e3:.3f} ms)"
             for n, o, b, w in zip(seg.column("name").to_pylist(), seg.column("ops").to_pylist(),
                                   seg.column("busy_us").to_pylist(),
                                   seg.column("wait_us").to_pylist())]
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        fig.add_trace(g.Bar(
            orientation="h", name=kind, base=np.round(start[idx], 4).tolist(),
            x=np.round(length[idx], 4).tolist(), y=[y[i] for i in idx],
            marker_color=KIND_COLORS.get(kind, "#999999"), customdata=[hover[i] for i in idx],
            hovertemplate="%{customdata}<br>%{base:.3f} to %{x:.3f} ms later<extra>"
                          "%{fullData.name}</extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=[ylabel[rs] for rs in rows][::-1])
    fig.update_xaxes(title="time (ms)")
    fig.update_layout(barmode="overlay", bargap=0.15)
    title = "ranks and streams: one rank per class of alike ranks" + (f"; {note}" if note else "")
    return _layout(fig, title, 120 + 22 * max(len(rows), 1))


def heatmap_figure(run: Run, max_links: int = 32, bins: int = 200) -> Any:
    """The busiest links' utilization over time (time-weighted mean per bin)."""
    g = go()
    links = busiest_links(run, max_links, by="bytes")
    ids = links.column("link_id").to_pylist()
    grid = utilization_grid(run, ids, bins)
    width = max(run.makespan_us, 1e-9) / bins / 1e3
    names = [f"{r['src']} -> {r['dst']}" for r in links.to_pylist()]
    fig = g.Figure(g.Heatmap(
        z=np.round(grid, 4).tolist(), x=np.round((np.arange(bins) + 0.5) * width, 4).tolist(),
        y=names, zmin=0, zmax=1, colorscale="Magma", colorbar={"title": "utilization"},
        hovertemplate="%{y}<br>%{x:.3f} ms: %{z:.1%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="time (ms)")
    return _layout(fig, f"link utilization over time ({len(ids)} busiest links by bytes)",
                   140 + 18 * max(len(ids), 1))


def breakdown_figure(ranks: pa.Table, reps: list[tuple[int, str]] | None = None) -> Any:
    """Stacked bars of the per-rank partition (ms): every rank, or one per class."""
    g = go()
    rows = ranks.to_pylist()
    if reps is not None:
        by_rank = {r["rank"]: r for r in rows}
        rows = [by_rank[r] for r, _ in reps]
        labels = [label for _, label in reps]
    else:
        labels = [f"r{r['rank']}" for r in rows]
    fig = g.Figure()
    for col in PARTITION:
        fig.add_trace(g.Bar(x=labels, y=[round(r[col] / 1e3, 4) for r in rows],
                            name=col.removesuffix("_us").replace("_", " "),
                            marker_color=PART_COLORS[col],
                            hovertemplate="%{x}: %{y:.3f} ms<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title="ms")
    return _layout(fig, "per-rank breakdown (adds up to the step)", 380)


def limits_figure(limits: dict[str, float]) -> Any:
    """What limits this step: the critical path's shares as one horizontal bar."""
    g = go()
    fig = g.Figure()
    for k, (name, share) in enumerate(limits.items()):
        fig.add_trace(g.Bar(orientation="h", x=[round(100 * share, 3)], y=["critical path"],
                            name=f"{name} {share:.0%}",
                            marker_color=LIMIT_COLORS[k % len(LIMIT_COLORS)],
                            hovertemplate=f"{name}: %{{x:.1f}}%<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(range=[0, 100], title="% of the step on the critical path")
    return _layout(fig, "what limits this step", 200)


def plot(what: str, run: Run, ranks: pa.Table, limits: dict[str, float],
         classes: list[list[int]]) -> Any:
    """One of :data:`PLOTS` as a Plotly figure: the timeline, link utilization over time,
    the per-rank breakdown, or what limits the step.

    Raises:
        SimclusterError: an unknown plot, or plotly missing.
    """
    reps = representatives(classes)
    makers = {"timeline": lambda: timeline_figure(run, reps),
              "links": lambda: heatmap_figure(run),
              "breakdown": lambda: breakdown_figure(
                  ranks, reps if ranks.num_rows > 64 else None),
              "limits": lambda: limits_figure(limits)}
    if what not in makers:
        raise SimclusterError(f"plot {what!r}: use one of {', '.join(PLOTS)}.")
    return makers[what]()

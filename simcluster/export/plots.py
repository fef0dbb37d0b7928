"""Plots of a run as matplotlib Figures, for the HTML report and for notebooks.

Figures are built outside pyplot (``export.html.figure``), so nothing here changes the
caller's backend. :class:`Plot` wraps one for Jupyter, which draws it inline through
``_repr_png_`` whatever the backend, and without drawing it twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis.breakdown import PARTITION
from simcluster.analysis.links import busiest_links, load_over_time
from simcluster.atomic import atomic_path
from simcluster.errors import SimclusterError
from simcluster.export.html import figure, png_bytes
from simcluster.sim.result import Run

KIND_COLORS = {"compute": "#4C72B0", "collective": "#DD8452", "send": "#C44E52",
               "recv": "#C44E52", "memcpy": "#55A868", "host": "#8172B3"}
PART_COLORS = {"compute_us": "#4C72B0", "exposed_comm_us": "#DD8452", "copies_us": "#55A868",
               "host_us": "#8172B3", "sync_wait_us": "#CCB974", "idle_us": "#DDDDDD"}


def gantt_figure(run: Run, max_ranks: int = 32) -> Any:
    """Ranks x streams, one bar per op colored by kind; waiting inside collectives hatched."""
    t = run.timeline.filter(pc.less(run.timeline.column("rank"), max_ranks))
    rows = sorted(set(zip(t.column("rank").to_pylist(), t.column("stream").to_pylist())))
    y = {k: i for i, k in enumerate(rows)}
    fig, ax = figure(12, max(2.5, 0.22 * len(rows) + 1))
    ranks, streams = t.column("rank").to_pylist(), t.column("stream").to_pylist()
    kind = t.column("kind").to_pylist()
    start, end = t.column("start_us").to_numpy() / 1e3, t.column("end_us").to_numpy() / 1e3
    wait = t.column("wait_us").to_numpy() / 1e3
    for k in sorted(set(kind)):
        sel = [i for i, kk in enumerate(kind) if kk == k]
        yy = [y[(ranks[i], streams[i])] for i in sel]
        ax.barh(yy, end[sel] - start[sel], left=start[sel], height=0.8,
                color=KIND_COLORS.get(k, "#999999"), label=k, edgecolor="white", linewidth=0.3)
    waited = [i for i in range(len(kind)) if wait[i] > 0]
    if waited:
        ax.barh([y[(ranks[i], streams[i])] for i in waited], wait[waited], left=start[waited],
                height=0.8, color="white", alpha=0.6, hatch="///", linewidth=0,
                label="waiting for peers")
    ax.set_yticks(range(len(rows)), [f"r{r} {s}" for r, s in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time (ms)")
    ax.set_title(f"ranks and streams (first {min(max_ranks, run.memory.num_rows)} ranks)")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    return fig


def heatmap_figure(run: Run, max_links: int = 32, bins: int = 200) -> Any:
    """The busiest links' utilization over time (time-weighted mean per bin)."""
    links = busiest_links(run, max_links, by="bytes")
    span = max(run.makespan_us, 1e-9)
    edges = np.linspace(0.0, span, bins + 1)
    grid = np.zeros((links.num_rows, bins))
    load = load_over_time(run, links.column("link_id").to_pylist())
    for row, link in enumerate(links.to_pylist()):
        s, e, rate = load[link["link_id"]]
        util = rate / link["capacity_GBps"]
        for a, b, u in zip(s, e, util):
            lo, hi = np.searchsorted(edges, a, "right") - 1, np.searchsorted(edges, b, "left")
            for k in range(max(lo, 0), min(hi, bins)):
                overlap = min(b, edges[k + 1]) - max(a, edges[k])
                if overlap > 0:
                    grid[row, k] += u * overlap / (edges[k + 1] - edges[k])
    fig, ax = figure(12, max(2.5, 0.25 * links.num_rows + 1))
    im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="magma", vmin=0, vmax=1,
                   extent=(0, span / 1e3, links.num_rows - 0.5, -0.5))
    ax.set_yticks(range(links.num_rows),
                  [f"{r['src']} -> {r['dst']}" for r in links.to_pylist()], fontsize=6)
    ax.set_xlabel("time (ms)")
    ax.set_title(f"link utilization over time ({links.num_rows} busiest links)")
    fig.colorbar(im, ax=ax, label="utilization")
    return fig


def breakdown_figure(ranks: pa.Table, max_ranks: int = 64) -> Any:
    """Stacked bars of the per-rank partition (ms)."""
    t = ranks.slice(0, max_ranks)
    fig, ax = figure(12, 3.5)
    bottom = np.zeros(t.num_rows)
    x = t.column("rank").to_numpy()
    for col in PARTITION:
        v = t.column(col).to_numpy() / 1e3
        ax.bar(x, v, bottom=bottom, color=PART_COLORS[col], label=col.removesuffix("_us"),
               width=0.85)
        bottom += v
    ax.set_xlabel("rank")
    ax.set_ylabel("ms")
    ax.set_title("per-rank breakdown (adds up to the step)")
    ax.legend(fontsize=7, ncol=6, loc="lower right")
    return fig


def limits_figure(limits: dict[str, float]) -> Any:
    """What limits this step: the critical path's shares as one horizontal bar."""
    from matplotlib import colormaps

    fig, ax = figure(12, 1.4)
    left = 0.0
    cmap = colormaps["tab10"]
    for k, (name, share) in enumerate(limits.items()):
        ax.barh([0], [share * 100], left=left, color=cmap(k % 10), label=f"{name} {share:.0%}")
        left += share * 100
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("% of the step on the critical path")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.6))
    return fig



class Plot:
    """A figure that Jupyter shows inline; ``.figure`` is the matplotlib Figure."""

    def __init__(self, fig: Any) -> None:
        self.figure = fig

    def _repr_png_(self) -> bytes:
        return png_bytes(self.figure)

    def save(self, path: str | Path) -> Path:
        """Write the plot as a PNG file (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_bytes(png_bytes(self.figure))
        return path


PLOTS = ("timeline", "links", "breakdown", "limits")


def plot(what: str, run: Run, ranks: pa.Table, limits: dict[str, float]) -> Plot:
    """One of :data:`PLOTS`: the Gantt timeline, link utilization over time, the per-rank
    breakdown, or what limits the step.

    Raises:
        SimclusterError: an unknown plot, or matplotlib missing.
    """
    makers = {"timeline": lambda: gantt_figure(run), "links": lambda: heatmap_figure(run),
              "breakdown": lambda: breakdown_figure(ranks),
              "limits": lambda: limits_figure(limits)}
    if what not in makers:
        raise SimclusterError(f"plot {what!r}: use one of {', '.join(PLOTS)}.")
    return Plot(makers[what]())

"""Run -> one self-contained HTML page with embedded PNG plots (needs matplotlib).

The page shows the step time and what limits it, a Gantt chart of ranks and streams, a
link-utilization heatmap over time, the per-rank breakdown as stacked bars, the bottleneck
links with their attribution, and the critical path. Plots are rendered with matplotlib's Agg
backend, without timestamps in the PNG metadata, so the same run gives the same page.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis.breakdown import PARTITION
from simcluster.analysis.links import busiest_links, load_over_time
from simcluster.atomic import atomic_path
from simcluster.export.html import img, page, png, pyplot, table
from simcluster.sim.result import Run

KIND_COLORS = {"compute": "#4C72B0", "collective": "#DD8452", "send": "#C44E52",
               "recv": "#C44E52", "memcpy": "#55A868", "host": "#8172B3"}
PART_COLORS = {"compute_us": "#4C72B0", "exposed_comm_us": "#DD8452", "copies_us": "#55A868",
               "host_us": "#8172B3", "sync_wait_us": "#CCB974", "idle_us": "#DDDDDD"}


def gantt_png(run: Run, max_ranks: int = 32) -> str:
    """Ranks x streams, one bar per op colored by kind; waiting inside collectives hatched."""
    plt = pyplot()
    t = run.timeline.filter(pc.less(run.timeline.column("rank"), max_ranks))
    rows = sorted(set(zip(t.column("rank").to_pylist(), t.column("stream").to_pylist())))
    y = {k: i for i, k in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(12, max(2.5, 0.22 * len(rows) + 1)))
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
    return png(fig)


def heatmap_png(run: Run, max_links: int = 32, bins: int = 200) -> str:
    """The busiest links' utilization over time (time-weighted mean per bin)."""
    plt = pyplot()
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
    fig, ax = plt.subplots(figsize=(12, max(2.5, 0.25 * links.num_rows + 1)))
    im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="magma", vmin=0, vmax=1,
                   extent=(0, span / 1e3, links.num_rows - 0.5, -0.5))
    ax.set_yticks(range(links.num_rows),
                  [f"{r['src']} -> {r['dst']}" for r in links.to_pylist()], fontsize=6)
    ax.set_xlabel("time (ms)")
    ax.set_title(f"link utilization over time ({links.num_rows} busiest links)")
    fig.colorbar(im, ax=ax, label="utilization")
    return png(fig)


def breakdown_png(ranks: pa.Table, max_ranks: int = 64) -> str:
    """Stacked bars of the per-rank partition (ms)."""
    plt = pyplot()
    t = ranks.slice(0, max_ranks)
    fig, ax = plt.subplots(figsize=(12, 3.5))
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
    return png(fig)


def limits_png(limits: dict[str, float]) -> str:
    """What limits this step: the critical path's shares as one horizontal bar."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(12, 1.4))
    left = 0.0
    cmap = plt.get_cmap("tab10")
    for k, (name, share) in enumerate(limits.items()):
        ax.barh([0], [share * 100], left=left, color=cmap(k % 10), label=f"{name} {share:.0%}")
        left += share * 100
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("% of the step on the critical path")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.6))
    return png(fig)


def render_html(run: Run, summary: dict[str, Any], ranks: pa.Table, path: pa.Table) -> str:
    """The whole page."""
    pngs = {"limits": limits_png(summary["limits"]), "gantt": gantt_png(run),
            "heatmap": heatmap_png(run), "breakdown": breakdown_png(ranks)}
    bottlenecks = table(
        ["link", "role", "GB/s", "utilization", "limiting (ms)", "limited"],
        [[f"{r['src']} -> {r['dst']}", r["role"], f"{r['capacity_GBps']:g}",
          f"{100 * r['utilization']:.1f}%", f"{r['limiting_us'] / 1e3:.3f}",
          ", ".join(f"{a['label']} {100 * a['share']:.0f}%" for a in r.get("limited", []))]
         for r in summary["bottleneck_links"]])
    crit = table(
        ["rank", "op", "category", "start (ms)", "duration (ms)", "share", "link"],
        [[r["rank"], r["name"], r["category"], f"{r['start_us'] / 1e3:.3f}",
          f"{r['duration_us'] / 1e3:.3f}", f"{100 * r['share']:.1f}%", r["link"] or ""]
         for r in path.sort_by([("duration_us", "descending")]).slice(0, 25).to_pylist()])
    limits = ", ".join(f"{k} {100 * v:.1f}%" for k, v in summary["limits"].items())
    title = f"{summary.get('workload')} on {summary.get('cluster')}"
    figs = "".join(f"<h2>{html.escape(h)}</h2>{img(n, pngs[n])}"
                   for n, h in (("gantt", "Timeline"), ("heatmap", "Link utilization"),
                                ("breakdown", "Per-rank breakdown")))
    strag = ", ".join(map(str, summary.get("stragglers", []))) or "none"
    return page(f"simcluster: {title}", f"""<h1>simcluster report: {html.escape(title)}</h1>
<p><span class="big">step time {summary['step_time_us'] / 1e3:.3f} ms</span>
({summary.get('ranks')} ranks, {summary.get('ops')} ops, makespan
{summary['makespan_us'] / 1e3:.3f} ms, placement {html.escape(str(summary.get('placement')))})</p>
<h2>What limits this step</h2><p>{html.escape(limits)}</p>
{img("limits", pngs["limits"])}
<p>stragglers: {html.escape(strag)}</p>
<h2>Bottleneck links</h2>{bottlenecks}
<h2>Critical path (longest 25 segments)</h2>{crit}
{figs}""")


def write_report(run: Run, summary: dict[str, Any], ranks: pa.Table, path: pa.Table,
                 out: str | Path) -> Path:
    """Write the report page to ``out`` (atomically)."""
    out = Path(out)
    text = render_html(run, summary, ranks, path)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out

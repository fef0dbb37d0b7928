"""Run -> one self-contained HTML page with embedded PNG plots (needs matplotlib).

The page shows the step time and what limits it, a Gantt chart of ranks and streams, a
link-utilization heatmap over time, the per-rank breakdown as stacked bars, the bottleneck
links with their attribution, and the critical path. Plots are rendered with matplotlib's Agg
backend (outside pyplot: the caller's backend is left alone), without timestamps in the PNG
metadata, so the same run gives the same page. For an imported trace it also shows the
simulated vs recorded ProfilerStep durations and the import report.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pyarrow as pa

from simcluster.analysis.fidelity import fidelity_errors
from simcluster.atomic import atomic_path
from simcluster.export.html import img, page, png, table
from simcluster.export.plots import breakdown_figure, gantt_figure, heatmap_figure, limits_figure
from simcluster.sim.result import Run

def fidelity_html(fidelity: pa.Table | None, limit: int = 24) -> str:
    """Simulated vs recorded ProfilerStep durations, or nothing when there are none."""
    if fidelity is None or fidelity.num_rows == 0:
        return ""
    err = fidelity_errors(fidelity)
    rows = [[r["rank"], r["step"], f"{r['recorded_us'] / 1e3:.3f}",
             f"{r['simulated_us'] / 1e3:.3f}", f"{100 * r['error']:+.2f}%"]
            for r in fidelity.slice(0, limit).to_pylist()]
    more = (f"<p>... and {fidelity.num_rows - limit} more rows in fidelity.parquet</p>"
            if fidelity.num_rows > limit else "")
    return (f"<h2>Simulated vs recorded ProfilerStep</h2><p>mean error "
            f"{100 * err['mean']:+.2f}%, mean |error| {100 * err['mean_abs']:.2f}%, max |error| "
            f"{100 * err['max_abs']:.2f}%</p>"
            + table(["rank", "step", "recorded (ms)", "simulated (ms)", "error"], rows) + more)


def import_html(report: dict[str, Any] | None) -> str:
    """The import report: what was skipped, unknown, warned about and assumed."""
    if not report:
        return ""
    items = []
    for key, label in (("skipped", "skipped"), ("unknown", "unknown (ignored)")):
        counts = sorted(report.get(key, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if counts:
            items.append(f"<li><b>{label}</b>: " + html.escape(
                ", ".join(f"{k} ({v:,})" for k, v in counts)) + "</li>")
    items += [f"<li><b>warning</b>: {html.escape(str(w))}</li>"
              for w in report.get("warnings", [])]
    items += [f"<li>{html.escape(str(n))}</li>" for n in report.get("notes", [])]
    return "<h2>Import report</h2><ul>" + "".join(items) + "</ul>"


def render_html(run: Run, summary: dict[str, Any], ranks: pa.Table, path: pa.Table,
                fidelity: pa.Table | None = None,
                import_report: dict[str, Any] | None = None) -> str:
    """The whole page."""
    pngs = {"limits": png(limits_figure(summary["limits"])), "gantt": png(gantt_figure(run)),
            "heatmap": png(heatmap_figure(run)), "breakdown": png(breakdown_figure(ranks))}
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
{fidelity_html(fidelity)}{import_html(import_report)}{figs}""")


def write_report(run: Run, summary: dict[str, Any], ranks: pa.Table, path: pa.Table,
                 out: str | Path, fidelity: pa.Table | None = None,
                 import_report: dict[str, Any] | None = None) -> Path:
    """Write the report page to ``out`` (atomically)."""
    out = Path(out)
    text = render_html(run, summary, ranks, path, fidelity, import_report)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out

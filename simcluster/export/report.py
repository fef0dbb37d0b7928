"""Run -> one self-contained, interactive HTML page (needs plotly).

The page shows the step time and what limits it, the bottleneck links with their
attribution, the critical path grouped by op class and by layer, and three zoomable plots: a
Gantt chart of one rank per class of alike ranks (consecutive ops merged at the resolution a
screen shows), a link-utilization heatmap over time, and the per-rank breakdown. Its size and
the time to write it do not grow with the number of ops beyond those aggregates. A folded
workload's mirror ranks are named, not drawn. For an imported trace it also shows the
simulated vs recorded ProfilerStep durations and the import report. plotly.js is inlined
once: the page opens without network access, and the same run gives the same bytes.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pyarrow as pa

from simcluster.analysis.fidelity import fidelity_errors
from simcluster.atomic import atomic_path
from simcluster.analysis import hta
from simcluster.analysis.breakdown import rank_classes
from simcluster.analysis.critical_path import path_by_class, path_by_layer
from simcluster.analysis.links import bottleneck_classes
from simcluster.export.html import figure_html, page, table
from simcluster.export.plots import (
    breakdown_figure,
    heatmap_figure,
    limits_figure,
    representatives,
    timeline_figure,
)
from simcluster.sim.result import Run

def fidelity_html(fidelity: pa.Table | None, limit: int = 24) -> str:
    """Simulated vs recorded ProfilerStep durations (host span and GPU-inclusive span), or
    nothing when there are none."""
    if fidelity is None or fidelity.num_rows == 0:
        return ""
    err = fidelity_errors(fidelity)
    gpu = "gpu_error" in fidelity.column_names
    rows = [[r["rank"], r["step"], f"{r['recorded_us'] / 1e3:.3f}",
             f"{r['simulated_us'] / 1e3:.3f}", f"{100 * r['error']:+.2f}%",
             *([f"{r['recorded_gpu_us'] / 1e3:.3f}", f"{r['simulated_gpu_us'] / 1e3:.3f}",
                f"{100 * r['gpu_error']:+.2f}%"] if gpu else [])]
            for r in fidelity.slice(0, limit).to_pylist()]
    more = (f"<p>... and {fidelity.num_rows - limit} more rows in fidelity.parquet</p>"
            if fidelity.num_rows > limit else "")
    heads = ["rank", "step", "recorded (ms)", "simulated (ms)", "error",
             *(["recorded GPU (ms)", "simulated GPU (ms)", "GPU error"] if gpu else [])]
    return (f"<h2>Simulated vs recorded ProfilerStep</h2><p>host span (the ProfilerStep "
            f"range): mean error {100 * err['mean']:+.2f}%, mean |error| "
            f"{100 * err['mean_abs']:.2f}%, max |error| {100 * err['max_abs']:.2f}%; GPU: from "
            "the step's first to its last device op</p>" + table(heads, rows) + more)


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


def hta_html(run: Run, ranks: int) -> str:
    """HolisticTraceAnalysis's view: GPU time, kernel-type overlap, top kernels per type,
    idle time by cause (all ranks summed)."""
    g = hta.overall(hta.temporal_breakdown(run, ranks), hta.comm_comp_overlap(run, ranks))
    types = table(["kernel type", "time (ms)", "share"],
                  [[r["kernel_type"], f"{r['time_us'] / 1e3:.3f}", f"{r['pct']:.1f}%"]
                   for r in hta.kernel_type_overlap(run, ranks).to_pylist()])
    kernels = table(["type", "kernel", "count", "total (ms)", "mean (us)", "share of type"],
                    [[r["kernel_type"], r["name"][:120], r["count"], f"{r['sum_us'] / 1e3:.3f}",
                      f"{r['mean_us']:.2f}", f"{r['pct']:.1f}%"]
                     for r in hta.kernel_breakdown(run, ranks).to_pylist()])
    idle = hta.idle_time_breakdown(run, ranks).group_by("idle_category").aggregate(
        [("idle_us", "sum")]).sort_by([("idle_us_sum", "descending")]).to_pylist()
    total_idle = sum(r["idle_us_sum"] for r in idle) or 1.0
    idle_line = ", ".join(f"{r['idle_category']} {100 * r['idle_us_sum'] / total_idle:.1f}%"
                          for r in idle) or "none"
    return (f"<h2>GPU time as HolisticTraceAnalysis counts it</h2><p>compute "
            f"{g['compute_pct']:.1f}%, non-compute {g['non_compute_pct']:.1f}%, idle "
            f"{g['idle_pct']:.1f}% of the kernel span (summed over {ranks} ranks); computation "
            f"overlaps {g['comm_overlap_pct']:.1f}% of communication. Idle gaps between kernels "
            f"by cause: {html.escape(idle_line)}.</p>{types}<h3>Kernels</h3>{kernels}")


def render_html(run: Run, summary: dict[str, Any], ranks: pa.Table, path: pa.Table,
                fidelity: pa.Table | None = None,
                import_report: dict[str, Any] | None = None) -> str:
    """The whole page. ``ranks`` holds the ranks that stand for all (a folded workload's
    replica); the others are named, not drawn."""
    classes = rank_classes(ranks)
    reps = representatives(classes)
    mirrors = int(summary.get("ranks") or ranks.num_rows) - ranks.num_rows
    note = (f"{mirrors} mirror ranks of the folded workload are not drawn: replica 0 stands "
            "for every replica" if mirrors > 0 else "")
    shown = f"{len(reps)} of {len(classes)} classes" if len(classes) > len(reps) else ""
    figs = {
        "limits": limits_figure(summary["limits"]),
        "timeline": timeline_figure(run, reps, shown),
        "links": heatmap_figure(run),
        "breakdown": breakdown_figure(ranks, reps if ranks.num_rows > 64 else None),
    }
    div = {k: figure_html(f, k) for k, f in figs.items()}
    bottlenecks = table(
        ["link", "alike", "role", "GB/s", "utilization", "limiting (ms)", "parallelism",
         "limited"],
        [[f"{r['src']} -> {r['dst']}", r["alike"], r["role"], f"{r['capacity_GBps']:g}",
          f"{100 * r['utilization']:.1f}%", f"{r['limiting_us'] / 1e3:.3f}",
          ", ".join(f"{p['parallelism']} {100 * p['share']:.0f}%"
                    for p in r.get("parallelism", [])),
          ", ".join(f"{a['label']} {100 * a['share']:.0f}%" for a in r.get("limited", []))]
         for r in bottleneck_classes(run)])
    crit = table(
        ["category", "op class", "segments", "total (ms)", "share"],
        [[r["category"], r["op_class"], r["segments"], f"{r['duration_us'] / 1e3:.3f}",
          f"{100 * r['share']:.1f}%"] for r in path_by_class(path).slice(0, 25).to_pylist()])
    layers = path_by_layer(path)
    by_layer = ("<p>by layer: " + html.escape(", ".join(
        f"L{k} {100 * v:.1f}%" for k, v in sorted(layers.items(), key=lambda kv: -kv[1])[:12]))
        + "</p>" if layers else "")
    limits = ", ".join(f"{k} {100 * v:.1f}%" for k, v in summary["limits"].items())
    title = f"{summary.get('workload')} on {summary.get('cluster')}"
    strag = ", ".join(map(str, summary.get("stragglers", []))) or "none"
    return page(f"simcluster: {title}", f"""<h1>simcluster report: {html.escape(title)}</h1>
<p><span class="big">step time {summary['step_time_us'] / 1e3:.3f} ms</span>
({summary.get('ranks')} ranks, {summary.get('ops')} ops, makespan
{summary['makespan_us'] / 1e3:.3f} ms, placement {html.escape(str(summary.get('placement')))})</p>
{f'<p class="note">{html.escape(note)}</p>' if note else ''}
<h2>What limits this step</h2><p>{html.escape(limits)}</p>{div["limits"]}
<p>stragglers: {html.escape(strag)}</p>
<h2>Bottleneck links</h2>{bottlenecks}
<h2>Critical path by op class</h2>{crit}{by_layer}
{hta_html(run, ranks.num_rows)}
{fidelity_html(fidelity)}{import_html(import_report)}
<h2>Timeline</h2>{div["timeline"]}
<h2>Link utilization</h2>{div["links"]}
<h2>Per-rank breakdown</h2>{div["breakdown"]}""")


def write_report(run: Run, summary: dict[str, Any], ranks: pa.Table, path: pa.Table,
                 out: str | Path, fidelity: pa.Table | None = None,
                 import_report: dict[str, Any] | None = None) -> Path:
    """Write the report page to ``out`` (atomically)."""
    out = Path(out)
    text = render_html(run, summary, ranks, path, fidelity, import_report)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out

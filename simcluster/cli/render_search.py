"""Rich renderings of sweeps and searches: their result tables and what a search found."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from rich.console import Group
from rich.table import Table
from rich.text import Text

from simcluster.cli.render import fmt_time


# -- sweeps ---------------------------------------------------------------------------------------

def sweep_table(rows: list[dict[str, Any]], results: pa.Table, title: str) -> Table:
    """Sweep rows: their axis values, then step time, throughput, cost and bottleneck."""
    from simcluster.analysis.sweep import axis_columns
    from simcluster.export.sweep_report import axis_cell, display_row

    axes = axis_columns(results)
    table = Table(title=title, title_justify="left")
    for col in [*axes, *display_row({"step_time_us": 0.0})]:
        table.add_column(col, justify="left" if col == "bottleneck" else "right")
    for r in rows:
        table.add_row(*[axis_cell(r.get(a)) for a in axes], *display_row(r).values())
    return table


# -- search ---------------------------------------------------------------------------------------

def search_summary(report: Any, fixed: dict[str, Any]) -> Group:
    """What a search looked at, and its top configurations with why each wins."""
    from simcluster.export.sweep_report import display_row

    share = report.simulated / max(report.feasible, 1)
    head = Text.assemble(
        (f"{fixed.get('preset')}", "bold"), f", global batch {fixed.get('global_batch')}: ",
        f"{report.configurations} configurations, {report.feasible} fit in memory (estimated "
        f"all); simulated {report.simulated} ({100 * share:.0f}%) in {report.simulations} "
        "simulations")
    table = Table(title=f"best by {report.objective}", title_justify="left")
    extra = [k for k in ("cp", "ep") if any(k in t.params for t in report.best)]
    for col in ("#", "tp", "pp", "dp", *extra, "mb", "schedule", "recompute", "zero", "step",
                "tokens/s", "MFU", "$/1M tok", "why: limited by, bubble, exposed comm, memory"):
        table.add_column(col, justify="left" if col in ("schedule", "recompute") or
                         col.startswith("why") else "right")
    best = report.best[0].full if report.best else None
    for i, t in enumerate(report.best, start=1):
        r, p = t.full, t.params
        d = display_row(r)
        gap = "" if i == 1 or best is None else (
            f" (+{100 * (r['step_time_us'] / best['step_time_us'] - 1):.1f}% time)")
        bubble = ("no pipeline" if p["pp"] == 1 or r.get("bubble") is None
                  else f"bubble {100 * r['bubble']:.0f}%")
        why = (f"{r.get('bottleneck') or '-'}, {bubble}, exposed comm "
               f"{100 * (r.get('exposed_comm_fraction') or 0):.1f}%, {d['peak mem']} of "
               f"HBM{gap}")
        hw = ", ".join(f"{k[3:]} {v:g}" for k, v in t.point.items() if k.startswith("hw."))
        table.add_row(str(i), str(p["tp"]), str(p["pp"]), str(p["dp"]),
                      *(str(p.get(k, 1)) for k in extra), str(p["micro_batch"]),
                      p["schedule"] if p["pp"] > 1 else "-", p["recompute"], str(p["zero"]),
                      fmt_time(r["step_time_us"]), d["tokens/s"], d["MFU"], d["$/1M tokens"],
                      why + (f"; {hw}" if hw else ""))
    if not report.best:
        return Group(head, Text("no simulated configuration ran; see candidates.parquet"))
    return Group(head, table)


def front_table(co: Any) -> Table:
    """A co-search's Pareto front: hardware, configuration, time, cost, and the parameter
    that limits each point (by the estimate) with what 10 % more of it saves and costs."""
    from simcluster.search.cosearch import DELTA

    table = Table(title="Pareto front (step time vs $/1M tokens); limited by: the parameter "
                  f"whose +{100 * DELTA:.0f}% (a domain: the next size) cuts the estimated "
                  "time most per $",
                  title_justify="left")
    hw = sorted({k for t in co.front for k in t.point if k.startswith("hw.")})
    for col in (*[k[3:] for k in hw], "$/GPU-h", "tp", "pp", "dp", "mb", "recompute", "zero",
                "step", "$/1M tok", "limited by"):
        table.add_column(col, justify="left" if col in ("limited by", "recompute") else
                         "right")
    for t, lim in zip(co.front, co.limits):
        p, r = t.params, t.full
        why = ("nothing (no parameter cuts the estimate)" if lim.param is None else
               f"{lim.param}: -{100 * lim.time_cut:.1f}% time for +${lim.usd_per_hour:.3f}/h")
        table.add_row(*[f"{t.point[k]:g}" for k in hw], f"{t.point['price']:.3f}",
                      str(p["tp"]), str(p["pp"]), str(p["dp"]), str(p["micro_batch"]),
                      p["recompute"], str(p["zero"]), fmt_time(r["step_time_us"]),
                      f"{r['usd_per_1m_tokens']:.4f}", why)
    return table

"""Rich renderings of runs: the breakdown, links, what limits the step, cost, fidelity
against a recording, training metrics, what ``replay`` prints, and ``diff``."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from simcluster.analysis.breakdown import breakdown_stats, notable_ranks
from simcluster.analysis.fidelity import fidelity_errors
from simcluster.cli.render import GIB, fmt_bytes, fmt_count, fmt_time, report_lines


# -- run ------------------------------------------------------------------------------------------

_BREAKDOWN_COLS = (
    ("compute_us", "compute"), ("exposed_comm_us", "exposed comm"), ("copies_us", "copies"),
    ("host_us", "host"), ("sync_wait_us", "sync wait"), ("idle_us", "idle"),
    ("overlapped_comm_us", "overlapped comm"),
)


def breakdown_table(ranks: pa.Table, max_rows: int = 16) -> Table:
    """Per-rank breakdown in ms and % of the window. The first six columns partition it;
    overlapped comm is communication hidden under compute. More than ``max_rows`` ranks are
    summarised as mean, min and max rows plus the ranks that held others up or idled most."""
    table = Table(title="per-rank breakdown (ms, % of step): compute + exposed comm + copies + "
                        "host + sync wait + idle = step", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("device")
    for _, label in _BREAKDOWN_COLS:
        table.add_column(label, justify="right")
    table.add_column("peak mem", justify="right")

    def cells(values: dict[str, float], window: float) -> list[str]:
        out = []
        for col, _ in _BREAKDOWN_COLS:
            v = values[col]
            pct = 100 * v / window if window else 0.0
            out.append(f"{v / 1e3:.3f} ({pct:.0f}%)")
        return out

    rows = ranks.to_pylist()
    n = len(rows)
    chosen = [rows[i] for i in notable_ranks(ranks, n if n <= max_rows else max_rows // 2)]
    for r in chosen:
        mark = " *" if r["straggler"] else ""
        table.add_row(f"{r['rank']}{mark}", r["device"], *cells(r, r["window_us"]),
                      f"{r['peak_memory_bytes'] / GIB:.2f} GiB")
    if n > max_rows:
        table.add_section()
        window = float(rows[0]["window_us"])
        stats = breakdown_stats(ranks, (*(c for c, _ in _BREAKDOWN_COLS), "peak_memory_bytes"))
        for label, vals in stats.items():
            table.add_row(label, f"{n} ranks", *cells(vals, window),
                          f"{vals['peak_memory_bytes'] / GIB:.2f} GiB")
        table.caption = f"{len(chosen)} of {n} ranks shown: those that caused waits or idled most"
    if any(r["straggler"] for r in rows):
        table.caption = ((table.caption + "; ") if table.caption else "") + (
            "* straggler: others waited for it (see docs/formats.md)")
    return table


def links_table(links: list[dict[str, Any]], title: str = "busiest links") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("link", "role", "GB/s", "utilization", "bytes", "busy", "saturated", "max flows"):
        table.add_column(col, justify="left" if col in ("link", "role") else "right")
    for r in links:
        table.add_row(f"{r['src']} -> {r['dst']}", r["role"], f"{r['capacity_GBps']:g}",
                      f"{100 * r['utilization']:.1f}%", fmt_bytes(r["bytes"]),
                      fmt_time(r["busy_us"]), fmt_time(r["saturated_us"]), str(r["max_flows"]))
    return table


def bottlenecks_table(rows: list[dict[str, Any]]) -> Table:
    """Links by limiting flow-time, with the kinds of parallelism and the collectives/groups
    they limited."""
    table = Table(title="bottleneck links (flow-time during which the link set a flow's rate)",
                  title_justify="left")
    text = ("link", "role", "parallelism", "limited")
    for col in ("link", "role", "GB/s", "util", "limiting", "parallelism", "limited"):
        table.add_column(col, justify="left" if col in text else "right")
    for r in rows:
        limited = ", ".join(f"{a['label']} {100 * a['share']:.0f}%" for a in r.get("limited", []))
        alike = f" (+{r['alike']} alike)" if r.get("alike") else ""
        table.add_row(f"{r['src']} -> {r['dst']}{alike}", r["role"], f"{r['capacity_GBps']:g}",
                      f"{100 * r['utilization']:.1f}%", fmt_time(r["limiting_us"]),
                      parallelism_shares(r), limited)
    return table


def parallelism_shares(row: dict[str, Any]) -> str:
    """``ep 84%, dp 16%``: the kinds of parallelism a bottleneck link limited."""
    return ", ".join(f"{p['parallelism']} {100 * p['share']:.0f}%"
                     for p in row.get("parallelism", []))


def roles_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="link load by role", title_justify="left")
    for col in ("role", "links used", "bytes", "mean util", "max util", "limiting share"):
        table.add_column(col, justify="left" if col == "role" else "right")
    for r in rows:
        table.add_row(r["role"], str(r["links"]), fmt_bytes(r["bytes"]),
                      f"{100 * r['mean_utilization']:.1f}%", f"{100 * r['max_utilization']:.1f}%",
                      f"{100 * r['limiting_share']:.1f}%")
    return table


def limits_line(limits: dict[str, float]) -> Text:
    """``what limits this step: compute 95%, comm:nvlink 3%, ...``"""
    parts = ", ".join(f"{k} {100 * v:.1f}%" for k, v in limits.items() if v >= 0.0005)
    return Text.assemble(("what limits this step ", "bold"), "(critical path): ", parts or "-")


# -- fidelity ---------------------------------------------------------------------------------

def fidelity_table(fidelity: pa.Table, limit: int = 24) -> Group:
    """Simulated vs recorded ProfilerStep durations (``analysis.fidelity.step_fidelity``)."""
    rows = fidelity.to_pylist()
    err = fidelity_errors(fidelity)
    title = Text.assemble(("ProfilerStep: simulated vs recorded", "bold"),
                          f" (max |error| {100 * err['max_abs']:.2f}%, mean "
                          f"{100 * err['mean_abs']:.2f}%)")
    table = Table()
    for col in ("rank", "step", "recorded", "simulated", "error"):
        table.add_column(col, justify="right")
    for r in rows[:limit]:
        table.add_row(str(r["rank"]), str(r["step"]), fmt_time(r["recorded_us"]),
                      fmt_time(r["simulated_us"]), f"{100 * r['error']:+.2f}%")
    if len(rows) > limit:
        table.add_row("...", f"{len(rows) - limit} more", "", "", "")
    return Group(title, table)


# -- training -------------------------------------------------------------------------------------

def memory_table(info: Any, capacity_bytes: int | None = None) -> Table:
    """The analytic memory of each pipeline stage by category (GiB)."""
    from simcluster.analysis.training import CATEGORIES

    table = Table(title="memory per GPU by pipeline stage (GiB, analytic)", title_justify="left")
    table.add_column("stage", justify="right")
    for c in (*CATEGORIES, "total"):
        table.add_column(c, justify="right")
    for p in range(info.pp):
        mem = info.memory(p)
        table.add_row(str(p), *(f"{mem[c] / GIB:.2f}" for c in (*CATEGORIES, "total")))
    return table


_COMM_NAMES = {"ep": "expert all-to-all (ep)", "edp": "expert gradients (edp)",
               "cp": "context-parallel exchange (cp)", "pp": "pipeline send/recv (pp)"}


def training_lines(training: dict[str, Any]) -> RenderableType:
    """MFU, tokens/s, memory against capacity (OOM flagged) and the pipeline bubble."""
    mem = training["memory"]
    pipe = training["pipeline"]
    lines = [
        Text.from_markup(
            f"[bold]{training['model']}[/]: MFU [bold green]{100 * training['mfu']:.1f}%[/] "
            f"({training['peak_dtype']} peak), {fmt_count(training['tokens_per_s'])} tokens/s, "
            f"{training['tflops_per_gpu']:.1f} TFLOP/s per GPU incl. recompute "
            f"(HFU {100 * training['hfu']:.1f}%)"),
        Text(f"pipeline bubble {100 * pipe['bubble']:.1f}% of the step (compute idle; ideal "
             f"{100 * pipe['ideal_bubble']:.1f}% for {pipe['schedule']}, p={pipe['stages']}, "
             f"m={pipe['micro_batches']}, v={pipe['chunks']})"),
    ]
    comm = training.get("communication") or {}
    if comm:
        lines.append(Text("communication per step by parallelism (moving / exposed): " + ", ".join(
            f"{_COMM_NAMES.get(k, k)} {v['time_us'] / 1e3:.1f} / {v['exposed_us'] / 1e3:.1f} ms"
            for k, v in comm.items())))
    table = Table(title="memory per GPU by pipeline stage (GiB)", title_justify="left")
    for col in ("stage", "weights", "grads", "optimizer", "activations", "buffers",
                "model total", "replay peak", "capacity", ""):
        table.add_column(col, justify="right")
    for st in mem["stages"]:
        flag = Text("OOM", style="bold red") if st["oom"] else Text("ok", style="green")
        table.add_row(str(st["stage"]), *(f"{st[c] / GIB:.2f}" for c in (
            "weights", "grads", "optimizer", "activations", "buffers", "total", "replay_peak",
            "capacity")), flag)
    if training["folded"]:
        lines.append(Text("folded workload: figures are those of data-parallel replica 0, "
                          "which every replica matches"))
    return Group(*lines, table)


# -- diff -----------------------------------------------------------------------------------------

def _pct(change: float | None) -> str:
    return "-" if change is None else f"{100 * change:+.1f}%"


def diff_view(d: dict[str, Any], name_a: str, name_b: str) -> list[RenderableType]:
    """Renderables for ``analysis.diff.diff_runs``."""
    st = d["step_time_us"]
    head = Text.assemble(("step time ", "bold"), f"{fmt_time(st['a'])} ({name_a}) -> ",
                         (fmt_time(st["b"]), "bold"), f" ({name_b}): {_pct(st['change'])}")
    parts = Table(title="mean breakdown per rank", title_justify="left")
    for col in ("category", "A", "B", "change"):
        parts.add_column(col, justify="left" if col == "category" else "right")
    for cat, v in d["breakdown"].items():
        parts.add_row(cat.removesuffix("_us"), fmt_time(v["a"]), fmt_time(v["b"]),
                      fmt_time(v["b"] - v["a"]) if v["b"] >= v["a"] else
                      f"-{fmt_time(v['a'] - v['b'])}")
    lim = Table(title="what limits the step (critical path)", title_justify="left")
    for col in ("category", "A", "B"):
        lim.add_column(col, justify="left" if col == "category" else "right")
    for cat, v in d["limits"].items():
        lim.add_row(cat, f"{100 * v['a']:.1f}%", f"{100 * v['b']:.1f}%")
    links = Table(title="links whose utilization changed most", title_justify="left")
    for col in ("link", "util A", "util B", "limiting A", "limiting B"):
        links.add_column(col, justify="left" if col == "link" else "right")
    for r in d["links"]:
        links.add_row(r["link"], f"{100 * r['utilization_a']:.1f}%",
                      f"{100 * r['utilization_b']:.1f}%", fmt_time(r["limiting_us_a"]),
                      fmt_time(r["limiting_us_b"]))
    ops = Table(title="ops whose duration changed most", title_justify="left")
    for col in ("op", "A", "B", "change"):
        ops.add_column(col, justify="left" if col == "op" else "right")
    for r in d["ops"]:
        sign = "+" if r["change_us"] >= 0 else "-"
        ops.add_row(r["op"], fmt_time(r["duration_a_us"]), fmt_time(r["duration_b_us"]),
                    f"{sign}{fmt_time(abs(r['change_us']))}")
    return [head, parts, lim, links, ops if d["ops"] else Text("no op changed duration")]


# -- replay ---------------------------------------------------------------------------------------

def degradation_line(d: Any) -> str:
    """The step-time cost of failed and flapping elements (a ``Degradation``)."""
    what = [*d.failed, *(f"{k} flapping {v:.0%}" for k, v in sorted(d.flapping.items()))]
    return (f"degraded ({'; '.join(what)}): step time {fmt_time(d.healthy_us)} healthy -> "
            f"[bold]{fmt_time(d.degraded_us)}[/] ({d.cost_us:+,.1f} us, x{d.slowdown:.3f})"
            + (f"; restarted on {d.ranks[1]} ranks (was {d.ranks[0]})"
               if d.ranks[1] != d.ranks[0] else "") + restart_text(d.restart))


def restart_text(restart: dict[str, Any] | None) -> str:
    """The configuration a restart chose, against the one asked, and what the search did
    (a ``Restart.to_json``)."""
    if not restart or not restart["after"]:
        return ""

    def shape(c: dict[str, Any]) -> str:
        return " ".join(f"{k.replace('_', '-')} {v}" for k, v in c.items()
                        if k != "sequence_parallel")

    s = restart["search"]
    how = (f" (the fastest of {s['simulated']} simulated of the {s['feasible']} "
           f"configurations that fit)" if s else " (same shape, fewer replicas)")
    return f"; {restart['mode']}: {shape(restart['after'])}{how}, was {shape(restart['before'])}"


def replay_view(result: Any, fallback_name: str) -> list[tuple[RenderableType, bool]]:
    """What ``simcluster replay`` prints, in order, as (renderable, soft_wrap) pairs: the
    import report, where the cluster came from, the step time, the breakdown, what limits the
    step, links, cost, fidelity against the recording, memory and training metrics."""
    summary, run, wl = result.summary, result.run, result.workload
    out: list[tuple[RenderableType, bool]] = []
    if result.import_report:
        out += [(line, True) for line in report_lines(result.import_report, notes=False)]
    if result.cluster_note:
        out.append((Text(result.cluster_note), True))
    n_steps = len(summary["steps"])
    rate = wl.num_ops / run.wall_s if run.wall_s > 0 else float("inf")
    cluster = result.cluster
    out.append((
        f"[bold]{wl.meta.name or fallback_name}[/]: {wl.num_ranks} ranks, {wl.num_ops:,} ops  "
        f"on  [bold]{cluster.name}[/]: {len(cluster.accelerators)} accelerators  (placement: "
        f"{result.bound.placement.strategy})", False))
    out.append((
        f"step time [bold green]{fmt_time(summary['step_time_us'])}[/] ({n_steps} "
        f"step{'s' if n_steps != 1 else ''}, makespan {fmt_time(run.makespan_us)}); simulated "
        f"in {run.wall_s:.2f} s ({fmt_count(rate)} ops/s)", False))
    out.append((breakdown_table(result.breakdown), False))
    out.append((limits_line(summary["limits"]), False))
    for label, g in (("simulated", result.gpu_time), ("recorded", result.recorded_gpu_time)):
        if g is None:
            continue
        who = f" ({label})" if result.recorded_gpu_time is not None else ""
        out.append((f"GPU time as HolisticTraceAnalysis counts it{who}: compute "
                    f"{g['compute_pct']:.1f}%, non-compute {g['non_compute_pct']:.1f}%, idle "
                    f"{g['idle_pct']:.1f}% of the kernel span; computation overlaps "
                    f"{g['comm_overlap_pct']:.1f}% of communication", True))
    if summary["stragglers"]:
        out.append((f"stragglers (others waited for them): ranks "
                    f"{', '.join(map(str, summary['stragglers'][:16]))}", False))
    if result.bottleneck_classes:
        out.append((bottlenecks_table(result.bottleneck_classes), False))
    for key, draw in (("links_by_role", roles_table), ("busiest_links", links_table)):
        if summary[key]:
            out.append((draw(summary[key]), False))
    out += [(line, False) for line in cost_lines(summary["cost"], result.training_run)]
    if result.fidelity.num_rows:
        out.append((fidelity_table(result.fidelity), False))
    mem = summary["memory"]
    out.append((f"peak memory {mem['peak_bytes_max'] / GIB:.2f} GiB on rank {mem['peak_rank']} "
                f"({100 * mem['peak_fraction_of_capacity']:.1f}% of its capacity)"
                if mem["peak_bytes_max"] > 0 else
                "peak memory: not modelled (the workload allocates no memory)", False))
    if result.training is not None:
        out.append((training_lines(result.training), False))
    return out


def cost_lines(money: dict[str, Any], plan: dict[str, Any] | None) -> list[str]:
    """The cost per hour, step and 1M tokens, and the training run's time and cost."""
    out = []
    if money["usd_per_hour"] is not None:
        line = f"cost ${money['usd_per_hour']:,.2f}/h, ${money['usd_per_step']:.4f} per step"
        if money["usd_per_1m_tokens"] is not None:
            line += (f", ${money['usd_per_1m_tokens']:.3f} per 1M tokens "
                     f"({money['tokens_per_s']:,.0f} tokens/s)")
        out.append(line)
    if plan is not None:
        if plan["hours"] is None:
            out.append("training run: unknown (the workload does not say how many tokens a "
                       "step processes)")
        else:
            usd = "unknown cost (no price)" if plan["usd"] is None else f"${plan['usd']:,.0f}"
            out.append(f"training run of {plan['tokens']:,.0f} tokens: {plan['hours']:,.1f} h "
                       f"({plan['hours'] / 24:,.1f} days), {usd}")
    return out


# -- job mix ----------------------------------------------------------------------------------

def mix_view(result: Any, traces: list[Any]) -> list[tuple[RenderableType, bool]]:
    """What ``simcluster replay TRACE TRACE ...`` prints: each job's step time alone and
    together, the links the jobs share, and the joint run's bottleneck links."""
    summary, cluster = result.summary, result.mix.cluster
    jobs = Table(title=f"{len(summary['jobs'])} jobs on {cluster.name} "
                       f"({len(cluster.accelerators)} accelerators): step time alone and "
                       "together", title_justify="left")
    for col in ("job", "trace", "ranks", "devices", "start", "alone", "together", "slowdown"):
        jobs.add_column(col, justify="left" if col in ("job", "trace", "devices") else "right")
    for row, trace in zip(summary["jobs"], traces):
        devs = row["devices"]
        shown = devs[0] if len(devs) == 1 else f"{devs[0]} .. {devs[-1]}"
        jobs.add_row(row["job"], str(getattr(trace, "name", trace)), str(row["ranks"]), shown,
                     fmt_time(row["start_us"]), fmt_time(row["alone_step_us"]),
                     fmt_time(row["together_step_us"]), f"x{row['slowdown']:.3f}")
    out: list[tuple[RenderableType, bool]] = [(jobs, False)]
    if not summary["contended_links"]:
        out.append(("no link carries more than one job's traffic", False))
    else:
        shared = Table(title=f"links the jobs share ({summary['shared_links']}; bytes per job, "
                             "and how long the link limited the job's flows)",
                       title_justify="left")
        for col in ("link", "role", "bytes", "limited"):
            shared.add_column(col, justify="left")
        for r in summary["contended_links"]:
            shared.add_row(f"{r['src']} -> {r['dst']}", str(r["role"]),
                           ", ".join(f"{j} {fmt_bytes(v['bytes'])}" for j, v in r["jobs"].items()),
                           ", ".join(f"{j} {fmt_time(v['limited_us'])}"
                                     for j, v in r["jobs"].items()))
        out.append((shared, False))
    if result.together.bottleneck_classes:
        out.append((bottlenecks_table(result.together.bottleneck_classes), False))
    return out

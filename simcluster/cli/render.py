"""Rich renderings of clusters, workloads and runs for the terminal."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import pyarrow as pa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from simcluster.analysis.breakdown import breakdown_stats, notable_ranks
from simcluster.analysis.fidelity import fidelity_errors
from simcluster.analysis.workload import workload_stats
from simcluster.topology.cluster import Cluster
from simcluster.workload.model import Workload

GIB = float(2**30)


def fmt_time(us: float) -> str:
    """Microseconds as a short human string: ``812.3 us``, ``27.25 ms``, ``1.234 s``."""
    if us >= 1e6:
        return f"{us / 1e6:.3f} s"
    if us >= 1e3:
        return f"{us / 1e3:.3f} ms"
    return f"{us:.1f} us"


def fmt_bytes(n: float) -> str:
    """Bytes in decimal units (as GB/s is): ``25.19 MB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def fmt_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{int(n)}"


# -- topology -------------------------------------------------------------------------------------

def _local(name: str, host: str | None) -> str:
    return name[len(host) + 1:] if host and name.startswith(host + "/") else name


def _compact(names: list[str]) -> str:
    """``gpu0, gpu1, ..., gpu7`` -> ``gpu0..gpu7`` when the names are a numbered run; long
    lists of other names are cut to their ends."""
    m = [re.fullmatch(r"(.*?)(\d+)", n) for n in names]
    if len(names) > 2 and all(m):
        stems = {x.group(1) for x in m if x}
        nums = [int(x.group(2)) for x in m if x]
        if len(stems) == 1 and nums == list(range(nums[0], nums[0] + len(nums))):
            return f"{names[0]}..{names[-1]}"
    if len(names) > 6:
        return f"{', '.join(names[:3])}, ..., {names[-1]} ({len(names)})"
    return ", ".join(names)


def _links_of(cluster: Cluster, node: str, host: str | None) -> str:
    g = cluster.graph
    groups: dict[tuple[str, float], list[str]] = defaultdict(list)
    for dst, attrs in g.succ[node].items():
        i = attrs["id"]
        key = (cluster.link_kind[i], float(cluster.bandwidth_Bpus[i] / 1e3))
        groups[key].append(_local(dst, host))
    parts = [f"{kind} {bw:g} GB/s -> {_compact(dsts)}" for (kind, bw), dsts in groups.items()]
    return "; ".join(parts)


def _host_signature(cluster: Cluster, host: str, nodes: list[str]) -> tuple[Any, ...]:
    g = cluster.graph
    sig = []
    for n in nodes:
        a = g.nodes[n]
        links = sorted(
            (_local(d, host) if cluster.host_of(d) == host else "<outside>",
             cluster.link_kind[e["id"]], float(cluster.bandwidth_Bpus[e["id"]]))
            for d, e in g.succ[n].items()
        )
        sig.append((_local(n, host), a["kind"], a.get("model"), tuple(links)))
    return tuple(sig)


_KIND_ORDER = {"accelerator": 0, "switch": 1, "nic": 2, "cpu": 3, "memory": 4}


def _host_branch(tree: Tree, cluster: Cluster, host: str, nodes: list[str]) -> None:
    g = cluster.graph
    by_kind: dict[str, list[str]] = defaultdict(list)
    for n in nodes:
        by_kind[g.nodes[n]["kind"]].append(n)
    for kind in sorted(by_kind, key=lambda k: _KIND_ORDER.get(k, 9)):
        members = by_kind[kind]
        # Members with identical link patterns (up to numbering) share a line.
        rows: dict[str, list[str]] = defaultdict(list)
        for n in members:
            desc = _links_of(cluster, n, host)
            pattern = re.sub(r"\d+", "#", desc)
            if kind == "accelerator":
                spec = cluster.specs[n]
                pattern = f"{spec.model} ({spec.hbm_GiB:g} GiB, {spec.hbm_GBps:g} GB/s): " + pattern
            elif kind == "memory":
                pattern = f"{g.nodes[n].get('capacity_bytes', 0) / GIB:g} GiB: " + pattern
            rows[pattern].append(n)
        for pattern, ns in rows.items():
            label = _compact([_local(n, host) for n in ns])
            detail = _links_of(cluster, ns[0], host)
            if kind == "accelerator":
                spec = cluster.specs[ns[0]]
                detail = f"{spec.model}, {spec.hbm_GiB:g} GiB HBM, {spec.hbm_GBps:g} GB/s; {detail}"
            elif kind == "memory":
                detail = f"{g.nodes[ns[0]].get('capacity_bytes', 0) / GIB:g} GiB; {detail}"
            note = f" (links shown for {_local(ns[0], host)})" if len(ns) > 1 else ""
            tree.add(Text.assemble((f"{kind} ", "dim"), (label, "bold"), f": {detail}{note}"))


def topology_tree(cluster: Cluster, full: bool = False) -> Tree:
    """A tree: hosts with their devices and links, then fabric switches by role.

    Hosts identical to an earlier one (same devices and links up to the host name) are
    collapsed into one line unless ``full``.
    """
    counts = cluster.counts()
    models = Counter(s.model for s in cluster.specs.values())
    head = Text.assemble(
        (cluster.name, "bold"),
        f": {', '.join(f'{n} x {m}' for m, n in models.items())}, {counts['hosts']} host(s), "
        f"{counts.get('switch', 0)} switch(es), {counts['links']} directed links",
    )
    tree = Tree(head)
    if cluster.description:
        tree.add(Text(cluster.description, style="italic"))
    g = cluster.graph
    hosts: dict[str | None, list[str]] = defaultdict(list)
    for n, h in g.nodes(data="host"):
        hosts[h].append(n)
    seen: dict[tuple[Any, ...], str] = {}
    collapsed: dict[str, list[str]] = defaultdict(list)
    for host, nodes in hosts.items():
        if host is None:
            continue
        sig = _host_signature(cluster, host, nodes)
        if not full and sig in seen:
            collapsed[seen[sig]].append(host)
            continue
        seen[sig] = host
        _host_branch(tree.add(Text(f"host {host}", style="bold cyan")), cluster, host, nodes)
    for first, same in collapsed.items():
        tree.add(Text(f"{len(same)} more host(s) like {first}: {_compact(same)}", style="cyan"))
    fabric = hosts.get(None, [])
    if fabric:
        branch = tree.add(Text("fabric", style="bold magenta"))
        roles: dict[str, list[str]] = defaultdict(list)
        for n in fabric:
            roles[g.nodes[n].get("role") or g.nodes[n]["kind"]].append(n)
        for role, ns in roles.items():
            n0 = ns[0]
            kinds = Counter(
                (cluster.link_kind[e["id"]], float(cluster.bandwidth_Bpus[e["id"]] / 1e3))
                for _, e in g.succ[n0].items()
            )
            links = ", ".join(f"{c} x {k} {bw:g} GB/s" for (k, bw), c in kinds.items())
            branch.add(Text.assemble((f"{role} ", "dim"), (_compact(ns), "bold"),
                                     f": {len(ns)} device(s); {n0} has {links}"))
    return tree


# -- workload -------------------------------------------------------------------------------------

def workload_info(workload: Workload, path: str) -> RenderableType:
    """Ranks, ops by kind, collectives, groups and bytes of a workload."""
    stats = workload_stats(workload)
    meta = workload.meta
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for k, v in (
        ("file", path),
        ("name", meta.name or "-"),
        ("source", meta.source or "-"),
        ("ranks", str(workload.num_ranks)),
        ("ops", f"{workload.num_ops:,}"),
        ("streams", f"{stats.streams:,} ({stats.streams / max(workload.num_ranks, 1):.1f} "
                    "per rank)"),
        ("steps", str(stats.steps)),
        ("recorded device", meta.recorded_device or "-"),
    ):
        head.add_row(k, v)

    kinds = Table(title="ops by kind", title_justify="left")
    for col in ("kind", "ops", "recorded time", "FLOPs", "bytes accessed", "comm bytes"):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    for row in stats.by_kind.to_pylist():
        kinds.add_row(
            row["kind"], f"{row['ops']:,}",
            fmt_time(row["recorded_us"]) if row["recorded_us"] else "-",
            fmt_count(row["flops"] or 0), fmt_bytes(row["bytes_accessed"] or 0),
            fmt_bytes(row["comm_bytes"] or 0),
        )

    colls = Table(title="communication", title_justify="left")
    for col in ("op", "group", "ops", "per rank", "total bytes", "mean size"):
        colls.add_column(col, justify="left" if col in ("op", "group") else "right")
    comm = stats.communication
    for row in comm.slice(0, 20).to_pylist():
        n = row["ops"]
        colls.add_row(row["op"], row["group"], f"{n:,}", f"{n / max(row['ranks'], 1):g}",
                      fmt_bytes(row["bytes"]), fmt_bytes(row["bytes"] / n))
    if comm.num_rows > 20:
        colls.add_row(f"... {comm.num_rows - 20} more", "", "", "", "", "")
    groups = Text(
        f"groups: {len(workload.groups)} "
        f"({', '.join(f'{n} of {s} ranks' for s, n in stats.group_sizes.items())})"
        if workload.groups else "groups: none"
    )
    total = Text(f"total communication: {fmt_bytes(float(stats.comm_bytes))}")
    return Group(head, Text(""), kinds, colls if comm.num_rows else Text("no communication"),
                 groups, total)


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
    """Links by limiting flow-time, with the collectives/groups they limited."""
    table = Table(title="bottleneck links (flow-time during which the link set a flow's rate)",
                  title_justify="left")
    for col in ("link", "role", "GB/s", "util", "limiting", "limited"):
        table.add_column(col, justify="left" if col in ("link", "role", "limited") else "right")
    for r in rows:
        limited = ", ".join(f"{a['label']} {100 * a['share']:.0f}%" for a in r.get("limited", []))
        table.add_row(f"{r['src']} -> {r['dst']}", r["role"], f"{r['capacity_GBps']:g}",
                      f"{100 * r['utilization']:.1f}%", fmt_time(r["limiting_us"]), limited)
    return table


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


# -- collectives ----------------------------------------------------------------------------------

def perf_table(rows: list[Any], dtype: str) -> Table:
    """An nccl-tests-style table of ``collective_perf.PerfRow``."""
    table = Table(box=None, header_style="bold")
    for col in ("size (B)", "count", "type", "time (us)", "algbw (GB/s)", "busbw (GB/s)",
                "algorithm"):
        table.add_column(col, justify="left" if col in ("type", "algorithm") else "right")
    for r in rows:
        table.add_row(f"{r.size}", f"{r.count}", dtype, f"{r.time_us:.2f}", f"{r.algbw_GBps:.2f}",
                      f"{r.busbw_GBps:.2f}", r.algorithm)
    return table


def perf_csv(rows: list[Any], op: str, ranks: int) -> str:
    """The same table as CSV (one header line)."""
    lines = ["collective,ranks,size_bytes,count,time_us,algbw_GBps,busbw_GBps,algorithm"]
    lines += [f"{op},{ranks},{r.size},{r.count},{r.time_us:.3f},{r.algbw_GBps:.4f},"
              f"{r.busbw_GBps:.4f},{r.algorithm}" for r in rows]
    return "\n".join(lines) + "\n"


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


# -- imports and fidelity -------------------------------------------------------------------

def report_lines(report: dict[str, Any], notes: bool = True) -> list[Text]:
    """An import report (``meta.extra['import']``) as lines: skipped, unknown, warnings and,
    if ``notes``, the assumptions and counts."""
    out = []
    for key, label in (("skipped", "skipped"), ("unknown", "unknown (ignored)")):
        items = sorted(report.get(key, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if items:
            out.append(Text.assemble((f"{label}: ", "bold"),
                                     ", ".join(f"{k} ({v:,})" for k, v in items)))
    out += [Text.assemble(("warning: ", "bold yellow"), w) for w in report.get("warnings", [])]
    if notes:
        out += [Text.assemble(("note: ", "dim"), n) for n in report.get("notes", [])]
    return out


def import_summary(workload: Workload, path: object) -> Group:
    """What ``trace import`` wrote, and the import report."""
    kinds = workload_stats(workload).by_kind
    meta = workload.meta
    head = Text.assemble(
        f"wrote {path}: ", (f"{workload.num_ranks} rank(s)", "bold"),
        f", {workload.num_ops:,} ops (" + ", ".join(f"{k} {v:,}" for k, v in zip(
            kinds.column("kind").to_pylist(), kinds.column("ops").to_pylist())) + ")",
        f"; recorded on {meta.recorded_device}" if meta.recorded_device else "",
    )
    return Group(head, *report_lines(meta.extra.get("import", {})))


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


# -- sweeps ---------------------------------------------------------------------------------------

def sweep_table(rows: list[dict[str, Any]], results: pa.Table, title: str) -> Table:
    """Sweep rows: their axis values, then step time, throughput, cost and bottleneck."""
    from simcluster.analysis.sweep import axis_columns
    from simcluster.export.sweep_report import display_row

    axes = axis_columns(results)
    table = Table(title=title, title_justify="left")
    for col in [*axes, *display_row({"step_time_us": 0.0})]:
        table.add_column(col, justify="left" if col == "bottleneck" else "right")
    for r in rows:
        table.add_row(*[str(r.get(a)) for a in axes], *display_row(r).values())
    return table


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
    for col in ("#", "tp", "pp", "dp", "mb", "schedule", "recompute", "zero", "step",
                "tokens/s", "MFU", "$/1M tok", "why: limited by, bubble, exposed comm, memory"):
        table.add_column(col, justify="left" if col in ("schedule", "recompute") or
                         col.startswith("why") else "right")
    best = report.best[0].full if report.best else None
    for i, t in enumerate(report.best, start=1):
        r, p = t.full, t.params
        d = display_row(r)
        gap = "" if i == 1 or best is None else (
            f" (+{100 * (r['step_time_us'] / best['step_time_us'] - 1):.1f}% time)")
        bubble = "-" if r.get("bubble") is None else f"{100 * r['bubble']:.0f}%"
        why = (f"{r.get('bottleneck') or '-'}, bubble {bubble}, exposed comm "
               f"{100 * (r.get('exposed_comm_fraction') or 0):.1f}%, {d['peak mem']} of "
               f"HBM{gap}")
        table.add_row(str(i), str(p["tp"]), str(p["pp"]), str(p["dp"]), str(p["micro_batch"]),
                      p["schedule"], p["recompute"], str(p["zero"]),
                      fmt_time(r["step_time_us"]), d["tokens/s"], d["MFU"], d["$/1M tokens"],
                      why)
    if not report.best:
        return Group(head, Text("no simulated configuration ran; see candidates.parquet"))
    return Group(head, table)



# -- replay ---------------------------------------------------------------------------------------

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
    if summary["stragglers"]:
        out.append((f"stragglers (others waited for them): ranks "
                    f"{', '.join(map(str, summary['stragglers'][:16]))}", False))
    for key, draw in (("bottleneck_links", bottlenecks_table), ("links_by_role", roles_table),
                      ("busiest_links", links_table)):
        if summary[key]:
            out.append((draw(summary[key]), False))
    out += [(line, False) for line in cost_lines(summary["cost"], result.training_run)]
    if result.fidelity.num_rows:
        out.append((fidelity_table(result.fidelity), False))
    mem = summary["memory"]
    out.append((f"peak memory {mem['peak_bytes_max'] / GIB:.2f} GiB on rank {mem['peak_rank']} "
                f"({100 * mem['peak_fraction_of_capacity']:.1f}% of its capacity)", False))
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

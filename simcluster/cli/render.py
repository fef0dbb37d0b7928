"""Rich renderings of clusters, workloads and runs for the terminal."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
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
    """A count in decimal units: ``1.2k``, ``198.9T``, ``3.4E`` (FLOPs, ops, tokens).

    Example:
        >>> fmt_count(198878.7e9), fmt_count(1234), fmt_count(7)
        ('198.9T', '1.2k', '7')
    """
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6),
                        ("k", 1e3)):
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
    from simcluster.analysis.workload import workload_stats

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
        "communicator groups: " + ", ".join(
            f"{n} group{'s' if n != 1 else ''} of {s} rank{'s' if s != 1 else ''}"
            for s, n in stats.group_sizes.items())
        if workload.groups else "communicator groups: none"
    )
    total = Text(f"total communication: {fmt_bytes(float(stats.comm_bytes))}")
    return Group(head, Text(""), kinds, colls if comm.num_rows else Text("no communication"),
                 groups, total)


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
    from simcluster.analysis.workload import workload_stats

    kinds = workload_stats(workload).by_kind
    meta = workload.meta
    head = Text.assemble(
        f"wrote {path}: ", (f"{workload.num_ranks} rank(s)", "bold"),
        f", {workload.num_ops:,} ops (" + ", ".join(f"{k} {v:,}" for k, v in zip(
            kinds.column("kind").to_pylist(), kinds.column("ops").to_pylist())) + ")",
        f"; recorded on {meta.recorded_device}" if meta.recorded_device else "",
    )
    return Group(head, *report_lines(meta.extra.get("import", {})))


# -- collectives ----------------------------------------------------------------------------------

def perf_text(rows: list[Any], op: str, dtype: str) -> str:
    """The table in nccl-tests' own layout (out-of-place and in-place columns, ``#wrong`` as
    N/A, the ``Avg bus bandwidth`` line), so it can be diffed against a ``*_perf`` log; the
    algorithm the model chose follows each row as a comment."""
    from simcluster.collective_perf import NCCL_TYPES, average_busbw, redop_root

    redop, root = redop_root(op)
    kind = NCCL_TYPES.get(dtype, dtype)
    lines = [
        "#" + " " * 62 + "out-of-place" + " " * 23 + "in-place",
        "#       size         count      type   redop    root     time   algbw   busbw #wrong"
        "     time   algbw   busbw #wrong",
        "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)       "
        "     (us)  (GB/s)  (GB/s)",
    ]
    for r in rows:
        half = f"{r.time_us:9.2f} {r.algbw_GBps:7.2f} {r.busbw_GBps:7.2f} {'N/A':>6}"
        lines.append(f"{r.size:12d}  {r.count:12d}  {kind:>8}  {redop:>6}  {root:6d}"
                     f"{half}{half}  # {r.algorithm}")
    lines += ["# Out of bounds values : 0 OK (simulated: no data is checked)",
              f"# Avg bus bandwidth    : {average_busbw(rows):g}", "#"]
    return "\n".join(lines)


def compare_table(cmp_: Any) -> Table:
    """Measured vs simulated busbw per size (``validation.Comparison``), with MAPE and mean
    signed error in the caption."""
    table = Table(title=f"measured ({cmp_.system}) vs simulated", title_justify="left")
    for col in ("size (B)", "measured busbw", "simulated busbw", "error", "algorithm"):
        table.add_column(col, justify="left" if col == "algorithm" else "right")
    for size, m, p, e, a in zip(cmp_.sizes.tolist(), cmp_.measured.tolist(),
                                cmp_.predicted.tolist(), cmp_.error.tolist(), cmp_.algorithms):
        table.add_row(f"{size:,}", f"{m:.2f}", f"{p:.2f}", f"{100 * e:+.1f}%", a)
    table.caption = (f"{len(cmp_.sizes)} sizes: MAPE {cmp_.mape():.1f}%, mean signed error "
                     f"{cmp_.mean_signed():+.1f}% (busbw; negative: simulated too slow); from 1 "
                     f"MiB: MAPE {cmp_.mape(2**20):.1f}%")
    return table


def perf_csv(rows: list[Any], op: str, ranks: int) -> str:
    """The same table as CSV (one header line)."""
    lines = ["collective,ranks,size_bytes,count,time_us,algbw_GBps,busbw_GBps,algorithm"]
    lines += [f"{op},{ranks},{r.size},{r.count},{r.time_us:.3f},{r.algbw_GBps:.4f},"
              f"{r.busbw_GBps:.4f},{r.algorithm}" for r in rows]
    return "\n".join(lines) + "\n"

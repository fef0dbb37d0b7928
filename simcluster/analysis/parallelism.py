"""Which kind of parallelism communication serves: per rank (time moving its data, and the
part of it no compute overlaps) and per link (the limiting flow-time of its traffic).

The kind of a collective is its group's kind, the group name up to the first dot: the
generators' ``tp`` (tensor), ``cp`` (context, Ulysses all-to-alls), ``ep`` (expert dispatch
and combine), ``edp`` (expert gradients), ``dp`` (data), ``emb`` (tied embeddings); a
recorded trace's groups keep their own names. A send/recv is ``cp`` on a stream whose name
starts with ``cp`` (ring attention's K/V exchange, streams ``cp_send``/``cp_recv``), else
``pp`` (pipeline). Copies are ``copies``.

Per link, the attribution of the run (the flow-time during which the link set the rate of a
collective's flows, by collective and group) is summed by kind. Send/recv flows are
attributed together (``send/recv``), so on a link they are ``pp``, or ``cp`` when the
workload's only send/recv are ring-attention exchanges, or ``pp+cp`` when it has both.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis.breakdown import COMM_KINDS, union_by_group
from simcluster.placement.strategies import group_kind
from simcluster.sim.result import Run

P2P_LABEL = "send/recv"


def op_parallelism(timeline: pa.Table) -> np.ndarray:
    """Per row of ``timeline`` (or of a workload's ops): the kind of parallelism of a
    communication op (module docstring), ``""`` for other ops.

    Example:
        >>> t = pa.table({"kind": ["collective", "send", "recv", "compute"],
        ...               "group": ["ep.p0.b0.t0", None, None, None],
        ...               "stream": ["ep", "cp_send", "p2p", "compute"]})
        >>> op_parallelism(t).tolist()
        ['ep', 'cp', 'pp', '']
    """
    kind = _strings(timeline, "kind")
    group = pc.fill_null(timeline.column("group").cast(pa.string()), "")
    prefix = pc.list_element(pc.split_pattern(group, ".", max_splits=1), 0)
    ring = pc.starts_with(timeline.column("stream").cast(pa.string()), "cp")
    out = np.full(len(kind), "", dtype=object)
    coll = kind == "collective"
    out[coll] = prefix.to_numpy(zero_copy_only=False)[coll]
    p2p = (kind == "send") | (kind == "recv")
    out[p2p] = np.where(ring.fill_null(False).to_numpy(zero_copy_only=False)[p2p], "cp", "pp")
    return out


def _strings(table: pa.Table, name: str) -> np.ndarray:
    """A string column as a numpy object array (None where null)."""
    return table.column(name).cast(pa.string()).to_numpy(zero_copy_only=False)


def comm_breakdown(run: Run, lo: float = 0.0, hi: float | None = None) -> pa.Table:
    """Per (rank, kind of parallelism) with communication in ``[lo, hi)`` (default: the
    run): ``comm_us``, the time the rank moves that kind's data (from the moment all peers
    arrived to the op's end), and ``exposed_comm_us``, the part of it that no compute op of
    the rank overlaps. Kinds can overlap one another, so a rank's ``exposed_comm_us`` may sum
    to more than its breakdown's ``exposed_comm_us``. Rows by rank, then kind."""
    hi = run.makespan_us if hi is None else hi
    t = run.timeline
    n = run.memory.num_rows
    rank = t.column("rank").to_numpy().astype(np.int64)
    kind = t.column("kind").to_numpy(zero_copy_only=False)
    start = np.clip(t.column("start_us").to_numpy(), lo, hi)
    end = np.clip(t.column("end_us").to_numpy(), lo, hi)
    active = np.clip(t.column("start_us").to_numpy() + t.column("wait_us").to_numpy(), lo, hi)
    par = op_parallelism(t)
    comm = np.isin(kind, COMM_KINDS)
    comp = kind == "compute"
    busy = union_by_group(rank[comp], start[comp], end[comp], n)
    cols: dict[str, list] = {"rank": [], "parallelism": [], "comm_us": [],
                             "exposed_comm_us": []}
    per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in sorted(set(par[comm].tolist())):
        m = comm & (par == name)
        moving = union_by_group(rank[m], active[m], end[m], n)
        both = union_by_group(np.r_[rank[m], rank[comp]], np.r_[active[m], start[comp]],
                              np.r_[end[m], end[comp]], n)
        per[name] = (moving, np.maximum(both - busy, 0.0))
    for r in range(n):
        for name, (moving, exposed) in per.items():
            if moving[r] > 0:
                cols["rank"].append(r)
                cols["parallelism"].append(name)
                cols["comm_us"].append(float(moving[r]))
                cols["exposed_comm_us"].append(float(exposed[r]))
    return pa.table({"rank": pa.array(cols["rank"], pa.int32()),
                     "parallelism": pa.array(cols["parallelism"], pa.string()),
                     "comm_us": pa.array(cols["comm_us"], pa.float64()),
                     "exposed_comm_us": pa.array(cols["exposed_comm_us"], pa.float64())})


def p2p_kind(timeline: pa.Table) -> str:
    """What the run's send/recv attribution stands for: ``pp``, ``cp`` or ``pp+cp``."""
    par = op_parallelism(timeline)
    kinds = sorted(set(par[np.isin(_strings(timeline, "kind"), ("send", "recv"))].tolist()),
                   reverse=True)
    return "+".join(kinds) or "pp"


def label_parallelism(label: str, p2p: str = "pp") -> str:
    """An attribution label's kind of parallelism.

    Example:
        >>> label_parallelism("all_to_all ep.p0.b0.t0"), label_parallelism("H2D copies")
        ('ep', 'copies')
        >>> label_parallelism("send/recv", "pp+cp")
        'pp+cp'
    """
    if label == P2P_LABEL:
        return p2p
    if label.endswith(" copies"):
        return "copies"
    name, _, group = label.partition(" ")
    return group_kind(group) if group else name


def link_parallelism(run: Run) -> pa.Table:
    """Per (link, kind of parallelism) whose flows the link limited: ``limiting_us`` (flow-us)
    and ``share`` of the link's limiting time. Rows by link, then most limiting first."""
    attr = run.attribution
    empty = pa.table({"link_id": pa.array([], pa.int32()),
                      "parallelism": pa.array([], pa.string()),
                      "limiting_us": pa.array([], pa.float64()),
                      "share": pa.array([], pa.float64())})
    if attr.num_rows == 0:
        return empty
    p2p = p2p_kind(run.timeline)
    kinds = pa.array([label_parallelism(x, p2p) for x in attr.column("label").to_pylist()],
                     pa.string())
    t = pa.table({"link_id": attr.column("link_id"), "parallelism": kinds,
                  "flow_us": attr.column("flow_us")})
    agg = t.group_by(["link_id", "parallelism"]).aggregate([("flow_us", "sum")])
    total = agg.group_by("link_id").aggregate([("flow_us_sum", "sum")])
    per_link = dict(zip(total.column("link_id").to_pylist(),
                        total.column("flow_us_sum_sum").to_pylist()))
    lim = agg.column("flow_us_sum").to_numpy()
    share = lim / np.array([per_link[k] or 1.0 for k in agg.column("link_id").to_pylist()])
    out = pa.table({"link_id": agg.column("link_id").cast(pa.int32()),
                    "parallelism": agg.column("parallelism"),
                    "limiting_us": pa.array(lim), "share": pa.array(share)})
    return out.sort_by([("link_id", "ascending"), ("limiting_us", "descending"),
                        ("parallelism", "ascending")])


def link_parallelism_by_link(table: pa.Table) -> dict[int, list[dict[str, float | str]]]:
    """:func:`link_parallelism`'s ``table`` grouped by link (one pass), each link's rows as
    dicts in the table's order."""
    per: dict[int, list[dict[str, float | str]]] = {}
    for link, p, u, s in zip(table.column("link_id").to_pylist(),
                             table.column("parallelism").to_pylist(),
                             table.column("limiting_us").to_pylist(),
                             table.column("share").to_pylist()):
        per.setdefault(link, []).append({"parallelism": p, "limiting_us": u, "share": s})
    return per

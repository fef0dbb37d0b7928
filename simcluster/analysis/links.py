"""Link load and bottlenecks.

- ``busiest_links``: by utilization (bytes over capacity x makespan), or by bytes.
- ``load_over_time``: the load segments of chosen links, grouped per link.
- ``bottleneck_links``: by *limiting time*: the flow-time (us x flows) during which the link was
  the one that set a flow's rate in max-min sharing. A link can be busy without limiting
  anyone (a fast NVLink hop of a ring that a NIC holds back), and a short saturated link can
  hold up many flows. Each bottleneck lists the collectives and groups whose flows it
  limited, and the kinds of parallelism (tp, cp, ep, edp, dp, pp, ...) of that traffic.
- ``by_role``: per role of link (``nvlink``, ``pcie``, ``nic``, ``spine``, ...), bytes,
  utilization and share of the limiting time: whether the step is NVLink-, PCIe-, NIC- or
  spine-bound at a glance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis.parallelism import link_parallelism, link_parallelism_by_link
from simcluster.sim.result import Run


def busiest_links(run: Run, top: int = 10, by: str = "utilization") -> pa.Table:
    """The ``top`` links by ``by`` (``utilization`` or ``bytes``; ties by bytes, then link
    id), links that carried nothing left out."""
    links = run.links.filter(pc.greater(run.links.column("bytes"), 0))
    keys = [("bytes", "descending"), ("link_id", "ascending")]
    if by == "utilization":
        keys.insert(0, ("utilization", "descending"))
    return links.sort_by(keys).slice(0, top)


def load_over_time(run: Run, link_ids: list[int]
                   ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per link of ``link_ids``: its load segments' start (us), end (us) and rate (GB/s),
    in time order (``run.link_load`` grouped once, not scanned per link)."""
    load = run.link_load
    if load.num_rows == 0:
        return {k: (np.zeros(0), np.zeros(0), np.zeros(0)) for k in link_ids}
    lid = load.column("link_id").to_numpy()
    start, end = load.column("start_us").to_numpy(), load.column("end_us").to_numpy()
    rate = load.column("rate_GBps").to_numpy()
    order = np.lexsort((start, lid))
    bounds = np.searchsorted(lid[order], [(k, k + 1) for k in link_ids])
    out = {}
    for k, (a, b) in zip(link_ids, bounds.tolist()):
        sel = order[a:b]
        out[k] = (start[sel], end[sel], rate[sel])
    return out


def _agg(table: pa.Table, key: str, specs: list[tuple[str, str]], names: dict[str, str]
         ) -> pa.Table:
    agg = table.group_by(key).aggregate(specs)
    return agg.select(list(names)).rename_columns(list(names.values()))


def by_kind(run: Run) -> pa.Table:
    """Per link kind: links, bytes carried, mean and max utilization of the links that were
    used, and total time saturated (summed over links)."""
    used = run.links.filter(pc.greater(run.links.column("bytes"), 0))
    agg = _agg(used, "kind", [("link_id", "count"), ("bytes", "sum"), ("utilization", "mean"),
                              ("utilization", "max"), ("saturated_us", "sum")],
               {"kind": "kind", "link_id_count": "links", "bytes_sum": "bytes",
                "utilization_mean": "mean_utilization", "utilization_max": "max_utilization",
                "saturated_us_sum": "saturated_us"})
    return agg.sort_by([("bytes", "descending"), ("kind", "ascending")])


def by_role(run: Run) -> pa.Table:
    """Per link role: links used, bytes, mean/max utilization, limiting flow-time and its
    share of all limiting flow-time."""
    used = run.links.filter(pc.or_(pc.greater(run.links.column("bytes"), 0),
                                   pc.greater(run.links.column("limiting_us"), 0)))
    agg = _agg(used, "role", [("link_id", "count"), ("bytes", "sum"), ("utilization", "mean"),
                              ("utilization", "max"), ("limiting_us", "sum")],
               {"role": "role", "link_id_count": "links", "bytes_sum": "bytes",
                "utilization_mean": "mean_utilization", "utilization_max": "max_utilization",
                "limiting_us_sum": "limiting_us"})
    total = pc.sum(agg.column("limiting_us")).as_py() or 0.0
    share = agg.column("limiting_us").to_numpy() / total if total > 0 else np.zeros(agg.num_rows)
    agg = agg.append_column("limiting_share", pa.array(share))
    return agg.sort_by([("limiting_us", "descending"), ("bytes", "descending"),
                        ("role", "ascending")])


def bottleneck_links(run: Run, top: int = 10, labels: int = 3) -> list[dict[str, Any]]:
    """The ``top`` links by limiting flow-time, each with the ``labels`` collectives/groups
    it limited most (``limited``: label, flow_us, share of the link's limiting time) and the
    kinds of parallelism of all the flows it limited (``parallelism``: parallelism,
    limiting_us, share; ``analysis/parallelism.py``)."""
    links = run.links.filter(pc.greater(run.links.column("limiting_us"), 0)).sort_by(
        [("limiting_us", "descending"), ("link_id", "ascending")]).slice(0, top)
    rows = links.select(["link_id", "src", "dst", "kind", "role", "capacity_GBps",
                         "utilization", "saturated_us", "limiting_us"]).to_pylist()
    attr = run.attribution
    if attr.num_rows and rows:
        ids = pa.array([r["link_id"] for r in rows], pa.int32())
        sub = attr.filter(pc.is_in(attr.column("link_id"), value_set=ids)).sort_by(
            [("link_id", "ascending"), ("flow_us", "descending"), ("label", "ascending")])
        per: dict[int, list[dict[str, Any]]] = {}
        for rec in sub.to_pylist():
            per.setdefault(rec["link_id"], []).append(rec)
        kinds = link_parallelism_by_link(link_parallelism(run))
        for r in rows:
            top_labels = per.get(r["link_id"], [])[:labels]
            r["limited"] = [{"label": a["label"], "flow_us": a["flow_us"],
                             "share": a["flow_us"] / r["limiting_us"]} for a in top_labels]
            r["parallelism"] = kinds.get(r["link_id"], [])
    return rows


def bottleneck_classes(run: Run, top: int = 10, labels: int = 3) -> list[dict[str, Any]]:
    """Bottleneck links with symmetric links folded together: links of one role and capacity
    whose utilization and limiting time agree within 0.1 % (of 1, and of the largest limiting
    time) form a class. Per class, the ``top`` classes by limiting time: the first link's row
    (as :func:`bottleneck_links`, with what it limited) and ``alike``, the number of other
    links in the class. Eight GPUs' identical NVLink ports are one row, not eight."""
    links = run.links.filter(pc.greater(run.links.column("limiting_us"), 0))
    if links.num_rows == 0:
        return []
    lim = links.column("limiting_us").to_numpy()
    scale = float(lim.max())
    keys = zip(links.column("role").to_pylist(), links.column("capacity_GBps").to_pylist(),
               np.rint(links.column("utilization").to_numpy() * 1e3).tolist(),
               np.rint(lim / scale * 1e3).tolist())
    classes: dict[tuple[Any, ...], list[int]] = {}
    order = np.lexsort((links.column("link_id").to_numpy(), -lim))
    key_list = list(keys)
    for i in order.tolist():
        classes.setdefault(key_list[i], []).append(i)
    heads = sorted(classes.values(), key=lambda c: (-lim[c[0]], c[0]))[:top]
    reps = {int(links.column("link_id")[c[0]].as_py()): len(c) - 1 for c in heads}
    rows = {r["link_id"]: r for r in bottleneck_links(run, run.links.num_rows, labels)
            if r["link_id"] in reps}
    return [{**rows[k], "alike": n} for k, n in reps.items()]


def dominant_role(run: Run) -> str | None:
    """The link role with the most limiting flow-time, or None if no flow was limited."""
    roles = by_role(run)
    if roles.num_rows == 0 or roles.column("limiting_us")[0].as_py() <= 0:
        return None
    return roles.column("role")[0].as_py()


def utilization_grid(run: Run, link_ids: list[int], bins: int) -> np.ndarray:
    """Time-weighted mean utilization of each link of ``link_ids`` (rows) in each of ``bins``
    equal bins over ``[0, makespan]`` (columns): the bytes it carried in the bin over what its
    capacity could carry. Vectorised per link with the integral of its piecewise-constant
    load, so the cost is O(segments + bins) per link.

    Example:
        >>> links = pa.table({"link_id": [0], "capacity_GBps": [10.0]})
        >>> load = pa.table({"link_id": [0], "start_us": [0.0], "end_us": [1.0],
        ...                  "rate_GBps": [5.0]})
        >>> run = Run(pa.table({}), links, pa.table({}), 2.0, link_load=load)
        >>> utilization_grid(run, [0], 2).tolist()
        [[0.5, 0.0]]
    """
    span = max(run.makespan_us, 1e-9)
    edges = np.linspace(0.0, span, bins + 1)
    cap = dict(zip(run.links.column("link_id").to_pylist(),
                   run.links.column("capacity_GBps").to_pylist()))
    load = load_over_time(run, link_ids)
    grid = np.zeros((len(link_ids), bins))
    for row, k in enumerate(link_ids):
        s, e, rate = load[k]
        if len(s) == 0:
            continue
        done = np.r_[0.0, np.cumsum(rate * (e - s))]  # GB/s x us carried by segment ends
        j = np.searchsorted(s, edges, side="right")  # segments started by each edge
        last = np.maximum(j - 1, 0)
        partial = np.where(j > 0, rate[last] * np.clip(edges - s[last], 0.0, e[last] - s[last]),
                           0.0)
        carried = np.where(j > 0, done[last], 0.0) + partial
        grid[row] = np.diff(carried) / (np.diff(edges) * cap[k])
    return grid

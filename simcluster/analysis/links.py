"""Link load and bottlenecks.

- ``busiest_links``: by utilization (bytes over capacity x makespan).
- ``bottleneck_links``: by *limiting time*: the flow-time (us x flows) during which the link was
  the one that set a flow's rate in max-min sharing. A link can be busy without limiting
  anyone (a fast NVLink hop of a ring that a NIC holds back), and a short saturated link can
  hold up many flows. Each bottleneck lists the collectives and groups whose flows it
  limited.
- ``by_role``: per role of link (``nvlink``, ``pcie``, ``nic``, ``spine``, ...), bytes,
  utilization and share of the limiting time: whether the step is NVLink-, PCIe-, NIC- or
  spine-bound at a glance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.result import Run


def busiest_links(run: Run, top: int = 10) -> pa.Table:
    """The ``top`` links by utilization (ties by bytes, then link id), links that carried
    nothing left out."""
    links = run.links.filter(pc.greater(run.links.column("bytes"), 0))
    return links.sort_by(
        [("utilization", "descending"), ("bytes", "descending"), ("link_id", "ascending")]
    ).slice(0, top)


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
    it limited most (label, flow_us, share of the link's limiting time)."""
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
        for r in rows:
            top_labels = per.get(r["link_id"], [])[:labels]
            r["limited"] = [{"label": a["label"], "flow_us": a["flow_us"],
                             "share": a["flow_us"] / r["limiting_us"]} for a in top_labels]
    return rows


def dominant_role(run: Run) -> str | None:
    """The link role with the most limiting flow-time, or None if no flow was limited."""
    roles = by_role(run)
    if roles.num_rows == 0 or roles.column("limiting_us")[0].as_py() <= 0:
        return None
    return roles.column("role")[0].as_py()

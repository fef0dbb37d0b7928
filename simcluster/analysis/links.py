"""Link load: the busiest links, and load per link kind."""

from __future__ import annotations

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


def by_kind(run: Run) -> pa.Table:
    """Per link kind: links, bytes carried, mean and max utilization of the links that were
    used, and total time saturated (summed over links)."""
    used = run.links.filter(pc.greater(run.links.column("bytes"), 0))
    agg = used.group_by("kind").aggregate([
        ("link_id", "count"),
        ("bytes", "sum"),
        ("utilization", "mean"),
        ("utilization", "max"),
        ("saturated_us", "sum"),
    ])
    names = {
        "kind": "kind", "link_id_count": "links", "bytes_sum": "bytes",
        "utilization_mean": "mean_utilization", "utilization_max": "max_utilization",
        "saturated_us_sum": "saturated_us",
    }
    agg = agg.select(list(names)).rename_columns(list(names.values()))
    return agg.sort_by([("bytes", "descending"), ("kind", "ascending")])

"""What a workload holds: ranks, streams, steps, ops by kind, communication by collective and
group, group sizes (``simcluster trace info``). Aggregations only; rendering is the CLI's."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from simcluster.workload.model import Workload

_COMM = ("collective", "send", "recv")


@dataclass(frozen=True)
class WorkloadStats:
    """Counts and sums over a workload's ops.

    Attributes:
        streams: distinct (rank, stream) pairs.
        steps: distinct steps.
        by_kind: per op kind (sorted): ``kind, ops, recorded_us, flops, bytes_accessed,
            comm_bytes`` (sums; ``recorded_us`` is null where no op of the kind has a
            recorded duration).
        communication: per (op, group), sorted: ``op`` (the collective, or send/recv),
            ``group`` (``(pairs)`` for send/recv), ``ops``, ``ranks`` (distinct), ``bytes``.
        group_sizes: group size -> number of groups of that size.
        comm_bytes: total bytes of communication ops.
    """

    streams: int
    steps: int
    by_kind: pa.Table
    communication: pa.Table
    group_sizes: dict[int, int]
    comm_bytes: int

    def as_dict(self, workload: Workload) -> dict[str, Any]:
        """The statistics and the workload's identity as a JSON-ready dict."""
        meta = workload.meta
        return {"name": meta.name, "source": meta.source, "ranks": workload.num_ranks,
                "ops": workload.num_ops, "streams": self.streams, "steps": self.steps,
                "recorded_device": meta.recorded_device, "by_kind": self.by_kind.to_pylist(),
                "communication": self.communication.to_pylist(),
                "groups": {str(k): v for k, v in self.group_sizes.items()},
                "comm_bytes": self.comm_bytes}


def workload_stats(workload: Workload) -> WorkloadStats:
    """The statistics of ``workload`` (:class:`WorkloadStats`)."""
    t = workload.ops
    agg = t.group_by("kind").aggregate([
        ("op_id", "count"), ("duration_us", "sum"), ("flops", "sum"),
        ("bytes_accessed", "sum"), ("comm_bytes", "sum"),
    ]).sort_by("kind")
    by_kind = pa.table({
        "kind": agg.column("kind"), "ops": agg.column("op_id_count"),
        "recorded_us": agg.column("duration_us_sum"), "flops": agg.column("flops_sum"),
        "bytes_accessed": agg.column("bytes_accessed_sum"),
        "comm_bytes": agg.column("comm_bytes_sum"),
    })
    comm = t.filter(pc.is_in(t.column("kind"), pa.array(_COMM)))
    c2 = pa.table({"op": pc.coalesce(comm.column("collective"), comm.column("kind")),
                   "group": pc.coalesce(comm.column("group"), pa.scalar("(pairs)")),
                   "rank": comm.column("rank"),
                   "bytes": comm.column("comm_bytes").fill_null(0)})
    cagg = c2.group_by(["op", "group"]).aggregate([
        ("bytes", "count"), ("bytes", "sum"), ("rank", "count_distinct")]).sort_by(
        [("op", "ascending"), ("group", "ascending")])
    communication = pa.table({
        "op": cagg.column("op"), "group": cagg.column("group"),
        "ops": cagg.column("bytes_count"), "ranks": cagg.column("rank_count_distinct"),
        "bytes": cagg.column("bytes_sum"),
    })
    return WorkloadStats(
        streams=t.group_by(["rank", "stream"]).aggregate([]).num_rows,
        steps=pc.count_distinct(t.column("step")).as_py(),
        by_kind=by_kind,
        communication=communication,
        group_sizes=dict(sorted(Counter(len(r) for r in workload.groups.values()).items())),
        comm_bytes=int(pc.sum(comm.column("comm_bytes")).as_py() or 0),
    )

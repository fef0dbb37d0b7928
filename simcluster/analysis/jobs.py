"""Several jobs in one run: which job each row belongs to, each job's step time, and the
links the jobs share.

A job mix (:mod:`simcluster.jobs`) simulates its jobs together in one Run whose ranks are
the jobs' rank ranges side by side, and each job alone. These functions split the joint
Run back by job. They read no files and know nothing of SimPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.workload.merge import DELAY_NAME, SEP


@dataclass(frozen=True)
class JobSpan:
    """Where a job sits in a joint run: its name, first rank, rank count, start (us)."""

    name: str
    first_rank: int
    ranks: int
    start_us: float = 0.0


def rank_jobs(spans: Sequence[JobSpan]) -> list[str]:
    """The job of each rank of the joint run.

    Example:
        >>> rank_jobs([JobSpan("a", 0, 2), JobSpan("b", 2, 1)])
        ['a', 'a', 'b']
    """
    return [s.name for s in spans for _ in range(s.ranks)]


def with_job(table: pa.Table, jobs: Sequence[str], column: str = "rank") -> pa.Table:
    """``table`` with a ``job`` column after its first: the job of each row's ``column``
    (a rank).

    Example:
        >>> with_job(pa.table({"rank": [1, 0]}), ["a", "b"]).to_pylist()
        [{'rank': 1, 'job': 'b'}, {'rank': 0, 'job': 'a'}]
    """
    job = pa.array(jobs, pa.string()).take(table.column(column))
    return table.add_column(1, "job", job)


def group_job(group: str | None, jobs: Sequence[str]) -> str | None:
    """The job a flows-table ``group`` belongs to: a collective's group ``JOB/GROUP``, a
    send/recv pair ``SRC->DST`` or a copy ``rank R`` (ranks of the joint run); None for
    anything else.

    Example:
        >>> [group_job(g, ["a", "b"]) for g in ("b/dp", "1->0", "rank 0", None)]
        ['b', 'b', 'a', None]
    """
    if group is None:
        return None
    if SEP in group:
        return group.split(SEP, 1)[0]
    head = group.split("->", 1)[0].removeprefix("rank ").strip()
    return jobs[int(head)] if head.isdigit() and int(head) < len(jobs) else None


def flow_jobs(flows: pa.Table, jobs: Sequence[str]) -> pa.Array:
    """The job of each row of a joint run's flows table (:func:`group_job`; null for none).

    Example:
        >>> flow_jobs(pa.table({"group": ["b/dp", "0->1"]}), ["a", "b"]).to_pylist()
        ['b', 'a']
    """
    return pa.array([group_job(g, jobs) for g in flows.column("group").to_pylist()],
                    pa.string())


def job_step_time_us(timeline: pa.Table, span: JobSpan) -> float:
    """A job's mean step time (us) in the joint run: from its start to the end of its last
    op, over its number of steps (the start-offset ops left out), as
    :func:`~simcluster.analysis.breakdown.mean_step_time_us` is for a run of its own."""
    rank = timeline.column("rank")
    mine = pc.and_(pc.and_(pc.greater_equal(rank, span.first_rank),
                           pc.less(rank, span.first_rank + span.ranks)),
                   pc.not_equal(timeline.column("name"), DELAY_NAME))
    t = timeline.filter(mine)
    if t.num_rows == 0:
        return 0.0
    steps = pc.count_distinct(t.column("step")).as_py() or 1
    return (float(pc.max(t.column("end_us")).as_py()) - span.start_us) / steps


def shared_links(alone_links: Sequence[pa.Table], names: Sequence[str], flows: pa.Table,
                 jobs: Sequence[str]) -> pa.Table:
    """The links that carry traffic of more than one job: one row per (link, job) with the
    bytes the job moves over it (from its run alone: a job's routes and bytes do not depend
    on the others) and ``limited_us``, how long that link was what limited the job's
    batches of flows in the joint run: per batch (a collective phase, a send/recv, a copy)
    the flows table's ``bottleneck_us`` (flow-time at the link that limited the batch
    longest, ``bottleneck_link``) over its ``flows``, summed over the job's batches. Rows by
    link id, then job order.

    Parameters:
        alone_links: each job's ``links`` table from its run alone (same cluster).
        names: the jobs, in the order of ``alone_links``.
        flows: the joint run's flows table.
        jobs: the job of each rank of the joint run (:func:`rank_jobs`).
    """
    base = alone_links[0]
    bytes_ = np.stack([t.column("bytes").to_numpy() for t in alone_links])  # job x link
    shared = np.flatnonzero((bytes_ > 0).sum(axis=0) > 1)
    flow_job = flow_jobs(flows, jobs).to_pylist()
    limited = np.zeros_like(bytes_, dtype=np.float64)
    index = {n: i for i, n in enumerate(names)}
    for j, link, us, n in zip(flow_job, flows.column("bottleneck_link").to_pylist(),
                              flows.column("bottleneck_us").to_pylist(),
                              flows.column("flows").to_pylist()):
        if j in index and link >= 0 and n > 0:
            limited[index[j], link] += us / n
    link_ids, job_ids = [], []
    for link in shared.tolist():
        for j in np.flatnonzero(bytes_[:, link] > 0).tolist():
            link_ids.append(link)
            job_ids.append(j)
    rows = pa.array(np.asarray(link_ids, dtype=np.int64))
    cols = {c: base.column(c).take(rows) for c in ("link_id", "src", "dst", "kind", "role")}
    return pa.table({**cols,
                     "job": pa.array([names[j] for j in job_ids], pa.string()),
                     "bytes": pa.array(bytes_[job_ids, link_ids].astype(np.int64)),
                     "limited_us": pa.array(limited[job_ids, link_ids], pa.float64())})


def contended_links(shared: pa.Table, top: int) -> list[dict[str, Any]]:
    """The ``top`` links of a :func:`shared_links` table that held the jobs back longest
    (then most bytes, then link id), one dict per link: link_id, src, dst, role, and
    ``jobs``: job -> {bytes, limited_us}.

    Example:
        >>> t = pa.table({"link_id": [3, 3], "src": ["s0"] * 2, "dst": ["s1"] * 2,
        ...               "role": ["fabric"] * 2, "job": ["a", "b"], "bytes": [5, 7],
        ...               "limited_us": [1.0, 2.0]})
        >>> contended_links(t, 5)[0]["jobs"]
        {'a': {'bytes': 5, 'limited_us': 1.0}, 'b': {'bytes': 7, 'limited_us': 2.0}}
    """
    links: dict[int, dict[str, Any]] = {}
    for r in shared.to_pylist():
        row = links.setdefault(r["link_id"], {k: r[k] for k in ("link_id", "src", "dst",
                                                                  "role")} | {"jobs": {}})
        row["jobs"][r["job"]] = {"bytes": r["bytes"], "limited_us": r["limited_us"]}

    def key(row: dict[str, Any]) -> tuple[float, int, int]:
        jobs = row["jobs"].values()
        return (-sum(j["limited_us"] for j in jobs), -sum(j["bytes"] for j in jobs),
                row["link_id"])

    return sorted(links.values(), key=key)[:top]

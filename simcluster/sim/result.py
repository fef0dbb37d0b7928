"""Run: what a simulation produced, as Arrow tables and a few scalars, and how the engine's
per-stream records become those tables (column by column, once, at the end).

``timeline`` has one row per executed op, ``links`` one per directed link, ``memory`` one per
rank. Analyses (``simcluster.analysis``) and exporters (``simcluster.export``) read a Run;
nothing in a Run refers back to SimPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.placement import Bound
from simcluster.sim.memory import MemoryLedger
from simcluster.sim.network import FlowNetwork


@dataclass(frozen=True, repr=False)
class Run:
    """The result of :func:`simcluster.simulate`.

    Attributes:
        timeline: one row per op: rank, stream, op_id, name, kind, device, step, start_us,
            end_us, wait_us, flops, bytes_accessed, comm_bytes, collective, group, algorithm,
            seq, peer, deps.
        links: one row per directed link: link_id, src, dst, kind, role, bandwidth_GBps,
            capacity_GBps, latency_ns, bytes, busy_us, utilization, saturated_us, max_flows,
            limiting_us.
        memory: one row per rank: rank, device, model, capacity_bytes, peak_bytes.
        flows: one row per batch of flows (a collective phase, a send/recv, a copy): kind,
            name, group, seq, algorithm, phase, start_us, end_us, flows, bytes,
            bottleneck_link (link id that limited it longest, -1 if none), bottleneck_us.
        attribution: per (link, label) the flow-time during which that link limited flows of
            that collective/group: link_id, label, flow_us.
        link_load: load over time for links that carried traffic: link_id, start_us,
            end_us, rate_GBps.
        makespan_us: end of the last op (the simulation starts at 0).
        info: deterministic facts about the run (names, counts of ops, flows, events).
        wall_s: wall-clock seconds the simulation took (not part of any output file).
    """

    timeline: pa.Table
    links: pa.Table
    memory: pa.Table
    makespan_us: float
    flows: pa.Table = field(default_factory=lambda: pa.table({}))
    attribution: pa.Table = field(default_factory=lambda: pa.table({}))
    link_load: pa.Table = field(default_factory=lambda: pa.table({}))
    info: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def __repr__(self) -> str:
        """One line: what ran and the size of each table (not their schemas)."""
        tables = ", ".join(f"{name} {getattr(self, name).num_rows:,}" for name in (
            "timeline", "links", "flows", "memory", "attribution", "link_load"))
        return (f"<Run {self.info.get('workload')!r} on {self.info.get('cluster')!r}: makespan "
                f"{self.makespan_us:,.3f} us; rows: {tables}>")


@dataclass(frozen=True)
class Records:
    """What the engine recorded while it ran, before it becomes tables.

    Attributes:
        order: op indices in stream order (the order of ``starts``/``ends`` flattened).
        starts, ends: per stream, the start and end (us) of each op it ran, in order.
        wait: per op (workload order), the time it waited for peers (us).
        algorithm: per op, the collective algorithm that ran it (None for other ops).
        streams: number of (rank, stream) processes.
        net: the flow network after the run (link statistics, flow batches, load).
        ledger: the memory ledger after the run (capacities and peaks).
        wall_s: wall-clock seconds the simulation took.
    """

    order: np.ndarray
    starts: Sequence[Sequence[float]]
    ends: Sequence[Sequence[float]]
    wait: Sequence[float]
    algorithm: Sequence[str | None]
    streams: int
    net: FlowNetwork
    ledger: MemoryLedger
    wall_s: float


def assemble_run(bound: Bound, rec: Records) -> Run:
    """The Run of ``bound`` from the engine's records: timeline (the workload's columns plus
    times), links (static columns plus statistics), memory, flows, attribution, link load."""
    t = bound.workload.ops
    n = t.num_rows
    cluster, devs = bound.cluster, bound.placement.devices
    rank = t.column("rank")
    devices = pa.array(devs, pa.string())
    start = np.empty(n)
    end = np.empty(n)
    start[rec.order] = np.fromiter(chain.from_iterable(rec.starts), float, n)
    end[rec.order] = np.fromiter(chain.from_iterable(rec.ends), float, n)
    timeline = pa.table({
        "rank": rank,
        "stream": t.column("stream"),
        "op_id": t.column("op_id"),
        "name": t.column("name"),
        "kind": t.column("kind"),
        "device": devices.take(rank),
        "step": t.column("step"),
        "start_us": pa.array(start),
        "end_us": pa.array(end),
        "wait_us": pa.array(np.asarray(rec.wait, dtype=float)),
        "flops": t.column("flops"),
        "bytes_accessed": t.column("bytes_accessed"),
        "comm_bytes": t.column("comm_bytes"),
        "collective": t.column("collective"),
        "group": t.column("group"),
        "algorithm": pa.array(rec.algorithm, pa.string()),
        "seq": t.column("seq"),
        "peer": t.column("peer"),
        "deps": t.column("deps"),
    })
    makespan = float(end.max()) if n else 0.0
    net = rec.net
    bw = cluster.bandwidth_Bpus
    links = cluster.links_table()
    util = net.link_bytes / (bw * makespan) if makespan > 0 else np.zeros_like(bw)
    for name, arr in (
        ("bytes", np.rint(net.link_bytes).astype(np.int64)),
        ("busy_us", net.link_busy_us),
        ("utilization", util),
        ("saturated_us", net.link_saturated_us),
        ("max_flows", net.link_max_flows),
        ("limiting_us", net.link_limiting_us()),
    ):
        links = links.append_column(name, pa.array(arr))
    memory = pa.table({
        "rank": pa.array(np.arange(len(devs), dtype=np.int32)),
        "device": devices,
        "model": pa.array([cluster.specs[d].model for d in devs]),
        "capacity_bytes": pa.array(rec.ledger.capacity, pa.int64()),
        "peak_bytes": pa.array(rec.ledger.peak, pa.int64()),
    })
    wl = bound.workload
    info = {
        "workload": wl.meta.name,
        "cluster": cluster.name,
        "ranks": wl.num_ranks,
        "ops": n,
        "streams": rec.streams,
        "flows": net.flows_started,
        "rate_recomputations": net.recomputes,
        "placement": bound.placement.strategy,
        "accelerators": len(devs),
    }
    return Run(timeline=timeline, links=links, memory=memory, makespan_us=makespan,
               info=info, wall_s=rec.wall_s, flows=_flows_table(net),
               attribution=_attribution_table(net), link_load=_load_table(net))


def _flows_table(net: FlowNetwork) -> pa.Table:
    """Batch records plus the link that limited each batch longest."""
    cols = net.batches.cols
    n = len(net.batches)
    link = np.full(n, -1, dtype=np.int64)
    limit = np.zeros(n)
    for (row, lk), v in net.limits().items():  # the longest-limiting link; ties: lowest id
        if v > limit[row] or (v == limit[row] and link[row] >= 0 and lk < link[row]):
            link[row], limit[row] = lk, v
    return pa.table({
        "kind": pa.array(cols["kind"], pa.string()),
        "name": pa.array(cols["name"], pa.string()),
        "group": pa.array(cols["group"], pa.string()),
        "seq": pa.array(cols["seq"], pa.int64()),
        "algorithm": pa.array(cols["algorithm"], pa.string()),
        "phase": pa.array(cols["phase"], pa.int32()),
        "start_us": pa.array(cols["start_us"], pa.float64()),
        "end_us": pa.array(cols["end_us"], pa.float64()),
        "flows": pa.array(cols["flows"], pa.float64()),
        "bytes": pa.array(np.rint(np.asarray(cols["bytes"], dtype=np.float64)).astype(np.int64)),
        "bottleneck_link": pa.array(link),
        "bottleneck_us": pa.array(limit),
    })


def _attribution_table(net: FlowNetwork) -> pa.Table:
    items = sorted(net.attribution().items())
    return pa.table({
        "link_id": pa.array([k[0] for k, _ in items], pa.int32()),
        "label": pa.array([net.labels[k[1]] for k, _ in items], pa.string()),
        "flow_us": pa.array([v for _, v in items], pa.float64()),
    })


def _load_table(net: FlowNetwork) -> pa.Table:
    links, starts, ends, rates = net.load_segments()
    return pa.table({"link_id": pa.array(links.astype(np.int32)),
                     "start_us": pa.array(starts, pa.float64()),
                     "end_us": pa.array(ends, pa.float64()),
                     "rate_GBps": pa.array(rates / 1e3, pa.float64())})

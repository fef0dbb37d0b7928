"""Run: what a simulation produced, as Arrow tables and a few scalars.

``timeline`` has one row per executed op, ``links`` one per directed link, ``memory`` one per
rank. Analyses (``simcluster.analysis``) and exporters (``simcluster.export``) read a Run;
nothing in a Run refers back to SimPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
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

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
            end_us, wait_us, flops, bytes_accessed, comm_bytes, collective, group.
        links: one row per directed link: link_id, src, dst, kind, bandwidth_GBps,
            latency_ns, bytes, busy_us, utilization, saturated_us, max_flows.
        memory: one row per rank: rank, device, model, capacity_bytes, peak_bytes.
        makespan_us: end of the last op (the simulation starts at 0).
        info: deterministic facts about the run (names, counts of ops, flows, events).
        wall_s: wall-clock seconds the simulation took (not part of any output file).
    """

    timeline: pa.Table
    links: pa.Table
    memory: pa.Table
    makespan_us: float
    info: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

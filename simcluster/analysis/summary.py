"""The run summary: the scalars a user reads first, as a JSON-ready dict."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.analysis.breakdown import mean_step_time_us, rank_breakdown, step_times
from simcluster.analysis.links import busiest_links, by_kind
from simcluster.sim.result import Run

SUMMARY_VERSION = 1
_BREAKDOWN = ("compute_us", "communication_us", "exposed_comm_us", "sync_wait_us", "copies_us",
              "host_us", "idle_us")


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def summarize(run: Run, ranks: pa.Table | None = None, top_links: int = 10) -> dict[str, Any]:
    """Step time, per-step times, mean breakdown over ranks, busiest links, memory peak.

    ``ranks`` is ``rank_breakdown(run)`` if already computed.
    """
    ranks = rank_breakdown(run) if ranks is None else ranks
    mean = {c: float(np.mean(ranks.column(c).to_numpy())) for c in _BREAKDOWN}
    peak = ranks.column("peak_memory_bytes").to_numpy()
    cap = ranks.column("memory_capacity_bytes").to_numpy()
    worst = int(np.argmax(peak / cap))
    return {
        "summary_version": SUMMARY_VERSION,
        **run.info,
        "makespan_us": run.makespan_us,
        "step_time_us": mean_step_time_us(run),
        "steps": _rows(step_times(run)),
        "mean_breakdown_us": mean,
        "memory": {
            "peak_bytes_max": int(peak.max()),
            "peak_rank": worst,
            "peak_fraction_of_capacity": float(peak[worst] / cap[worst]),
        },
        "busiest_links": _rows(busiest_links(run, top_links).select(
            ["link_id", "src", "dst", "kind", "bandwidth_GBps", "bytes", "busy_us",
             "utilization", "saturated_us", "max_flows"])),
        "links_by_kind": _rows(by_kind(run)),
    }

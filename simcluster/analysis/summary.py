"""The run summary: the scalars a user reads first, as a JSON-ready dict."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.analysis.breakdown import (
    PARTITION,
    mean_step_time_us,
    rank_breakdown,
    step_times,
)
from simcluster.analysis.critical_path import critical_path, limits
from simcluster.analysis.links import bottleneck_links, busiest_links, by_kind, by_role
from simcluster.cost import Costs, costs
from simcluster.sim.result import Run

SUMMARY_VERSION = 2
_MEANS = (*PARTITION, "communication_us", "overlapped_comm_us")


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def summarize(run: Run, ranks: pa.Table | None = None, top_links: int = 10,
              path: pa.Table | None = None, training: dict[str, Any] | None = None,
              cost: Costs | None = None) -> dict[str, Any]:
    """Step time, per-step times, mean breakdown over ranks, stragglers, bottleneck and
    busiest links, load by link role, what limits the step (critical path), memory peak,
    cost.

    ``ranks`` (``rank_breakdown(run)``, or the ranks that stand for the others in a folded
    workload) and ``path`` (``critical_path(run)``) are reused when given; ``training``, from
    :func:`simcluster.analysis.training.training_summary`, is added under the key
    ``training`` when given; ``cost`` (:func:`simcluster.cost.costs`) fills ``cost`` (unknown
    prices and tokens without it).
    """
    ranks = rank_breakdown(run) if ranks is None else ranks
    path = critical_path(run) if path is None else path
    mean = {c: float(np.mean(ranks.column(c).to_numpy())) for c in _MEANS}
    peak = ranks.column("peak_memory_bytes").to_numpy()
    cap = ranks.column("memory_capacity_bytes").to_numpy()
    worst = int(np.argmax(peak / cap))
    straggler = np.flatnonzero(ranks.column("straggler").to_numpy(zero_copy_only=False))
    step_us = mean_step_time_us(run)
    money = costs(step_us, None, None) if cost is None else cost
    return {
        "summary_version": SUMMARY_VERSION,
        **run.info,
        "usd_per_hour": money.usd_per_hour,
        "tokens_per_step": money.tokens_per_step,
        "makespan_us": run.makespan_us,
        "step_time_us": step_us,
        "cost": money.as_dict(),
        "steps": _rows(step_times(run)),
        "mean_breakdown_us": mean,
        "stragglers": straggler.tolist(),
        "limits": limits(path),
        "memory": {
            "peak_bytes_max": int(peak.max()),
            "peak_rank": worst,
            "peak_fraction_of_capacity": float(peak[worst] / cap[worst]),
        },
        "bottleneck_links": bottleneck_links(run, top_links),
        "links_by_role": _rows(by_role(run)),
        "busiest_links": _rows(busiest_links(run, top_links).select(
            ["link_id", "src", "dst", "kind", "role", "capacity_GBps", "bytes", "busy_us",
             "utilization", "saturated_us", "max_flows"])),
        "links_by_kind": _rows(by_kind(run)),
        **({"training": training} if training is not None else {}),
    }

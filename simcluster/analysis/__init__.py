"""Run -> numbers people act on: breakdowns, step times, link load."""

from simcluster.analysis.breakdown import (
    mean_step_time_us,
    rank_breakdown,
    step_times,
    union_by_group,
)
from simcluster.analysis.links import busiest_links, by_kind
from simcluster.analysis.summary import summarize

__all__ = [
    "busiest_links",
    "by_kind",
    "mean_step_time_us",
    "rank_breakdown",
    "step_times",
    "summarize",
    "union_by_group",
]

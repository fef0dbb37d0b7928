"""Run -> numbers people act on: breakdowns, stragglers, link load and bottlenecks, the
critical path."""

from simcluster.analysis.breakdown import (
    PARTITION,
    mean_step_time_us,
    rank_breakdown,
    step_breakdown,
    step_times,
    union_by_group,
)
from simcluster.analysis.critical_path import critical_path, limits
from simcluster.analysis.links import (
    bottleneck_links,
    busiest_links,
    by_kind,
    by_role,
    dominant_role,
)
from simcluster.analysis.summary import summarize
from simcluster.analysis.training import TrainingInfo, training_summary

__all__ = [
    "PARTITION",
    "TrainingInfo",
    "bottleneck_links",
    "busiest_links",
    "by_kind",
    "by_role",
    "critical_path",
    "dominant_role",
    "limits",
    "mean_step_time_us",
    "rank_breakdown",
    "step_breakdown",
    "step_times",
    "summarize",
    "training_summary",
    "union_by_group",
]

"""``simcluster replay`` with several TRACEs: parsing the per-job options into a
:class:`~simcluster.jobs.JobMix` (the simulation and its analyses are the API's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from simcluster.errors import PlacementError, TopologyError, WorkloadError
from simcluster.jobs import Job, JobMix, MixResult
from simcluster.scenario import WhatIf
from simcluster.topology import Cluster
from simcluster.workload import Workload

T = TypeVar("T")


def per_job(option: str, values: Sequence[T], jobs: int, default: T,
            error: type[Exception] = WorkloadError) -> list[T]:
    """``values`` of a repeatable option spread over ``jobs``: none (``default`` for
    each), one (for each) or one per job.

    Example:
        >>> per_job("--repeat", [3], 2, 1), per_job("--repeat", [], 2, 1)
        ([3, 3], [1, 1])
    """
    if not values:
        return [default] * jobs
    if len(values) == 1:
        return list(values) * jobs
    if len(values) != jobs:
        raise error(f"{option} is given {len(values)} times for {jobs} job(s); give it once "
                    "for every job, or once per TRACE, in the order of the TRACEs.")
    return list(values)


def one_placement(values: Sequence[str] | None) -> str | None:
    """The placement of a single replay (one ``--placement`` at most).

    Raises:
        PlacementError: several ``--placement`` for one TRACE.
    """
    if values and len(values) > 1:
        raise PlacementError(f"--placement is given {len(values)} times for one TRACE; give "
                             "one per TRACE (several TRACEs run as a job mix).")
    return values[0] if values else None


def job_mix(workloads: Sequence[Workload], cluster: Cluster | None, placements: Sequence[str],
            starts: Sequence[float], repeats: Sequence[int], whatif: WhatIf, top: int,
            predict_kernels: bool) -> JobMix:
    """The job mix of ``simcluster replay TRACE... --topology FILE``.

    Raises:
        TopologyError: no ``--topology`` (jobs share a cluster that has to be given).
        PlacementError, WorkloadError: an option given neither once nor once per job.
    """
    if cluster is None:
        raise TopologyError(
            f"{len(workloads)} TRACE(s) as a job mix (several TRACEs, --start-us or --repeat) "
            "run on one cluster: give --topology FILE.")
    n = len(workloads)
    jobs = [Job(wl, p, s, r) for wl, p, s, r in zip(
        workloads, per_job("--placement", list(placements), n, None, PlacementError),
        per_job("--start-us", list(starts), n, 0.0), per_job("--repeat", list(repeats), n, 1))]
    return JobMix(jobs, cluster, whatif, top_links=top, predict_kernels=predict_kernels)


def step_times_us(result: Any) -> list[float]:
    """What ``replay --quiet`` prints: the mean step time, or each job's together."""
    if isinstance(result, MixResult):
        return result.jobs.column("together_step_us").to_pylist()
    return [result.step_time_us]

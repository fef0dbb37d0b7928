"""Several jobs on one cluster: each alone, then all together, and what sharing cost.

A :class:`JobMix` is jobs (each a workload with a placement, a start offset and a number of
repetitions of its steps) on one cluster. :meth:`JobMix.run` runs every job alone and then
all of them in one simulation, each through :class:`~simcluster.scenario.Scenario`, so that
a mix and a single replay cannot disagree. Together, the jobs' flows share the links
max-min fairly; the :class:`MixResult` reports each job's step time alone and together (the
slowdown from interference), the links that carry more than one job's traffic with each
job's bytes, and how long each link held each job's flows back.

Placement: a job given a placement file (or a :class:`~simcluster.placement.Placement`)
takes those accelerators; jobs given a strategy name, or none (``packed``), are then placed,
in job order, by that strategy on the accelerators still free. Jobs never share an
accelerator.

The joint simulation's workload is the jobs' own side by side
(:func:`~simcluster.workload.merge.merge_workloads`): job ``j``'s ranks follow the ranks of
the jobs before it, and its groups are named ``JOB/GROUP``.

Example:
    >>> import simcluster as sc
    >>> from simcluster.topology.recorded import recorded_cluster
    >>> wl = sc.generate("data-parallel", ranks=2, layers=1, hidden=64, seq_len=16, vocab=128)
    >>> mix = sc.JobMix([sc.Job(wl), sc.Job(wl, start_us=10.0)], recorded_cluster("H100", 4))
    >>> result = mix.run()
    >>> result.jobs.column("job").to_pylist(), result.jobs.column("first_rank").to_pylist()
    (['job0', 'job1'], [0, 2])
    >>> result.placements[1].devices
    ('node0/gpu2', 'node0/gpu3')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from simcluster.analysis.jobs import (
    JobSpan,
    contended_links,
    flow_jobs,
    job_step_time_us,
    rank_jobs,
    shared_links,
    with_job,
)
from simcluster.errors import PlacementError, WorkloadError
from simcluster.names import match
from simcluster.placement import Placement, bind
from simcluster.placement.bind import rank_work
from simcluster.placement.strategies import STRATEGIES, strategy_placement
from simcluster.result import Result
from simcluster.scenario import Progress, Scenario, WhatIf
from simcluster.topology import Cluster
from simcluster.workload import Workload
from simcluster.workload.merge import SEP, delay_start, merge_workloads, repeat_steps


@dataclass(frozen=True)
class Job:
    """One job of a mix.

    Attributes:
        workload: what it runs.
        placement: a Placement, a placement YAML path (the job's own ranks), a strategy name
            applied to the accelerators the other jobs leave free, or None (``packed`` on
            the free ones).
        start_us: when it starts in the joint run (us); its step time counts from then.
        repeat: how many times its steps run in a row (1: once).
        name: its name in tables and group names (default ``job<i>``).
    """

    workload: Workload
    placement: Placement | str | Path | None = None
    start_us: float = 0.0
    repeat: int = 1
    name: str | None = None


@dataclass(frozen=True)
class JobMix:
    """Jobs on one cluster, with the what-ifs of the cluster (module docstring).

    ``whatif.slow_ranks`` names ranks of the joint run (job ``j``'s ranks follow those of
    the jobs before it); the other what-ifs apply to the cluster, as for one scenario.
    """

    jobs: Sequence[Job]
    cluster: Cluster
    whatif: WhatIf = field(default_factory=WhatIf)
    top_links: int = 10
    predict_kernels: bool = False

    @cached_property
    def names(self) -> list[str]:
        """Each job's name (``job<i>`` where none is given).

        Raises:
            WorkloadError: two jobs with one name.
        """
        names = [j.name or f"job{i}" for i, j in enumerate(self.jobs)]
        if len(set(names)) != len(names):
            raise WorkloadError(f"job names {names} repeat; give each job its own name.")
        for n in names:
            if not n or SEP in n:
                raise WorkloadError(f"job name {n!r}: give a name without {SEP!r}.")
        return names

    @cached_property
    def workloads(self) -> list[Workload]:
        """Each job's workload with its steps repeated (no start offset)."""
        return [repeat_steps(j.workload, j.repeat) for j in self.jobs]

    @cached_property
    def spans(self) -> list[JobSpan]:
        """Where each job sits in the joint run."""
        out, first = [], 0
        for name, wl, job in zip(self.names, self.workloads, self.jobs):
            out.append(JobSpan(name, first, wl.num_ranks, float(job.start_us)))
            first += wl.num_ranks
        return out

    def placements(self) -> list[Placement]:
        """Each job's accelerators: explicit placements first, then strategies in job order
        on what is left.

        Raises:
            PlacementError: a placement that does not fit its job, two jobs on one
                accelerator, or more ranks than free accelerators.
        """
        out: list[Placement | None] = [None] * len(self.jobs)
        owner: dict[str, str] = {}
        strategies: list[tuple[int, str]] = []
        for i, (job, wl, name) in enumerate(zip(self.jobs, self.workloads, self.names)):
            p = job.placement
            if p is None or (isinstance(p, str) and match(p, STRATEGIES)):
                strategies.append((i, match(p, STRATEGIES) if p else "packed"))
                continue
            try:
                out[i] = bind(wl, self.cluster, p).placement
            except PlacementError as exc:
                raise PlacementError(f"job {name}: {exc}") from None
            for dev in out[i].devices:
                if dev in owner:
                    raise PlacementError(
                        f"job {name}: device {dev!r} is also placed to job {owner[dev]}; "
                        "give the jobs disjoint accelerators, or leave a job's placement out "
                        "to pack it onto the free ones.")
                owner[dev] = name
        for i, strategy in strategies:
            wl, name = self.workloads[i], self.names[i]
            try:
                work = rank_work(wl) if strategy == "speed-aware" else None
                p = strategy_placement(self.cluster, wl.num_ranks, strategy, wl.groups, work,
                                       taken=set(owner))
            except PlacementError as exc:
                total = sum(w.num_ranks for w in self.workloads)
                raise PlacementError(
                    f"job {name}: {exc} The {len(self.jobs)} jobs need {total} accelerators "
                    f"in all; {self.cluster.name!r} has {len(self.cluster.accelerators)}.")\
                    from None
            out[i] = p
            owner.update({d: name for d in p.devices})
        return [p for p in out if p is not None]

    def _scenario(self, workload: Workload, placement: Placement,
                  slow: dict[int, float]) -> Scenario:
        return Scenario(workload, self.cluster, placement,
                        replace(self.whatif, slow_ranks=slow), self.top_links,
                        self.predict_kernels)

    def run(self, *, progress: Progress | None = None, freeze_gc: bool = True) -> MixResult:
        """Run each job alone, then all together (``progress`` follows the joint run).

        Raises:
            PlacementError, WorkloadError, TopologyError, SimulationError: as
                :meth:`Scenario.run <simcluster.scenario.Scenario.run>`, for any job or
                the mix.
        """
        placements = self.placements()
        slow = dict(self.whatif.slow_ranks)
        alone, delayed = [], []
        for wl, p, span in zip(self.workloads, placements, self.spans):
            mine = {r - span.first_rank: f for r, f in slow.items()
                    if span.first_rank <= r < span.first_rank + span.ranks}
            alone.append(self._scenario(wl, p, mine).run(freeze_gc=freeze_gc))
            delayed.append(delay_start(wl, span.start_us, mine))
        merged = merge_workloads(delayed, self.names)
        joint = Placement(devices=tuple(d for p in placements for d in p.devices),
                          strategy="jobs", source="job mix")
        together = self._scenario(merged, joint, slow).run(progress=progress,
                                                           freeze_gc=freeze_gc)
        return MixResult(self, placements, alone, together)


class MixResult:
    """What a :class:`JobMix` gave (module docstring).

    Attributes:
        mix: what was simulated.
        placements: each job's placement.
        alone: each job's :class:`~simcluster.result.Result` on its own.
        together: the :class:`~simcluster.result.Result` of the joint run.
    """

    def __init__(self, mix: JobMix, placements: Sequence[Placement],
                 alone: Sequence[Result], together: Result) -> None:
        self.mix = mix
        self.placements = list(placements)
        self.alone = list(alone)
        self.together = together

    @cached_property
    def rank_jobs(self) -> list[str]:
        """The job of each rank of the joint run."""
        return rank_jobs(self.mix.spans)

    @cached_property
    def jobs(self) -> pa.Table:
        """One row per job: job, workload, first_rank, ranks, devices, start_us, repeat,
        alone_step_us, together_step_us and slowdown (together over alone)."""
        timeline = self.together.run.timeline
        together = [job_step_time_us(timeline, s) for s in self.mix.spans]
        alone = [r.step_time_us for r in self.alone]
        return pa.table({
            "job": pa.array(self.mix.names, pa.string()),
            "workload": pa.array([w.meta.name for w in self.mix.workloads], pa.string()),
            "first_rank": pa.array([s.first_rank for s in self.mix.spans], pa.int32()),
            "ranks": pa.array([s.ranks for s in self.mix.spans], pa.int32()),
            "devices": pa.array([list(p.devices) for p in self.placements],
                                pa.list_(pa.string())),
            "start_us": pa.array([s.start_us for s in self.mix.spans], pa.float64()),
            "repeat": pa.array([j.repeat for j in self.mix.jobs], pa.int32()),
            "alone_step_us": pa.array(alone, pa.float64()),
            "together_step_us": pa.array(together, pa.float64()),
            "slowdown": pa.array([t / a if a > 0 else 1.0 for t, a in zip(together, alone)],
                                 pa.float64()),
        })

    @cached_property
    def shared_links(self) -> pa.Table:
        """The links carrying more than one job's traffic, per (link, job): bytes and how
        long the link limited the job's flows (:func:`~simcluster.analysis.jobs.shared_links`)."""
        return shared_links([r.run.links for r in self.alone], self.mix.names,
                            self.together.run.flows, self.rank_jobs)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The joint run's summary with ``jobs`` (the :attr:`jobs` rows), ``shared_links``
        (how many links carry more than one job's traffic) and ``contended_links`` (the
        ``top_links`` of them that held the jobs back longest, with each job's bytes and
        limited time: :func:`~simcluster.analysis.jobs.contended_links`)."""
        shared = self.shared_links
        return {**self.together.summary, "jobs": self.jobs.to_pylist(),
                "shared_links": len(set(shared.column("link_id").to_pylist())),
                "contended_links": contended_links(shared, self.mix.top_links)}

    def document(self) -> dict[str, Any]:
        """The joint run's :meth:`~simcluster.result.Result.document` with this summary."""
        return {**self.together.document(), "summary": self.summary}

    @property
    def output_files(self) -> tuple[str, ...]:
        """The files :meth:`write` puts in the run folder."""
        return (*self.together.output_files, *MIX_FILES)

    def write(self, out: str | Path) -> Path:
        """Write the joint run's folder (``docs/formats.md``) with a ``job`` column in every
        table of ranks, ops or flows, plus ``jobs.parquet`` and ``shared_links.parquet``.
        Returns the folder."""
        from simcluster.export.run_dir import write_run

        r, jobs = self.together, self.rank_jobs
        run = r.run
        flows = run.flows.add_column(1, "job", flow_jobs(run.flows, jobs))
        run = replace(run, timeline=with_job(run.timeline, jobs),
                      memory=with_job(run.memory, jobs), flows=flows)
        return write_run(run, out, self.summary, with_job(r.breakdown, jobs),
                         with_job(r.critical_path, jobs), steps=with_job(r.steps, jobs),
                         fidelity=r.fidelity, import_report=r.import_report,
                         extra={"jobs.parquet": self.jobs,
                                "shared_links.parquet": self.shared_links})

    def __repr__(self) -> str:
        rows = ", ".join(f"{j} x{s:.3f}" for j, s in zip(
            self.mix.names, self.jobs.column("slowdown").to_pylist()))
        return f"<MixResult {len(self.mix.jobs)} jobs on {self.mix.cluster.name!r}: {rows}>"


MIX_FILES = ("jobs.parquet", "shared_links.parquet")

"""What failures and degradation cost: the step time with elements down or flapping against
the same scenario on the healthy cluster.

A failed link, switch, NIC or GPU, or a flapping NIC, is a what-if of
:class:`~simcluster.scenario.WhatIf` (``fail``, ``flap``); :func:`degradation` runs the
scenario's healthy twin (:meth:`WhatIf.healthy`) through the same pipeline and reports the
difference, so that ``replay --fail`` and Python agree. With GPUs down, :func:`restarted`
is the job restarted on the servers that remain (``replay --restart``): a generated
transformer is regenerated with the largest data-parallel size that still fits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from simcluster.errors import WorkloadError
from simcluster.workload.generate.registry import GENERATORS, generate

if TYPE_CHECKING:
    from simcluster.result import Result
    from simcluster.scenario import Scenario
    from simcluster.workload import Workload


@dataclass(frozen=True)
class Degradation:
    """The step-time cost of a scenario's failed and flapping elements.

    Attributes:
        healthy_us: mean step time with nothing failed or flapping (us).
        degraded_us: mean step time as the scenario asks (us).
        failed: the failed elements, as named.
        flapping: element -> fraction of time down.
        ranks: the workload's ranks, healthy and degraded (fewer after a restart).

    Example:
        >>> d = Degradation(100.0, 125.0, ("fabric/spine0",), {}, (16, 16))
        >>> d.cost_us, d.slowdown
        (25.0, 1.25)
    """

    healthy_us: float
    degraded_us: float
    failed: tuple[str, ...]
    flapping: dict[str, float]
    ranks: tuple[int, int]

    @property
    def cost_us(self) -> float:
        """What the failures add to a step (us; negative if the step got shorter)."""
        return self.degraded_us - self.healthy_us

    @property
    def slowdown(self) -> float:
        """Degraded over healthy step time (1.0: no cost)."""
        return self.degraded_us / self.healthy_us

    def to_json(self) -> dict[str, Any]:
        return {"healthy_step_us": self.healthy_us, "degraded_step_us": self.degraded_us,
                "cost_us": self.cost_us, "slowdown": self.slowdown,
                "failed": list(self.failed), "flapping": dict(sorted(self.flapping.items())),
                "ranks": {"healthy": self.ranks[0], "degraded": self.ranks[1]}}


def degradation(scenario: Scenario, result: Result | None = None,
                healthy: Scenario | None = None) -> Degradation:
    """Run ``scenario`` (unless its ``result`` is given) and the healthy baseline (by default
    its healthy twin; after :func:`restarted`, pass the scenario before the restart); their
    step times.

    Raises:
        the errors of :meth:`Scenario.run`, for either.
    """
    degraded = result if result is not None else scenario.run()
    base = healthy if healthy is not None else scenario
    base = replace(base, whatif=base.whatif.healthy())
    w = scenario.whatif
    return Degradation(base.run().step_time_us, degraded.step_time_us, tuple(w.fail),
                       dict(w.flap), (base.workload.num_ranks, scenario.workload.num_ranks))


def restarted(scenario: Scenario) -> Scenario:
    """The scenario as the job restarts after its GPU failures: the servers of the failed
    GPUs are drained (failed whole, as a scheduler takes a node with a bad GPU out of
    service, so that no TP group straddles a hole), and a generated transformer that no
    longer fits is regenerated on fewer ranks (:func:`fewer_replicas`).

    Raises:
        WorkloadError: the workload does not fit and is not a generated transformer, or no
            smaller data-parallel size works.
        TopologyError: the what-ifs do not apply.
    """
    cluster, _ = scenario.target()
    full = scenario.cluster.accelerators if scenario.cluster is not None else ()
    hosts = sorted({h for a in full if a not in cluster.accelerator_index
                    and (h := cluster.host_of(a)) is not None} - set(scenario.whatif.fail))
    if hosts:
        scenario = replace(scenario, whatif=replace(
            scenario.whatif, fail=(*scenario.whatif.fail, *hosts)))
        cluster, _ = scenario.target()
    gpus = len(cluster.accelerators)
    if scenario.workload.num_ranks <= gpus:
        return scenario
    return replace(scenario, workload=fewer_replicas(scenario.workload, gpus))


def fewer_replicas(workload: Workload, gpus: int) -> Workload:
    """A generated transformer regenerated for at most ``gpus`` accelerators: the same model,
    TP, CP, PP, EP, micro-batch and global batch (so more micro-batches per replica), with
    the largest data-parallel size below the current one that fits and that the generator
    accepts (the global batch must split over it). Keeping the model parallelism is what a
    restart from the same checkpoint does without resharding; it is the next-best
    configuration in that sense only (``search`` explores the others).

    Raises:
        WorkloadError: not a generated transformer, or no data-parallel size fits.
    """
    extra = workload.meta.extra or {}
    if extra.get("generator") != "transformer" or "config" not in extra:
        raise WorkloadError(
            f"--restart: {workload.meta.name or 'the workload'} has {workload.num_ranks} "
            f"ranks but {gpus} accelerators remain, and only a generated transformer can be "
            "regenerated for fewer; generate or record the workload for fewer ranks.")
    names = GENERATORS.get("transformer").params
    config, model = extra["config"], extra["model"]
    params = {k: v for k, v in {**model, **config}.items() if k in names}
    params["name"] = config.get("name") or model.get("name", "")
    per_replica = workload.num_ranks // int(config["dp"])
    for dp in range(min(int(config["dp"]) - 1, gpus // per_replica), 0, -1):
        try:
            return generate("transformer", {**params, "dp": dp})
        except WorkloadError:
            continue  # e.g. the global batch does not split over dp replicas
    raise WorkloadError(
        f"--restart: one replica of {workload.meta.name or 'the workload'} needs "
        f"{per_replica} accelerators and {gpus} remain; no smaller data-parallel size fits.")

"""What failures and degradation cost: the step time with elements down or flapping against
the same scenario on the healthy cluster.

A failed link, switch, NIC or GPU, or a flapping NIC, is a what-if of
:class:`~simcluster.scenario.WhatIf` (``fail``, ``flap``); :func:`degradation` runs the
scenario's healthy twin (:meth:`WhatIf.healthy`) through the same pipeline and reports the
difference, so that ``replay --fail`` and Python agree. With GPUs down, :func:`restarted`
is the job restarted on the servers that remain (``replay --restart``): a generated
transformer is regenerated in the fastest configuration a search finds for the GPUs left
(``best``) or with fewer data-parallel replicas of the same shape (``same-shape``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
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
        restart: after :func:`restarted`, its :meth:`Restart.to_json` (the configuration
            before and after, and the search), else None.

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
    restart: dict[str, Any] | None = None

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
                "ranks": {"healthy": self.ranks[0], "degraded": self.ranks[1]},
                **({"restart": self.restart} if self.restart is not None else {})}


def degradation(scenario: Scenario, result: Result | None = None,
                healthy: Scenario | None = None, restart: Restart | None = None
                ) -> Degradation:
    """Run ``scenario`` (unless its ``result`` is given) and the healthy baseline (by default
    its healthy twin; after :func:`restarted`, pass the scenario before the restart, and
    the ``restart`` to report it); their step times.

    Raises:
        the errors of :meth:`Scenario.run`, for either.
    """
    degraded = result if result is not None else scenario.run()
    base = healthy if healthy is not None else scenario
    base = replace(base, whatif=base.whatif.healthy())
    w = scenario.whatif
    return Degradation(base.run().step_time_us, degraded.step_time_us, tuple(w.fail),
                       dict(w.flap), (base.workload.num_ranks, scenario.workload.num_ranks),
                       restart.to_json() if restart is not None else None)


RESTART_MODES = ("best", "same-shape")


@dataclass(frozen=True)
class Restart:
    """A job restarted after its GPU failures (:func:`restarted`).

    Attributes:
        scenario: the scenario to run: drained servers failed, the workload regenerated.
        mode: ``best`` (searched) or ``same-shape`` (fewer replicas), as asked.
        before: the configuration of the job as asked (:func:`layout_of`; {} when the
            workload is not a generated transformer).
        after: the configuration it restarts in ({} when it was kept: it still fits).
        search: what the search did with ``best`` (``search/restart.py``), else None.
    """

    scenario: Scenario
    mode: str
    before: dict[str, Any]
    after: dict[str, Any]
    search: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "restarted": bool(self.after), "before": self.before,
                "after": self.after, "search": self.search}


#: The generator parameters that make a transformer's configuration (what ``search``
#: chooses and a restart may change); the rest of the job (model, batch, dtype...) stays.
LAYOUT = ("tp", "pp", "dp", "cp", "ep", "expert_tp", "micro_batch", "recompute", "zero",
          "sequence_parallel", "schedule")


def layout_of(params: dict[str, Any]) -> dict[str, Any]:
    """The configuration part of transformer generator ``params`` (:data:`LAYOUT`; ``cp``,
    ``ep`` and ``expert_tp`` only above 1).

    >>> layout_of({"tp": 8, "pp": 1, "dp": 6, "cp": 1, "ep": 1, "micro_batch": 1,
    ...            "layers": 32})
    {'tp': 8, 'pp': 1, 'dp': 6, 'micro_batch': 1}
    """
    return {k: params[k] for k in LAYOUT if k in params
            and not (k in ("cp", "ep", "expert_tp") and int(params[k]) <= 1)}


def layout(workload: Workload) -> dict[str, Any]:
    """The configuration of a generated transformer (:func:`layout_of`; {} for another
    workload)."""
    extra = workload.meta.extra or {}
    return layout_of(extra.get("config") or {}) if extra.get("generator") == "transformer" \
        else {}


def restarted(scenario: Scenario, mode: str = "best", options: Any = None,
              client: Any = None, out: str | Path | None = None) -> Restart:
    """The scenario as the job restarts after its GPU failures: the servers of the failed
    GPUs are drained (failed whole, as a scheduler takes a node with a bad GPU out of
    service, so that no TP group straddles a hole), and a generated transformer that no
    longer fits is regenerated for the GPUs left: in the fastest configuration the search
    finds (``best``: ``search/restart.py``, with ``options``, a Dask ``client`` and the
    search folder ``out``) or with fewer replicas of the same shape (``same-shape``:
    :func:`fewer_replicas`, no search).

    Raises:
        WorkloadError: an unknown mode; the workload does not fit and is not a generated
            transformer; nothing fits (``best``) or no smaller data-parallel size works
            (``same-shape``).
        TopologyError: the what-ifs do not apply.
    """
    if mode not in RESTART_MODES:
        raise WorkloadError(f"--restart {mode!r}: use best (search the configurations for "
                            "the GPUs left) or same-shape (the same model parallelism, fewer "
                            "replicas).")
    cluster, _ = scenario.target()
    full = scenario.cluster.accelerators if scenario.cluster is not None else ()
    hosts = sorted({h for a in full if a not in cluster.accelerator_index
                    and (h := cluster.host_of(a)) is not None} - set(scenario.whatif.fail))
    if hosts:
        scenario = replace(scenario, whatif=replace(
            scenario.whatif, fail=(*scenario.whatif.fail, *hosts)))
        cluster, _ = scenario.target()
    gpus = len(cluster.accelerators)
    before = layout(scenario.workload)
    if scenario.workload.num_ranks <= gpus:
        return Restart(scenario, mode, before, {})
    if mode == "same-shape":
        workload = fewer_replicas(scenario.workload, gpus)
        return Restart(replace(scenario, workload=workload), mode, before, layout(workload))
    workload, search = _best(scenario, options, client, out)
    return Restart(replace(scenario, workload=workload), mode, before, layout(workload),
                   search)


def _best(scenario: Scenario, options: Any, client: Any, out: str | Path | None
          ) -> tuple[Workload, dict[str, Any]]:
    """``best``: the search on the scenario's topology file with its failed elements.

    Raises:
        WorkloadError: a scenario the search cannot take (no topology file, what-ifs other
            than failed elements, a placement file) or what ``best_restart`` raises.
    """
    from simcluster.placement import STRATEGIES
    from simcluster.search.driver import SearchOptions
    from simcluster.search.restart import best_restart

    w = scenario.whatif
    source = scenario.cluster.source if scenario.cluster is not None else ""
    others = [name for name, on in (("--device", w.device is not None),
                                    ("--scale-link", bool(w.scale_links)),
                                    ("--slow-rank", bool(w.slow_ranks)),
                                    ("--flap", bool(w.flap)), ("hardware", bool(w.hardware)))
              if on]
    placement = scenario.placement if scenario.placement is not None else "packed"
    why = ("no --topology file to search on" if not source or not Path(source).is_file()
           else f"{', '.join(others)} with it" if others
           else "a placement file" if not (isinstance(placement, str) and placement in
                                           STRATEGIES) else None)
    if why:
        raise WorkloadError(f"--restart best searches the job's configurations on the "
                            f"topology file with the failed elements down, and cannot take "
                            f"{why}; use --restart same-shape.")
    opts = replace(options or SearchOptions(), placement=str(placement))
    return best_restart(scenario.workload, source, tuple(w.fail), opts, client, out)


def transformer_params(workload: Workload, option: str) -> dict[str, Any]:
    """The generator parameters of a generated transformer (its model and its config), to
    regenerate it in another configuration.

    Raises:
        WorkloadError: not a generated transformer (a recorded one cannot be laid out again).
    """
    extra = workload.meta.extra or {}
    if extra.get("generator") != "transformer" or "config" not in extra:
        raise WorkloadError(
            f"{option}: {workload.meta.name or 'the workload'} has {workload.num_ranks} ranks "
            "and only a generated transformer can be regenerated for fewer; generate or "
            "record the workload for fewer ranks.")
    names = GENERATORS.get("transformer").params
    config, model = extra["config"], extra["model"]
    params = {k: v for k, v in {**model, **config}.items() if k in names}
    params["name"] = config.get("name") or model.get("name", "")
    return params


def fewer_replicas(workload: Workload, gpus: int) -> Workload:
    """A generated transformer regenerated for at most ``gpus`` accelerators: the same model,
    TP, CP, PP, EP, micro-batch and global batch (so more micro-batches per replica), with
    the largest data-parallel size below the current one that fits and that the generator
    accepts (the global batch must split over it). Keeping the model parallelism is what a
    restart from the same checkpoint does without resharding (``--restart same-shape``);
    ``--restart best`` searches the other configurations (``search/restart.py``).

    Raises:
        WorkloadError: not a generated transformer, or no data-parallel size fits.
    """
    params = transformer_params(workload, "--restart same-shape")
    dp0 = int(params["dp"])
    per_replica = workload.num_ranks // dp0
    for dp in range(min(dp0 - 1, gpus // per_replica), 0, -1):
        try:
            return generate("transformer", {**params, "dp": dp})
        except WorkloadError:
            continue  # e.g. the global batch does not split over dp replicas
    raise WorkloadError(
        f"--restart same-shape: one replica of {workload.meta.name or 'the workload'} needs "
        f"{per_replica} accelerators and {gpus} remain; no smaller data-parallel size fits; "
        "--restart best searches other configurations.")

"""Search: the fastest or cheapest configuration that fits, simulating few of them.

Three rungs, each on fewer configurations (successive halving):

0. every configuration of the space (``space.py``) is pruned by the analytic memory model and
   the rest are ranked by the closed-form estimate (``estimate.py``): nothing is simulated;
1. the best ``budget`` of them (default a quarter) are simulated at low fidelity: with the
   pipeline filled just twice (``m1`` and ``m2`` micro-batches per replica instead of the
   configuration's ``m``), their step time extrapolated linearly to ``m`` (1F1B adds one
   steady-state period per micro-batch; with ``m <= m1 + m2`` the full step is simulated
   instead, which costs no more);
2. the best ``max(top, budget / eta)`` of those are simulated in full, and ranked.

Simulations run as sweep points (``sweep/point.py``) on Dask, so a search resumes where it
stopped and shares finished points with sweeps of the same base. ``budget`` counts the
configurations simulated at any fidelity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from simcluster.atomic import atomic_path
from simcluster.cost import price_per_hour
from simcluster.errors import SimclusterError
from simcluster.search.estimate import Estimator
from simcluster.search.space import SearchSpace, candidates, world_of
from simcluster.sweep.runner import close_client, make_client, run_points
from simcluster.sweep.spec import Point, point_id
from simcluster.topology import load_cluster
from simcluster.topology.cluster import Cluster
from simcluster.topology.transform import fail
from simcluster.workload.generate.registry import transformer_config

OBJECTIVES = ("time", "cost")
_VARIED = ("tp", "pp", "dp", "micro_batch", "recompute", "zero", "sequence_parallel",
           "schedule")
_VARIED_IF_SET = ("cp", "ep", "expert_tp")  # only where the space sets them (``space.layout``)
_SEARCHED = ("cp", "ep")  # chosen by the search, never fixed


class SearchError(SimclusterError):
    """A search that cannot run."""


class NothingFitsError(SearchError):
    """No configuration of the space is valid for the model and batch on the GPU budget, or
    none fits in memory (a restart turns it into the GPU count that would do:
    ``search/restart.py``)."""


@dataclass(frozen=True)
class SearchOptions:
    """How to search (module docstring).

    Attributes:
        objective: ``time`` (step time) or ``cost`` (USD per 1M tokens).
        budget: configurations to simulate at any fidelity; None: ``budget_fraction`` of
            the feasible ones.
        eta: rung 2 keeps ``budget / eta`` configurations.
        top: configurations to report.
        placement: placement strategy of every simulation.
        price: USD per accelerator-hour (None: topology, then built-in defaults).
        fail: elements down on the topology (nodes, servers, links, as ``replay --fail``):
            every estimate and simulation runs on what remains (a restart's search,
            ``search/restart.py``); the GPU budget counts the accelerators left.
    """

    objective: str = "time"
    budget: int | None = None
    budget_fraction: float = 0.25
    eta: int = 3
    top: int = 5
    placement: str = "packed"
    price: float | None = None
    space: SearchSpace = field(default_factory=SearchSpace)
    fail: tuple[str, ...] = ()


@dataclass
class Trial:
    """One configuration through the rungs (times in us; None where not reached);
    ``point``: further sweep point values it runs with (a co-search's hardware)."""

    params: dict[str, Any]
    infeasible: str | None
    estimate_us: float | None = None
    estimate_objective: float | None = None
    low_fidelity_us: float | None = None
    full: dict[str, Any] | None = None
    point: dict[str, Any] = field(default_factory=dict)

    def varied(self) -> dict[str, Any]:
        """Its sweep point values: the parallel configuration, then :attr:`point`."""
        return {**{k: self.params[k] for k in _VARIED},
                **{k: self.params[k] for k in _VARIED_IF_SET if k in self.params},
                **self.point}

    def key(self) -> str:
        """A deterministic tie-break between trials."""
        return json.dumps({**self.params, **self.point}, sort_keys=True)


@dataclass(frozen=True)
class SearchReport:
    """What a search found and what it cost; ``recomputed``: point files that could not be
    read (truncated or corrupt) and were computed again."""

    objective: str
    trials: list[Trial]
    best: list[Trial]
    configurations: int
    feasible: int
    simulated: int
    simulations: int
    folder: Path
    recomputed: tuple[Path, ...] = ()


def objective_value(objective: str, step_us: float, usd_per_hour: float | None,
                    tokens: float) -> float | None:
    """The objective of a step of ``step_us`` us on GPUs costing ``usd_per_hour`` together
    processing ``tokens``: the time (us), or USD per 1M tokens (None without a price)."""
    if objective == "time":
        return step_us
    if usd_per_hour is None:
        return None
    return usd_per_hour * step_us / 3.6e9 / tokens * 1e6  # USD per 1M tokens


def _fidelities(trial: Trial) -> list[tuple[int, dict[str, Any]]]:
    """(micro-batches, point values) of the low-fidelity simulations, or [] when the full
    step costs no more."""
    cfg = transformer_config(trial.params)
    m, p = cfg.micro_batches, cfg.pp
    m1 = p if p > 1 else 1
    m2 = 2 * p if cfg.chunks > 1 else (p + max(1, p // 2) if p > 1 else 2)
    if m <= m1 + m2:
        return []
    per = cfg.micro_batch * cfg.dp
    return [(mi, {**trial.varied(), "global_batch": mi * per}) for mi in (m1, m2)]


def per_server_count(cluster: Cluster) -> int:
    """The most accelerators one server of ``cluster`` holds (tensor parallelism's limit)."""
    counts: dict[str | None, int] = {}
    for a in cluster.accelerators:
        counts[cluster.host_of(a)] = counts.get(cluster.host_of(a), 0) + 1
    return max(counts.values())


def checked(fixed: dict[str, Any], topology: str | Path, gpus: int,
            space: SearchSpace = SearchSpace(), down: tuple[str, ...] = ()
            ) -> tuple[Path, Cluster]:
    """The topology's resolved path and cluster (with the ``down`` elements failed), once
    the model and budget are checked.

    Raises:
        SearchError: a parallel size the search chooses given as fixed, expert-parallel
            sizes for a dense model, a budget larger than the cluster.
        TopologyError: a ``down`` element the topology does not have.
    """
    given = [k for k in _SEARCHED if k in fixed]
    if given:
        raise SearchError(f"{', '.join(given)} given as a model setting: the search chooses "
                          "the parallel sizes; give the values to try in the space instead "
                          "(SearchSpace.cp / .ep; the CLI's --cp, --ep).")
    model = transformer_config(fixed).model
    if space.ep is not None and not model.moe:
        raise SearchError(f"--ep {','.join(map(str, space.ep))}: model {model.name!r} is dense "
                          "(no experts); leave --ep out, or search a mixture-of-experts preset.")
    topology = Path(topology).resolve()
    cluster = fail(load_cluster(topology), down)
    if not 1 <= gpus <= len(cluster.accelerators):
        raise SearchError(f"--gpus {gpus}: {cluster.name!r} has {len(cluster.accelerators)} "
                          "accelerators; give at most that many.")
    return topology, cluster


def check_objective(options: SearchOptions) -> None:
    """Raise SearchError unless ``options.objective`` is one of ``OBJECTIVES``."""
    if options.objective not in OBJECTIVES:
        raise SearchError(f"--objective {options.objective!r}: use time or cost.")


def no_valid_configuration() -> NothingFitsError:
    """The error for a space with no configuration that splits the model and batch."""
    return NothingFitsError("no configuration of the space is valid for this model and batch "
                            "(heads, FFN and vocabulary must split over tp; the global batch "
                            "over micro_batch x dp); change --global-batch or the space.")


def tokens_per_step(fixed: dict[str, Any]) -> float:
    """Tokens one step of the model in ``fixed`` processes (global batch x sequence)."""
    config = transformer_config(fixed)
    return float(config.batch * config.model.seq_len)


def search(fixed: dict[str, Any], topology: str | Path, gpus: int, out: str | Path,
           options: SearchOptions = SearchOptions(), client: Any = None,
           scheduler: str | None = None, workers: int | None = None,
           progress: Callable[[str, int, int], None] | None = None) -> SearchReport:
    """Search configurations of the model in ``fixed`` (generator parameters: ``preset``,
    overrides, ``global_batch``, dtype...) on ``gpus`` accelerators of ``topology``.

    Raises:
        SearchError: bad options, a parallel size given in ``fixed``, a budget larger than
            the cluster, nothing that fits.
    """
    check_objective(options)
    topology, cluster = checked(fixed, topology, gpus, options.space, options.fail)
    cap = min(cluster.specs[a].hbm_bytes for a in cluster.accelerators)
    cands = candidates(fixed, gpus, per_server_count(cluster), cap, options.space)
    if not cands:
        raise no_valid_configuration()
    trials = [Trial(c.params, c.infeasible) for c in cands]
    feasible = [t for t in trials if t.infeasible is None]
    if not feasible:
        raise NothingFitsError(f"none of the {len(trials)} configurations fits in memory "
                          f"({cap / 2**30:.0f} GiB per GPU); e.g. {cands[0].infeasible}. Use "
                          "more GPUs, a larger-memory accelerator or a smaller model.")
    estimator = Estimator(cluster)
    tokens = tokens_per_step(fixed)
    for t in feasible:
        world = world_of(t.params)
        usd_h = price_per_hour(cluster, cluster.accelerators[:world], options.price)
        t.estimate_us = estimator.estimate(transformer_config(t.params)).step_us
        t.estimate_objective = objective_value(options.objective, t.estimate_us, usd_h, tokens)
    if options.objective == "cost" and any(t.estimate_objective is None for t in feasible):
        raise SearchError("--objective cost needs a price per accelerator-hour: give --price, "
                          "or a cost: section in the topology.")
    ranked = sorted(feasible, key=lambda t: (t.estimate_objective, t.key()))
    budget = options.budget or max(1, math.floor(options.budget_fraction * len(feasible)))
    budget = min(budget, len(feasible))
    base = point_base(topology, fixed, options)
    run = Runner(base, topology.parent, Path(out), client, scheduler, workers, progress)

    def low_objective(t: Trial) -> float:
        assert t.estimate_us is not None and t.estimate_objective is not None
        assert t.low_fidelity_us is not None
        return t.estimate_objective * t.low_fidelity_us / t.estimate_us

    try:
        run_rungs(ranked[:budget], max(options.top, math.ceil(budget / options.eta)), run,
                  lambda ts: sorted(ts, key=lambda t: (low_objective(t), t.key())))
    finally:
        run.close()
    col = "step_time_us" if options.objective == "time" else "usd_per_1m_tokens"
    done = [t for t in trials if t.full is not None and t.full["status"] == "ok"
            and t.full.get(col) is not None]
    best = sorted(done, key=lambda t: (t.full[col], t.key()))
    report = SearchReport(objective=options.objective, trials=trials,
                          best=best[:options.top], configurations=len(trials),
                          feasible=len(feasible), simulated=budget,
                          simulations=run.requested, folder=Path(out),
                          recomputed=tuple(run.recomputed))
    write_report(report, options)
    return report


def point_base(topology: Path, fixed: dict[str, Any], options: SearchOptions
               ) -> dict[str, Any]:
    """The sweep base of a search's points: the topology, the model, the placement and the
    price; with elements down, those too and ``baseline: false`` (the points search the
    degraded cluster; each healthy twin would double the simulations for nothing)."""
    base: dict[str, Any] = {"topology": str(topology),
                            "workload": {"generate": "transformer", **fixed},
                            "placement": options.placement, "price": options.price}
    if options.fail:
        base.update(fail=list(options.fail), baseline=False)
    return base


def run_rungs(rung1: list[Trial], keep: int, run: Runner,
              rank: Callable[[list[Trial]], list[Trial]]) -> None:
    """Rung 1 (low fidelity) on ``rung1``, then rung 2 (full) on the first ``keep`` of the
    ones that ran, as ``rank`` orders them (by ``low_fidelity_us``); fills the trials in."""
    low = {i: _fidelities(t) for i, t in enumerate(rung1)}
    rows = run.points("rung 1", [v for i in low for _, v in low[i]]
                      + [t.varied() for i, t in enumerate(rung1) if not low[i]])
    for i, t in enumerate(rung1):
        if low[i]:
            (m1, v1), (m2, v2) = low[i]
            r1, r2 = rows[point_id(v1, run.base)], rows[point_id(v2, run.base)]
            if r1["status"] == "ok" and r2["status"] == "ok":
                m = transformer_config(t.params).micro_batches
                a, b = r1["step_time_us"], r2["step_time_us"]
                t.low_fidelity_us = b + (m - m2) * (b - a) / (m2 - m1)
        else:
            t.full = rows[point_id(t.varied(), run.base)]
            if t.full["status"] == "ok":
                t.low_fidelity_us = t.full["step_time_us"]
    rung2 = rank([t for t in rung1 if t.low_fidelity_us is not None])[:keep]
    rows = run.points("rung 2", [t.varied() for t in rung2 if t.full is None])
    for t in rung2:
        if t.full is None:
            t.full = rows[point_id(t.varied(), run.base)]


class Runner:
    """Runs rung points on one Dask client (made on first use) and counts them, and the
    unreadable point files it computed again."""

    def __init__(self, base: dict[str, Any], folder: Path, out: Path, client: Any,
                 scheduler: str | None, workers: int | None,
                 progress: Callable[[str, int, int], None] | None) -> None:
        self.base, self.folder, self.out = base, folder, out
        self.client, self.own = client, client is None
        self.scheduler, self.workers, self.progress = scheduler, workers, progress
        self.requested = 0
        self.recomputed: list[Path] = []

    def points(self, rung: str, values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        pts = [Point(id=point_id(v, self.base), values=v) for v in values]
        self.requested += len({p.id for p in pts})
        if not pts:
            return {}
        if self.client is None:
            self.client = make_client(self.scheduler, self.workers)
        cb = (lambda done, total: self.progress(rung, done, total)) if self.progress else None
        done = run_points(pts, self.base, self.folder, self.out, self.client, progress=cb)
        self.recomputed += done.recomputed
        return {r["point_id"]: r for r in done.rows}

    def close(self) -> None:
        if self.own and self.client is not None:
            close_client(self.client)


def write_report(report: SearchReport, options: SearchOptions,
                 extra: dict[str, Any] | None = None) -> None:
    """``candidates.parquet`` (every configuration and how far it got) and ``search.json``
    (with ``extra``'s keys: a co-search's hardware, front and limits)."""
    out = report.folder
    rows = []
    for t in report.trials:
        full = t.full or {}
        rows.append({**t.params, **t.point, "infeasible": t.infeasible,
                     "estimate_us": t.estimate_us,
                     "estimate_objective": t.estimate_objective,
                     "low_fidelity_us": t.low_fidelity_us,
                     "step_time_us": full.get("step_time_us"),
                     "usd_per_1m_tokens": full.get("usd_per_1m_tokens"),
                     "status": full.get("status")})
    with atomic_path(out / "candidates.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
    summary = {
        "objective": report.objective, "configurations": report.configurations,
        "feasible": report.feasible, "simulated_configurations": report.simulated,
        "simulations": report.simulations,
        "options": {k: v for k, v in asdict(options).items() if k not in ("space", "fail")},
        **({"fail": list(options.fail)} if options.fail else {}),
        "space": asdict(options.space),
        "best": [{**t.varied(), **(t.full or {})} for t in report.best],
        **(extra or {}),
    }
    with atomic_path(out / "search.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")

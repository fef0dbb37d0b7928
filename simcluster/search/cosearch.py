"""Co-search: the hardware together with the parallel configuration (Phaze's idea).

The space is every hardware variant of ``hardware.py`` within the budget times every
parallel configuration of ``space.py``; a configuration is pruned by the memory of its
variant. The rungs are those of ``driver.py``, ordered for a front rather than one number:

0. every pair gets the closed-form estimate (``estimate.py``; the variant's accelerator,
   with collective times shared between variants of the same links) and an estimated cost
   (the variant's USD per accelerator-hour x GPUs x time, per 1M tokens); they are ranked by
   Pareto layer of (time, cost), then by the objective. A point k-th by estimated time (or
   cost) lies in one of the first k layers, so the best quarter holds the best of both;
1. the best ``budget`` are simulated at low fidelity and ranked again the same way;
2. the best ``budget / eta`` of those are simulated in full.

Every simulation is a sweep point with ``hw.PARAM`` axes and the variant's price
(``sweep/point.py``), so it runs through :class:`~simcluster.scenario.Scenario` with
:func:`~simcluster.topology.transform.with_hardware` like a replay.

The report holds the Pareto front (step time against USD per 1M tokens) of the configurations
simulated in full and, for each point of it, the hardware parameter that limits it
(:class:`Limit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simcluster.analysis.sweep import pareto_front
from simcluster.errors import TopologyError
from simcluster.search.driver import (
    NothingFitsError,
    Runner,
    SearchError,
    SearchOptions,
    SearchReport,
    Trial,
    check_objective,
    checked,
    no_valid_configuration,
    objective_value,
    per_server_count,
    point_base,
    run_rungs,
    tokens_per_step,
    write_report,
)
from simcluster.search.estimate import Estimator
from simcluster.search.hardware import HardwareSpec, price, variants
from simcluster.search.space import Candidate, candidates, world_of
from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.topology.cluster import Cluster
from simcluster.topology.transform import HARDWARE_PARAMS, hardware_of, with_hardware
from simcluster.workload.generate.registry import transformer_config

DELTA = 0.10  # the step :class:`Limit` raises each parameter by (fraction)
# What the estimate's collective times depend on: the links' bandwidths and the domain size.
_LINKS = ("scale_up_GBps", "scale_out_GBps", "scale_up_size")
SIZE = "scale_up_size"


@dataclass(frozen=True)
class Limit:
    """The hardware parameter that limits a point, by the closed-form estimate: of those the
    hardware file varies or prices, the one whose increase by :data:`DELTA` cuts the
    estimated step time the most per USD/h it adds to an accelerator (a free one first). For
    HBM capacity the cut is that of the best estimated configuration of the same GPU count
    that fits (more memory changes no configuration's time, only which fit); the domain size
    is raised to the next size the topology takes (:func:`next_size`; a size is whole), and
    its cut is the same best-against-best (a larger domain allows larger TP and EP groups
    and carries more of the traffic on NVLink); for the others, the cut is that of the
    point's own configuration.

    Attributes:
        param: the parameter, or None when no increase cuts the estimated time.
        time_cut: fraction of the estimated step time it saves.
        usd_per_hour: what the increase adds per accelerator-hour (USD).
    """

    param: str | None
    time_cut: float
    usd_per_hour: float


@dataclass(frozen=True)
class CoSearchReport:
    """A co-search: the search's report (trials carry their hardware in ``point``), the
    Pareto front of the full simulations with each point's :class:`Limit`, the hardware
    variants searched and those the budget left out."""

    search: SearchReport
    front: list[Trial]
    limits: list[Limit]
    variants: int
    over_budget: int


def pareto_layers(points: Sequence[tuple[float, float]]) -> list[int]:
    """Each point's Pareto layer (0: no other point is at least as low on both coordinates
    and lower on one; layer k: the front once layers below k are removed). Equal points
    share a layer.

    Example:
        >>> pareto_layers([(1, 4), (2, 2), (3, 3), (4, 1), (2, 2), (5, 5)])
        [0, 0, 1, 0, 0, 2]
    """
    order = sorted(range(len(points)), key=lambda i: points[i])
    last: list[tuple[float, float]] = []  # each layer's last point (x ascending, y falling)
    layer = [0] * len(points)
    for i in order:
        x, y = points[i]
        k = 0
        while k < len(last) and not (y < last[k][1] or (x, y) == last[k]):
            k += 1
        if k == len(last):
            last.append((x, y))
        last[k] = (x, y)
        layer[i] = k
    return layer


class Estimates:
    """Closed-form step times of configurations on hardware variants of one cluster; the
    variants with the same links and domain size share one estimator (its collective
    times), and those of one domain size one rebuilt cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.base_size = hardware_of(cluster)[SIZE]
        self._estimators: dict[tuple[tuple[str, float], ...], Estimator] = {}
        self._specs: dict[tuple[tuple[str, float], ...], AcceleratorSpec] = {}
        self._sized: dict[float, Cluster] = {}

    def sized(self, size: float) -> Cluster:
        """The cluster with ``size`` accelerators per scale-up domain (rebuilt once).

        Raises:
            TopologyError: a size the topology cannot be rebuilt with.
        """
        if size not in self._sized:
            self._sized[size] = self.cluster if size == self.base_size else with_hardware(
                self.cluster, {SIZE: size})
        return self._sized[size]

    def per_server(self, hw: dict[str, float]) -> int:
        """Most accelerators of one server (tensor parallelism's limit) with hardware ``hw``."""
        return per_server_count(self.sized(hw.get(SIZE, self.base_size)))

    def spec(self, hw: dict[str, float]) -> AcceleratorSpec:
        """The accelerator of hardware ``hw`` (the domain size leaves it as it is)."""
        own = {k: v for k, v in hw.items() if k != SIZE}
        key = tuple(sorted(own.items()))
        if key not in self._specs:
            variant = with_hardware(self.cluster, own)
            self._specs[key] = variant.specs[variant.accelerators[0]]
        return self._specs[key]

    def step_us(self, params: dict[str, Any], hw: dict[str, float]) -> float:
        """The estimated step time (us) of generator ``params`` on hardware ``hw``."""
        links = tuple((k, hw[k]) for k in _LINKS if k in hw)
        if links not in self._estimators:
            rest = {k: v for k, v in links if k != SIZE}
            self._estimators[links] = Estimator(with_hardware(
                self.sized(hw.get(SIZE, self.base_size)), rest))
        return self._estimators[links].estimate(transformer_config(params),
                                                self.spec(hw)).step_us


def cosearch(fixed: dict[str, Any], topology: str | Path, gpus: int, out: str | Path,
             hardware: HardwareSpec, options: SearchOptions = SearchOptions(),
             client: Any = None, scheduler: str | None = None, workers: int | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> CoSearchReport:
    """Search the hardware of ``hardware`` jointly with the configurations of the model in
    ``fixed`` on ``gpus`` accelerators of ``topology`` (module docstring); the cost model
    prices each variant (``options.price`` must be None).

    Raises:
        SearchError: bad options (a price) or model (:func:`~simcluster.search.driver.checked`),
            nothing within the budget; ``NothingFitsError``, a SearchError, where no
            configuration of the space is valid or none fits in memory.
        TopologyError: a varied bandwidth the topology has no links for.
    """
    check_objective(options)
    if options.price is not None:
        raise SearchError("--price with --hardware: the hardware file's cost: section prices "
                          "each variant; leave out --price.")
    topology, cluster = checked(fixed, topology, gpus, options.space, options.fail)
    base_hw = hardware_of(cluster)
    hw_variants, over = variants(hardware, base_hw)
    estimates = Estimates(cluster)
    for size in sorted({v.values[SIZE] for v in hw_variants if SIZE in v.values}):
        estimates.sized(size)  # a size the topology cannot take: refused before any work
    fits = _Fits(fixed, gpus, options)
    tokens = tokens_per_step(fixed)
    trials: list[Trial] = []
    for v in hw_variants:
        hw = {**base_hw, **v.values}
        for c in fits(estimates.spec(hw).hbm_bytes, estimates.per_server(hw)):
            t = Trial(c.params, c.infeasible, point=v.point())
            if c.infeasible is None:
                t.estimate_us = estimates.step_us(c.params, hw)
                t.estimate_objective = objective_value(options.objective, t.estimate_us,
                                                       _usd_per_hour(t), tokens)
            trials.append(t)
    feasible = [t for t in trials if t.infeasible is None]
    if not feasible:
        raise NothingFitsError(f"none of the {len(trials)} configurations fits in memory on any "
                          "hardware variant; add larger hbm_GiB values to the space, more "
                          "GPUs, or a smaller model.")

    def ranked(ts: list[Trial], time_of: Callable[[Trial], float]) -> list[Trial]:
        pts = [(time_of(t),
                objective_value("cost", time_of(t), _usd_per_hour(t), tokens) or 0.0)
               for t in ts]
        layers = pareto_layers(pts)
        col = 0 if options.objective == "time" else 1
        order = sorted(range(len(ts)), key=lambda i: (layers[i], pts[i][col], ts[i].key()))
        return [ts[i] for i in order]

    budget = options.budget or max(1, math.floor(options.budget_fraction * len(feasible)))
    budget = min(budget, len(feasible))
    base = point_base(topology, fixed, options)
    run = Runner(base, topology.parent, Path(out), client, scheduler, workers, progress)
    try:
        run_rungs(ranked(feasible, lambda t: t.estimate_us or 0.0)[:budget],
                  max(options.top, math.ceil(budget / options.eta)), run,
                  lambda ts: ranked(ts, lambda t: t.low_fidelity_us or 0.0))
    finally:
        run.close()
    done = {t.full["point_id"]: t for t in trials
            if t.full is not None and t.full["status"] == "ok"}
    col = "step_time_us" if options.objective == "time" else "usd_per_1m_tokens"
    best = sorted(done.values(), key=lambda t: (t.full[col], t.key()))  # type: ignore[index]
    front = [done[r["point_id"]] for r in pareto_front(
        [t.full for t in done.values() if t.full is not None], "step_time_us",
        "usd_per_1m_tokens")]
    limits = [limit_of(t, hardware, base_hw, estimates, fits) for t in front]
    report = SearchReport(objective=options.objective, trials=trials, best=best[:options.top],
                          configurations=len(trials), feasible=len(feasible),
                          simulated=budget, simulations=run.requested, folder=Path(out),
                          recomputed=tuple(run.recomputed))
    write_report(report, options, {
        "hardware": {"space": {k: list(v) for k, v in hardware.values().items()},
                     "cost": hardware.cost.model_dump(),
                     "power": hardware.power.model_dump() if hardware.power else None,
                     "budget": hardware.budget.model_dump(), "base": base_hw,
                     "variants": len(hw_variants), "over_budget": over},
        "front": [{**t.varied(), **(t.full or {}), "limit": asdict(lim)}
                  for t, lim in zip(front, limits)]})
    return CoSearchReport(report, front, limits, len(hw_variants), over)


def _usd_per_hour(t: Trial) -> float:
    """The trial's GPUs' USD per hour, at its variant's price per accelerator-hour."""
    return float(t.point["price"]) * world_of(t.params)


class _Fits:
    """The configurations of the space and whether each fits, per memory capacity and
    accelerators per server (the domain size bounds TP; cached)."""

    def __init__(self, fixed: dict[str, Any], gpus: int, options: SearchOptions) -> None:
        self.fixed, self.gpus, self.space = fixed, gpus, options.space
        self._by_cap: dict[tuple[int, int], list[Candidate]] = {}

    def __call__(self, capacity_bytes: int, per_server: int) -> list[Candidate]:
        key = (capacity_bytes, per_server)
        if key not in self._by_cap:
            self._by_cap[key] = candidates(self.fixed, self.gpus, per_server,
                                           capacity_bytes, self.space)
            if not self._by_cap[key]:
                raise no_valid_configuration()
        return self._by_cap[key]


def limit_of(t: Trial, hardware: HardwareSpec, base_hw: dict[str, float],
             estimates: Estimates, fits: Callable[[int, int], list[Candidate]]) -> Limit:
    """The parameter that limits trial ``t`` (:class:`Limit`)."""
    hw = {**base_hw, **{k[3:]: float(v) for k, v in t.point.items() if k.startswith("hw.")}}
    usd = price(hardware, hw, base_hw)[0]
    world = world_of(t.params)
    now = estimates.step_us(t.params, hw)

    def best(h: dict[str, float]) -> float:
        """The best estimate of the configurations of ``world`` GPUs that fit on ``h``."""
        return min((estimates.step_us(c.params, h)
                    for c in fits(estimates.spec(h).hbm_bytes, estimates.per_server(h))
                    if c.infeasible is None and world_of(c.params) == world),
                   default=math.inf)

    found = Limit(None, 0.0, 0.0)
    score = 0.0
    for p in HARDWARE_PARAMS:
        if base_hw[p] <= 0 or (p not in hardware.space and p not in hardware.cost.per_unit):
            continue  # no such links to make faster, or a part the file leaves as it is
        if p == SIZE:
            larger = next_size(estimates, hw[p])
            if larger is None:
                continue
            more = {**hw, p: larger}
        else:
            more = {**hw, p: hw[p] * (1 + DELTA)}
        if p in ("hbm_GiB", SIZE):
            before = best(hw)
            cut = (before - best(more)) / before
        else:
            cut = (now - estimates.step_us(t.params, more)) / now
        added = price(hardware, more, base_hw)[0] - usd
        if cut <= 1e-9:
            continue
        s = math.inf if added <= 0 else cut / added
        if s > score:
            found, score = Limit(p, cut, added), s
    return found


def next_size(estimates: Estimates, size: float) -> int | None:
    """The next scale-up domain size above ``size`` that the topology takes (a divisor of its
    accelerators that splits no NIC), or None."""
    total = len(estimates.cluster.accelerators)
    for d in range(int(size) + 1, total + 1):
        if total % d == 0:
            try:
                estimates.sized(d)
            except TopologyError:
                continue
            return d
    return None

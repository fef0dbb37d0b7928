"""Fit the network model's physical parameters to measured nccl-tests curves.

Which parameters the curves can identify depends on them:

- logs inside one server identify the efficiency of the server's links (NVLink, or PCIe in
  a server without a switch), NVLS efficiency and base latency, and the per-call overheads of
  LL128 and Simple. Every such ring has the same number of steps, so per-call and per-step
  latency cannot be told apart: NCCL's per-step latencies are kept and the excess is a
  per-call overhead (docs/network.md, "Fitted parameters"). LL keeps NCCL's values;
- logs across servers identify the efficiency of the network links (InfiniBand, Ethernet)
  and a scale on NCCL's per-step network latencies;
- any log whose small sizes are flat identifies the host launch cost.

A parameter is fitted only if some curve of the right kind is given, moving it over its
range changes a predicted time at a fitted size, and its effect is not that of the others
(``identify.py``); the others keep their values and are reported as not identifiable, with
the reason.

Objective (``problem.py``, that of docs/network.md): per curve and size band, the mean
``|log(measured time / predicted time)|`` over the band's tolerance, summed. It is minimised
by :func:`~simcluster.calibrate.optimise.minimise` from the topology's values and from
mid-range. The fitted values are rounded (4 decimals for fractions and factors, 0.01 us for
times), moved back towards the topology's as far as the fit stays within 0.1 % of the best
(``settle.py``), and the final predictions use them, so that the reported quality is that of
the values written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simcluster.calibrate.identify import identify
from simcluster.calibrate.logs import Curve
from simcluster.calibrate.model import Knob, knobs_for
from simcluster.calibrate.optimise import Minimum, minimise
from simcluster.calibrate.problem import Problem, Variable
from simcluster.calibrate.quality import BANDS, Band, CurveFit, busbw
from simcluster.calibrate.settle import intervals, settle
from simcluster.sim.libraries import effective_network
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import NetworkParams

FITTED, AT_BOUND, NOT_IDENTIFIABLE = "fitted", "at bound", "not identifiable"
UNCONSTRAINED = ("every value in its range fits the logs as well (within 0.1 % of the "
                 "objective); kept")


@dataclass(frozen=True)
class Fitted:
    """One parameter's outcome: its value before and after (equal if not fitted), ``status``
    (``fitted``, ``at bound`` or ``not identifiable``) and, unless plainly fitted, why;
    ``shared`` if one value was fitted for several systems; for a fitted one, ``interval``:
    the values that fit the logs as well (within 0.1 % of the objective, the others held;
    ``calibrate.settle``)."""

    knob: Knob
    before: float
    after: float
    status: str
    reason: str = ""
    shared: bool = False
    interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate` for one cluster.

    Attributes:
        cluster: the cluster as given.
        network: its network parameters with the fitted values.
        params: every knob of the cluster, fitted or not, in report order.
        curves: per curve, measured and predicted busbw before and after.
        objective_before, objective_after: this cluster's share of the objective at the
            given and at the fitted values.
        evaluations: objective evaluations the fit spent (all systems together).
        fit_sizes: the size range fitted (bytes, inclusive), or None for every size.
        servers: per curve, how many servers its ranks span on the cluster.
    """

    cluster: Cluster
    network: NetworkParams
    params: tuple[Fitted, ...]
    curves: tuple[CurveFit, ...]
    objective_before: float
    objective_after: float
    evaluations: int
    fit_sizes: tuple[int, int] | None
    servers: tuple[int, ...] = ()

    @property
    def values(self) -> dict[str, float]:
        """The fitted values by knob name (what changes in the topology)."""
        return {p.knob.name: p.after for p in self.params if p.status != NOT_IDENTIFIABLE}


def calibrate(cluster: Cluster, curves: Sequence[Curve], *,
              fit_sizes: tuple[int, int] | None = None,
              bands: tuple[Band, ...] = BANDS) -> Calibration:
    """Fit ``cluster``'s network parameters to measured ``curves``.

    Parameters:
        cluster: the cluster the curves were measured on (its network parameters are the
            starting values, and stay for what the curves cannot identify).
        curves: measured nccl-tests curves (:func:`~simcluster.calibrate.logs.read_log`).
        fit_sizes: fit only sizes in this range (bytes, inclusive) and report the others as
            held out; None: every size.
        bands: the size bands of the objective and of the report.

    Returns:
        The fitted parameters and the fit quality before and after.

    Raises:
        CalibrationError: no curve, a curve that does not fit the cluster (rank count, hosts,
            buffer sizes), or no measured size in ``fit_sizes`` inside a fitted band.
    """
    return calibrate_systems([(cluster, curves)], fit_sizes=fit_sizes, bands=bands)[0]


def calibrate_systems(systems: Sequence[tuple[Cluster, Sequence[Curve]]], *,
                      fit_sizes: tuple[int, int] | None = None,
                      bands: tuple[Band, ...] = BANDS) -> tuple[Calibration, ...]:
    """Fit several clusters at once: one value of each physical parameter for all of them
    (NVLink efficiency, NVLS, protocol overheads, ...), one host launch cost per cluster.
    This is how docs/network.md's values were fitted, on three 8-GPU systems.

    Returns:
        One :class:`Calibration` per system, in order.

    Raises:
        CalibrationError: as :func:`calibrate`, for any system.
    """
    problem = Problem(systems, fit_sizes, bands)
    reasons = identify(problem)
    free = [v for v in problem.variables if not reasons[v]]
    best = _fit(problem, free)
    values: dict[Variable, float] = {}
    spread: dict[Variable, tuple[float, float]] = {}
    if best is not None:
        values = settle(problem, {v: round(float(x), v.knob.decimals)
                                  for v, x in zip(free, best.x)}, best.fun)
        spread = intervals(problem, values, best.fun)
        reasons.update({v: UNCONSTRAINED for v, (lo, hi) in spread.items()
                        if lo <= v.knob.lo and hi >= v.knob.hi})
        values = {v: x for v, x in values.items() if not reasons[v]}
    after = problem.networks(list(values), list(values.values()))
    out = []
    for k, (cluster, _) in enumerate(systems):
        mine = [v for v in problem.variables if problem.applies(v, k)]
        used = effective_network(cluster)  # with the collective library's defaults
        params = tuple(_outcome(v, v.knob.value(used), values.get(v), reasons[v],
                                spread.get(v))
                       for v in sorted(mine, key=lambda v: _order(cluster, v.knob)))
        out.append(Calibration(
            cluster=cluster, network=after[k], params=params,
            curves=_curve_fits(problem, k, after[k]),
            objective_before=problem.system_loss(k, problem.bases[k]),
            objective_after=problem.system_loss(k, after[k]),
            evaluations=best.evaluations if best else 0, fit_sizes=fit_sizes,
            servers=tuple(problem.predictors[k].hosts)))
    return tuple(out)


def _fit(problem: Problem, free: list[Variable]) -> Minimum | None:
    """Minimise the objective over ``free`` from the given values and from the middle of
    the ranges (the objective has several basins); the better wins, ties the first."""
    if not free:
        return None
    lo = np.array([v.knob.lo for v in free])
    hi = np.array([v.knob.hi for v in free])

    def objective(x: np.ndarray) -> float:
        return problem.loss(problem.networks(free, x.tolist()))

    best: Minimum | None = None
    spent = 0
    for start in (np.array([problem.current(v) for v in free]), (lo + hi) / 2):
        m = minimise(objective, start, lo, hi)
        spent += m.evaluations
        if best is None or m.fun < best.fun:
            best = m
    assert best is not None
    return Minimum(best.x, best.fun, spent)


def _order(cluster: Cluster, knob: Knob) -> int:
    return [k.name for k in knobs_for(cluster)].index(knob.name)


def _outcome(v: Variable, before: float, after: float | None, reason: str,
             spread: tuple[float, float] | None) -> Fitted:
    shared = v.system is None
    if reason or after is None:
        return Fitted(v.knob, before, before, NOT_IDENTIFIABLE, reason, shared)
    knob = v.knob
    edge = 1e-3 * (knob.hi - knob.lo)
    if after <= knob.lo + edge or after >= knob.hi - edge:
        end = "lower" if after <= knob.lo + edge else "upper"
        why = ("the data would push it further" if spread is None or spread[1] - spread[0]
               <= edge else f"values from {spread[0]:g} to {spread[1]:g} fit as well")
        return Fitted(knob, before, after, AT_BOUND,
                      f"at the {end} end of its range ({knob.lo:g}-{knob.hi:g}); {why}",
                      shared, spread)
    return Fitted(knob, before, after, FITTED, "", shared, spread)


def _curve_fits(problem: Problem, k: int, network: NetworkParams) -> tuple[CurveFit, ...]:
    pred = problem.predictors[k]
    before = pred.predict(problem.bases[k], labels=True)
    after = pred.predict(network, labels=True)
    out = []
    for curve, b, a, h, f in zip(pred.curves, before, after, problem.held[k], problem.fit[k]):
        out.append(CurveFit(
            curve=curve, sizes=np.array([p.size for p in curve.points], dtype=np.int64),
            measured=np.array([p.busbw_GBps for p in curve.points]),
            before=busbw(curve, b.time_us), after=busbw(curve, a.time_us),
            fitted=f, held_out=h, labels_before=b.labels, labels_after=a.labels))
    return tuple(out)

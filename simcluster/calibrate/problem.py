"""The calibration problem: systems (a cluster and its measured curves), the variables that
are fitted, and the objective.

A variable is a knob shared by every system that has it, or, for per-system knobs (the host
launch cost: a property of each machine's host and software), one per system. With one
system the two are the same.

Objective (that of ``bench/fit_collectives.py`` and docs/network.md): per curve and size
band, the mean ``|log(measured time / predicted time)|`` of its fitted points over the band's
tolerance, summed over bands, curves and systems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simcluster.calibrate.logs import Curve
from simcluster.calibrate.model import Knob, Predictor, knobs_for, with_values
from simcluster.calibrate.quality import Band, band_loss, in_fitted_band
from simcluster.errors import CalibrationError
from simcluster.sim.libraries import effective_network
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import NetworkParams

# Knobs fitted once per system rather than shared.
PER_SYSTEM: tuple[str, ...] = ("host_launch_us",)


@dataclass(frozen=True)
class Variable:
    """A fitted quantity: a knob, for one system (``system`` its index) or shared by all that
    have the knob (``system`` None)."""

    knob: Knob
    system: int | None


class Problem:
    """Systems, their fitted points and the objective over the variables.

    Raises:
        CalibrationError: no curve, a curve that does not fit its cluster (rank count,
            hosts, buffer sizes), or no measured size in ``fit_sizes`` inside a fitted band.
    """

    def __init__(self, systems: Sequence[tuple[Cluster, Sequence[Curve]]],
                 fit_sizes: tuple[int, int] | None, bands: tuple[Band, ...]) -> None:
        if not systems or not all(curves for _, curves in systems):
            raise CalibrationError("no measured curve to calibrate on; give nccl-tests logs.")
        self.bands = bands
        self.clusters = [c for c, _ in systems]
        self.bases = [c.network for c in self.clusters]
        self.predictors = [Predictor(c, curves) for c, curves in systems]
        self.sizes: list[list[np.ndarray]] = []
        self.times: list[list[np.ndarray]] = []
        self.held: list[list[np.ndarray]] = []
        self.fit: list[list[np.ndarray]] = []
        for _, curves in systems:
            sizes = [np.array([p.size for p in c.points], dtype=np.int64) for c in curves]
            self.sizes.append(sizes)
            self.times.append([np.array([p.time_us for p in c.points]) for c in curves])
            self.held.append([_outside(s, fit_sizes) for s in sizes])
            self.fit.append([~h & in_fitted_band(s, bands)
                             for s, h in zip(sizes, self.held[-1])])
        if not any(f.any() for fits in self.fit for f in fits):
            names = ", ".join(c.source for _, curves in systems for c in curves)
            rng = "" if fit_sizes is None else f" in {fit_sizes[0]}-{fit_sizes[1]} B"
            raise CalibrationError(f"no measured size of {names}{rng} lies in a fitted band "
                                   "(1 KiB and up); give larger sizes or widen --fit-sizes.")
        self.fit_sizes = [[s[f] for s, f in zip(ss, ff)] for ss, ff in zip(self.sizes, self.fit)]
        self.fit_times = [[t[f] for t, f in zip(tt, ff)] for tt, ff in zip(self.times, self.fit)]
        self._knobs = [{k.name for k in knobs_for(c)} for c in self.clusters]
        self.variables = self._variables()

    def _variables(self) -> list[Variable]:
        out: list[Variable] = []
        seen: set[str] = set()
        for k, cluster in enumerate(self.clusters):
            for knob in knobs_for(cluster):
                if knob.name in PER_SYSTEM or len(self.clusters) == 1:
                    out.append(Variable(knob, k))
                elif knob.name not in seen:
                    seen.add(knob.name)
                    out.append(Variable(knob, None))
        return out

    def spans(self, system: int) -> list[int]:
        """Servers spanned by each curve of ``system`` that has fitted points."""
        pred = self.predictors[system]
        return [pred.hosts[k] for k, f in enumerate(self.fit[system]) if f.any()]

    def applies(self, var: Variable, system: int) -> bool:
        """Whether ``var`` sets a parameter of ``system``."""
        if var.system is not None:
            return var.system == system
        return var.knob.name in self._knobs[system]

    def current(self, var: Variable) -> float:
        """The variable's value in the given topologies (the first that has it), as the
        simulation uses it (the collective library's default where the topology sets none)."""
        system = var.system if var.system is not None else next(
            k for k in range(len(self.clusters)) if self.applies(var, k))
        return var.knob.value(effective_network(self.clusters[system]))

    def networks(self, variables: Sequence[Variable], values: Sequence[float]
                 ) -> list[NetworkParams]:
        """Each system's network parameters with ``variables`` set to ``values``."""
        out = []
        for k, base in enumerate(self.bases):
            mine = {v.knob.name: float(x) for v, x in zip(variables, values)
                    if self.applies(v, k)}
            out.append(with_values(base, mine) if mine else base)
        return out

    def log_times(self, networks: Sequence[NetworkParams]) -> list[list[np.ndarray]]:
        """Per system and curve, log of the predicted time at each fitted size."""
        return [[np.log(p.time_us) for p in pred.predict(net, sizes)]
                for pred, net, sizes in zip(self.predictors, networks, self.fit_sizes)]

    def loss(self, networks: Sequence[NetworkParams]) -> float:
        """The objective under each system's ``networks``."""
        return sum(self.system_loss(k, net) for k, net in enumerate(networks))

    def system_loss(self, system: int, network: NetworkParams) -> float:
        """System ``system``'s share of the objective under ``network``."""
        preds = self.predictors[system].predict(network, self.fit_sizes[system])
        return sum(band_loss(np.abs(np.log(t / p.time_us)), s, self.bands)
                   for p, t, s in zip(preds, self.fit_times[system], self.fit_sizes[system]))

    def weights(self) -> np.ndarray:
        """Per fitted point (all systems and curves in order), its weight in the objective:
        over each band that holds it, 1 / (tolerance x points in the band)."""
        out = []
        for sizes in self.fit_sizes:
            for s in sizes:
                w = np.zeros(len(s))
                for band in self.bands:
                    sel = (s >= band.lo) & (s <= band.hi)
                    if band.tolerance is not None and sel.any():
                        w[sel] += 1.0 / (band.tolerance * sel.sum())
                out.append(w)
        return np.concatenate(out)


def _outside(sizes: np.ndarray, fit_sizes: tuple[int, int] | None) -> np.ndarray:
    if fit_sizes is None:
        return np.zeros(len(sizes), dtype=bool)
    return (sizes < fit_sizes[0]) | (sizes > fit_sizes[1])

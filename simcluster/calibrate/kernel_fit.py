"""Fit the compute model's parameters of one GPU to the kernels recorded in profiler traces.

Which parameters a trace identifies depends on its kernels (``kernel_model.KNOBS`` lists
them with their groups). Three checks, in order; a parameter that fails one keeps its value
and is reported as not identifiable, with the reason:

1. kernels: its group has at least :data:`MIN_KERNELS` fitted kernels;
2. weight: in at least :data:`MIN_INFORMATIVE` of them, the parameter carries at least
   :data:`SHARE` of the predicted time (``|d log t / d log value|`` at the starting values):
   a memory efficiency needs memory-bound kernels with enough bytes, a fixed time short
   kernels, an efficiency long ones;
3. confounding: the effect of a small change of each parameter on the log of every fitted
   kernel's time (weighted as in the objective) is a column; one that is nearly a
   combination of the others' (less than 15 % of its norm left over: GEMMs of one size
   cannot tell efficiency from fixed time) is held, the lowest ``keep`` first.

Objective: per group (gemm, small, attention), the mean squared error of log(predicted /
recorded time) over its fitted kernels, plus :data:`SUM_WEIGHT` times the squared log of the
group's summed predicted over summed recorded time, summed over groups (each group counts once, however many kernels
it has). The first term fits the typical kernel; the second keeps the group's total, which
sets the step time, from drifting where a few long kernels and many short ones disagree
(on the A100 trace without it the per-kernel fit halves the HBM efficiency and puts the
summed time +86 % off). A group none of whose own parameters passes checks 1 and 2 is left
out of it (reported, not fitted): its held values would pull the shared ones. It is smooth,
and minimised by
:func:`~simcluster.calibrate.optimise.minimise` (numpy only, deterministic, bounded
evaluations) from the starting values and from mid-range; the better wins. Values are
rounded (3 decimals for fractions, 0.01 us) and the reported quality is that of the rounded
values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simcluster.calibrate.identify import hold_confounded
from simcluster.calibrate.kernel_data import Kernels
from simcluster.calibrate.kernel_model import (
    GROUP_NAMES,
    KNOBS,
    MEMORY,
    ComputeKnob,
    KernelPredictor,
    fit_groups,
    group_mask,
    with_values,
)
from simcluster.calibrate.optimise import minimise
from simcluster.sim.compute import DeviceCalibration

FITTED, AT_BOUND, NOT_IDENTIFIABLE = "fitted", "at bound", "not identifiable"
MIN_KERNELS = 10
MIN_INFORMATIVE = 5
SHARE = 0.3
_REL_STEP = 0.01


@dataclass(frozen=True)
class KnobOutcome:
    """One parameter: its value before and after (equal if not fitted), ``status``
    (``fitted``, ``at bound`` or ``not identifiable``) and, unless plainly fitted, why."""

    knob: ComputeKnob
    before: float
    after: float
    status: str
    reason: str = ""


@dataclass(frozen=True)
class ComputeFit:
    """The fit of one GPU model.

    Attributes:
        model: the topology's accelerator model the calibration is written for.
        kernels: every kernel read (fitted and held out) of that chip.
        before, after: the calibration at the start and with the fitted values.
        params: every knob, fitted or not, in :data:`KNOBS` order.
        predicted_before, predicted_after: per kernel, us.
        objective_before, objective_after: on the fitted kernels.
        evaluations: objective evaluations spent.
    """

    model: str
    kernels: Kernels
    before: DeviceCalibration
    after: DeviceCalibration
    params: tuple[KnobOutcome, ...]
    predicted_before: np.ndarray
    predicted_after: np.ndarray
    objective_before: float
    objective_after: float
    evaluations: int

    @property
    def values(self) -> dict[str, float]:
        """The fitted values by knob name (what the topology's ``compute:`` entry gets)."""
        return {p.knob.name: p.after for p in self.params if p.status != NOT_IDENTIFIABLE}


SUM_WEIGHT = 10.0  # the group's total counts ten times a typical kernel's squared log error


class _Objective:
    """The objective (module docstring) of the fitted kernels under free knobs' values."""

    def __init__(self, kernels: Kernels, base: DeviceCalibration) -> None:
        fit = kernels.select(~kernels.held_out)
        self.base = base
        self.predict = KernelPredictor(fit)
        self.log_rec = np.log(fit.recorded_us)
        self.group = fit_groups(fit)
        present = [g for g in range(len(GROUP_NAMES)) if np.any(self.group == g)]
        self.weight = np.zeros(len(fit))
        for g in present:
            sel = self.group == g
            self.weight[sel] = 1.0 / sel.sum()
        self.fit = fit
        self._count_sums()

    def restrict(self, groups: set[str]) -> None:
        """Count only the kernels of ``groups`` in the objective: a group none of whose own
        parameters is identifiable would pull the shared ones (fixed time, HBM efficiency)
        with its own held, possibly wrong, values."""
        keep = np.isin(self.group, [GROUP_NAMES.index(g) for g in groups])
        self.weight = np.where(keep, self.weight, 0.0)
        self._count_sums()

    def _count_sums(self) -> None:
        """Per counted group, its kernels and their summed recorded time (the second term)."""
        counted = np.unique(self.group[self.weight > 0]).tolist()
        self.sums = [(sel, float(self.fit.recorded_us[sel].sum()))
                     for sel in (self.group == g for g in counted)]

    def log_times(self, values: dict[ComputeKnob, float]) -> np.ndarray:
        return np.log(self.predict(with_values(self.base, values)))

    def __call__(self, values: dict[ComputeKnob, float]) -> float:
        pred = self.predict(with_values(self.base, values))
        total = float(np.sum(self.weight * (np.log(pred) - self.log_rec) ** 2))
        for sel, rec in self.sums:
            total += SUM_WEIGHT * float(np.log(pred[sel].sum() / rec)) ** 2
        return total


def fit_kernels(kernels: Kernels, base: DeviceCalibration, model: str) -> ComputeFit:
    """Fit ``base`` (the calibration the topology gives the chip) to ``kernels``.

    Parameters:
        kernels: recorded kernels of one chip (``held_out`` ones are only reported).
        base: the starting calibration (NaN-free: a spec's launch overhead resolved).
        model: the topology's accelerator model, for the report and the YAML key.

    Returns:
        The fit, with the quality before and after.
    """
    objective = _Objective(kernels, base)
    reasons = identify(objective)
    free = [k for k in KNOBS if not reasons[k]]
    values: dict[ComputeKnob, float] = {}
    evaluations = 0
    if free:
        lo = np.array([k.lo for k in free])
        hi = np.array([k.hi for k in free])
        start = np.clip([k.value(base) for k in free], lo, hi)
        best = None
        for x0 in (start, (lo + hi) / 2):
            m = minimise(lambda x: objective(dict(zip(free, x.tolist()))), x0, lo, hi,
                         grid=11, max_evals=3000)
            evaluations += m.evaluations
            if best is None or m.fun < best.fun:
                best = m
        assert best is not None
        values = {k: round(float(x), k.decimals) for k, x in zip(free, best.x)}
    after = with_values(base, values)
    params = tuple(_outcome(k, base, values.get(k), reasons[k]) for k in KNOBS)
    every = KernelPredictor(kernels)
    return ComputeFit(
        model=model, kernels=kernels, before=base, after=after, params=params,
        predicted_before=every(base), predicted_after=every(after),
        objective_before=objective({}), objective_after=objective(values),
        evaluations=evaluations)


def _outcome(knob: ComputeKnob, base: DeviceCalibration, after: float | None,
             reason: str) -> KnobOutcome:
    before = knob.value(base)
    if reason or after is None:
        return KnobOutcome(knob, before, before, NOT_IDENTIFIABLE, reason)
    edge = 1e-3 * (knob.hi - knob.lo)
    if after <= knob.lo + edge or after >= knob.hi - edge:
        end = "lower" if after <= knob.lo + edge else "upper"
        unit = f" {knob.unit}" if knob.unit else ""
        return KnobOutcome(knob, before, after, AT_BOUND,
                           f"at the {end} end of its range ({knob.lo:g}-{knob.hi:g}{unit}); "
                           "the kernels would push it further")
    return KnobOutcome(knob, before, after, FITTED)


def identify(objective: _Objective) -> dict[ComputeKnob, str]:
    """Per knob, why the fitted kernels cannot identify it (empty: they can)."""
    fit = objective.fit
    reasons: dict[ComputeKnob, str] = {}
    columns: dict[ComputeKnob, np.ndarray] = {}
    for knob in KNOBS:
        members = group_mask(fit, knob)
        n = int(members.sum())
        what = _GROUP_WORDS.get(knob.family, _GROUP_WORDS[knob.group])
        if n < MIN_KERNELS:
            reasons[knob] = (f"{'no' if n == 0 else f'only {n}'} {what} in the fitted "
                             f"kernels (need {MIN_KERNELS})")
            continue
        column = _elasticity(objective, knob)
        informative = int((np.abs(column[members]) >= SHARE).sum())
        if informative < MIN_INFORMATIVE:
            reasons[knob] = (f"it carries {SHARE:.0%} of the predicted time of only "
                             f"{informative} of the {n} {what} (need {MIN_INFORMATIVE}): "
                             f"{_WHY_WEAK[knob.param]}")
            continue
        reasons[knob] = ""
        columns[knob] = column
    objective.restrict({k.group for k in columns} - {MEMORY})
    columns = {k: c * np.sqrt(objective.weight) for k, c in columns.items()}
    reasons.update(hold_confounded(columns, lambda k: k.keep, lambda k: k.name,
                                   "these kernels", ": too little spread of sizes"))
    return reasons


_GROUP_WORDS = {"gemm": "GEMM kernels with FLOPs", "small": "small non-GEMM kernels",
                "memory": "fitted kernels", "attention": "attention kernels with FLOPs",
                "flash1": "FlashAttention 1 kernels with FLOPs"}
_WHY_WEAK = {
    "memory_efficiency": "too few memory-bound kernels with enough bytes for HBM bandwidth "
                         "to show",
    "fixed_us": "the kernels are long, their fixed time hides in them",
    "gemm_efficiency": "the kernels are short, their time is mostly fixed time",
}


def _elasticity(objective: _Objective, knob: ComputeKnob) -> np.ndarray:
    """Per fitted kernel, d log(time) / d log(value) at the starting values (a fixed time
    below 1 us counts as 1 us, so that a zero still moves)."""
    x = max(knob.value(objective.base), 1.0 if knob.unit == "us" else 1e-3)
    a, b = x * (1 - _REL_STEP), min(x * (1 + _REL_STEP), knob.hi) if knob.unit != "us" \
        else x * (1 + _REL_STEP)
    lo, hi = objective.log_times({knob: a}), objective.log_times({knob: b})
    return (hi - lo) / np.log(b / a)



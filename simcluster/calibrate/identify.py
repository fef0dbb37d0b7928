"""Which variables the measured curves can identify, and why the others cannot.

Three checks, in order; a variable that fails one keeps its value:

1. scope: a knob identified by logs inside one server needs such a log (per-call overheads
   and NVLink efficiency), one identified by logs across servers needs such a log (network
   link efficiency, per-step network latency);
2. effect: set to its lowest, middle and highest value (the others as given), it must move
   some predicted time at a fitted size by more than 0.1 %;
3. confounding: at the given values, the effect of a small change of each variable on the
   log of every predicted time (weighted as in the objective) is a column; a variable whose
   column is nearly a combination of the others' (less than 15 % of its norm left over) is
   confounded with them, and of the confounded ones the knob with the lowest ``keep`` is
   held. On an NVLS server, for instance, the all-reduce plateau fixes only the product of
   NVLink and NVLS efficiency. A variable with no local effect (LL128 while the model never
   picks it) is not judged here: the fit decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np

from simcluster.calibrate.model import ANY, NETWORK, SERVER
from simcluster.calibrate.problem import Problem, Variable

EFFECT = 1e-3  # relative change of a predicted time below which a knob has no effect
K = TypeVar("K")

CONFOUNDED = 0.15  # left-over share of a column below which a variable is confounded
_STEP = 0.01  # finite-difference step, as a fraction of the range


def identify(problem: Problem) -> dict[Variable, str]:
    """Per variable, why the curves cannot identify it (empty: they can)."""
    reasons = {v: _scope(problem, v) for v in problem.variables}
    ref = problem.log_times(problem.bases)
    for v in problem.variables:
        if not reasons[v] and not _moves(problem, v, ref):
            reasons[v] = (f"moving it over {v.knob.lo:g}-{v.knob.hi:g}"
                          f"{v.knob.unit and ' ' + v.knob.unit} changes no predicted time at "
                          "the fitted sizes")
    columns = {v: c for v in problem.variables if not reasons[v]
               if np.any(np.abs(c := _column(problem, v)) > 1e-9)}
    reasons.update(hold_confounded(columns, lambda v: v.knob.keep, lambda v: v.knob.name,
                                   "these logs", ""))
    return reasons


def _scope(problem: Problem, v: Variable) -> str:
    systems = [k for k in range(len(problem.clusters)) if problem.applies(v, k)]
    spans = [n for k in systems for n in problem.spans(k)]
    if v.knob.scope == SERVER and 1 not in spans:
        return "identified by logs inside one server; every log here crosses servers"
    if v.knob.scope == NETWORK and not any(n > 1 for n in spans):
        return "identified by logs across servers; no log here crosses servers"
    assert v.knob.scope in (SERVER, NETWORK, ANY)
    return ""


def _moves(problem: Problem, v: Variable, ref: list[list[np.ndarray]]) -> bool:
    for value in (v.knob.lo, (v.knob.lo + v.knob.hi) / 2, v.knob.hi):
        moved = problem.log_times(problem.networks([v], [value]))
        for m_sys, r_sys in zip(moved, ref):
            if any(np.max(np.abs(m - r), initial=0.0) > EFFECT for m, r in zip(m_sys, r_sys)):
                return True
    return False


def _column(problem: Problem, v: Variable) -> np.ndarray:
    """d log(predicted time) / d(value as a fraction of its range), per fitted point,
    weighted as in the objective (one-sided at a bound)."""
    span = v.knob.hi - v.knob.lo
    x = problem.current(v)
    a, b = max(v.knob.lo, x - _STEP * span), min(v.knob.hi, x + _STEP * span)
    lo = problem.log_times(problem.networks([v], [a]))
    hi = problem.log_times(problem.networks([v], [b]))
    diff = np.concatenate([h - low for hs, ls in zip(hi, lo) for h, low in zip(hs, ls)])
    return diff / ((b - a) / span) * problem.weights()


def hold_confounded(columns: dict[K, np.ndarray], keep: Callable[[K], int],
                    name: Callable[[K], str], data: str, why: str) -> dict[K, str]:
    """Hold parameters, one at a time, whose effects (``columns``) are nearly a combination
    of the others' (:func:`confounded_pair`); returns why each held one was held (``data``
    names the measurements, ``why`` adds a cause). ``columns`` loses the held ones."""
    reasons: dict[K, str] = {}
    while len(columns) > 1:
        held = confounded_pair(columns, keep)
        if held is None:
            break
        k, partner = held
        reasons[k] = (f"confounded with {name(partner)} on {data} (their effects on the "
                      f"predicted times are nearly proportional{why}); held at its value")
        del columns[k]
    return reasons


def confounded_pair(columns: Mapping[K, np.ndarray], keep: Callable[[K], int]
                    ) -> tuple[K, K] | None:
    """Of parameters whose effects (``columns``: d log time / d log value per measurement)
    are nearly a combination of the others' (less than ``CONFOUNDED`` of the column left over
    by a least-squares fit), the one to hold (lowest ``keep``, then first) and the parameter
    its effect is most alike; None if none is confounded."""
    names = list(columns)
    matrix = np.array([columns[v] for v in names]).T
    confounded = []
    for i, v in enumerate(names):
        others = np.delete(matrix, i, axis=1)
        coef, *_ = np.linalg.lstsq(others, matrix[:, i], rcond=None)
        left = np.linalg.norm(matrix[:, i] - others @ coef) / np.linalg.norm(matrix[:, i])
        if left < CONFOUNDED:
            confounded.append(v)
    if not confounded:
        return None
    held = min(confounded, key=lambda v: (keep(v), names.index(v)))
    unit = columns[held] / np.linalg.norm(columns[held])
    partner = max((v for v in names if v is not held),
                  key=lambda v: abs(unit @ columns[v]) / np.linalg.norm(columns[v]))
    return held, partner

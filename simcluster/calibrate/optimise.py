"""A small bounded minimiser that needs only numpy, and is deterministic.

The calibration objective is cheap (milliseconds) but not smooth: the model picks the
cheapest (algorithm, protocol) per size and an iteration takes ``max(host launch, device
time)``, so gradients jump. :func:`minimise` therefore searches without derivatives, in the
unit box that the bounds map to:

1. coordinate scans: each coordinate in turn on a grid of ``grid`` values across its range,
   the others held, keeping the best (``sweeps`` times over all coordinates); this finds the
   right basin where the objective has several;
2. a Hooke-Jeeves pattern search from there: try +-step on each coordinate, move along a
   successful direction while it keeps improving, halve the step when nothing improves,
   stop at ``min_step`` (a fraction of each range) or after ``max_evals`` evaluations.

Ties keep the current point, so the same objective gives the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Minimum:
    """The best point found (in the caller's units), its value and the evaluations spent."""

    x: np.ndarray
    fun: float
    evaluations: int


class _Counted:
    """``f`` on the unit box, memoised (a revisited point costs nothing) and counted."""

    def __init__(self, f: Callable[[np.ndarray], float], lo: np.ndarray, hi: np.ndarray
                 ) -> None:
        self.f, self.lo, self.span = f, lo, hi - lo
        self.seen: dict[bytes, float] = {}

    def __call__(self, u: np.ndarray) -> float:
        key = np.round(u, 12).tobytes()
        if key not in self.seen:
            self.seen[key] = float(self.f(self.lo + u * self.span))
        return self.seen[key]


def minimise(f: Callable[[np.ndarray], float], x0: np.ndarray, lo: np.ndarray,
             hi: np.ndarray, *, grid: int = 9, sweeps: int = 2, min_step: float = 1e-4,
             max_evals: int = 5000) -> Minimum:
    """Minimise ``f`` over the box ``lo <= x <= hi`` from ``x0`` (clipped into the box).

    Parameters:
        f: the objective, of a point in the caller's units.
        grid: values per coordinate scan (0 or 1: no scans).
        sweeps: scans over all coordinates.
        min_step: the final step, as a fraction of each coordinate's range.
        max_evals: a bound on distinct evaluations.

    Example:
        >>> import numpy as np
        >>> m = minimise(lambda x: (x[0] - 0.3) ** 2 + abs(x[1] - 2.0),
        ...              np.array([0.9, 0.0]), np.array([0.0, 0.0]), np.array([1.0, 4.0]))
        >>> [round(float(v), 3) for v in m.x], m.evaluations < 200
        ([0.3, 2.0], True)
    """
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    g = _Counted(f, lo, hi)
    span = np.where(hi > lo, hi - lo, 1.0)
    u = np.clip((np.asarray(x0, dtype=float) - lo) / span, 0.0, 1.0)
    fu = g(u)
    if grid > 1:
        for _ in range(sweeps):
            for i in range(len(u)):
                for value in np.linspace(0.0, 1.0, grid):
                    trial = u.copy()
                    trial[i] = value
                    ft = g(trial)
                    if ft < fu:
                        u, fu = trial, ft
    step = 0.5 / (grid - 1) if grid > 1 else 0.25
    while step >= min_step and len(g.seen) < max_evals:
        x, fx = _explore(g, u, fu, step)
        if not fx < fu:
            step /= 2
            continue
        while fx < fu and len(g.seen) < max_evals:  # move, then try the same move again
            previous, u, fu = u, x, fx
            pattern = np.clip(2 * u - previous, 0.0, 1.0)
            x, fx = _explore(g, pattern, g(pattern), step)
    return Minimum(lo + u * (hi - lo), fu, len(g.seen))


def _explore(g: _Counted, u: np.ndarray, fu: float, step: float) -> tuple[np.ndarray, float]:
    """Try +-step along each coordinate in turn, keeping each improvement."""
    u = u.copy()
    for i in range(len(u)):
        for delta in (step, -step):
            trial = u.copy()
            trial[i] = min(1.0, max(0.0, trial[i] + delta))
            if trial[i] == u[i]:
                continue
            ft = g(trial)
            if ft < fu:
                u, fu = trial, ft
                break
    return u, fu

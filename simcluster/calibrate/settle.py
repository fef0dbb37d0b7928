"""After the search: how far the logs pin each fitted value down, and the value to write.

Values whose objective lies within :data:`FLAT` of the optimum fit the logs equally well (the
logs are rounded to 4 digits, and the model is not exact). Two consequences:

- :func:`settle` moves each fitted value back towards the topology's current one as far as
  the objective stays that close: what the logs cannot tell apart changes the topology no
  more than needed (a host launch cost hidden under the device time at every size, an
  overhead of a protocol that is never chosen);
- :func:`intervals` reports, per value, the interval around it that fits equally well (the
  others held): a narrow interval is a well-determined value; one that spans the knob's
  whole range is not identifiable from these logs.
"""

from __future__ import annotations

from collections.abc import Callable

from simcluster.calibrate.problem import Problem, Variable

FLAT = 1e-3  # share of the optimum's objective within which two values fit equally well
_BISECTIONS = 10


class _Flatness:
    """Whether a set of values fits within the limit of the optimum ``best``."""

    def __init__(self, problem: Problem, names: list[Variable], best: float) -> None:
        self.problem, self.names = problem, names
        self.limit = best + max(1e-4, FLAT * best)

    def __call__(self, values: dict[Variable, float]) -> bool:
        nets = self.problem.networks(self.names, [values[n] for n in self.names])
        return self.problem.loss(nets) <= self.limit


def _farthest(fits: Callable[[float], bool], start: float, end: float, decimals: int
              ) -> float:
    """The value farthest from ``start`` towards ``end`` that fits (``start`` fits), by
    bisection; rounded to ``decimals``."""
    if start == end or fits(end):
        return end
    near, far = 0.0, 1.0
    for _ in range(_BISECTIONS):
        mid = (near + far) / 2
        near, far = (mid, far) if fits(round(start + mid * (end - start), decimals)) \
            else (near, mid)
    return round(start + near * (end - start), decimals)


def settle(problem: Problem, values: dict[Variable, float], best: float
           ) -> dict[Variable, float]:
    """``values`` (fitted, rounded) with each moved towards its current value as far as the
    objective stays within :data:`FLAT` of ``best``, one variable after the other."""
    fits = _Flatness(problem, list(values), best)
    out = dict(values)
    for v in values:
        target = min(v.knob.hi, max(v.knob.lo, problem.current(v)))
        out[v] = _farthest(lambda x, v=v: fits({**out, v: x}), out[v], target,
                           v.knob.decimals)
    return out


def intervals(problem: Problem, values: dict[Variable, float], best: float
              ) -> dict[Variable, tuple[float, float]]:
    """Per variable, the interval of its values (the others held) that fit within
    :data:`FLAT` of ``best``."""
    fits = _Flatness(problem, list(values), best)
    out = {}
    for v, x in values.items():
        def one(value: float, v: Variable = v) -> bool:
            return fits({**values, v: value})

        out[v] = (_farthest(one, x, v.knob.lo, v.knob.decimals),
                  _farthest(one, x, v.knob.hi, v.knob.decimals))
    return out

"""What failures and degradation cost: the step time with elements down or flapping against
the same scenario on the healthy cluster.

A failed link, switch, NIC or GPU, or a flapping NIC, is a what-if of
:class:`~simcluster.scenario.WhatIf` (``fail``, ``flap``); :func:`degradation` runs the
scenario's healthy twin (:meth:`WhatIf.healthy`) through the same pipeline and reports the
difference, so that ``replay --fail`` and Python agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simcluster.result import Result
    from simcluster.scenario import Scenario


@dataclass(frozen=True)
class Degradation:
    """The step-time cost of a scenario's failed and flapping elements.

    Attributes:
        healthy_us: mean step time with nothing failed or flapping (us).
        degraded_us: mean step time as the scenario asks (us).
        failed: the failed elements, as named.
        flapping: element -> fraction of time down.

    Example:
        >>> d = Degradation(100.0, 125.0, ("fabric/spine0",), {})
        >>> d.cost_us, d.slowdown
        (25.0, 1.25)
    """

    healthy_us: float
    degraded_us: float
    failed: tuple[str, ...]
    flapping: dict[str, float]

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
                "failed": list(self.failed), "flapping": dict(sorted(self.flapping.items()))}


def degradation(scenario: Scenario, result: Result | None = None) -> Degradation:
    """Run ``scenario`` (unless its ``result`` is given) and its healthy twin; their step
    times.

    Raises:
        the errors of :meth:`Scenario.run`, for either.
    """
    from dataclasses import replace

    degraded = result if result is not None else scenario.run()
    healthy = replace(scenario, whatif=scenario.whatif.healthy()).run()
    w = scenario.whatif
    return Degradation(healthy.step_time_us, degraded.step_time_us, tuple(w.fail),
                       dict(w.flap))

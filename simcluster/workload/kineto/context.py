"""What one rank's build is given and what it reports: the window to import and its steps,
the rank's place in the import (numbering, time origin, options), and the counters that
become the import report."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

from simcluster.workload.kineto.pyet import EtCollective


@dataclass(frozen=True)
class Window:
    """The part of a rank's trace to import (absolute us) and its steps.

    Attributes:
        start, end: the window.
        steps: (step number, start, end) of the ProfilerStep spans in it, in order.
        main_thread: the thread holding the step spans (its host stream tiles the window).
    """

    start: float
    end: float
    steps: tuple[tuple[int, float, float], ...]
    main_thread: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", [s[1] for s in self.steps])
        object.__setattr__(self, "_bounds", sorted({t for _, a, b in self.steps
                                                    for t in (a, b)}))

    def step_of(self, t: float) -> int | None:
        """The step whose span holds time ``t`` (before the first: the first; between two:
        the earlier)."""
        if not self.steps:
            return None
        k = bisect.bisect_right(self._starts, t) - 1  # type: ignore[attr-defined]
        return self.steps[max(k, 0)][0]

    def bounds_within(self, a: float, b: float) -> list[float]:
        """Step span starts and ends strictly between ``a`` and ``b``, in order."""
        bounds: list[float] = self._bounds  # type: ignore[attr-defined]
        return bounds[bisect.bisect_right(bounds, a):bisect.bisect_left(bounds, b)]


@dataclass(frozen=True)
class RankContext:
    """What one rank's build needs from the whole import.

    Attributes:
        rank: this rank's number in the workload (dense, 0..N-1).
        global_rank: its rank in the recorded job.
        world_size: the recorded job's world size.
        present: global rank -> workload rank, for the ranks imported.
        t0: the import's time origin (absolute us).
        model_copies: model host<->device copies as flows instead of recorded durations.
        unexplained_waits: keep the GPU waits no recorded dependency explains (see
            :class:`~simcluster.workload.kineto.KinetoOptions`).
        et: collectives of this rank's execution trace (``--et``), if given.
    """

    rank: int
    global_rank: int
    world_size: int
    present: dict[int, int]
    t0: float
    model_copies: bool = False
    unexplained_waits: bool = True
    et: tuple[EtCollective, ...] | None = None


@dataclass
class BuildStats:
    """Counts for the report."""

    counts: Counter[str] = field(default_factory=Counter)
    comm_sources: Counter[str] = field(default_factory=Counter)
    unsized: Counter[str] = field(default_factory=Counter)
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    late_us: float = 0.0
    # compute kernels (not communication): count and recorded time, all and with work
    kernels: int = 0
    kernels_with_work: int = 0
    kernel_us: float = 0.0
    kernel_with_work_us: float = 0.0
    without_work_us: Counter[str] = field(default_factory=Counter)  # reason -> time

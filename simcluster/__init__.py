"""simcluster: a discrete-event simulator of ML training clusters.

One call runs a scenario (workload, cluster, placement, what-ifs) and returns a result whose
analyses are computed on first use; the CLI's ``replay``, sweeps and search run the same
code::

    import simcluster as sc

    result = sc.replay("traces/dp-transformer-16.parquet", "topologies/h100-2node.yaml")
    print(result.step_time_us)             # mean step time, us
    result.breakdown.to_pandas()           # per-rank breakdown (pandas if installed)
    result.write("run/")                   # the run folder, as `simcluster replay --out run/`

Building blocks, for those who compose their own: ``load_workload``/``generate`` ->
``Workload``; ``load_cluster`` -> ``Cluster``; :class:`Scenario` (+ :class:`WhatIf`) ->
``.run()`` -> :class:`Result` (``.run`` is the raw :class:`Run`). ``bind`` and ``simulate``
are the low-level steps the scenario runs; they know nothing of folds, prices or imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simcluster.errors import (
    CalibrationError,
    CollectiveMismatchError,
    DeadlockError,
    OutOfMemoryError,
    PlacementError,
    SimclusterError,
    SimulationError,
    TopologyError,
    WorkloadError,
)
from simcluster.lazy import lazy_exports

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and editors
    from simcluster.analysis import rank_breakdown, step_times, summarize
    from simcluster.jobs import Job, JobMix, MixResult
    from simcluster.placement import Bound, Placement, bind
    from simcluster.result import Result
    from simcluster.scenario import Scenario, WhatIf, replay
    from simcluster.sim import ComputeModel, Run, SimOptions, simulate
    from simcluster.topology import Cluster, load_cluster
    from simcluster.workload import Workload, load_workload, write_workload

# The public API is imported on first use (PEP 562), so that ``import simcluster`` and the
# command line start without numpy, pyarrow, SimPy, networkx and the pydantic models.
_EXPORTS = {
    **dict.fromkeys(("rank_breakdown", "step_times", "summarize"), "simcluster.analysis"),
    **dict.fromkeys(("Job", "JobMix", "MixResult"), "simcluster.jobs"),
    **dict.fromkeys(("Bound", "Placement", "bind"), "simcluster.placement"),
    "Result": "simcluster.result",
    **dict.fromkeys(("Scenario", "WhatIf", "replay"), "simcluster.scenario"),
    **dict.fromkeys(("ComputeModel", "Run", "SimOptions", "simulate"), "simcluster.sim"),
    **dict.fromkeys(("Cluster", "load_cluster"), "simcluster.topology"),
    **dict.fromkeys(("Workload", "load_workload", "write_workload"), "simcluster.workload"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__version__ = "0.1.0"


def generate(name: str, /, **params: Any) -> Workload:
    """A synthetic workload from generator ``name`` (``data-parallel``, ``transformer``) and
    its parameters, as ``simcluster generate NAME`` and sweeps take them.

    Raises:
        WorkloadError: unknown generator or parameter, or a configuration that cannot work.

    ``name`` is positional-only, so that a generator's own ``name`` parameter (the
    workload's name) can be given too.

    Example:
        >>> wl = generate("transformer", preset="llama2-7b", layers=2, tp=2, dp=2, name="x")
        >>> wl.num_ranks, wl.meta.name
        (4, 'x')
    """
    from simcluster.workload.generate.registry import generate as run_generator

    return run_generator(name, params)


__all__ = [
    "Bound",
    "CalibrationError",
    "Cluster",
    "CollectiveMismatchError",
    "ComputeModel",
    "DeadlockError",
    "Job",
    "JobMix",
    "MixResult",
    "OutOfMemoryError",
    "Placement",
    "PlacementError",
    "Result",
    "Run",
    "Scenario",
    "SimOptions",
    "SimclusterError",
    "SimulationError",
    "TopologyError",
    "WhatIf",
    "Workload",
    "WorkloadError",
    "bind",
    "generate",
    "load_cluster",
    "load_workload",
    "rank_breakdown",
    "replay",
    "simulate",
    "step_times",
    "summarize",
    "write_workload",
]

"""The next-best configuration of a job restarted on the GPUs that remain (``replay --restart
best``): the search of ``driver.py`` (memory pruning, closed-form estimate, successive
halving over simulations) of the job's model and global batch on the topology with the
failed elements and drained servers down, restricted to the GPU counts a restart can use.

**GPU counts.** The global batch must split over the data-parallel replicas, so a restart on
``g`` GPUs rarely uses all of them (6 of 8 DGX servers: 48 GPUs, but a global batch of 64
splits over 32 of them, never 48). For each model-parallel size ``tp x cp x pp`` of the
space, the search lays the job out on the most GPUs within ``g`` whose data-parallel size
divides the global batch (:func:`restart_worlds`). The layouts of that shape on fewer
replicas are left out: each replica then runs more micro-batches, which costs more than the
smaller gradient all-reduce saves but where the step is all communication, and they never
need less memory per GPU (the same micro-batch; ZeRO shards over fewer), so they are never
the only ones that fit.

**Nothing fits.** When no configuration fits on the GPUs left, :func:`best_restart` says how
many GPUs the smallest configuration that fits would need (:func:`smallest_fit`).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from simcluster.degradation import LAYOUT, layout_of, transformer_params
from simcluster.errors import WorkloadError
from simcluster.search.driver import NothingFitsError, SearchOptions, per_server_count, search
from simcluster.search.space import SearchSpace, candidates, world_of
from simcluster.topology import load_cluster
from simcluster.topology.cluster import Cluster
from simcluster.topology.transform import fail
from simcluster.workload import Workload
from simcluster.workload.generate.registry import generate, transformer_config


def restart_worlds(global_batch: int, gpus: int, space: SearchSpace) -> tuple[int, ...]:
    """For each model-parallel size ``tp x cp x pp`` of ``space``, the most GPUs within
    ``gpus`` whose data-parallel size divides ``global_batch`` (module docstring).

    >>> restart_worlds(64, 48, SearchSpace(tp=(2, 8), pp=(1,)))   # 6 of 8 servers left
    (32,)
    >>> restart_worlds(48, 48, SearchSpace(tp=(2, 8), pp=(1, 4)))
    (32, 48)
    """
    out = set()
    for tp in space.tp:
        for cp in space.cp:
            for pp in space.pp:
                mp = tp * cp * pp
                dps = [d for d in range(1, gpus // mp + 1) if global_batch % d == 0]
                if dps:
                    out.add(mp * dps[-1])
    return tuple(sorted(out))


def smallest_fit(fixed: dict[str, Any], above: int, up_to: int, per_server: int,
                 capacity_bytes: int, space: SearchSpace) -> dict[str, Any] | None:
    """The configuration on the fewest GPUs in ``(above, up_to]`` that fits (the first in the
    search's order), or None."""
    batch = transformer_config(fixed).batch
    worlds = sorted({tp * cp * pp * d for tp in space.tp for cp in space.cp for pp in space.pp
                     for d in range(1, batch + 1) if batch % d == 0
                     and above < tp * cp * pp * d <= up_to})
    for w in worlds:
        fits = [c for c in candidates(fixed, w, per_server, capacity_bytes,
                                      replace(space, worlds=(w,)))
                if c.infeasible is None]
        if fits:
            return fits[0].params
    return None


def best_restart(workload: Workload, topology: str | Path, down: tuple[str, ...],
                 options: SearchOptions = SearchOptions(), client: Any = None,
                 out: str | Path | None = None) -> tuple[Workload, dict[str, Any]]:
    """The job regenerated in the fastest configuration that the search finds on
    ``topology`` with ``down`` failed, and what the search did (the ``gpus`` it uses, the
    ``step_time_us`` of its simulation, ``configurations``, ``feasible``, ``simulated``,
    ``simulations``). The search's folder is ``out`` (kept: it resumes), or a temporary
    one.

    Raises:
        WorkloadError: not a generated transformer; nothing fits on the GPUs left (the
            message names them and the smallest configuration that fits, and its GPUs).
        SearchError, TopologyError: the search cannot run.
    """
    params = transformer_params(workload, "--restart best")
    fixed = {k: v for k, v in params.items() if k not in LAYOUT}
    cluster = load_cluster(topology)
    left = fail(cluster, down)
    gpus = len(left.accelerators)
    space = replace(options.space,
                    worlds=restart_worlds(int(params["global_batch"]), gpus, options.space))
    opts = replace(options, objective="time", price=None, fail=down, space=space)
    if gpus == 0:
        raise WorkloadError(_nothing_fits(workload, fixed, 0, cluster, options.space))
    with tempfile.TemporaryDirectory(prefix="simcluster-restart-") as tmp:
        try:
            report = search(fixed, topology, gpus, Path(out) if out is not None else Path(tmp),
                            opts, client=client)
        except NothingFitsError:
            raise WorkloadError(_nothing_fits(workload, fixed, gpus, cluster,
                                              options.space)) from None
    if not report.best:
        raise WorkloadError(
            f"--restart best: none of the {report.simulated} configurations simulated on the "
            f"{gpus} GPUs left ran (see the search's candidates); use --restart same-shape.")
    best = report.best[0]
    assert best.full is not None
    return generate("transformer", best.params), {
        "gpus": world_of(best.params), "step_time_us": best.full["step_time_us"],
        "configurations": report.configurations, "feasible": report.feasible,
        "simulated": report.simulated, "simulations": report.simulations}


def _nothing_fits(workload: Workload, fixed: dict[str, Any], gpus: int, healthy: Cluster,
                  space: SearchSpace) -> str:
    """What a restart with nothing that fits says: the GPUs left, and the smallest
    configuration that fits on the ``healthy`` cluster's servers and its GPUs."""
    n = len(healthy.accelerators)
    cap = min(healthy.specs[a].hbm_bytes for a in healthy.accelerators)
    smallest = smallest_fit(fixed, gpus, n, per_server_count(healthy), cap, space)
    need = (f"the smallest configuration that fits needs {world_of(smallest)} GPUs "
            f"({', '.join(f'{k} {v}' for k, v in layout_of(smallest).items())})"
            if smallest is not None else
            f"no configuration of the search space fits on up to {n} GPUs either")
    return (f"--restart best: no configuration of {workload.meta.name or 'the workload'} "
            f"fits on the {gpus} GPUs left; {need}. Fail fewer elements, or give the job a "
            "larger cluster.")

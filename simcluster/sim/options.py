"""The knobs of one simulation (``SimOptions``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simcluster.sim.compute import ComputeModel, overrides_for
from simcluster.topology.catalog import lookup
from simcluster.topology.schema import ComputeParams
from simcluster.workload.model import Workload


@dataclass(frozen=True)
class SimOptions:
    """Knobs of one simulation.

    Attributes:
        compute: the roofline used for ops without a recorded duration.
        progress: called as ``progress(ops_done, ops_total)`` every ``progress_every`` events.
        progress_every: events between progress calls.
        fuse_timed_ops: run consecutive unobservable timed ops with one wake-up (same
            results, fewer events); off only to check that claim.
        slowdown: rank -> factor by which its compute and host ops take longer (a
            straggler: 1.3 is 30 % slower).
        freeze_gc: park the objects alive when the simulation starts (and the compiled
            engine) in the garbage collector's permanent generation while it runs
            (``gc.freeze``), so full collections do not rescan millions of long-lived op
            tuples and routes (about 0.1 s each at 4,096 ranks), and pause the collector
            while the engine is compiled. Results are the same either way; turn it off when
            the caller relies on ``gc.freeze`` itself. The collector is one per process:
            simulations in several threads share the freeze and the pause, and the last to
            end restores what the caller had (``collector.py``, ``CollectorGuard``).
    """

    compute: ComputeModel = field(default_factory=ComputeModel)
    progress: Callable[[int, int], None] | None = None
    progress_every: int = 50_000
    fuse_timed_ops: bool = True
    slowdown: dict[int, float] = field(default_factory=dict)
    freeze_gc: bool = True

    @classmethod
    def for_workload(cls, workload: Workload, predict: bool = False,
                     compute: dict[str, ComputeParams] | None = None,
                     **kwargs: Any) -> SimOptions:
        """Options whose compute model retargets recorded durations from the device the
        workload names as its recording device (``docs/compute.md``), or, with ``predict``,
        predicts every compute op that carries FLOPs or bytes instead; ``compute`` is the
        cluster's calibration per accelerator model (``Cluster.compute``, a topology's
        ``compute:`` block), applied over the built-in one."""
        rec = workload.meta.recorded_device
        spec = lookup(rec) if rec else None
        model = ComputeModel(recorded_spec=spec, predict=predict,
                             overrides=overrides_for(compute or {}))
        return cls(compute=model, **kwargs)

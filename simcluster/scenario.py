"""One scenario, one pipeline: what-ifs -> bind -> simulate -> a :class:`Result`.

A :class:`Scenario` is a workload, a cluster (or "the one it was recorded on"), a placement
and what-ifs (another accelerator, faster or slower links, slow ranks, a price, a token
budget). :meth:`Scenario.run` is the only place that runs the pipeline: the CLI's
``replay``, every sweep point, every search simulation, ``simcluster collectives`` and a
notebook all call it, so they cannot disagree. Its :class:`~simcluster.result.Result`
computes each analysis on first use and keeps it (in the spirit of HolisticTraceAnalysis's
``TraceAnalysis``), knows which ranks of a folded workload stand for the others, and writes
the run folder.

:func:`replay` is the same from paths (or objects), as the CLI takes them::

    import simcluster as sc

    result = sc.replay("traces/dp-transformer-16.parquet", "topologies/h100-2node.yaml")
    result.step_time_us                  # the mean step time (us)
    result.breakdown.to_pandas()         # per-rank breakdown (needs pandas)
    result.write("run/")                 # the run folder the CLI writes with --out

Example:
    >>> import simcluster as sc
    >>> from simcluster.topology.recorded import recorded_cluster
    >>> wl = sc.generate("data-parallel", ranks=2, layers=1, hidden=64, seq_len=16, vocab=128)
    >>> cluster = recorded_cluster("H100", 2)           # one server of two H100s
    >>> result = sc.Scenario(wl, cluster).run()
    >>> result.step_time_us == sc.replay(wl, cluster).step_time_us
    True
    >>> result.breakdown.num_rows, result.bottleneck
    (2, 'compute')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from simcluster.analysis.training import explain_oom
from simcluster.errors import OutOfMemoryError, TopologyError
from simcluster.placement import Placement, bind
from simcluster.sim import SimOptions, simulate
from simcluster.topology import Cluster, load_cluster, resolve_device
from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.topology.identification import unknown_message
from simcluster.topology.recorded import recorded_cluster
from simcluster.topology.transform import scale_links, with_device, with_hardware
from simcluster.workload import Workload, load_workload

if TYPE_CHECKING:
    from simcluster.result import Result

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class WhatIf:
    """What the scenario changes, and what it prices.

    Attributes:
        device: accelerator model every accelerator of the cluster becomes (with a
            cluster); without one, the model of the one-server cluster to replay on
            (default: the recorded accelerator). A catalog name or alias, or a spec (a
            user-defined part, :func:`~simcluster.topology.resolve_device`).
        scale_links: link kind or role -> factor on its bandwidth (``{"ib": 2.0}``).
        slow_ranks: rank -> factor on its compute and host ops' durations (1.3: 30 % slower).
        price: USD per accelerator-hour, one for all or per model (default: the topology's,
            then the built-in prices of :mod:`simcluster.cost`).
        token_budget: tokens to train on; the result then prices the whole training run.
        hardware: hardware parameter -> value every accelerator gets after ``device``
            (``{"peak_tflops": 1979.0}``; :func:`~simcluster.topology.transform.with_hardware`).
    """

    device: str | AcceleratorSpec | None = None
    scale_links: Mapping[str, float] = field(default_factory=dict)
    slow_ranks: Mapping[int, float] = field(default_factory=dict)
    price: float | dict[str, float] | None = None
    token_budget: float | None = None
    hardware: Mapping[str, float] = field(default_factory=dict)

    def applied_to(self, cluster: Cluster, device: bool = True) -> Cluster:
        """``cluster`` with this what-if's accelerator (unless ``device`` is false), hardware
        parameters and link scaling.

        Raises:
            TopologyError: an unknown device, link kind or hardware parameter.
        """
        if device and self.device is not None:
            cluster = with_device(cluster, self.device)
        if self.hardware:
            cluster = with_hardware(cluster, dict(self.hardware))
        return scale_links(cluster, dict(self.scale_links)) if self.scale_links else cluster


@dataclass(frozen=True)
class Scenario:
    """A workload on a cluster with a placement and what-ifs (module docstring).

    Attributes:
        workload: what runs.
        cluster: where; None replays on one server of the accelerator the workload was
            recorded on (or ``whatif.device``), one per rank.
        placement: a :class:`~simcluster.placement.Placement`, a strategy name, a placement
            YAML path, or None (``packed``).
        whatif: :class:`WhatIf`.
        top_links: links the summary lists (busiest and bottleneck).
        predict_kernels: predict every compute op that carries FLOPs or bytes with the
            compute model, even where a duration was recorded (checks the model against
            real kernels; ``docs/compute.md``).
    """

    workload: Workload
    cluster: Cluster | None = None
    placement: Placement | str | Path | None = None
    whatif: WhatIf = field(default_factory=WhatIf)
    top_links: int = 10
    predict_kernels: bool = False

    def target(self) -> tuple[Cluster, str | None]:
        """The cluster to simulate on, what-ifs applied, and a sentence when it was built from
        the recording (or ``whatif.device``) rather than given.

        Raises:
            TopologyError: no cluster and no accelerator to build one of; an unknown device
                or link kind.
        """
        w = self.whatif
        if self.cluster is not None:
            return w.applied_to(self.cluster), None
        model = w.device or self.workload.meta.recorded_device
        named = ((self.workload.meta.extra or {}).get("import") or {}).get(
            "unidentified_device")
        if model is None and named:
            raise TopologyError(f"the trace was recorded on {named!r}: "
                                + unknown_message(named, list_known=False))
        if model is None:
            raise TopologyError(
                "no --topology, and the workload does not say which accelerator it was "
                "recorded on; give --topology FILE, or --device MODEL (e.g. --device "
                "A100) to replay on one server of that accelerator.")
        cluster = recorded_cluster(model, self.workload.num_ranks)
        origin = "--device" if w.device else "the trace's metadata"
        note = (f"no --topology: replaying on {cluster.name}, " + cluster.description
                .replace("the trace's metadata", origin))
        return w.applied_to(cluster, device=False), note

    def run(self, *, progress: Progress | None = None, freeze_gc: bool = True) -> Result:
        """Simulate the scenario.

        Parameters:
            progress: called as ``progress(ops_done, ops_total)`` while it runs.
            freeze_gc: see :class:`~simcluster.sim.SimOptions`.

        Raises:
            TopologyError, PlacementError: the cluster or the placement does not work.
            OutOfMemoryError: a device runs out of memory; for a generated transformer the
                error carries the analytic memory breakdown of the stages that do not fit.
            SimulationError: a deadlock, mismatched collectives, a bad what-if.
        """
        from simcluster.result import Result

        cluster, note = self.target()
        bound = bind(self.workload, cluster, self.placement)
        options = SimOptions.for_workload(self.workload, predict=self.predict_kernels,
                                          compute=cluster.compute,
                                          slowdown=dict(self.whatif.slow_ranks),
                                          progress=progress, freeze_gc=freeze_gc)
        try:
            run = simulate(bound, options)
        except OutOfMemoryError as exc:
            caps = [cluster.specs[d].hbm_bytes for d in bound.placement.devices]
            raise explain_oom(exc, self.workload, caps) from None
        return Result(self, bound, run, note)


def replay(workload: Workload | str | Path, topology: Cluster | str | Path | None = None, *,
           placement: Placement | str | Path | None = None,
           device: str | AcceleratorSpec | None = None,
           device_files: Sequence[str | Path] = (),
           scale_links: Mapping[str, float] | None = None,
           slow_ranks: Mapping[int, float] | None = None,
           price: float | dict[str, float] | None = None, token_budget: float | None = None,
           top_links: int = 10, step: str | int = "all", et: str | Path | None = None,
           model_copies: bool = False, align: str = "clock", predict_kernels: bool = False,
           progress: Progress | None = None) -> Result:
    """Load (where given paths) and run a :class:`Scenario`: what ``simcluster replay`` does.

    ``workload`` is a Workload or a path :func:`~simcluster.workload.load_workload` reads
    (``step``, ``et``, ``model_copies`` and ``align`` apply to recorded traces);
    ``topology`` a Cluster, a topology YAML path, or None for the recorded accelerator. The
    other arguments are the :class:`WhatIf` fields, the placement, ``top_links`` and
    ``predict_kernels``; ``device`` may name a model of the accelerator files
    ``device_files``, or be the path of an accelerator file
    (:func:`~simcluster.topology.resolve_device`).
    """
    wl = workload if isinstance(workload, Workload) else load_workload(
        workload, step=step, et=et, model_copies=model_copies, align=align)
    cluster = topology if topology is None or isinstance(topology, Cluster) else load_cluster(
        topology)
    chosen = device
    if device_files or (isinstance(device, str) and device.lower().endswith((".yaml", ".yml"))):
        chosen = resolve_device(device, device_files)
    whatif = WhatIf(device=chosen, scale_links=dict(scale_links or {}),
                    slow_ranks=dict(slow_ranks or {}), price=price, token_budget=token_budget)
    return Scenario(wl, cluster, placement, whatif, top_links, predict_kernels).run(
        progress=progress)

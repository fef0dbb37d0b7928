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
from dataclasses import dataclass, field, replace
from pathlib import Path

from simcluster.analysis.training import explain_oom
from simcluster.errors import OutOfMemoryError, PlacementError, TopologyError
from simcluster.placement import Bound, Placement, bind
from simcluster.placement.reach import check_reachable
from simcluster.result import Result
from simcluster.sim import SimOptions, simulate
from simcluster.sim.compute import CHIP_OF
from simcluster.topology import Cluster, load_cluster, resolve_device
from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.topology.identification import unknown_message
from simcluster.topology.recorded import recorded_cluster
from simcluster.topology.schema import ComputeParams
from simcluster.topology.transform import fail, flapping, scale_links, with_device, with_hardware
from simcluster.workload import Workload, load_workload
from simcluster.workload.generate.frameworks import FRAMEWORKS, compute_entry
from simcluster.workload.merge import framework_of


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
        fail: elements that are down: nodes (a switch, a NIC, an accelerator), servers or
            links ``A--B`` (``topology.transform.fail``); routes go around them, and ranks that
            can no longer reach each other are a :class:`~simcluster.errors.PartitionError`.
        flap: node, link, kind or role -> fraction of time it is down, run at its long-run
            average bandwidth (``topology.transform.flapping``).
        comm_sms: SMs a running collective or send/recv takes from the compute kernels of
            its GPU (``network.comm_sms``; 0: no interference; None: the topology's, else
            the part's default; ``sim/interference.py``).
    """

    device: str | AcceleratorSpec | None = None
    scale_links: Mapping[str, float] = field(default_factory=dict)
    slow_ranks: Mapping[int, float] = field(default_factory=dict)
    price: float | dict[str, float] | None = None
    token_budget: float | None = None
    hardware: Mapping[str, float] = field(default_factory=dict)
    fail: tuple[str, ...] = ()
    flap: Mapping[str, float] = field(default_factory=dict)
    comm_sms: float | None = None

    @property
    def degrades(self) -> bool:
        """It fails or flaps part of the cluster (:meth:`healthy` is the baseline)."""
        return bool(self.fail or self.flap)

    def healthy(self) -> WhatIf:
        """The same what-if with nothing failed or flapping: the baseline of its cost."""
        return replace(self, fail=(), flap={})

    def applied_to(self, cluster: Cluster, device: bool = True) -> Cluster:
        """``cluster`` with this what-if's accelerator (unless ``device`` is false), hardware
        parameters, communication SMs, link scaling, flapping and failed elements.

        Raises:
            TopologyError: an unknown device, link kind, hardware parameter or element; a
                negative ``comm_sms``.
        """
        if self.comm_sms is not None:
            if not self.comm_sms >= 0:
                raise TopologyError(f"--comm-sms {self.comm_sms:g}: give the SMs a collective "
                                    "takes (16 in NCCL on DGX-class servers), or 0 for none.")
            network = cluster.network.model_copy(update={"comm_sms": float(self.comm_sms)})
            cluster = replace(cluster, network=network)
        if device and self.device is not None:
            cluster = with_device(cluster, self.device)
        if self.hardware:
            cluster = with_hardware(cluster, dict(self.hardware))
        if self.scale_links:
            cluster = scale_links(cluster, dict(self.scale_links))
        if self.flap:
            cluster = flapping(cluster, dict(self.flap))
        return fail(cluster, self.fail)


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
                "A100) to replay on one server of that accelerator (a GPU outside the "
                "catalog: --device-file FILE --device NAME, FILE defining its spec).")
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
            TopologyError, PlacementError: the cluster or the placement does not work
                (PartitionError: failed elements cut a group apart).
            OutOfMemoryError: a device runs out of memory; for a generated transformer the
                error carries the analytic memory breakdown of the stages that do not fit.
            SimulationError: a deadlock, mismatched collectives, a bad what-if.
        """

        cluster, note = self.target()
        bound = bind(self.workload, cluster, self.placement)
        check_reachable(bound)
        check_fold_uniform(bound)
        compute, stack = stack_calibration(self.workload, cluster)
        note = " ".join(x for x in (note, stack) if x) or None
        options = SimOptions.for_workload(self.workload, predict=self.predict_kernels,
                                          compute=compute,
                                          slowdown=dict(self.whatif.slow_ranks),
                                          progress=progress, freeze_gc=freeze_gc)
        try:
            run = simulate(bound, options)
        except OutOfMemoryError as exc:
            caps = [cluster.specs[d].hbm_bytes for d in bound.placement.devices]
            raise explain_oom(exc, self.workload, caps) from None
        return Result(self, bound, run, note)


def stack_calibration(workload: Workload, cluster: Cluster
                      ) -> tuple[dict[str, ComputeParams], str | None]:
    """The cluster's compute calibration per accelerator model (a topology's ``compute:``
    block), completed with the software stack of the workload's framework profile
    (``frameworks.compute_entry``: e.g. ``llm-foundry-2023``'s eager kernels reach 0.39 of
    an H100's HBM bandwidth) for each model the topology does not calibrate itself; and a
    sentence naming what was applied (None: nothing). The CLI, the API and sweeps all replay
    through here, so a generated ``--framework`` workload runs at its stack's efficiencies
    whichever way it is replayed; a job mix does when all its jobs name the same profile
    (one calibration per accelerator model: jobs of different stacks get the cluster's).

    Example:
        >>> from simcluster.workload.generate.presets import ModelSpec
        >>> from simcluster.workload.generate.transformer import TransformerConfig, transformer
        >>> m = ModelSpec("toy", layers=1, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
        ...               seq_len=32)
        >>> wl = transformer(TransformerConfig(model=m, dp=8, global_batch=8,
        ...                                    framework="llm-foundry-2023"))
        >>> compute, note = stack_calibration(wl, recorded_cluster("H100", 8))
        >>> compute["H100-SXM5-80GB"].memory_efficiency, note.split(":")[0]
        (0.39, 'compute of H100-SXM5-80GB')
    """
    name = framework_of(workload.meta.extra)
    out, used = framework_calibration(name, cluster)
    if not used:
        return out, None
    return out, (f"compute of {', '.join(used)}: the {name} profile's software stack "
                 f"({out[used[0]].source}); a topology compute: entry for the model replaces it.")


def framework_calibration(name: str | None, cluster: Cluster
                          ) -> tuple[dict[str, ComputeParams], list[str]]:
    """:func:`stack_calibration` by framework name (None, or a name that is no profile:
    the cluster's own), with the accelerator models the profile's stack calibrated (the
    search estimate uses it for the configurations it ranks)."""
    out, used = dict(cluster.compute), []
    if name not in FRAMEWORKS:
        return out, used
    for model in sorted({spec.model for spec in cluster.specs.values()}):
        entry = compute_entry(name, CHIP_OF.get(model))
        if entry is not None and model not in out:
            out[model] = ComputeParams.model_validate(entry)
            used.append(model)
    return out, used


def check_fold_uniform(bound: Bound) -> None:
    """Refuse a folded workload whose ranks sit on accelerators of different models.

    A folded transformer simulates its first replica(s) in full and mirrors them for the
    others, which then hold only their data-parallel collectives: the mirrors are assumed to
    compute as fast as the replicas they mirror, which no longer holds on a mixed cluster.

    Raises:
        PlacementError: the models, and the fix (generate without the fold).
    """
    if not (bound.workload.meta.extra or {}).get("fold"):
        return
    specs = bound.cluster.specs
    models = sorted({specs[d].model for d in bound.placement.devices})
    if len(models) > 1:
        raise PlacementError(
            f"{bound.workload.meta.name or 'the workload'} is folded (one data-parallel replica "
            f"simulated in full, the others mirrored at its speed) but its ranks are placed on "
            f"{' and '.join(models)}: generate it without the fold (--no-fold, fold=False) to "
            "simulate every replica on its own accelerator.")


def replay(workload: Workload | str | Path, topology: Cluster | str | Path | None = None, *,
           placement: Placement | str | Path | None = None,
           device: str | AcceleratorSpec | None = None,
           device_files: Sequence[str | Path] = (),
           scale_links: Mapping[str, float] | None = None,
           slow_ranks: Mapping[int, float] | None = None,
           price: float | dict[str, float] | None = None, token_budget: float | None = None,
           fail: Sequence[str] = (), flap: Mapping[str, float] | None = None,
           comm_sms: float | None = None,
           top_links: int = 10, step: str | int = "all", et: str | Path | None = None,
           model_copies: bool = False, align: str = "clock", unexplained_waits: bool = True,
           predict_kernels: bool = False,
           progress: Progress | None = None) -> Result:
    """Load (where given paths) and run a :class:`Scenario`: what ``simcluster replay`` does.

    ``workload`` is a Workload or a path :func:`~simcluster.workload.load_workload` reads
    (``step``, ``et``, ``model_copies``, ``align`` and ``unexplained_waits`` apply to
    recorded traces);
    ``topology`` a Cluster, a topology YAML path, or None for the recorded accelerator. The
    other arguments are the :class:`WhatIf` fields, the placement, ``top_links`` and
    ``predict_kernels``; ``device`` may name a model of the accelerator files
    ``device_files``, or be the path of an accelerator file
    (:func:`~simcluster.topology.resolve_device`).
    """
    wl = workload if isinstance(workload, Workload) else load_workload(
        workload, step=step, et=et, model_copies=model_copies, align=align,
        unexplained_waits=unexplained_waits)
    cluster = topology if topology is None or isinstance(topology, Cluster) else load_cluster(
        topology)
    chosen = device
    if device_files or (isinstance(device, str) and device.lower().endswith((".yaml", ".yml"))):
        chosen = resolve_device(device, device_files)
    whatif = WhatIf(device=chosen, scale_links=dict(scale_links or {}),
                    slow_ranks=dict(slow_ranks or {}), price=price, token_budget=token_budget,
                    fail=tuple(fail), flap=dict(flap or {}), comm_sms=comm_sms)
    return Scenario(wl, cluster, placement, whatif, top_links, predict_kernels).run(
        progress=progress)

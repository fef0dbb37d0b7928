"""Calibrate the compute model from your own profiler traces (``simcluster calibrate
TRACE``): read the recorded kernels, match each trace to the topology's GPU, fit each GPU
model's parameters (:mod:`~simcluster.calibrate.kernel_fit`) and report the quality per
kernel class (:mod:`~simcluster.calibrate.kernel_quality`). See docs/compute.md,
"Calibrating from your own trace".

Example:
    >>> import simcluster.calibrate.compute as cc
    >>> from simcluster.topology import load_cluster
    >>> cluster = load_cluster("topologies/azure-nd-a100-v4.yaml")  # doctest: +SKIP
    >>> traces = cc.read_traces(["step.json.gz"], check=["other_step.json.gz"])  # doctest: +SKIP
    >>> fits = cc.calibrate_compute(cluster, traces)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simcluster.calibrate.kernel_data import (
    Kernels,
    concat,
    hold_out_last_step,
    read_trace,
    same_chip,
)
from simcluster.calibrate.kernel_fit import ComputeFit, fit_kernels
from simcluster.errors import CalibrationError
from simcluster.sim.compute import ComputeModel, overrides_for
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.cluster import Cluster


def read_traces(fit: Sequence[str | Path], check: Sequence[str | Path] = (),
                hold_out_step: bool = True) -> list[Kernels]:
    """The kernels of the traces to fit on (with their last ProfilerStep held out when
    ``hold_out_step`` and they have two or more) and of the traces only to check on.

    Raises:
        CalibrationError: a trace that cannot calibrate the model
            (:func:`~simcluster.calibrate.kernel_data.read_trace`).
    """
    out = []
    for path in fit:
        kernels = read_trace(path)
        out.append(hold_out_last_step(kernels) if hold_out_step else kernels)
    return out + [read_trace(path, held_out=True) for path in check]


def calibrate_compute(cluster: Cluster, traces: Sequence[Kernels]) -> tuple[ComputeFit, ...]:
    """Fit the compute calibration of each of ``cluster``'s GPU models that ``traces`` were
    recorded on, starting from the calibration the topology gives it.

    Returns:
        One fit per GPU model, in the order the traces first name them.

    Raises:
        CalibrationError: a trace recorded on a GPU the topology does not have; a GPU whose
            traces are all check-only, or whose fitted kernels are all held out.
    """
    by_model: dict[str, list[Kernels]] = {}
    for kernels in traces:
        by_model.setdefault(_topology_model(cluster, kernels), []).append(kernels)
    model = ComputeModel(overrides=overrides_for(cluster.compute))
    out = []
    for name, sets in by_model.items():
        spec = _spec_of(cluster, name)
        merged = concat(sets, spec)
        if merged.held_out.all():
            fitted = [s.source for s in sets if not s.held_out.all()]
            raise CalibrationError(
                f"{sets[0].source}: no kernel of {name} is left to fit on ("
                + (f"{', '.join(fitted)} has a single ProfilerStep, held out"
                   if fitted else "every trace of it is given with --check")
                + "); give a trace to fit on, or record more steps.")
        out.append(fit_kernels(merged, model.calibration(spec), name))
    return tuple(out)


def _topology_model(cluster: Cluster, kernels: Kernels) -> str:
    """The model of ``cluster``'s accelerators that ``kernels`` calibrate: the recording
    GPU itself, else one the compute model sees alike (``same_chip``)."""
    models = {s.model: s for s in cluster.specs.values()}
    if kernels.spec.model in models:
        return kernels.spec.model
    for name, spec in sorted(models.items()):
        if same_chip(spec, kernels.spec):
            return name
    raise CalibrationError(
        f"{kernels.source}: recorded on {kernels.spec.model}, but {cluster.name} has "
        f"{', '.join(sorted(models))}; a trace calibrates the GPU it ran on: give the "
        "topology of that GPU.")


def _spec_of(cluster: Cluster, model: str) -> AcceleratorSpec:
    return next(s for s in cluster.specs.values() if s.model == model)

"""``simcluster calibrate``: fit the network model to your own nccl-tests logs, the compute
model to your own profiler traces, and write the calibrated topology."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from simcluster.cli.apps import JSON_HELP, app, print_json, terminal
from simcluster.errors import CalibrationError, SimclusterError

if TYPE_CHECKING:
    from simcluster.calibrate import Calibration
    from simcluster.calibrate.kernel_fit import ComputeFit
    from simcluster.topology.cluster import Cluster


def fit_sizes_option(text: str | None) -> tuple[int, int] | None:
    """``MIN:MAX`` (``1K:256M``; either side may be left out) -> bytes, inclusive."""
    from simcluster.collective_perf import parse_size

    if text is None:
        return None
    low, sep, high = text.partition(":")
    if not sep:
        raise SimclusterError(f"--fit-sizes {text!r}: write MIN:MAX, e.g. 1K:256M (either "
                              "side may be left out: 1M: fits from 1 MiB up).")
    lo = parse_size(low) if low.strip() else 0
    hi = parse_size(high) if high.strip() else 2**62
    if hi < lo:
        raise SimclusterError(f"--fit-sizes {text!r}: MIN is larger than MAX.")
    return lo, hi


@app.command("calibrate")
def calibrate_cmd(
    logs: Annotated[list[Path], typer.Argument(
        metavar="LOG_OR_TRACE", help="nccl-tests *_perf outputs (plain or in a Markdown page), "
        "a calibration CSV (system, gpus_per_node, nodes, collective, bytes, time_us/busbw), "
        "or PyTorch profiler traces (*.json, *.json.gz, a folder of rank traces; a native "
        "*.parquet workload with recorded durations)")],
    topology: Annotated[Path, typer.Option(
        "--topology", "-t", help="the topology the logs were measured on")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="write the calibrated topology YAML here")] = None,
    collective: Annotated[str | None, typer.Option(
        help="the collective of logs that do not name their *_perf binary: all_reduce, "
        "all_gather, reduce_scatter, all_to_all, broadcast, reduce")] = None,
    ranks: Annotated[int | None, typer.Option(
        min=2, help="the rank count of logs that do not state it")] = None,
    system: Annotated[str | None, typer.Option(
        help="the system whose rows to use, in a CSV that holds several")] = None,
    fit_sizes: Annotated[str | None, typer.Option(
        "--fit-sizes", help="fit only sizes in MIN:MAX (e.g. 1K:256M); the others are held "
        "out and reported apart")] = None,
    check: Annotated[list[Path] | None, typer.Option(
        "--check", help="a profiler trace of the same GPU to report on, not fit on (held "
        "out); repeatable")] = None,
    fit_all_steps: Annotated[bool, typer.Option(
        "--fit-all-steps", help="fit on every ProfilerStep of a trace (default: the last "
        "step of a trace with several is held out)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Fit the network model's physical parameters to your nccl-tests logs, and the compute
    model's to your profiler traces: which ones depends on them (inside one server: NVLink
    and NVLS efficiency, NVLS latency, protocol overheads; across servers: network efficiency
    and latency; the host launch cost; from a trace's kernels: GEMM efficiency and fixed
    time, small kernels' fixed time, HBM efficiency, attention efficiency). Prints the values
    before and after and the fit per log and size band or per kernel class; --out writes the
    topology with the fitted values."""
    from simcluster.calibrate.kernel_data import is_trace
    from simcluster.topology import load_cluster

    traces = [p for p in logs if is_trace(p)]
    nccl = [p for p in logs if not is_trace(p)]
    sizes = fit_sizes_option(fit_sizes)
    cluster = load_cluster(topology)
    network = _network(cluster, nccl, collective, ranks, system, sizes)
    compute = _compute(cluster, traces, list(check or []), not fit_all_steps)
    if out is not None:
        _write(topology, out, network, compute)
    if as_json:
        _print_json(network, compute, out)
        return
    from simcluster.cli import render_calibrate, render_calibrate_compute

    console = terminal()
    if network is not None:
        for renderable in render_calibrate.calibration(network):
            console.print(renderable)
    for fit in compute:
        for renderable in render_calibrate_compute.compute_fit(fit):
            console.print(renderable)
    if out is not None:
        console.print(f"wrote {out}", markup=False, soft_wrap=True)


def _network(cluster: Cluster, logs: list[Path], collective: str | None, ranks: int | None,
             system: str | None, sizes: tuple[int, int] | None) -> Calibration | None:
    """The network calibration on ``logs`` (None without logs)."""
    import simcluster.calibrate as cal

    if not logs:
        return None
    curves = cal.read_measurements(logs, collective, ranks, system)
    return cal.calibrate(cluster, curves, fit_sizes=sizes)


def _compute(cluster: Cluster, traces: list[Path], check: list[Path],
             hold_out_step: bool) -> tuple[ComputeFit, ...]:
    """The compute calibration on ``traces`` (held out: ``check``); empty without traces."""
    from simcluster.calibrate.compute import calibrate_compute, read_traces

    if not traces:
        if check:
            raise CalibrationError(f"{check[0]}: --check needs a trace to fit on; give one "
                                   "as LOG_OR_TRACE.")
        return ()
    return calibrate_compute(cluster, read_traces(traces, check, hold_out_step))


def _write(topology: Path, out: Path, network: Calibration | None,
           compute: tuple[ComputeFit, ...]) -> None:
    import simcluster.calibrate as cal
    from simcluster.calibrate.kernel_output import compute_yaml

    text = cal.calibrated_yaml(topology, network, out) if network is not None else None
    if compute:
        text = compute_yaml(topology, compute, out, base_text=text)
    assert text is not None
    cal.write_calibrated(out, text)


def _print_json(network: Calibration | None, compute: tuple[ComputeFit, ...],
                out: Path | None) -> None:
    import simcluster.calibrate as cal
    from simcluster.calibrate.kernel_output import compute_summary

    doc = cal.summary(network) if network is not None else {}
    if compute:
        doc["compute"] = compute_summary(compute)
    print_json({**doc, "out": str(out) if out else None})

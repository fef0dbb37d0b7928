"""``simcluster calibrate``: fit the network model to your own nccl-tests logs and write the
calibrated topology."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simcluster.cli import render_calibrate
from simcluster.cli.apps import JSON_HELP, app, print_json, terminal
from simcluster.errors import SimclusterError


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
        metavar="LOG", help="nccl-tests *_perf outputs (plain or in a Markdown page), or "
        "a calibration CSV (system, gpus_per_node, nodes, collective, bytes, time_us/busbw)")],
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
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Fit the network model's physical parameters to your nccl-tests logs: which ones
    depends on the logs (inside one server: NVLink and NVLS efficiency, NVLS latency,
    protocol overheads; across servers: network efficiency and latency; the host launch
    cost). Prints the values before and after and the fit per log and size band; --out
    writes the topology with the fitted values."""
    import simcluster.calibrate as cal
    from simcluster.topology import load_cluster

    sizes = fit_sizes_option(fit_sizes)
    cluster = load_cluster(topology)
    curves = cal.read_measurements(logs, collective, ranks, system)
    result = cal.calibrate(cluster, curves, fit_sizes=sizes)
    if out is not None:
        cal.write_calibrated(out, cal.calibrated_yaml(topology, result, out))
    if as_json:
        print_json({**cal.summary(result), "out": str(out) if out else None})
        return
    console = terminal()
    for renderable in render_calibrate.calibration(result):
        console.print(renderable)
    if out is not None:
        console.print(f"wrote {out}", markup=False, soft_wrap=True)

"""Commands that simulate many configurations: ``sweep``, ``sweep-report`` and ``search``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from simcluster.cli.apps import (
    JSON_HELP,
    print_json,
    app,
    int_list,
    terminal,
)
from simcluster.errors import SimclusterError
from simcluster.placement import STRATEGIES
from simcluster.sweep.limits import MAX_POINTS
from simcluster.workload.generate.presets import PRESETS

# -- sweeps ---------------------------------------------------------------------------------------

@app.command("sweep")
def sweep_cmd(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="sweep spec YAML file")],
    out: Annotated[Path, typer.Option(help="results folder (resumable: rerun to finish)")],
    scheduler: Annotated[Optional[str], typer.Option(
        help="address of a running Dask scheduler (tcp://host:8786); default: a local "
        "cluster sized to this machine")] = None,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="local cluster: worker processes (default: one per core)")] = None,
    top: Annotated[int, typer.Option(min=1, help="configurations to list")] = 5,
    max_points: Annotated[int, typer.Option(
        min=1, help="refuse specs with more points than this (before constraints)")
                          ] = MAX_POINTS,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Simulate every point of a sweep spec on Dask; one Parquet row per point in
    OUT/results.parquet (needs the sweep extra: dask[distributed]). The spec, its values and
    the files it names are checked before any work."""
    from simcluster.analysis.sweep import feasible
    from simcluster.analysis.sweep import top as best
    from simcluster.cli import render_search
    from simcluster.cli.progress import tracker
    from simcluster.sweep import load_sweep, run_sweep
    from simcluster.sweep.runner import copy_spec

    sweep = load_sweep(spec, max_points=max_points)
    copy_spec(spec, out)
    console = terminal() if not as_json else Console(stderr=True, highlight=False)
    console.print(f"sweep {sweep.spec.name}: {len(sweep.points)} points")
    with dask_client(scheduler, workers) as client, tracker("simulating") as update:
        result = run_sweep(sweep, out, client=client,
                           progress=lambda done, total: update("", done, total))
    warn_recomputed(result.recomputed)
    console.print(f"{result.computed} computed, {result.skipped} already done; "
                  f"{result.failed} of {result.total} failed or out of memory; wrote "
                  f"{result.results}")
    import pyarrow.parquet as pq

    table = pq.read_table(result.results)
    fastest = best(feasible(table), "time", top)
    if as_json:
        print_json({"name": sweep.spec.name, "points": result.total, "computed": result.computed,
                    "skipped": result.skipped, "failed": result.failed,
                    "results": str(result.results),
                    "recomputed": [str(f) for f in result.recomputed], "fastest": fastest})
        return
    console.print(render_search.sweep_table(fastest, table, f"fastest {top}"))


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A Dask client (a running scheduler's, or a local cluster's), its dashboard address
    on stderr when it has one, closed at the end."""
    from simcluster.sweep.runner import close_client, dashboard_link, make_client

    client = make_client(scheduler, workers)
    try:
        link = dashboard_link(client)
        Console(stderr=True, highlight=False).print(
            f"Dask dashboard: {link}" if link else "Dask: no dashboard (pip install bokeh "
            "to watch the workers)", soft_wrap=True, markup=False)
        yield client
    finally:
        close_client(client)


def warn_recomputed(files: tuple[Path, ...]) -> None:
    """Say on stderr which unreadable point files were computed again."""
    if files:
        shown = ", ".join(str(f) for f in files[:5]) + (", ..." if len(files) > 5 else "")
        Console(stderr=True, highlight=False).print(
            f"warning: {len(files)} point file(s) could not be read (truncated or corrupt) "
            f"and were computed again: {shown}", soft_wrap=True)


@app.command("sweep-report")
def sweep_report_cmd(
    out: Annotated[Path, typer.Argument(metavar="DIR", help="a sweep's --out folder")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="default: DIR/report.html")] = None,
    top: Annotated[int, typer.Option(min=1, help="configurations per table")] = 10,
) -> None:
    """Plot the Pareto front (step time vs cost) and list the top configurations (needs the
    report extra: plotly)."""
    from simcluster.analysis.sweep import cost_column, feasible, pareto_front
    from simcluster.cli import render_search
    from simcluster.export.sweep_report import write_sweep_report
    from simcluster.sweep.runner import read_results

    table, name = read_results(out)
    rows = feasible(table)
    cost = cost_column(rows)
    terminal().print(render_search.sweep_table(pareto_front(rows, "step_time_us", cost), table,
                                        "Pareto front (step time vs cost)"))
    path = write_sweep_report(table, name, output or out / "report.html", top)
    terminal().print(f"wrote {path}")


# -- search ---------------------------------------------------------------------------------------

@app.command("search")
def search_cmd(
    topology: Annotated[Path, typer.Option("--topology", "-t", help="topology YAML file")],
    out: Annotated[Path, typer.Option(help="results folder (resumable)")],
    preset: Annotated[str, typer.Option(help=f"model: {', '.join(PRESETS)}")],
    gpus: Annotated[Optional[int], typer.Option(
        min=1, help="GPU budget (default: every accelerator of the topology)")] = None,
    objective: Annotated[str, typer.Option(help="time (step time) or cost ($ per 1M tokens)")
                         ] = "time",
    global_batch: Annotated[Optional[int], typer.Option(
        min=1, help="sequences per step (default: one per GPU)")] = None,
    seq_len: Annotated[Optional[int], typer.Option(min=1, help="override: sequence")] = None,
    layers: Annotated[Optional[int], typer.Option(min=1, help="override: layers")] = None,
    dtype: Annotated[str, typer.Option(help="bf16, fp16 or fp8")] = "bf16",
    tp: Annotated[str, typer.Option(help="tensor-parallel sizes to try")] = "1,2,4,8",
    pp: Annotated[str, typer.Option(help="pipeline sizes to try")] = "1,2,4,8,16,32",
    micro_batch: Annotated[str, typer.Option(help="micro-batch sizes to try")] = "1,2,4,8",
    cp: Annotated[str, typer.Option(help="context-parallel sizes to try (ring attention)")
                  ] = "1",
    ep: Annotated[Optional[str], typer.Option(
        help="expert-parallel sizes to try (MoE models; default: every divisor of the "
        "experts that fits the layout)")] = None,
    fewer_gpus: Annotated[Optional[bool], typer.Option(
        "--fewer-gpus/--all-gpus", help="also try 1/2 and 1/4 of the budget (default: "
        "with --objective cost)")] = None,
    budget: Annotated[Optional[int], typer.Option(
        min=1, help="configurations to simulate (default: a quarter of those that fit)")
                      ] = None,
    top: Annotated[int, typer.Option(min=1, help="configurations to report")] = 5,
    placement: Annotated[str, typer.Option(help=f"strategy: {', '.join(STRATEGIES)}")
                         ] = "packed",
    price: Annotated[Optional[float], typer.Option(
        min=0.0, help="USD per accelerator-hour (default: topology, then built-in)")] = None,
    hardware: Annotated[Optional[Path], typer.Option(
        help="hardware file: search accelerator parameters too, under its cost model and "
        "budget (docs/whatif.md#hardware-co-search)")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="address of a running Dask scheduler; default: a local cluster")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="local cluster: workers")
                       ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Find the fastest or cheapest parallel configuration that fits in memory: prune and
    estimate every configuration analytically, then simulate the best quarter at low fidelity
    and the best of those in full (successive halving, on Dask). With --hardware, the
    accelerator's parameters are searched with it and the Pareto front (time vs cost) is
    reported with the parameter that limits each point."""
    from simcluster.cli import render_search
    from simcluster.cli.progress import tracker
    from simcluster.search import SearchOptions, SearchSpace, search
    from simcluster.search.cosearch import cosearch
    from simcluster.search.hardware import load_hardware
    from simcluster.topology import load_cluster

    if placement not in STRATEGIES:
        raise SimclusterError(f"--placement {placement!r}: use one of {', '.join(STRATEGIES)}.")
    n = gpus or len(load_cluster(topology).accelerators)
    fixed = {"preset": preset, "global_batch": global_batch or n, "dtype": dtype}
    fixed.update({k: v for k, v in (("seq_len", seq_len), ("layers", layers)) if v})
    space = SearchSpace(tp=int_list("--tp", tp), pp=int_list("--pp", pp),
                        micro_batch=int_list("--micro-batch", micro_batch),
                        cp=int_list("--cp", cp),
                        ep=int_list("--ep", ep) if ep is not None else None,
                        fewer_gpus=objective == "cost" if fewer_gpus is None else fewer_gpus)
    options = SearchOptions(objective=objective, budget=budget, top=top, placement=placement,
                            price=price, space=space)
    hw = load_hardware(hardware) if hardware is not None else None
    console = terminal()
    with dask_client(scheduler, workers) as client, tracker("simulating, ") as update:
        if hw is None:
            report = search(fixed, topology, n, out, options, client=client, progress=update)
        else:
            co = cosearch(fixed, topology, n, out, hw, options, client=client,
                          progress=update)
            report = co.search
    warn_recomputed(report.recomputed)
    if as_json:
        import json

        print_json(json.loads((out / "search.json").read_text(encoding="utf-8")))
        return
    console.print(render_search.search_summary(report, fixed))
    if hw is not None:
        console.print(render_search.front_table(co))
    console.print(f"wrote {out / 'search.json'}, {out / 'candidates.parquet'}")



"""The ``simcluster`` command line: parses arguments, calls the API, renders with rich.

Bad input ends with a one-paragraph message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simcluster.analysis import rank_breakdown, summarize
from simcluster.analysis.fidelity import step_fidelity
from simcluster.cli import render
from simcluster.errors import SimclusterError, TopologyError
from simcluster.export import OUTPUT_FILES, write_run
from simcluster.placement import STRATEGIES, bind
from simcluster.sim import SimOptions, simulate
from simcluster.topology import Cluster, json_schema, load_cluster
from simcluster.topology.recorded import recorded_cluster
from simcluster.workload import Workload, load_workload, write_workload
from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel

app = typer.Typer(
    help="Simulate ML training clusters: replay workloads on a model of accelerators and links.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topology_app = typer.Typer(help="Check, show and describe cluster topologies.",
                           no_args_is_help=True)
trace_app = typer.Typer(help="Inspect and import workload traces.", no_args_is_help=True)
trace_import_app = typer.Typer(help="Import recorded traces into a native workload file.",
                               no_args_is_help=True)
trace_app.add_typer(trace_import_app, name="import")
generate_app = typer.Typer(help="Generate synthetic workloads.", no_args_is_help=True)
app.add_typer(topology_app, name="topology")
app.add_typer(trace_app, name="trace")
app.add_typer(generate_app, name="generate")

# Progress bars appear only on runs with at least this many ops (and on a terminal).
_PROGRESS_MIN_OPS = 100_000


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 140, highlight=False)


# -- topology -------------------------------------------------------------------------------------

@topology_app.command("check")
def topology_check(
    path: Annotated[Path, typer.Argument(metavar="TOPOLOGY", help="topology YAML file")],
) -> None:
    """Validate a topology file and print a one-line summary."""
    cluster = load_cluster(path)
    c = cluster.counts()
    _console().print(
        f"ok: {path}: {cluster.name}: {c.get('accelerator', 0)} accelerators, {c['hosts']} "
        f"host(s), {c.get('switch', 0)} switches, {c.get('nic', 0)} NICs, {c['links']} links"
    )


@topology_app.command("show")
def topology_show(
    path: Annotated[Path, typer.Argument(metavar="TOPOLOGY", help="topology YAML file")],
    full: Annotated[bool, typer.Option(help="show every host, not one per kind")] = False,
) -> None:
    """Show a topology as a tree: hosts, accelerators, switches, NICs, links, bandwidths."""
    _console().print(render.topology_tree(load_cluster(path), full=full))


@topology_app.command("schema")
def topology_schema(
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="write here instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of topology files (for editor completion and checks)."""
    text = json_schema()
    if output is None:
        sys.stdout.write(text)
        return
    from simcluster.atomic import atomic_path

    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")


# -- trace ----------------------------------------------------------------------------------------

_TRACE_HELP = ("workload file (native Parquet), or recorded traces: a folder (or file) of "
               "PyTorch profiler JSON (.json, .json.gz, one per rank) or of Chakra .et files")
_STEP_HELP = "ProfilerStep to import: a step number, or 'all' (Kineto traces)"
_ET_HELP = ("PyTorch execution traces (folder of JSON or .tar.gz) that supply collective sizes "
            "a Kineto trace lacks")
_ALIGN_HELP = ("how ranks' traces line up: 'clock' keeps their recorded start times (one host, or "
               "synchronised clocks); 'start' starts every rank at 0")
_COPIES_HELP = ("replay host<->device copies as flows on the topology instead of their recorded "
                "durations (Kineto traces)")


def _align(value: str) -> str:
    if value not in ("clock", "start"):
        raise typer.BadParameter(f"{value!r} is neither 'clock' nor 'start'")
    return value


def _step(value: str) -> str | int:
    """``all`` or a step number."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither 'all' nor a step number") from None


@trace_app.command("info")
def trace_info(
    path: Annotated[Path, typer.Argument(metavar="TRACE", help=_TRACE_HELP)],
) -> None:
    """Summarise a workload: ranks, ops by kind, collectives, groups, bytes."""
    _console().print(render.workload_info(load_workload(path), str(path)))


@trace_import_app.command("kineto")
def trace_import_kineto(
    path: Annotated[Path, typer.Argument(metavar="DIR", help="folder of per-rank PyTorch "
                                         "profiler traces (.json, .json.gz), or one file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="workload file to write")],
    et: Annotated[Optional[Path], typer.Option("--et", help=_ET_HELP)] = None,
    step: Annotated[str, typer.Option(help=_STEP_HELP)] = "all",
    model_copies: Annotated[bool, typer.Option("--model-copies", help=_COPIES_HELP)] = False,
    align: Annotated[str, typer.Option(help=_ALIGN_HELP)] = "clock",
) -> None:
    """Import PyTorch profiler (Kineto) traces; print what was used, skipped and assumed."""
    from simcluster.workload.kineto import KinetoOptions, import_kineto

    wl = import_kineto(path, KinetoOptions(step=_step(step), et=et, model_copies=model_copies,
                                           align=_align(align)))
    write_workload(wl, output)
    _console().print(render.import_summary(wl, output), soft_wrap=True)


@trace_import_app.command("chakra")
def trace_import_chakra(
    path: Annotated[Path, typer.Argument(metavar="DIR", help="folder of Chakra traces "
                                         "(<prefix>.<rank>.et), or one file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="workload file to write")],
) -> None:
    """Import Chakra execution traces; print what was used, skipped and assumed."""
    from simcluster.workload.chakra import import_chakra

    wl = import_chakra(path)
    write_workload(wl, output)
    _console().print(render.import_summary(wl, output), soft_wrap=True)


# -- generate -------------------------------------------------------------------------------------

@generate_app.command("data-parallel")
def generate_data_parallel(
    output: Annotated[Path, typer.Option("-o", "--output", help="workload file to write")],
    ranks: Annotated[int, typer.Option(min=1, help="data-parallel ranks")] = 16,
    layers: Annotated[int, typer.Option(min=1)] = 12,
    hidden: Annotated[int, typer.Option(min=1)] = 1024,
    seq_len: Annotated[int, typer.Option(min=1)] = 2048,
    vocab: Annotated[int, typer.Option(min=1)] = 50304,
    micro_batch: Annotated[int, typer.Option(min=1, help="sequences per rank")] = 4,
    dtype: Annotated[str, typer.Option()] = "bf16",
    bucket_mb: Annotated[float, typer.Option(min=0.001, help="gradient bucket, MB")] = 25.0,
    steps: Annotated[int, typer.Option(min=1)] = 1,
    name: Annotated[str, typer.Option()] = "dp-transformer",
) -> None:
    """Generate data-parallel training steps of a decoder-only transformer."""
    cfg = DataParallelConfig(
        ranks=ranks, micro_batch=micro_batch, dtype=dtype, bucket_mb=bucket_mb, steps=steps,
        name=name, dims=TransformerDims(layers=layers, hidden=hidden, seq_len=seq_len,
                                        vocab=vocab),
    )
    wl = data_parallel(cfg)
    write_workload(wl, output)
    _console().print(f"wrote {output}: {wl.num_ranks} ranks, {wl.num_ops:,} ops, "
                     f"{cfg.dims.params / 1e6:.1f} M parameters")


# -- replay ---------------------------------------------------------------------------------------

def _cluster_for(workload: Workload, topology: Path | None, device: str | None
                 ) -> tuple[Cluster, str | None]:
    """The topology file's cluster, or one built from the workload's recorded device (and a
    line that says so)."""
    if topology is not None:
        if device is not None:
            raise TopologyError("give either --topology or --device, not both: --device builds "
                                "a one-server cluster of that accelerator.")
        return load_cluster(topology), None
    model = device or workload.meta.recorded_device
    if model is None:
        raise TopologyError(
            "no --topology, and the workload does not say which accelerator it was recorded "
            "on; give --topology FILE, or --device MODEL (e.g. --device A100) to replay on one "
            "server of that accelerator."
        )
    cluster = recorded_cluster(model, workload.num_ranks)
    origin = "--device" if device else "the trace's metadata"
    return cluster, (f"no --topology: replaying on [bold]{cluster.name}[/], "
                     f"{cluster.description.replace('the trace' + chr(39) + 's metadata', origin)}")


@app.command("replay")
def replay(
    trace: Annotated[Path, typer.Argument(metavar="TRACE", help=_TRACE_HELP)],
    topology: Annotated[Optional[Path], typer.Option(
        "--topology", "-t", help="topology YAML file; default: one server of the recorded "
        "accelerator, one per rank")] = None,
    device: Annotated[Optional[str], typer.Option(
        help="without --topology: the accelerator model to build the server of (default: "
        "the recorded one)")] = None,
    step: Annotated[str, typer.Option(help=_STEP_HELP)] = "all",
    et: Annotated[Optional[Path], typer.Option("--et", help=_ET_HELP)] = None,
    model_copies: Annotated[bool, typer.Option("--model-copies", help=_COPIES_HELP)] = False,
    align: Annotated[str, typer.Option(help=_ALIGN_HELP)] = "clock",
    placement: Annotated[Optional[str], typer.Option(
        help=f"placement YAML file, or a strategy: {', '.join(STRATEGIES)}")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="folder for timeline.parquet, links.parquet, ranks.parquet, summary.json")] = None,
    top: Annotated[int, typer.Option(min=1, help="links to list")] = 10,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the step time")] = False,
) -> None:
    """Replay a workload or recorded traces on a cluster; print step time, breakdown and
    busiest links (and, for profiler traces, simulated vs recorded step times)."""
    console = _console()
    workload = load_workload(trace, step=_step(step), et=et, model_copies=model_copies,
                             align=_align(align))
    cluster, built = _cluster_for(workload, topology, device)
    bound = bind(workload, cluster, placement)
    show_progress = (not quiet and workload.num_ops >= _PROGRESS_MIN_OPS
                     and Console(stderr=True).is_terminal)
    if show_progress:
        with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("sim", total=workload.num_ops)
            run = simulate(bound, SimOptions(
                progress=lambda done, total: bar.update(task, completed=done)))
    else:
        run = simulate(bound)
    ranks = rank_breakdown(run)
    summary = summarize(run, ranks, top_links=top)
    if out is not None:
        write_run(run, out, summary)
    if quiet:
        console.print(f"{summary['step_time_us']:.3f}")
        return
    n_steps = len(summary["steps"])
    rate = workload.num_ops / run.wall_s if run.wall_s > 0 else float("inf")
    imported = (workload.meta.extra or {}).get("import")
    if imported:
        for line in render.report_lines(imported, notes=False):
            console.print(line, soft_wrap=True)
    if built:
        console.print(built, soft_wrap=True)
    console.print(
        f"[bold]{workload.meta.name or trace.name}[/]: {workload.num_ranks} ranks, "
        f"{workload.num_ops:,} ops  on  [bold]{cluster.name}[/]: {len(cluster.accelerators)} "
        f"accelerators  (placement: {bound.placement.strategy})"
    )
    console.print(
        f"step time [bold green]{render.fmt_time(summary['step_time_us'])}[/] "
        f"({n_steps} step{'s' if n_steps != 1 else ''}, makespan "
        f"{render.fmt_time(run.makespan_us)}); simulated in {run.wall_s:.2f} s "
        f"({render.fmt_count(rate)} ops/s)"
    )
    console.print(render.breakdown_table(ranks, run.makespan_us / max(n_steps, 1) * n_steps))
    if summary["busiest_links"]:
        console.print(render.links_table(summary["busiest_links"]))
        console.print(render.kinds_table(summary["links_by_kind"]))
    fidelity = step_fidelity(run, workload)
    if fidelity.num_rows:
        console.print(render.fidelity_table(fidelity))
    mem = summary["memory"]
    console.print(
        f"peak memory {mem['peak_bytes_max'] / render.GIB:.2f} GiB on rank {mem['peak_rank']} "
        f"({100 * mem['peak_fraction_of_capacity']:.1f}% of its capacity)"
    )
    if out is not None:
        console.print(f"wrote {', '.join(str(out / f) for f in OUTPUT_FILES)}")


# -- entry point ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to exit codes (2: bad input, 1: internal error, 130: ^C)."""
    err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)
    try:
        # Standalone mode: Typer itself reports usage errors (exit 2) and exits.
        app(args=argv, prog_name="simcluster")
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SimclusterError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for those who ask
        if os.environ.get("SIMCLUSTER_DEBUG"):
            traceback.print_exc()
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}. This is a bug in "
                  "simcluster; please report it with the command you ran (set SIMCLUSTER_DEBUG=1 "
                  "to see the traceback).", soft_wrap=True)
        sys.exit(1)

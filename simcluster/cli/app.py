"""The ``simcluster`` command line: parses arguments, calls the API, renders with rich.

Bad input ends with a one-paragraph message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simcluster.analysis import critical_path, rank_breakdown, summarize
from simcluster.analysis.fidelity import step_fidelity
from simcluster.analysis.training import (
    TrainingInfo,
    memory_breakdown_text,
    oom_stages,
    training_summary,
)
from simcluster.cli import render
from simcluster.cost import costs
from simcluster.errors import SimclusterError, SimulationError, TopologyError, WorkloadError
from simcluster.export import OUTPUT_FILES, load_run, write_run
from simcluster.placement import STRATEGIES, bind
from simcluster.sim import SimOptions, simulate
from simcluster.sim.algorithms import algorithm_names
from simcluster.sim.protocols import PROTOCOLS
from simcluster.topology import Cluster, json_schema, load_cluster
from simcluster.topology.recorded import recorded_cluster
from simcluster.topology.transform import scale_links, with_device
from simcluster.workload import Workload, load_workload, write_workload
from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel
from simcluster.workload.generate.presets import PRESETS, model_from
from simcluster.workload.generate.transformer import TransformerConfig, transformer

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


def _pairs(option: str, items: list[str]) -> list[tuple[str, str]]:
    """``["ib=2", "nvlink=0.5"]`` -> pairs; a malformed item is a usage error."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        try:
            float(value)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise SimclusterError(f"{option} {item!r}: write NAME=NUMBER, e.g. {option} ib=2.0.")
        out.append((key.strip(), value.strip()))
    return out


# -- collectives ----------------------------------------------------------------------------------

@app.command("collectives")
def collectives_cmd(
    topology: Annotated[Path, typer.Option("--topology", "-t", help="topology YAML file")],
    op: Annotated[str, typer.Option(help="all_reduce, all_gather, reduce_scatter, all_to_all, "
                                         "broadcast, reduce, sendrecv")] = "all_reduce",
    ranks: Annotated[Optional[int], typer.Option(
        min=1, help="ranks (default: every accelerator), placed packed")] = None,
    min_size: Annotated[str, typer.Option("--min", help="smallest size, e.g. 1K")] = "8",
    max_size: Annotated[str, typer.Option("--max", help="largest size, e.g. 8G")] = "128M",
    factor: Annotated[int, typer.Option("--factor", "-f", min=2, help="size step")] = 2,
    algo: Annotated[str, typer.Option(
        help=f"force an algorithm: {', '.join(algorithm_names())}; auto picks")] = "auto",
    proto: Annotated[str, typer.Option(help="force LL, LL128 or Simple; auto picks")] = "auto",
    dtype: Annotated[str, typer.Option(help="element type for the count column")] = "fp32",
    csv: Annotated[Optional[Path], typer.Option(help="also write the table as CSV")] = None,
) -> None:
    """nccl-tests on the simulator: time, algbw and busbw per size, and the algorithm used."""
    from simcluster import collective_perf as cp

    names = algorithm_names()
    if algo not in ("auto", *names):
        raise SimclusterError(f"--algo {algo!r}: use auto or one of {', '.join(names)}.")
    if proto not in ("auto", *PROTOCOLS):
        raise SimclusterError(f"--proto {proto!r}: use auto or one of {', '.join(PROTOCOLS)}.")
    cluster = load_cluster(topology)
    n = ranks or len(cluster.accelerators)
    rows = cp.run(cluster, op, cp.sizes(cp.parse_size(min_size), cp.parse_size(max_size), factor),
                  ranks=n, algorithm=algo, protocol=proto, dtype=dtype)
    console = _console()
    console.print(f"# {op} on {n} ranks of {cluster.name} (simulated; busbw as nccl-tests)")
    console.print(render.perf_table(rows, dtype))
    if csv is not None:
        from simcluster.atomic import atomic_path

        with atomic_path(csv) as tmp:
            tmp.write_text(render.perf_csv(rows, op, n), encoding="utf-8")
        console.print(f"wrote {csv}")


@generate_app.command("transformer")
def generate_transformer(
    output: Annotated[Path, typer.Option("-o", "--output", help="workload file to write")],
    preset: Annotated[Optional[str], typer.Option(
        help=f"model: {', '.join(PRESETS)}")] = None,
    layers: Annotated[Optional[int], typer.Option(min=1, help="override: layers")] = None,
    hidden: Annotated[Optional[int], typer.Option(min=1, help="override: hidden size")] = None,
    heads: Annotated[Optional[int], typer.Option(min=1, help="override: attention heads")] = None,
    kv_heads: Annotated[Optional[int], typer.Option(min=1, help="override: KV heads")] = None,
    ffn: Annotated[Optional[int], typer.Option(min=1, help="override: FFN width")] = None,
    vocab: Annotated[Optional[int], typer.Option(min=0, help="override: vocabulary")] = None,
    seq_len: Annotated[Optional[int], typer.Option(min=1, help="override: sequence")] = None,
    tp: Annotated[int, typer.Option(min=1, help="tensor-parallel size")] = 1,
    pp: Annotated[int, typer.Option(min=1, help="pipeline stages")] = 1,
    dp: Annotated[int, typer.Option(min=1, help="data-parallel replicas")] = 1,
    micro_batch: Annotated[int, typer.Option(min=1, help="sequences per micro-batch")] = 1,
    global_batch: Annotated[Optional[int], typer.Option(
        min=1, help="sequences per step (default micro-batch x dp)")] = None,
    schedule: Annotated[str, typer.Option(
        help="1f1b, gpipe or 1f1b-interleaved:V")] = "1f1b",
    recompute: Annotated[str, typer.Option(help="none, selective or full")] = "none",
    sequence_parallel: Annotated[bool, typer.Option(
        "--sequence-parallel/--no-sequence-parallel")] = False,
    zero: Annotated[str, typer.Option(help="ZeRO stage 0, 1, 2, 3, or fsdp")] = "0",
    dtype: Annotated[str, typer.Option(help="bf16, fp16 or fp8")] = "bf16",
    flash_attention: Annotated[bool, typer.Option("--flash-attention/--no-flash-attention")
                               ] = True,
    dp_overlap: Annotated[bool, typer.Option(
        "--dp-overlap/--no-dp-overlap", help="overlap gradient reduction with backward")] = True,
    tp_overlap: Annotated[bool, typer.Option(
        "--tp-overlap/--no-tp-overlap",
        help="overlap backward TP reductions with weight-gradient GEMMs")] = True,
    bucket_params: Annotated[int, typer.Option(min=1, help="parameters per gradient bucket")
                             ] = 40_000_000,
    fold: Annotated[bool, typer.Option(
        "--fold/--no-fold", help="store one data-parallel replica (same answer, faster)")
                    ] = True,
    steps: Annotated[int, typer.Option(min=1)] = 1,
    name: Annotated[str, typer.Option()] = "",
) -> None:
    """Generate training steps of a decoder-only transformer (TP, PP, DP, ZeRO, recompute)."""
    model = model_from(preset, {"layers": layers, "hidden": hidden, "heads": heads,
                                 "kv_heads": kv_heads, "ffn": ffn, "vocab": vocab,
                                 "seq_len": seq_len})
    z = zero.strip().lower()
    if z not in ("0", "1", "2", "3", "fsdp"):
        raise WorkloadError(f"--zero {zero!r}: use 0, 1, 2, 3 or fsdp.")
    cfg = TransformerConfig(
        model=model, tp=tp, pp=pp, dp=dp, micro_batch=micro_batch, global_batch=global_batch,
        sequence_parallel=sequence_parallel, schedule=schedule, zero=3 if z == "fsdp" else int(z),
        recompute=recompute, dtype=dtype, flash_attention=flash_attention, dp_overlap=dp_overlap,
        tp_overlap=tp_overlap, bucket_params=bucket_params, fold=fold, steps=steps, name=name)
    wl = transformer(cfg)
    write_workload(wl, output)
    console = _console()
    info = TrainingInfo.of(wl)
    assert info is not None
    extra = wl.meta.extra
    fold_note = (f" (folded: replica 0 in full, {cfg.dp - 1} mirror replica(s))"
                 if extra["fold"] else "")
    console.print(f"wrote {output}: {model.name}, {model.params / 1e9:.2f} B parameters, "
                  f"{wl.num_ranks} ranks, {wl.num_ops:,} ops{fold_note}")
    pipe = extra["pipeline"]
    console.print(f"{cfg.batch} sequences x {model.seq_len} tokens per step, "
                  f"{pipe['micro_batches']} micro-batch(es) per replica, schedule "
                  f"{pipe['schedule']} (ideal bubble {100 * pipe['ideal_bubble']:.1f}%)")
    console.print(render.memory_table(info))


# -- replay ---------------------------------------------------------------------------------------

def _cluster_for(workload: Workload, topology: Path | None, device: str | None
                 ) -> tuple[Cluster, str | None]:
    """The topology file's cluster, or one built from the workload's recorded device (and a
    line that says so)."""
    if topology is not None:
        cluster = load_cluster(topology)
        return (cluster if device is None else with_device(cluster, device)), None
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
        help="accelerator model: with --topology, every accelerator becomes it (what-if); "
        "without, a one-server cluster of it (default: the recorded one)")] = None,
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
    scale_link: Annotated[Optional[list[str]], typer.Option(
        help="what-if: KIND=FACTOR scales links of a kind or role (ib=2.0, nvlink=0.5)")] = None,
    slow_rank: Annotated[Optional[list[str]], typer.Option(
        help="what-if: RANK=FACTOR makes a rank's compute and host ops slower (3=1.3)")] = None,
    price: Annotated[Optional[float], typer.Option(
        min=0.0, help="USD per accelerator-hour (default: topology, then built-in)")] = None,
    token_budget: Annotated[Optional[float], typer.Option(
        min=1.0, help="tokens to train on: print the run's time and cost")] = None,
) -> None:
    """Replay a workload or recorded traces on a cluster; print step time, breakdown and
    busiest links (and, for profiler traces, simulated vs recorded step times)."""
    console = _console()
    workload = load_workload(trace, step=_step(step), et=et, model_copies=model_copies,
                             align=_align(align))
    cluster, built = _cluster_for(workload, topology, device)
    if scale_link:
        cluster = scale_links(cluster, {k: float(v) for k, v in _pairs("--scale-link",
                                                                        scale_link)})
    slowdown = {int(k): float(v) for k, v in _pairs("--slow-rank", slow_rank or [])}
    bound = bind(workload, cluster, placement)
    options = SimOptions.for_workload(workload, slowdown=slowdown)
    show_progress = (not quiet and workload.num_ops >= _PROGRESS_MIN_OPS
                     and Console(stderr=True).is_terminal)
    if show_progress:
        with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("sim", total=workload.num_ops)
            run = _simulate_explained(bound, replace(
                options, progress=lambda done, total: bar.update(task, completed=done)))
    else:
        run = _simulate_explained(bound, options)
    if price is not None:
        run.info["usd_per_hour"] = price * len(bound.placement.devices)
    ranks = rank_breakdown(run)
    path = critical_path(run)
    info = TrainingInfo.of(workload)
    training = None
    if info is not None:
        specs = [cluster.specs[d] for d in bound.placement.devices]
        training = training_summary(run, workload, ranks, specs)
        ranks = ranks.slice(0, info.real_ranks)  # a folded workload: the full replica
    summary = summarize(run, ranks, top_links=top, path=path, training=training)
    if out is not None:
        write_run(run, out, summary, ranks, path)
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
    console.print(render.breakdown_table(ranks))
    console.print(render.limits_line(summary["limits"]))
    if summary["stragglers"]:
        console.print(f"stragglers (others waited for them): ranks "
                      f"{', '.join(map(str, summary['stragglers'][:16]))}")
    if summary["bottleneck_links"]:
        console.print(render.bottlenecks_table(summary["bottleneck_links"]))
    if summary["links_by_role"]:
        console.print(render.roles_table(summary["links_by_role"]))
    if summary["busiest_links"]:
        console.print(render.links_table(summary["busiest_links"]))
    money = summary["cost"]
    if money["usd_per_hour"] is not None:
        line = (f"cost ${money['usd_per_hour']:,.2f}/h, ${money['usd_per_step']:.4f} per step")
        if money["usd_per_1m_tokens"] is not None:
            line += (f", ${money['usd_per_1m_tokens']:.3f} per 1M tokens "
                     f"({money['tokens_per_s']:,.0f} tokens/s)")
        console.print(line)
    if token_budget is not None:
        plan = costs(summary["step_time_us"], money["usd_per_hour"],
                     money["tokens_per_step"]).training(token_budget, summary["step_time_us"])
        if plan["hours"] is None:
            console.print("training run: unknown (the workload does not say how many tokens a "
                          "step processes)")
        else:
            usd = "unknown cost (no price)" if plan["usd"] is None else f"${plan['usd']:,.0f}"
            console.print(f"training run of {token_budget:,.0f} tokens: {plan['hours']:,.1f} h "
                          f"({plan['hours'] / 24:,.1f} days), {usd}")
    fidelity = step_fidelity(run, workload)
    if fidelity.num_rows:
        console.print(render.fidelity_table(fidelity))
    mem = summary["memory"]
    console.print(
        f"peak memory {mem['peak_bytes_max'] / render.GIB:.2f} GiB on rank {mem['peak_rank']} "
        f"({100 * mem['peak_fraction_of_capacity']:.1f}% of its capacity)"
    )
    if training is not None:
        console.print(render.training_lines(training))
    if out is not None:
        console.print(f"wrote {len(OUTPUT_FILES)} files to {out}/: {', '.join(OUTPUT_FILES)}")


# -- outputs of a run folder -----------------------------------------------------------------------

@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="a replay's --out folder")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="default: RUN/report.html")] = None,
) -> None:
    """Write one self-contained HTML page with plots: timeline, link heatmap, breakdown,
    bottlenecks, critical path (needs the report extra: matplotlib)."""
    from simcluster.export.report import write_report

    folder = load_run(run_dir)
    out = write_report(folder.run, folder.summary, folder.ranks, folder.critical_path,
                       output or run_dir / "report.html")
    _console().print(f"wrote {out}")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="a replay's --out folder")],
    format: Annotated[str, typer.Option("--format", help="perfetto (Chrome trace JSON)")] = (
        "perfetto"),
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="default: RUN/trace.json")] = None,
    max_ranks: Annotated[int, typer.Option(min=1, help="ranks to include")] = 64,
    max_links: Annotated[int, typer.Option(min=0, help="link counter tracks")] = 16,
) -> None:
    """Export a run for other tools: ui.perfetto.dev / chrome://tracing."""
    from simcluster.export.perfetto import write_perfetto

    if format != "perfetto":
        raise SimclusterError(f"--format {format!r}: the supported format is perfetto.")
    folder = load_run(run_dir)
    out = write_perfetto(folder.run, output or run_dir / "trace.json", max_ranks, max_links)
    _console().print(f"wrote {out} (open it in https://ui.perfetto.dev)")


@app.command("diff")
def diff_cmd(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="the baseline run folder")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="the what-if run folder")],
    top: Annotated[int, typer.Option(min=1, help="links and ops to list")] = 10,
) -> None:
    """What changed from RUN_A to RUN_B: step time, breakdown, limits, links, ops."""
    from simcluster.analysis.diff import diff_runs

    a, b = load_run(run_a), load_run(run_b)
    d = diff_runs(a.run, a.summary, b.run, b.summary, top)
    for renderable in render.diff_view(d, str(run_a), str(run_b)):
        _console().print(renderable)


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
) -> None:
    """Simulate every point of a sweep spec on Dask; one Parquet row per point in
    OUT/results.parquet (needs the sweep extra: dask[distributed])."""
    from rich.progress import TimeRemainingColumn

    from simcluster.analysis.sweep import feasible
    from simcluster.analysis.sweep import top as best
    from simcluster.sweep import load_sweep, run_sweep
    from simcluster.sweep.runner import copy_spec

    sweep = load_sweep(spec, gpus_of=lambda p: len(load_cluster(p).accelerators))
    copy_spec(spec, out)
    console = _console()
    console.print(f"sweep {sweep.spec.name}: {len(sweep.points)} points")
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("sweep", total=None)
        result = run_sweep(sweep, out, scheduler=scheduler, workers=workers,
                           progress=lambda done, total: bar.update(task, completed=done,
                                                                   total=total))
    console.print(f"{result.computed} computed, {result.skipped} already done; "
                  f"{result.failed} of {result.total} failed or out of memory; wrote "
                  f"{result.results}")
    import pyarrow.parquet as pq

    table = pq.read_table(result.results)
    console.print(render.sweep_table(best(feasible(table), "time", top), table,
                                     f"fastest {top}"))


@app.command("sweep-report")
def sweep_report_cmd(
    out: Annotated[Path, typer.Argument(metavar="DIR", help="a sweep's --out folder")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="default: DIR/report.html")] = None,
    top: Annotated[int, typer.Option(min=1, help="configurations per table")] = 10,
) -> None:
    """Plot the Pareto front (step time vs cost) and list the top configurations (needs the
    report extra: matplotlib)."""
    from simcluster.analysis.sweep import cost_column, feasible, pareto_front
    from simcluster.export.sweep_report import write_sweep_report
    from simcluster.sweep.runner import read_results

    table, name = read_results(out)
    rows = feasible(table)
    cost = cost_column(rows)
    _console().print(render.sweep_table(pareto_front(rows, "step_time_us", cost), table,
                                        "Pareto front (step time vs cost)"))
    path = write_sweep_report(table, name, output or out / "report.html", top)
    _console().print(f"wrote {path}")


def _simulate_explained(bound: Any, options: Optional[SimOptions] = None) -> Any:
    """Simulate; an out-of-memory error of a generated transformer also gets the memory
    breakdown of the stages that do not fit."""
    try:
        return simulate(bound, options)
    except SimulationError as exc:
        info = TrainingInfo.of(bound.workload)
        if info is None or not str(exc).startswith("out of memory"):
            raise
        caps = [bound.cluster.specs[d].hbm_bytes for d in bound.placement.devices]
        stages = oom_stages(info, caps) or [0]
        detail = "; ".join(memory_breakdown_text(info, p, min(
            caps[r] for r in range(info.real_ranks) if info.stage_of(r) == p)) for p in stages)
        raise SimulationError(f"{exc} Memory model: {detail}.") from None


# -- search ---------------------------------------------------------------------------------------

def _ints(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SimclusterError(f"{option} {text!r}: give whole numbers separated by commas, "
                              "e.g. 1,2,4,8.") from None
    if not values or min(values) < 1:
        raise SimclusterError(f"{option} {text!r}: every value must be at least 1.")
    return values


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
    scheduler: Annotated[Optional[str], typer.Option(
        help="address of a running Dask scheduler; default: a local cluster")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="local cluster: workers")
                       ] = None,
) -> None:
    """Find the fastest or cheapest parallel configuration that fits in memory: prune and
    estimate every configuration analytically, then simulate the best quarter at low fidelity
    and the best of those in full (successive halving, on Dask)."""
    from rich.progress import TimeRemainingColumn

    from simcluster.search import SearchOptions, SearchSpace, search

    if placement not in STRATEGIES:
        raise SimclusterError(f"--placement {placement!r}: use one of {', '.join(STRATEGIES)}.")
    n = gpus or len(load_cluster(topology).accelerators)
    fixed = {"preset": preset, "global_batch": global_batch or n, "dtype": dtype}
    fixed.update({k: v for k, v in (("seq_len", seq_len), ("layers", layers)) if v})
    space = SearchSpace(tp=_ints("--tp", tp), pp=_ints("--pp", pp),
                        micro_batch=_ints("--micro-batch", micro_batch),
                        fewer_gpus=objective == "cost" if fewer_gpus is None else fewer_gpus)
    options = SearchOptions(objective=objective, budget=budget, top=top, placement=placement,
                            price=price, space=space)
    console = _console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(rung: str, done: int, total: int) -> None:
            if rung not in tasks:
                tasks[rung] = bar.add_task(f"simulating, {rung}", total=total)
            bar.update(tasks[rung], completed=done, total=total)

        report = search(fixed, topology, n, out, options, scheduler=scheduler, workers=workers,
                        progress=progress)
    console.print(render.search_summary(report, fixed))
    console.print(f"wrote {out / 'search.json'}, {out / 'candidates.parquet'}")


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

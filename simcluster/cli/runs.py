"""Commands that simulate and look at runs: ``collectives``, ``replay``, and ``report``,
``export`` and ``diff`` of run folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from simcluster.cli.apps import (
    ALIGN_HELP,
    COPIES_HELP,
    ET_HELP,
    JSON_HELP,
    PROGRESS_MIN_OPS,
    STEP_HELP,
    TRACE_HELP,
    WAITS_HELP,
    align_option,
    app,
    pairs,
    print_json,
    step_option,
    terminal,
)
from simcluster.errors import SimclusterError, WorkloadError
from simcluster.placement import STRATEGIES
from simcluster.sim.algorithms import algorithm_names

if TYPE_CHECKING:
    from simcluster.jobs import JobMix
    from simcluster.scenario import Scenario
    from simcluster.topology.accelerator import AcceleratorSpec

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
    algo: Annotated[str, typer.Option(help="force an algorithm: " + ", ".join(
        algorithm_names()) + "; auto picks")] = "auto",
    proto: Annotated[str, typer.Option(help="force LL, LL128 or Simple; auto picks")] = "auto",
    library: Annotated[Optional[str], typer.Option(
        help="whose tuning collectives follow: nccl, nccl-2.27 or rccl (default: the topology's "
             "network.library; auto: RCCL on AMD parts)")] = None,
    dtype: Annotated[str, typer.Option(help="element type for the count column")] = "fp32",
    csv: Annotated[Optional[Path], typer.Option(help="also write the table as CSV")] = None,
    compare: Annotated[Optional[Path], typer.Option(
        help="an nccl-tests *_perf log: simulate its sizes (and rank count) and print "
             "measured, simulated and the error per size")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """nccl-tests on the simulator: time, algbw and busbw per size in nccl-tests' layout, and
    the algorithm used; with --compare, against your own log."""
    from dataclasses import asdict

    from simcluster import collective_perf as cp
    from simcluster.cli import render
    from simcluster.topology import load_cluster

    cluster = load_cluster(topology)
    if compare is not None:
        from simcluster.validation import compare_log, read_nccl_log

        log = read_nccl_log(compare)
        n = ranks or log.ranks or len(cluster.accelerators)
        cmp_ = compare_log(log, cluster, op, n, algorithm=algo, protocol=proto,
                           library=library)
        if as_json:
            print_json({"op": op, "ranks": n, "cluster": cluster.name, "log": str(compare),
                        "library": cp.library_of(cluster, library),
                        "mape_pct": cmp_.mape(), "mean_signed_pct": cmp_.mean_signed(),
                        "rows": [{"size": s, "measured_busbw_GBps": m, "busbw_GBps": p,
                                  "error": e, "algorithm": a} for s, m, p, e, a in zip(
                                      cmp_.sizes.tolist(), cmp_.measured.tolist(),
                                      cmp_.predicted.tolist(), cmp_.error.tolist(),
                                      cmp_.algorithms)]})
            return
        terminal().print(f"# {op} on {n} ranks of {cluster.name} (simulated, "
                         f"{cp.library_of(cluster, library).upper()} tuning) against {compare}")
        terminal().print(render.compare_table(cmp_))
        return
    n = ranks or len(cluster.accelerators)
    rows = cp.run(cluster, op, cp.sizes(cp.parse_size(min_size), cp.parse_size(max_size), factor),
                  ranks=n, algorithm=algo, protocol=proto, dtype=dtype, library=library)
    if as_json:
        print_json({"op": op, "ranks": n, "cluster": cluster.name, "dtype": dtype,
                    "library": cp.library_of(cluster, library),
                    "avg_busbw_GBps": cp.average_busbw(rows),
                    "rows": [asdict(r) for r in rows]})
    console = terminal() if not as_json else Console(stderr=True, highlight=False)
    if not as_json:
        console.print(f"# {op} on {n} ranks of {cluster.name} (simulated, "
                      f"{cp.library_of(cluster, library).upper()} tuning; busbw as nccl-tests)",
                      soft_wrap=True, markup=False)
        console.print(render.perf_text(rows, op, dtype), soft_wrap=True, markup=False)
    if csv is not None:
        from simcluster.atomic import atomic_path

        with atomic_path(csv) as tmp:
            tmp.write_text(render.perf_csv(rows, op, n), encoding="utf-8")
        console.print(f"wrote {csv}")


# -- replay ---------------------------------------------------------------------------------------

@app.command("replay")
def replay(
    traces: Annotated[list[Path], typer.Argument(
        metavar="TRACE...", help=TRACE_HELP + "; several: one job each, run together on "
        "--topology (a job mix: docs/whatif.md)")],
    topology: Annotated[Optional[Path], typer.Option(
        "--topology", "-t", help="topology YAML file; default: one server of the recorded "
        "accelerator, one per rank")] = None,
    device: Annotated[Optional[str], typer.Option(
        help="accelerator model: with --topology, every accelerator becomes it (what-if); "
        "without, a one-server cluster of it (default: the recorded one). A catalog name or "
        "alias, a model of --device-file, or an accelerator file of one model")] = None,
    device_file: Annotated[Optional[list[Path]], typer.Option(
        "--device-file", help="accelerator file (user-defined accelerator_models, "
        "docs/formats.md) whose models --device may name; one model: it is the device")] = None,
    step: Annotated[str, typer.Option(help=STEP_HELP)] = "all",
    et: Annotated[Optional[Path], typer.Option("--et", help=ET_HELP)] = None,
    model_copies: Annotated[bool, typer.Option("--model-copies", help=COPIES_HELP)] = False,
    align: Annotated[str, typer.Option(help=ALIGN_HELP)] = "clock",
    unexplained_waits: Annotated[bool, typer.Option(help=WAITS_HELP)] = True,
    placement: Annotated[Optional[list[str]], typer.Option(
        help=f"placement YAML file, or a strategy: {', '.join(STRATEGIES)}; with several "
        "TRACEs one for all or one per job (a strategy places a job on the accelerators the "
        "others left free)")] = None,
    start_us: Annotated[Optional[list[float]], typer.Option(
        "--start-us", min=0.0, help="job mix: when each job starts (us); one for all or one "
        "per job")] = None,
    repeat: Annotated[Optional[list[int]], typer.Option(
        min=1, help="job mix: how many times each job runs its steps; one for all or one "
        "per job")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="folder for timeline.parquet, links.parquet, ranks.parquet, summary.json")] = None,
    top: Annotated[int, typer.Option(min=1, help="links to list")] = 10,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="print only the mean step time, in microseconds (us)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    predict_kernels: Annotated[bool, typer.Option(
        "--predict-kernels", help="predict every compute op that carries FLOPs or bytes with "
        "the compute model, even where the trace recorded its duration")] = False,
    scale_link: Annotated[Optional[list[str]], typer.Option(
        help="what-if: NAME=FACTOR scales links of a kind or role (ib=2.0, nvlink=0.5), of a "
             "node (fabric/spine0=0.5) or one link A--B")] = None,
    slow_rank: Annotated[Optional[list[str]], typer.Option(
        help="what-if: RANK=FACTOR makes a rank's compute and host ops slower (3=1.3)")] = None,
    fail: Annotated[Optional[list[str]], typer.Option(
        help="what-if: a node (switch, NIC, GPU), server or link A--B is down; routes go "
             "around it; prints the step-time cost against the healthy cluster")] = None,
    restart: Annotated[Optional[str], typer.Option(
        "--restart", metavar="MODE", help="with GPUs down: drain their servers and restart "
        "a generated transformer on the rest: best (search the configurations for the GPUs "
        "left) or same-shape (the same model parallelism, fewer replicas; no search)")] = None,
    flap: Annotated[Optional[list[str]], typer.Option(
        help="what-if: NAME=FRACTION, a node (e.g. a NIC) or link A--B down that fraction of "
             "the time, run at its average bandwidth (node0/nic3=0.1)")] = None,
    price: Annotated[Optional[float], typer.Option(
        min=0.0, help="USD per accelerator-hour (default: topology, then built-in)")] = None,
    token_budget: Annotated[Optional[float], typer.Option(
        min=1.0, help="tokens to train on: print the run's time and cost")] = None,
    comm_sms: Annotated[Optional[float], typer.Option(
        "--comm-sms", min=0.0, help="what-if: SMs a running collective takes from the "
        "compute of its GPU (default: the topology's network.comm_sms, else 16 on DGX-class "
        "A100/H100; 0: no interference)")] = None,
) -> None:
    """Replay a workload or recorded traces on a cluster; print step time, breakdown and
    busiest links (and, for profiler traces, simulated vs recorded step times)."""
    from simcluster.cli import render_run
    from simcluster.cli.mix import job_mix, one_placement, step_times_us
    from simcluster.cli.progress import tracker
    from simcluster.degradation import degradation, restarted
    from simcluster.jobs import MixResult
    from simcluster.scenario import Scenario, WhatIf
    from simcluster.topology import load_cluster, resolve_device
    from simcluster.workload import load_workload

    console = terminal()
    workloads = [load_workload(t, step=step_option(step), et=et, model_copies=model_copies,
                               align=align_option(align), unexplained_waits=unexplained_waits)
                 for t in traces]
    workload = workloads[0]
    cluster = None if topology is None else load_cluster(topology)
    chosen: str | AcceleratorSpec | None = device
    if device_file or (device or "").lower().endswith((".yaml", ".yml")):
        chosen = resolve_device(device, device_file or [])
    whatif = WhatIf(device=chosen, price=price, token_budget=token_budget,
                    scale_links={k: float(v) for k, v in pairs("--scale-link", scale_link or [])},
                    slow_ranks={int(k): float(v) for k, v in pairs("--slow-rank",
                                                                     slow_rank or [])},
                    fail=tuple(fail or ()),
                    flap={k: float(v) for k, v in pairs("--flap", flap or [])},
                    comm_sms=comm_sms)
    mixed = len(workloads) > 1 or bool(start_us) or bool(repeat)
    if mixed and restart:
        raise WorkloadError("--restart runs one job on the servers that remain; it is not "
                            "combined with a job mix (several TRACEs, --start-us or --repeat).")
    scenario: Scenario | JobMix
    if mixed:
        scenario = job_mix(workloads, cluster, placement or [], start_us or [], repeat or [],
                           whatif, top, predict_kernels)
    else:
        asked = Scenario(workload, cluster, one_placement(placement), whatif, top_links=top,
                         predict_kernels=predict_kernels)
        again = restarted(asked, restart) if restart else None
        scenario = again.scenario if again is not None else asked
    if not quiet and not as_json and sum(w.num_ops for w in workloads) >= PROGRESS_MIN_OPS:
        with tracker("simulating") as update:
            result = scenario.run(progress=lambda done, total: update("", done, total))
    else:
        result = scenario.run()
    cost = degradation(scenario, result, asked, again) if whatif.degrades and not mixed \
        else None
    if out is not None:
        result.write(out)
    if quiet:
        for step_us in step_times_us(result):
            console.print(f"{step_us:.3f}")
        return
    if as_json:
        print_json({**result.document(), "output_files": list(result.output_files)
                    if out is not None else [],
                    **({"degradation": cost.to_json()} if cost else {})})
        return
    view = render_run.mix_view(result, traces) if isinstance(result, MixResult) else (
        render_run.replay_view(result, traces[0].name))
    for renderable, soft_wrap in view:
        console.print(renderable, soft_wrap=soft_wrap)
    if cost is not None:
        console.print(render_run.degradation_line(cost), soft_wrap=True)
    if out is not None:
        files = result.output_files
        console.print(f"wrote {len(files)} files to {out}/: {', '.join(files)}")


# -- outputs of a run folder -----------------------------------------------------------------------

@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="a replay's --out folder")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="default: RUN/report.html")] = None,
) -> None:
    """Write one self-contained HTML page with plots: timeline, link heatmap, breakdown,
    bottlenecks, critical path (needs the report extra: plotly)."""
    from simcluster.export import load_run
    from simcluster.export.report import write_report

    folder = load_run(run_dir)
    out = write_report(folder.run, folder.summary, folder.ranks, folder.critical_path,
                       output or run_dir / "report.html", fidelity=folder.fidelity,
                       import_report=folder.import_report)
    terminal().print(f"wrote {out}")


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
    from simcluster.export import load_run
    from simcluster.export.perfetto import write_perfetto

    if format != "perfetto":
        raise SimclusterError(f"--format {format!r}: the supported format is perfetto.")
    folder = load_run(run_dir)
    out = write_perfetto(folder.run, output or run_dir / "trace.json", max_ranks, max_links)
    terminal().print(f"wrote {out} (open it in https://ui.perfetto.dev)")


@app.command("diff")
def diff_cmd(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="the baseline run folder")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="the what-if run folder")],
    top: Annotated[int, typer.Option(min=1, help="links and ops to list")] = 10,
) -> None:
    """What changed from RUN_A to RUN_B: step time, breakdown, limits, links, ops."""
    from simcluster.analysis.diff import diff_runs
    from simcluster.cli import render_run
    from simcluster.export import load_run

    a, b = load_run(run_a), load_run(run_b)
    d = diff_runs(a.run, a.summary, b.run, b.summary, top)
    for renderable in render_run.diff_view(d, str(run_a), str(run_b)):
        terminal().print(renderable)



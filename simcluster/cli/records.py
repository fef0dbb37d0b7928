"""The ``record`` command: run a PyTorch training script on fake tensors and write what it
asks the GPUs to do as a native workload (``docs/record.md``)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from simcluster.cli.apps import JSON_HELP, app, print_json, terminal

GIB = float(1 << 30)


@app.command("record", context_settings={"allow_extra_args": True,
                                         "ignore_unknown_options": True})
def record(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="training script (run unmodified); its own "
                                           "arguments follow it, after --")],
    output: Annotated[Path, typer.Option("-o", "--output", help="workload file to write")],
    world_size: Annotated[int, typer.Option(min=1, help="ranks of the job")] = 8,
    gpus_per_node: Annotated[int, typer.Option(
        min=1, help="what torch.cuda.device_count() answers")] = 8,
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps to record")] = 1,
    warmup: Annotated[int, typer.Option(min=0, help="optimizer steps to run first")] = 1,
    device: Annotated[str, typer.Option(help="the target GPU (catalog name or alias)")
                      ] = "H100-SXM5-80GB",
    name: Annotated[str, typer.Option(help="workload name [default: the script's]")] = "",
    fold: Annotated[bool, typer.Option(
        "--fold/--no-fold", help="run rank 0 only, the others mirroring its collectives "
        "(data parallelism); --no-fold runs the script once as each rank")] = True,
    host: Annotated[bool, typer.Option(
        "--host/--no-host", help="launch each op from a host thread at eager PyTorch's "
        "measured cost (docs/compute.md#host-time); --no-host: GPU streams only")] = True,
    fuse: Annotated[str, typer.Option(
        help="memory-bound operators recorded as fused kernels, as TorchInductor fuses them: "
        "compiled (what torch.compile'd code runs), all (the whole step), none")
                    ] = "compiled",
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Record training steps of a PyTorch script without a GPU (fake tensors, a fake
    process group of WORLD_SIZE ranks) as a workload for `simcluster replay`."""
    from simcluster.workload import write_workload
    from simcluster.workload.record import RecordOptions, record_script, summary

    options = RecordOptions(world_size=world_size, gpus_per_node=gpus_per_node, steps=steps,
                            warmup=warmup, device=device, name=name or script.stem,
                            fold=fold, host=host, fuse=fuse)
    with contextlib.redirect_stdout(sys.stderr):  # the script's prints: stdout is ours
        wl = record_script(script, list(ctx.args), options)
    write_workload(wl, output)
    report = {"output": str(output), **summary(wl)}
    if json_out:
        print_json(report)
        return
    mem, capacity = report["memory"], report["capacity_bytes"]
    console = terminal()
    how = "rank 0 recorded, the others mirror its collectives" if fold else "each recorded"
    console.print(f"wrote {output}: {script.name}, {steps} step(s) after {warmup} warm-up, "
                  f"{wl.num_ranks} ranks ({how}), {wl.num_ops:,} ops")
    console.print("rank 0: " + ", ".join(f"{v:,} {k}" for k, v in report["rank0"].items())
                  + f"; {report['flops_per_step'] / 1e12:.3f} TFLOP per step")
    console.print("memory per GPU (GiB): " + ", ".join(
        f"{k} {v / GIB:.3f}" for k, v in mem.items()))
    if not report["fits"]:
        console.print(f"[bold red]out of memory[/] on {wl.meta.recorded_device}: the peak "
                      f"{mem['peak'] / GIB:.2f} GiB exceeds its {capacity / GIB:.0f} GiB "
                      f"(parameters {mem['parameters'] / GIB:.2f}, gradients "
                      f"{mem['gradients'] / GIB:.2f}, optimizer {mem['optimizer'] / GIB:.2f}, "
                      f"activations and other {mem['other'] / GIB:.2f} GiB)")

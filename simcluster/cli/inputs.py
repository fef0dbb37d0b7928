"""Commands about inputs: ``topology`` (check, show, schema), ``trace`` (info, import) and
``generate`` (data-parallel, transformer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from simcluster.cli.apps import (
    JSON_HELP,
    print_json,
    ALIGN_HELP,
    COPIES_HELP,
    ET_HELP,
    STEP_HELP,
    TRACE_HELP,
    WAITS_HELP,
    align_option,
    generate_app,
    step_option,
    terminal,
    topology_app,
    trace_app,
    trace_import_app,
)
from simcluster.workload.generate.frameworks import FRAMEWORKS
from simcluster.workload.generate.presets import PRESETS
from simcluster.workload.generate.transformer.config import (
    ATTENTION_KERNELS,
    KERNEL_SETS,
    LOSS_KERNELS,
)

# -- topology -------------------------------------------------------------------------------------

@topology_app.command("check")
def topology_check(
    path: Annotated[Path, typer.Argument(metavar="TOPOLOGY", help="topology YAML file")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Validate a topology file and print a one-line summary."""
    from simcluster.topology import load_cluster

    cluster = load_cluster(path)
    c = cluster.counts()
    if as_json:
        print_json({"path": str(path), "name": cluster.name, "accelerators": c.get(
            "accelerator", 0), "hosts": c["hosts"], "switches": c.get("switch", 0),
            "nics": c.get("nic", 0), "links": c["links"]})
        return
    terminal().print(
        f"ok: {path}: {cluster.name}: {c.get('accelerator', 0)} accelerators, {c['hosts']} "
        f"host(s), {c.get('switch', 0)} switches, {c.get('nic', 0)} NICs, {c['links']} links"
    )


@topology_app.command("show")
def topology_show(
    path: Annotated[Path, typer.Argument(metavar="TOPOLOGY", help="topology YAML file")],
    full: Annotated[bool, typer.Option(help="show every host, not one per kind")] = False,
) -> None:
    """Show a topology as a tree: hosts, accelerators, switches, NICs, links, bandwidths."""
    from simcluster.cli import render
    from simcluster.topology import load_cluster

    terminal().print(render.topology_tree(load_cluster(path), full=full))


@topology_app.command("schema")
def topology_schema(
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="write here instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of topology files (for editor completion and checks)."""
    from simcluster.topology import json_schema

    text = json_schema()
    if output is None:
        sys.stdout.write(text)
        return
    from simcluster.atomic import atomic_path

    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")


# -- trace ----------------------------------------------------------------------------------------

@trace_app.command("info")
def trace_info(
    path: Annotated[Path, typer.Argument(metavar="TRACE", help=TRACE_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Summarise a workload: ranks, ops by kind, collectives, groups, bytes."""
    from simcluster.analysis.workload import workload_stats
    from simcluster.cli import render
    from simcluster.workload import load_workload

    workload = load_workload(path)
    if as_json:
        print_json({"path": str(path), **workload_stats(workload).as_dict(workload)})
        return
    terminal().print(render.workload_info(workload, str(path)))


@trace_import_app.command("kineto")
def trace_import_kineto(
    path: Annotated[Path, typer.Argument(metavar="DIR", help="folder of per-rank PyTorch "
                                         "profiler traces (.json, .json.gz), or one file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="workload file to write")],
    et: Annotated[Optional[Path], typer.Option("--et", help=ET_HELP)] = None,
    step: Annotated[str, typer.Option(help=STEP_HELP)] = "all",
    model_copies: Annotated[bool, typer.Option("--model-copies", help=COPIES_HELP)] = False,
    align: Annotated[str, typer.Option(help=ALIGN_HELP)] = "clock",
    unexplained_waits: Annotated[bool, typer.Option(help=WAITS_HELP)] = True,
) -> None:
    """Import PyTorch profiler (Kineto) traces; print what was used, skipped and assumed."""
    from simcluster.cli import render
    from simcluster.workload import write_workload
    from simcluster.workload.kineto import KinetoOptions, import_kineto

    wl = import_kineto(path, KinetoOptions(step=step_option(step), et=et, model_copies=model_copies,
                                           align=align_option(align),
                                           unexplained_waits=unexplained_waits))
    write_workload(wl, output)
    terminal().print(render.import_summary(wl, output), soft_wrap=True)


@trace_import_app.command("chakra")
def trace_import_chakra(
    path: Annotated[Path, typer.Argument(metavar="DIR", help="folder of Chakra traces "
                                         "(<prefix>.<rank>.et), or one file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="workload file to write")],
) -> None:
    """Import Chakra execution traces; print what was used, skipped and assumed."""
    from simcluster.cli import render
    from simcluster.workload import write_workload
    from simcluster.workload.chakra import import_chakra

    wl = import_chakra(path)
    write_workload(wl, output)
    terminal().print(render.import_summary(wl, output), soft_wrap=True)


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
    from simcluster.workload import write_workload
    from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel

    cfg = DataParallelConfig(
        ranks=ranks, micro_batch=micro_batch, dtype=dtype, bucket_mb=bucket_mb, steps=steps,
        name=name, dims=TransformerDims(layers=layers, hidden=hidden, seq_len=seq_len,
                                        vocab=vocab),
    )
    wl = data_parallel(cfg)
    write_workload(wl, output)
    terminal().print(f"wrote {output}: {wl.num_ranks} ranks, {wl.num_ops:,} ops, "
                     f"{cfg.dims.params / 1e6:.1f} M parameters")


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
    experts: Annotated[int | None, typer.Option(
        min=0, help="override: routed experts per MoE layer (0: dense)")] = None,
    top_k: Annotated[int | None, typer.Option(
        min=1, help="override: routed experts per token")] = None,
    shared_experts: Annotated[int | None, typer.Option(
        min=0, help="override: shared experts")] = None,
    moe_ffn: Annotated[int | None, typer.Option(
        min=1, help="override: width of one expert's MLP")] = None,
    dense_layers: Annotated[int | None, typer.Option(
        min=0, help="override: first layers with a dense MLP")] = None,
    tp: Annotated[int, typer.Option(min=1, help="tensor-parallel size")] = 1,
    pp: Annotated[int, typer.Option(min=1, help="pipeline stages")] = 1,
    dp: Annotated[int, typer.Option(min=1, help="data-parallel replicas")] = 1,
    ep: Annotated[int, typer.Option(
        min=1, help="expert-parallel size, carved out of the data-parallel ranks")] = 1,
    expert_tp: Annotated[int, typer.Option(min=1, help="experts' tensor parallelism: 1 or tp")
                         ] = 1,
    capacity_factor: Annotated[float | None, typer.Option(
        help="expert capacity over the mean share [default: dropless]")] = None,
    moe_skew: Annotated[float, typer.Option(
        help="tokens of the busiest EP rank over the mean (1 to ep)")] = 1.0,
    moe_dispatcher: Annotated[str, typer.Option(help="alltoall or allgather")] = "alltoall",
    moe_pad_to_capacity: Annotated[bool, typer.Option(
        help="pad every expert's input to its capacity (needs --capacity-factor)")] = False,
    moe_grouped_gemm: Annotated[bool, typer.Option(
        help="local experts as one grouped GEMM; --no-moe-grouped-gemm: SequentialMLP")
                                ] = True,
    cp: Annotated[int, typer.Option(
        help="context-parallel size: each sequence split over cp ranks (ring attention)")
                  ] = 1,
    cp_comm: Annotated[str, typer.Option(
        help="context-parallel exchange: p2p (ring attention) or a2a (Ulysses)")
                       ] = "p2p",
    micro_batch: Annotated[int, typer.Option(min=1, help="sequences per micro-batch")] = 1,
    global_batch: Annotated[Optional[int], typer.Option(
        min=1, help="sequences per step (default micro-batch x dp)")] = None,
    schedule: Annotated[str, typer.Option(
        help="1f1b, gpipe or 1f1b-interleaved:V")] = "1f1b",
    recompute: Annotated[str, typer.Option(
        help="none, selective, full or save_qkv_proj (JAX remat keeping Q, K, V)")] = "none",
    framework: Annotated[Optional[str], typer.Option(
        help=f"fill the settings not given as this framework does: {', '.join(FRAMEWORKS)}")
                         ] = None,
    sequence_parallel: Annotated[Optional[bool], typer.Option(
        "--sequence-parallel/--no-sequence-parallel", help="[default: off]")] = None,
    zero: Annotated[Optional[str], typer.Option(
        help="ZeRO stage 0, 1, 2, 3, or fsdp [default: 0]")] = None,
    shard_group: Annotated[int, typer.Option(
        min=0, help="hybrid sharding: ZeRO within groups of N consecutive data-parallel "
        "replicas, gradient shards all-reduced across the groups (FSDP HYBRID_SHARD); must "
        "divide dp [default: 0, all of dp]")] = 0,
    dtype: Annotated[str, typer.Option(help="bf16, fp16 or fp8")] = "bf16",
    flash_attention: Annotated[Optional[bool], typer.Option(
        "--flash-attention/--no-flash-attention", help="[default: on]")] = None,
    attention_kernel: Annotated[Optional[str], typer.Option(
        help=f"{', '.join(ATTENTION_KERNELS)} [default: flash]")] = None,
    loss_kernel: Annotated[Optional[str], typer.Option(
        help=f"{', '.join(LOSS_KERNELS)} [default: fused]")] = None,
    kernels: Annotated[Optional[str], typer.Option(
        help=f"kernels around the GEMMs: {', '.join(KERNEL_SETS)} [default: current]")
                       ] = None,
    dp_overlap: Annotated[Optional[bool], typer.Option(
        "--dp-overlap/--no-dp-overlap",
        help="overlap gradient reduction with backward [default: on]")] = None,
    tp_overlap: Annotated[Optional[bool], typer.Option(
        "--tp-overlap/--no-tp-overlap",
        help="overlap backward TP reductions with weight-gradient GEMMs [default: on]")
                          ] = None,
    tp_comm_overlap: Annotated[Optional[bool], typer.Option(
        "--tp-comm-overlap/--no-tp-comm-overlap",
        help="Transformer Engine userbuffers: SP all-gathers and reduce-scatters under "
        "their GEMMs' chunks (needs sequence parallelism) [default: off; on in the "
        "megatron-core and nemo profiles]")] = None,
    bucket_params: Annotated[int, typer.Option(min=1, help="parameters per gradient bucket")
                             ] = 40_000_000,
    bucket_per_dp_rank: Annotated[Optional[int], typer.Option(
        min=0, help="a bucket holds at least this many parameters per DP rank "
        "(Megatron-Core: 1000000) [default: 0]")] = None,
    bucket_split: Annotated[bool, typer.Option(
        "--bucket-split/--no-bucket-split",
        help="buckets of exactly --bucket-params, a layer split over several (Apex's "
        "DistributedFusedAdam, NeMo 1.x recipes) [default: whole layers per bucket]")
                            ] = False,
    fold: Annotated[bool, typer.Option(
        "--fold/--no-fold", help="store one data-parallel replica (same answer, faster)")
                    ] = True,
    host_us: Annotated[Optional[float], typer.Option(
        min=0.0, help="host us to launch each GPU op: a host timeline per rank (eager "
        "PyTorch: about 30; docs/compute.md#host-time) [default: 0, none]")] = None,
    cuda_graphs: Annotated[Optional[bool], typer.Option(
        "--cuda-graphs/--no-cuda-graphs",
        help="one launch per layer forward or backward (with --host-us) [default: off]")
                           ] = None,
    steps: Annotated[int, typer.Option(min=1)] = 1,
    name: Annotated[str, typer.Option()] = "",
) -> None:
    """Generate training steps of a decoder-only transformer (TP, PP, DP, ZeRO, recompute,
    mixture-of-experts layers with expert parallelism, context parallelism)."""
    from simcluster.analysis.training import TrainingInfo
    from simcluster.cli import render_run
    from simcluster.workload import write_workload
    from simcluster.workload.generate.registry import transformer_config
    from simcluster.workload.generate.transformer import transformer

    cfg = transformer_config({
        "preset": preset, "layers": layers, "hidden": hidden, "heads": heads,
        "kv_heads": kv_heads, "ffn": ffn, "vocab": vocab, "seq_len": seq_len, "tp": tp, "pp": pp,
        "experts": experts, "top_k": top_k, "shared_experts": shared_experts,
        "moe_ffn": moe_ffn, "dense_layers": dense_layers, "ep": ep, "expert_tp": expert_tp,
        "capacity_factor": capacity_factor, "moe_skew": moe_skew,
        "moe_dispatcher": moe_dispatcher, "moe_pad_to_capacity": moe_pad_to_capacity,
        "moe_grouped_gemm": moe_grouped_gemm, "cp": cp, "cp_comm": cp_comm, "dp": dp, "micro_batch": micro_batch, "global_batch": global_batch,
        "sequence_parallel": sequence_parallel, "schedule": schedule, "zero": zero,
        "shard_group": shard_group,
        "recompute": recompute, "dtype": dtype, "flash_attention": flash_attention,
        "attention_kernel": attention_kernel, "loss_kernel": loss_kernel,
        "kernels": kernels, "framework": framework, "dp_overlap": dp_overlap,
        "tp_overlap": tp_overlap, "tp_comm_overlap": tp_comm_overlap,
        "bucket_params": bucket_params, "bucket_per_dp_rank": bucket_per_dp_rank,
        "bucket_split": bucket_split,
        "fold": fold, "host_us": host_us, "cuda_graphs": cuda_graphs, "steps": steps,
        "name": name})
    model = cfg.model
    wl = transformer(cfg)
    write_workload(wl, output)
    console = terminal()
    info = TrainingInfo.of(wl)
    assert info is not None
    extra = wl.meta.extra
    full = cfg.ep_span
    fold_note = (f" (folded: {'replica 0' if full == 1 else f'replicas 0-{full - 1}'} in full, "
                 f"{cfg.dp - full} mirror replica(s))" if extra["fold"] else "")
    active = (f" ({model.active_params / 1e9:.2f} B active, {model.experts} experts top-"
              f"{model.top_k}, ep {cfg.ep})" if model.moe else "")
    console.print(f"wrote {output}: {model.name}, {model.params / 1e9:.2f} B parameters{active}, "
                  f"{wl.num_ranks} ranks, {wl.num_ops:,} ops{fold_note}")
    pipe = extra["pipeline"]
    cp_note = (f", split over {cfg.cp} context-parallel ranks ({model.seq_len // cfg.cp} "
               f"tokens each)" if cfg.cp > 1 else "")
    console.print(f"{cfg.batch} sequences x {model.seq_len} tokens per step{cp_note}, "
                  f"{pipe['micro_batches']} micro-batch(es) per replica, schedule "
                  f"{pipe['schedule']} (ideal bubble {100 * pipe['ideal_bubble']:.1f}%)")
    if cfg.framework:
        settings = FRAMEWORKS[cfg.framework].settings
        console.print(f"framework {cfg.framework}: " + ", ".join(
            f"{k} {getattr(cfg, k)}" for k in settings))
    console.print(render_run.memory_table(info))



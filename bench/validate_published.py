"""Predict published training step times that no parameter was fitted on, and compare.

Reads ``bench/data/published/training_steps.csv`` (measured step times of LLM pretraining
runs from public sources; ``SOURCES.md`` next to it says where each number comes from and
which rows are held out). For every row it can map, it builds the generator configuration
from the row's columns, replays it on a cluster of that many GPUs of that type, and compares
the predicted step time with the measured one. Nothing in the simulator is changed or fitted
here: this is the baseline of issue 12.

What maps: decoder-only transformers, dense or mixture-of-experts, on the GPUs this script
builds clusters of (H100-SXM5-80GB, A100-SXM4-80GB/40GB, H200). What does not, and is counted
with its reason: MoE rows without their expert count or top-k, other GPUs (B200, GB200, GB300,
the 96 GB H100 of Meta's Grand Teton), rows
without a measured step time or model dimensions,
rows whose parallel sizes or batch do not add up, and FSDP/ZeRO-2/3 together with pipeline
parallelism (the generator does not combine them).

How a row becomes a configuration (``map_row``; ``docs/validation.md`` lists every
assumption):

- model: layers, hidden, heads, kv_heads, ffn, vocab, seq_len from the row; the architecture
  family (Llama: SwiGLU, RMSNorm, no biases, RoPE, untied; Nemotron-4: squared-ReLU MLP of
  two matrices, no biases, RoPE, untied; MPT: GELU, no biases, a learned position table,
  tied, no dropout; GPT-3 / Megatron GPT: GELU, biases, learned positions, dropout) from the
  model name and ``arch_notes``;
- parallelism: tp, pp, dp, cp from the row (``tp * pp * dp * cp`` must equal the GPU
  count), ``vp > 1`` -> ``1f1b-interleaved:vp``, else ``1f1b``; cp > 1 runs ring attention
  (``cp_comm=p2p``, Megatron-Core's default);
- mixture of experts (``moe_params``): experts and top-k from the row, experts as wide as
  the row's ``ffn``, every layer MoE, ``ep`` from the row carved out of the dp x cp ranks,
  expert TP = TP (Megatron-Core's default), dropless with balanced routing; the S1 Grok-1
  rows with their recipe's capacity factor 1.0, padding to capacity and SequentialMLP
  (``S1_MOE_RECIPES``);
- batch: micro_batch and global_batch from the row; where the row has no micro-batch, 1 for
  Megatron/NeMo and pipelined runs, else the local batch (torchtitan: no accumulation);
- sequence_parallel from the row; empty -> on when tp > 1 (Megatron/NeMo recipes);
- recompute none/selective/full from the row; empty -> none, except MaxText: the recipe's
  remat policy (``MAXTEXT_REMAT``: S1's Llama 3 70B ``save_qkv_proj``), else MaxText's
  default ``full``;
- sharding: PyTorch FSDP FULL_SHARD, FSDP2, MaxText FSDP and Megatron-FSDP -> ``zero=3``;
  a shard group of ``FSDP=N`` x ``R`` pure-DP replicas (MaxText's dcn_data_parallelism)
  -> hybrid sharding, ``shard_group=N``; FSDP SHARD_GRAD_OP -> ``zero=2``; Megatron's distributed optimizer (stated, or a
  NeMo/Megatron row that does not say) -> ``zero=1``; a recipe without it -> ``zero=0``;
- precision: fp8 if the row says fp8 (any recipe), else bf16 (also when not stated); FSDP
  ``mixed_precision=PURE`` reduces gradients in bf16 (``grad_bytes=2``);
- flash attention on (every source uses a fused attention kernel);
- gradient buckets: S1's NeMo rows take their recipe's (``S1_RECIPES``: Apex's byte-sized
  buckets with bf16 reduction, or Megatron-Core's max(40M, 1M x DP) parameters); other
  Megatron/NeMo rows the profile's (Megatron-Core's max(40M, 1M x DP)); others the
  generator's default;
- cluster: DGX-class servers of 8 GPUs (``dgx-h100``, ``dgx-a100`` or ``dgx-h200`` preset,
  the row's GPU), on a rail-optimized non-blocking fabric as in the bundled SuperPOD
  topologies (scalable units of 32 H100 or 20 A100 servers), as many servers as the row's
  GPU count needs; llm-foundry's A100 tables say 1,600 Gb/s RoCE per server: 8 x 200 Gb/s
  Ethernet NICs.

Large rows: ``fold=True`` (only data-parallel replica 0 runs its compute). A row whose
workload would exceed ``--max-ops`` ops is simulated at two smaller micro-batch counts and
extrapolated linearly to its own (as ``bench/validate_megatron.py`` does: each further
micro-batch adds one steady-state period). ``--timeout`` bounds each row's wall time.

    python bench/validate_published.py [--split validate|calibrate|all] [--source S1 S2]
        [--rows 35 36] [--max-rows N] [--max-ops 5e5] [--timeout 300] [--markdown]
        [--json results.json] [--load results.json ...] [--skipped]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT / "bench" / "data" / "published" / "training_steps.csv"

# Server presets and SuperPOD scalable units (servers per unit, spines), as in
# topologies/dgx-h100-superpod.yaml and topologies/dgx-a100-superpod.yaml.
PRESET = {"H100-SXM5-80GB": "dgx-h100", "A100-SXM4-80GB": "dgx-a100",
          "A100-SXM4-40GB": "dgx-a100", "H200": "dgx-h200"}
SCALABLE_UNIT = {"dgx-h100": (32, 16), "dgx-a100": (20, 20), "dgx-h200": (32, 16)}
GPUS_PER_SERVER = 8
MIN_SPEARMAN = 4  # configurations per (source, model) group for a rank correlation


# -- the rows ------------------------------------------------------------------------------

def read_csv(path: Path = DEFAULT_CSV) -> list[dict[str, str]]:
    """The rows of the CSV as dicts of strings (every column kept)."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def source_matches(source_id: str, wanted: str) -> bool:
    """``S1`` matches ``S1_dgxc_v25.02`` (not ``S1b_...``); a full id matches itself."""
    return source_id == wanted or source_id.startswith(wanted.rstrip("_") + "_")


def split_of(row: dict[str, str]) -> str:
    """``validate``, ``calibrate`` or ``other`` from ``proposed_split`` (which may carry a
    remark, e.g. ``calibrate (low confidence) or exclude``)."""
    s = row.get("proposed_split", "").strip().lower()
    if s.startswith("validate"):
        return "validate"
    if s.startswith("calibrate"):
        return "calibrate"
    return "other"


def _int(text: str) -> int | None:
    """The leading integer of a cell (``"50257 (GPT-2 BPE, padded)"`` -> 50257)."""
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Skip:
    """A row that is not simulated, and why."""

    row_id: str
    source: str
    model: str
    split: str
    reason: str


@dataclass(frozen=True)
class Mapped:
    """A row as a generator configuration and a cluster."""

    row_id: str
    source: str
    model: str
    split: str
    gpu: str            # catalog model
    gpus: int
    params: dict[str, Any]  # sc.generate("transformer", **params)
    measured_s: float
    nics: dict[str, Any] | None = None  # server NIC override (None: the preset's)
    assumptions: tuple[str, ...] = ()

    @property
    def tp(self) -> int:
        return self.params["tp"]

    @property
    def pp(self) -> int:
        return self.params["pp"]

    @property
    def dp(self) -> int:
        return self.params["dp"]

    @property
    def global_batch(self) -> int:
        return self.params["global_batch"]

    @property
    def micro_batches(self) -> int:
        return self.global_batch // (self.params["micro_batch"] * self.dp)

    @property
    def dtype(self) -> str:
        return self.params["dtype"]

    def param_count(self) -> int:
        from simcluster.workload.generate.presets import model_from
        keys = ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab", "seq_len",
                "gated_mlp", "norm", "biases", "learned_positions", "tied_embeddings",
                "dropout", "experts", "top_k")
        return model_from(None, {k: self.params[k] for k in keys if k in self.params}).params


def catalog_gpu(text: str) -> tuple[str | None, str]:
    """The catalog model of a row's ``gpu`` cell, or None and why not."""
    t = text.strip()
    low = t.lower()
    if low.startswith("h100") and "96gb" in low.replace(" ", ""):
        return None, "GPU not in the catalog: H100 96GB HBM2e at 500 W (Grand Teton)"
    if low.startswith("h100"):
        return "H100-SXM5-80GB", ""
    if low.startswith("a100"):
        return ("A100-SXM4-40GB" if "40gb" in low else "A100-SXM4-80GB"), ""
    if low.startswith("h200"):
        return "H200", ""
    name = t.split(" ")[0] if t else "?"
    return None, f"GPU not in the catalog: {name}"


# Architecture families: the ModelSpec fields the CSV's dimensions do not give.
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": dict(gated_mlp=True, norm="rmsnorm", biases=False, learned_positions=False,
                  tied_embeddings=False, dropout=False),
    "nemotron": dict(gated_mlp=False, norm="layernorm", biases=False, learned_positions=False,
                     tied_embeddings=False, dropout=False),
    "mpt": dict(gated_mlp=False, norm="layernorm", biases=False, learned_positions=True,
                tied_embeddings=True, dropout=False),
    "gpt": dict(gated_mlp=False, norm="layernorm", biases=True, learned_positions=True,
                tied_embeddings=True, dropout=True),
    "megatron-gpt": dict(gated_mlp=False, norm="layernorm", biases=True,
                         learned_positions=True, tied_embeddings=False, dropout=True),
}


def family_of(row: dict[str, str]) -> str:
    model = row["model"].lower()
    arch = row.get("arch_notes", "").lower()
    if "llama" in model or "swiglu" in arch or "geglu" in arch:
        return "llama"
    if "nemotron" in model:
        return "nemotron"
    if model.startswith("mpt"):
        return "mpt"
    if row["source_id"].startswith("S4_"):
        return "megatron-gpt"
    return "gpt"


def _megatron_like(row: dict[str, str]) -> bool:
    fw = row.get("framework", "").lower()
    return "nemo" in fw or "megatron" in fw


def framework_of(row: dict[str, str]) -> str:
    """The generator's framework profile for a row's framework (``frameworks.py``)."""
    fw = row.get("framework", "").lower()
    if "llm-foundry" in fw or "composer" in fw:
        return "llm-foundry-2023"
    if "torchtitan" in fw:
        return "torchtitan"
    if "nemo" in fw:
        return "nemo"
    return "megatron-core" if "megatron" in fw else ""


def moe_params(row: dict[str, str]) -> dict[str, Any] | None:
    """The generator's MoE settings of a row: none for a dense model, None for a MoE row
    that lacks its expert count or top-k. Experts are MLPs of the row's ``ffn`` width,
    every layer is MoE, EP from the row (1 if empty), expert TP = TP (Megatron-Core's
    default since 0.10), balanced routing (``moe_skew`` 1). For the Grok-1 rows balanced is
    exact, not a bound: their recipe (dgxc-benchmarking grok1/grok1_314b.yaml) pads every
    expert's input to capacity factor 1.0 (``moe_pad_expert_input_to_capacity``), so every
    expert computes exactly its balanced share whatever the routing."""
    if not (row.get("moe_experts", "").strip() or "moe" in row.get("workload", "").lower()):
        return {}
    experts, top_k = _int(row.get("moe_experts", "")), _int(row.get("moe_topk", ""))
    if not experts or not top_k:
        return None
    tp = _int(row.get("tp", "")) or 1
    out = dict(experts=experts, top_k=top_k, ep=_int(row.get("ep", "")) or 1, expert_tp=tp)
    recipe = S1_MOE_RECIPES.get(row["model"]) if row["source_id"].startswith("S1_") else None
    return {**out, **(recipe or {})}


# The MoE settings of the S1 NeMo recipes (NVIDIA/dgxc-benchmarking, grok1/grok1_314b.yaml;
# NeMo 24.12, Megatron-Core core_v0.10.0): capacity factor 1.0 with every expert's input
# padded to it (``moe_pad_expert_input_to_capacity: true``) and ``moe_grouped_gemm: false``
# (SequentialMLP, one Transformer Engine MLP per local expert).
S1_MOE_RECIPES: dict[str, dict[str, Any]] = {
    "Grok-1 314B (MoE)": dict(capacity_factor=1.0, moe_pad_to_capacity=True,
                              moe_grouped_gemm=False),
}


# The gradient buckets of the S1 NeMo recipes (NVIDIA/dgxc-benchmarking@5f23b67, the
# ``optim`` section of each model's yaml): (optimizer, bucket_cap_mb, grad_sync_dtype bytes).
# ``distributed_fused_adam`` is Apex's DistributedFusedAdam (apex/contrib/optimizers/
# distributed_fused_adam.py: buckets of ``bucket_cap_mb`` MiB of ``grad_sync_dtype``, a
# parameter split over buckets); ``mcore_distributed_optim`` is Megatron-Core's DDP, whose
# default bucket is max(40M, 1M x data-parallel size) parameters
# (megatron/core/distributed/distributed_data_parallel.py) and which reduces in fp32.
S1_RECIPES: dict[str, tuple[str, float, int]] = {
    "Llama 3.1 8B": ("distributed_fused_adam", 75, 2),      # llama3.1/llama3.1_8b.yaml
    "Llama 3.1 70B": ("distributed_fused_adam", 75, 2),     # llama3.1/llama3.1_70b.yaml
    "Llama 3.1 405B": ("distributed_fused_adam", 125, 2),   # llama3.1/llama3.1_405b.yaml
    "Nemotron-4 340B": ("distributed_fused_adam", 50, 2),   # nemotron/nemotron4-340b-synth.yaml
    "GPT-3 175B": ("distributed_fused_adam", 220, 2),       # nemo_megatron/gpt3_175b_hydra.yaml
    "Nemotron-4 15B": ("mcore_distributed_optim", 100, 4),  # nemotron/nemotron4-15b-synth.yaml
}


def recipe_buckets(row: dict[str, str], dp_ranks: int) -> dict[str, Any]:
    """The generator's gradient-bucket settings of an S1 NeMo row from its recipe (empty
    for other rows): Apex's byte-sized buckets that split parameters, reduced in bf16; or
    Megatron-Core's default bucket of max(40M, 1M x ``dp_ranks``) parameters."""
    recipe = S1_RECIPES.get(row["model"]) if row["source_id"].startswith("S1_") else None
    if recipe is None or "nemo" not in row.get("framework", "").lower():
        return {}
    optimizer, cap_mb, gbytes = recipe
    if optimizer == "distributed_fused_adam":  # fixed-size buckets, whatever the DP size
        return {"bucket_split": True, "grad_bytes": gbytes, "bucket_per_dp_rank": 0,
                "bucket_params": int(cap_mb * 2**20 / gbytes)}
    return {"bucket_params": max(40_000_000, 1_000_000 * dp_ranks)}


# The MaxText recipe of S1 (NVIDIA/dgxc-benchmarking@5f23b67, maxtext/configure.sh, the only
# MaxText recipe there: Llama 3 70B) passes ``remat_policy=save_qkv_proj`` (its POLICY),
# ``attention=cudnn_flash_te``, ``scan_layers=true``, ``quantization=fp8`` for the fp8 rows,
# and ``ici_fsdp_parallelism=8`` x ``dcn_fsdp_parallelism=nodes`` (16 from 64 nodes on, with
# ``dcn_data_parallelism=nodes / 16``): FSDP within 128 GPUs, pure DP across them. MaxText's
# ``save_qkv_proj`` (MaxText/layers/models.py@d9a4b64, 2025-01-18, the month of the
# recipe's nvcr.io/nvidia/jax:25.01-maxtext container) saves only the Q, K, V projections.
MAXTEXT_REMAT = {"Llama 3 70B": "save_qkv_proj"}
MAXTEXT_DEFAULT_REMAT = "full"  # MaxText/configs/base.yml@d9a4b64: remat_policy: 'full'


def maxtext_remat(row: dict[str, str]) -> tuple[str, str] | None:
    """(recompute, note) of a MaxText row without a recompute cell: its recipe's remat
    policy, or MaxText's default; None for other frameworks."""
    if "maxtext" not in row.get("framework", "").lower():
        return None
    policy = MAXTEXT_REMAT.get(row["model"]) if row["source_id"].startswith("S1_") else None
    if policy:
        return policy, (f"remat_policy={policy} (the recipe's: dgxc-benchmarking@5f23b67 "
                        "maxtext/configure.sh)")
    return MAXTEXT_DEFAULT_REMAT, "full recompute (MaxText's default remat policy)"


def shard_group(shard: str, dp: int) -> int | None:
    """The shard group of a row stating hybrid sharding (``FSDP=128 ... x 4 pure-DP
    replicas``): 128 when there is more than one replica; 0 (shard over all of DP) when
    there is one or the cell says nothing of replicas; None when they do not multiply to
    ``dp``.

    >>> shard_group("FSDP=128 (ZeRO-3-like shard group) x 4 pure-DP replicas", 512)
    128
    >>> shard_group("FSDP=256 (ZeRO-3-like shard group) x 1 pure-DP replicas", 256)
    0
    """
    m = re.search(r"FSDP=(\d+).*?x\s*(\d+)\s*pure-DP replicas", shard)
    if not m:
        return 0
    size, replicas = int(m.group(1)), int(m.group(2))
    if size * replicas != dp:
        return None
    return size if replicas > 1 else 0


def map_row(row: dict[str, str]) -> Mapped | Skip:
    """The generator configuration and cluster of one CSV row, or why the row is skipped."""
    src, model, split = row["source_id"], row["model"], split_of(row)

    def skip(reason: str) -> Skip:
        return Skip(row["row_id"], src, model, split, reason)

    notes: list[str] = []
    step = row.get("derived_step_time_s", "").strip()
    if not step:
        return skip("no measured step time (global batch of the measurement not published)")
    moe = moe_params(row)
    if moe is None:
        return skip("MoE model without its expert count and top-k")
    if moe:
        notes.append("MoE: expert_tp = tp (Megatron-Core's default), balanced routing "
                     "(exact when the recipe pads to capacity 1.0, as Grok-1's does)"
                     + ("; the recipe's capacity 1.0 with padding and SequentialMLP"
                        if moe.get("moe_pad_to_capacity") else ""))
    gpu, why = catalog_gpu(row.get("gpu", ""))
    if gpu is None:
        return skip(why)
    cp = _int(row.get("cp", "")) or 1
    dims = {k: _int(row.get(k, "")) for k in ("layers", "hidden", "heads", "kv_heads", "ffn",
                                               "seq_len")}
    if any(v is None for v in dims.values()):
        return skip("model dimensions not published")
    vocab = _int(row.get("vocab", ""))
    if vocab is None:
        if "gpt" in model.lower():
            vocab = 50257
            notes.append("vocab 50257 (GPT-2 BPE, as the other NeMo GPT-3 rows)")
        elif "grok-1" in model.lower():
            vocab = 128256
            notes.append("vocab 128256 (the recipe's tokenizer, meta-llama/Meta-Llama-3-70B: "
                         "grok1/grok1_314b.yaml; not in the row)")
        else:
            return skip("model dimensions not published (vocab)")
    gpus = _int(row["num_gpus"]) or 0
    tp, pp, dp = (_int(row.get(k, "")) or 1 for k in ("tp", "pp", "dp"))
    if tp * pp * dp * cp != gpus:
        return skip(f"tp x pp x dp x cp = {tp * pp * dp * cp} is not the GPU count {gpus}")
    mb = _int(row.get("micro_batch", ""))
    gbs = _int(row.get("global_batch", ""))
    if gbs is None:
        return skip("global batch not published")
    if mb is None:
        if _megatron_like(row) or pp > 1:
            mb = 1
            notes.append("micro-batch 1 (not published)")
        else:  # FSDP trainers without gradient accumulation: the local batch in one go
            mb = max(1, gbs // dp)
            notes.append("micro-batch = local batch, no gradient accumulation (not published)")
    if gbs % (mb * dp):
        return skip(f"global batch {gbs} is not a multiple of micro_batch x dp = {mb * dp}")
    vp = _int(row.get("vp", "")) or 1
    schedule = f"1f1b-interleaved:{vp}" if vp > 1 and pp > 1 else "1f1b"

    sp_cell = row.get("sequence_parallel", "").strip().lower()
    if sp_cell.startswith("true"):
        sp = True
    elif sp_cell.startswith("false") or sp_cell.startswith("n/a"):
        sp = False
    else:
        sp = tp > 1 and _megatron_like(row)
        if tp > 1:
            notes.append(f"sequence parallel {'on' if sp else 'off'} (not published)")
    rc_cell = row.get("recompute", "").strip().lower()
    if rc_cell.startswith("selective"):
        recompute = "selective"
    elif rc_cell.startswith("full"):
        recompute = "full"
    elif not rc_cell and (remat := maxtext_remat(row)):
        recompute, note = remat
        notes.append(note)
    else:
        recompute = "none"
        if not rc_cell.startswith("none"):
            notes.append("no recompute (not published)")

    shard = row.get("fsdp_or_sharding", "")
    dopt = row.get("distributed_optimizer", "").strip().lower()
    if "SHARD_GRAD_OP" in shard:
        zero = 2
    elif ("FULL_SHARD" in shard or "FSDP2" in shard or "Megatron-FSDP" in shard
          or re.search(r"FSDP=[1-9]", shard)):
        zero = 3
    elif dopt.startswith("yes"):
        zero = 1
    elif _megatron_like(row):
        zero = 1
        notes.append("distributed optimizer (ZeRO-1; not published)")
    else:
        zero = 0
    if zero >= 2 and pp > 1:
        return skip("FSDP/ZeRO-2/3 with pipeline parallelism is not modelled")
    group = shard_group(shard, dp)
    if group is None:
        return skip(f"shard group x pure-DP replicas is not dp {dp}")
    if group:
        notes.append(f"hybrid sharding: ZeRO-3 within {group} GPUs, gradient shards "
                     f"all-reduced over {dp // group} groups")

    prec = row.get("precision", "").lower()
    if "fp8" in prec:
        dtype = "fp8"
    elif "fp16" in prec:
        dtype = "fp16"
    else:
        dtype = "bf16"
        if "bf16" not in prec:
            notes.append("bf16 (precision not published)")
    params: dict[str, Any] = dict(
        **dims, vocab=vocab, **FAMILIES[family_of(row)],
        tp=tp, pp=pp, dp=dp, cp=cp, micro_batch=mb, global_batch=gbs,
        schedule=schedule, sequence_parallel=sp, recompute=recompute, zero=zero, dtype=dtype,
        flash_attention=True, fold=True, framework=framework_of(row), **moe)
    if group:
        params["shard_group"] = group
    if "pure" in prec:
        params["grad_bytes"] = 2  # FSDP mixed_precision=PURE: bf16 gradient reduction
    params.update(recipe_buckets(row, dp * cp))
    nics = None
    if "roce" in row.get("interconnect", "").lower():
        nics = {"count": 8, "bandwidth_GBps": 25.0, "kind": "ethernet"}
    try:
        measured = float(step)
    except ValueError:
        return skip(f"step time {step!r} is not a number")
    return Mapped(row["row_id"], src, model, split, gpu, gpus, params, measured, nics,
                  tuple(notes))


def map_rows(rows: Iterable[dict[str, str]]) -> tuple[list[Mapped], list[Skip]]:
    mapped: list[Mapped] = []
    skipped: list[Skip] = []
    for r in rows:
        m = map_row(r)
        (mapped if isinstance(m, Mapped) else skipped).append(m)
    return mapped, skipped


# -- the cluster ---------------------------------------------------------------------------

def cluster_spec(gpu: str, gpus: int, nics: dict[str, Any] | None = None,
                 comm_sms: float | None = None,
                 compute: dict[str, Any] | None = None) -> dict[str, Any]:
    """A topology spec of ``gpus`` GPUs: DGX-class servers of 8 on a rail-optimized fabric
    with the SuperPOD's scalable unit (``topologies/dgx-*-superpod.yaml``); ``comm_sms``:
    the SMs collectives take from compute (None: the part's default); ``compute``: the GPU's
    ``compute:`` entry, which replaces the one the row's framework profile gives it at replay
    (``scenario.stack_calibration``; ``bench/fit_stack.py`` tries candidate values)."""
    preset = PRESET[gpu]
    servers = max(1, math.ceil(gpus / GPUS_PER_SERVER))
    node: dict[str, Any] = {"name": "node", "count": servers, "preset": preset,
                            "accelerator": gpu, "accelerators": min(GPUS_PER_SERVER, gpus)}
    if nics:
        node["nics"] = dict(nics)
    spec: dict[str, Any] = {"name": f"{preset}-x{servers}", "nodes": [node]}
    if servers > 1:
        su, spines = SCALABLE_UNIT[preset]
        spec["fabric"] = {"topology": "rail-optimized", "nodes_per_leaf": min(su, servers),
                          "spines": spines}
    if comm_sms is not None:
        spec["network"] = {"comm_sms": comm_sms}
    if compute is not None:
        spec["compute"] = {gpu: compute}
    return spec


_CLUSTERS: dict[str, Any] = {}


def cluster_for(gpu: str, gpus: int, nics: dict[str, Any] | None = None,
                comm_sms: float | None = None, compute: dict[str, Any] | None = None):
    """The built cluster (cached per spec; arguments: :func:`cluster_spec`)."""
    from simcluster.topology.build import build
    from simcluster.topology.schema import TopologySpec
    spec = cluster_spec(gpu, gpus, nics, comm_sms, compute)
    key = json.dumps(spec, sort_keys=True)
    if key not in _CLUSTERS:
        _CLUSTERS[key] = build(TopologySpec.model_validate(spec), source=spec["name"])
    return _CLUSTERS[key]


def with_capacity(cluster, factor: float):
    """The cluster with every accelerator's HBM capacity times ``factor`` (same model name,
    so the same compute calibration): used only to time rows the memory model says do not
    fit, which the table marks."""
    specs = {a: replace(s, hbm_GiB=s.hbm_GiB * factor) for a, s in cluster.specs.items()}
    return replace(cluster, specs=specs)


# -- simulation ----------------------------------------------------------------------------

class RowTimeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise RowTimeout


OPS_PER_LAYER = 40  # about, per micro-batch and TP rank, with the fold (validate_megatron)


def estimated_ops(m: Mapped, micro_batches: int | None = None) -> int:
    """About how many ops the folded workload has: replica 0's TP x CP x PP ranks, each
    with its micro-batches x layers of its stage."""
    mbs = micro_batches if micro_batches is not None else m.micro_batches
    return m.tp * m.params.get("cp", 1) * mbs * m.params["layers"] * OPS_PER_LAYER


@dataclass
class Prediction:
    mapped: Mapped
    predicted_s: float | None = None
    how: str = ""
    ops: int = 0
    peak_GiB: float = float("nan")
    wall_s: float = 0.0
    failure: str = ""      # why no prediction (timeout, simulator error)
    oom: bool = False      # the memory model says the configuration does not fit

    @property
    def error(self) -> float:
        return self.predicted_s / self.mapped.measured_s - 1


def _simulate(m: Mapped, micro_batches: int | None, cluster) -> tuple[float, int, float]:
    import simcluster as sc
    params = dict(m.params)
    if micro_batches is not None:
        params["global_batch"] = micro_batches * params["micro_batch"] * m.dp
    wl = sc.generate("transformer", **params)
    res = sc.replay(wl, cluster)
    peak = float(res.run.memory.column("peak_bytes").to_numpy().max()) / 2**30
    return res.step_time_us / 1e6, wl.num_ops, peak


def _extrapolation_points(m: Mapped) -> tuple[int, int] | None:
    """Two micro-batch counts below the row's, valid for its schedule."""
    M = m.micro_batches
    if m.pp > 1:
        m1, m2 = m.pp, 2 * m.pp if m.params["schedule"] != "1f1b" else m.pp + max(1, m.pp // 2)
    else:
        m1, m2 = 2, 3
    return (m1, m2) if m2 < M else None


def predict(m: Mapped, max_ops: float, timeout_s: float,
            comm_sms: float | None = None, compute: dict[str, Any] | None = None) -> Prediction:
    """Simulate one mapped row (with a wall-time limit, none at 0; ``comm_sms`` and
    ``compute``: :func:`cluster_spec`)."""
    from simcluster.errors import OutOfMemoryError, SimclusterError
    p = Prediction(m)
    t0 = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm) if timeout_s > 0 else None
    if timeout_s > 0:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        cluster = cluster_for(m.gpu, m.gpus, m.nics, comm_sms, compute)
        points = _extrapolation_points(m) if estimated_ops(m) > max_ops else None
        for attempt in range(2):
            try:
                if points is None:
                    p.predicted_s, p.ops, p.peak_GiB = _simulate(m, None, cluster)
                    p.how = "replayed"
                else:
                    m1, m2 = points
                    t1, _, _ = _simulate(m, m1, cluster)
                    t2, p.ops, p.peak_GiB = _simulate(m, m2, cluster)
                    p.predicted_s = t2 + (m.micro_batches - m2) * (t2 - t1) / (m2 - m1)
                    p.how = f"extrapolated from m={m1},{m2}"
                break
            except OutOfMemoryError:
                if attempt:
                    raise
                p.oom = True
                cluster = with_capacity(cluster, 4.0)
    except RowTimeout:
        p.failure = f"timeout ({timeout_s:.0f} s)"
    except SimclusterError as exc:
        p.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    finally:
        if timeout_s > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    p.wall_s = time.perf_counter() - t0
    return p


# -- statistics ----------------------------------------------------------------------------

def _avg_ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan if a side is constant."""
    ra, rb = _avg_ranks(a), _avg_ranks(b)
    n = len(ra)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float("nan")


@dataclass
class Summary:
    n: int = 0
    mape: float = float("nan")
    signed: float = float("nan")
    worst: float = float("nan")
    too_fast: int = 0
    spearman: dict[str, tuple[int, float]] = field(default_factory=dict)


def summarize(preds: Sequence[Prediction]) -> Summary:
    ok = [p for p in preds if p.predicted_s is not None]
    s = Summary(n=len(ok))
    if not ok:
        return s
    errs = [p.error for p in ok]
    s.mape = sum(abs(e) for e in errs) / len(errs)
    s.signed = sum(errs) / len(errs)
    s.worst = max(errs, key=abs)
    s.too_fast = sum(e < 0 for e in errs)
    groups: dict[str, list[Prediction]] = {}
    for p in ok:
        groups.setdefault(f"{p.mapped.source} / {p.mapped.model}", []).append(p)
    for key, g in sorted(groups.items()):
        if len(g) >= MIN_SPEARMAN:
            s.spearman[key] = (len(g), spearman([p.mapped.measured_s for p in g],
                                                [p.predicted_s for p in g]))
    return s


def size_bucket(params: int) -> str:
    b = params / 1e9
    return ("< 3B" if b < 3 else "3-30B" if b < 30 else "30-100B" if b < 100 else ">= 100B")


def gpus_bucket(n: int) -> str:
    return ("8" if n <= 8 else "16-64" if n <= 64 else "128-512" if n <= 512 else ">= 1024")


BREAKDOWNS = {
    "GPU": lambda p: p.mapped.gpu,
    "GPU count": lambda p: gpus_bucket(p.mapped.gpus),
    "model size": lambda p: size_bucket(p.mapped.param_count()),
    "precision": lambda p: p.mapped.dtype,
    "TP": lambda p: str(p.mapped.tp),
    "recompute": lambda p: p.mapped.params["recompute"],
    "sharding": lambda p: f"zero {p.mapped.params['zero']}",
}
_ORDER = {"8": 0, "16-64": 1, "128-512": 2, ">= 1024": 3, "< 3B": 0, "3-30B": 1, "30-100B": 2,
          ">= 100B": 3}


# -- output --------------------------------------------------------------------------------

def short(model: str) -> str:
    """A model name without its parenthesised remark."""
    return model.split(" (")[0]


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:+.1f} %"


def _abs_pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f} %"


def row_table(preds: Sequence[Prediction]) -> list[str]:
    out = ["| row | split | source | model | GPU | GPUs | TP | PP | DP | sched | mb | GBS | "
           "seq | rc | zero | dtype | measured s | predicted s | error | how | wall s |",
           "|---:|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---|---:|"
           "---:|---:|---|---:|"]
    for p in preds:
        m, q = p.mapped, p.mapped.params
        sched = q["schedule"].replace("1f1b-interleaved:", "vp")
        pred = f"{p.predicted_s:,.3f}" if p.predicted_s is not None else "-"
        err = _pct(p.error) if p.predicted_s is not None else p.failure
        how = p.how + (" (OOM in model: capacity x4)" if p.oom else "")
        out.append(f"| {m.row_id} | {m.split[:3]} | {m.source.split('_')[0]} | {short(m.model)} | "
                   f"{m.gpu} | {m.gpus} | {m.tp} | {m.pp} | {m.dp} | {sched} | "
                   f"{q['micro_batch']} | {m.global_batch} | {q['seq_len']} | "
                   f"{q['recompute'][:3]} | {q['zero']} | {q['dtype']} | "
                   f"{m.measured_s:,.3f} | {pred} | {err} | {how} | {p.wall_s:.1f} |")
    return out


def source_table(preds: Sequence[Prediction]) -> list[str]:
    out = ["| split | source | rows | MAPE | mean signed error | worst | predicted too fast | "
           "Spearman within model (n) |",
           "|---|---|---:|---:|---:|---:|---:|---|"]
    keys = sorted({(p.mapped.split, p.mapped.source) for p in preds},
                  key=lambda k: (k[0] != "validate", k))
    for split in sorted({k[0] for k in keys}, key=lambda s: s != "validate"):
        for sp, src in [k for k in keys if k[0] == split] + [(split, "all")]:
            g = [p for p in preds if p.mapped.split == sp and src in ("all", p.mapped.source)]
            s = summarize(g)
            if src == "all" and len({p.mapped.source for p in g}) < 2:
                continue
            rho = "; ".join(f"{short(k.split(' / ', 1)[1])} {v:.2f} ({n})"
                            for k, (n, v) in s.spearman.items()) if src != "all" else ""
            label = f"**all {split}**" if src == "all" else src
            out.append(f"| {sp} | {label} | {s.n} | {_abs_pct(s.mape)} | {_pct(s.signed)} | "
                       f"{_pct(s.worst)} | {s.too_fast} of {s.n} | {rho or '-'} |")
    return out


def breakdown_table(preds: Sequence[Prediction], split: str) -> list[str]:
    ok = [p for p in preds if p.predicted_s is not None and p.mapped.split == split]
    out = [f"| {split}: by | group | rows | MAPE | mean signed error |", "|---|---|---:|---:|---:|"]
    for name, key in BREAKDOWNS.items():
        groups: dict[str, list[Prediction]] = {}
        for p in ok:
            groups.setdefault(key(p), []).append(p)
        for g in sorted(groups, key=lambda k: (int(k), "") if name == "TP" else
                        (_ORDER.get(k, 9), k)):
            s = summarize(groups[g])
            out.append(f"| {name} | {g} | {s.n} | {_abs_pct(s.mape)} | {_pct(s.signed)} |")
    return out


def group_table(preds: Sequence[Prediction]) -> list[str]:
    """Per (split, source, model, GPU, precision): rows, GPU counts, MAPE, signed error, and
    how the step time changes from the fewest to the most GPUs, measured and predicted."""
    groups: dict[tuple[str, str, str, str, str], list[Prediction]] = {}
    for p in preds:
        if p.predicted_s is not None:
            m = p.mapped
            groups.setdefault((m.split, m.source.split("_")[0], m.model, m.gpu, m.dtype),
                              []).append(p)
    out = ["| split | source | model | GPU | dtype | rows | GPUs | MAPE | mean signed error | "
           "weak scaling, step change (GPUs): measured | predicted |",
           "|---|---|---|---|---|---:|---|---:|---:|---:|---:|"]
    for key in sorted(groups, key=lambda k: (k[0] != "validate", k)):
        g = sorted(groups[key], key=lambda p: p.mapped.gpus)
        s = summarize(g)
        n = sorted({p.mapped.gpus for p in g})
        # weak scaling: the rows that differ only in GPU count (same per-replica work)
        def work(p: Prediction) -> tuple[Any, ...]:
            q = p.mapped.params
            return (q["seq_len"], q["micro_batch"], p.mapped.micro_batches, q["layers"],
                    p.mapped.tp, p.mapped.pp)
        same = Counter(work(p) for p in g).most_common(1)[0][0]
        w = [p for p in g if work(p) == same]
        lo, hi = w[0], w[-1]
        if hi.mapped.gpus > lo.mapped.gpus:
            dm = _pct(hi.mapped.measured_s / lo.mapped.measured_s - 1)
            dp = _pct(hi.predicted_s / lo.predicted_s - 1)
            dm, dp = f"{dm} ({lo.mapped.gpus}->{hi.mapped.gpus})", dp
        else:
            dm = dp = "-"
        out.append(f"| {key[0][:3]} | {key[1]} | {short(key[2])} | {key[3]} | {key[4]} | {s.n} | "
                   f"{n[0]}-{n[-1]} | {_abs_pct(s.mape)} | {_pct(s.signed)} | {dm} | {dp} |")
    return out


def skip_table(skipped: Sequence[Skip], failed: Sequence[Prediction]) -> list[str]:
    c = Counter((s.split, s.reason) for s in skipped)
    c.update((p.mapped.split, f"not predicted: {p.failure.split(':')[0]}") for p in failed)
    out = ["| split | reason | rows |", "|---|---|---:|"]
    for (split, reason), n in sorted(c.items(), key=lambda kv: (kv[0][0] != "validate",
                                                               -kv[1], kv[0][1])):
        out.append(f"| {split} | {reason} | {n} |")
    return out


def to_json(p: Prediction) -> dict[str, Any]:
    d = asdict(p)
    d["mapped"]["assumptions"] = list(p.mapped.assumptions)
    return d


def from_json(d: dict[str, Any]) -> Prediction:
    m = dict(d["mapped"])
    m["assumptions"] = tuple(m.get("assumptions", ()))
    return Prediction(**{**d, "mapped": Mapped(**m)})


def print_report(preds: list[Prediction], skipped: list[Skip], markdown: bool) -> None:
    failed = [p for p in preds if p.predicted_s is None]
    print("\n".join(row_table(preds)))
    print()
    print("\n".join(source_table(preds)))
    for split in ("validate", "calibrate"):
        if any(p.mapped.split == split and p.predicted_s is not None for p in preds):
            print()
            print("\n".join(breakdown_table(preds, split)))
    print()
    print("\n".join(group_table(preds)))
    print()
    print("\n".join(skip_table(skipped, failed)))
    if not markdown:
        notes = Counter(a for p in preds for a in p.mapped.assumptions)
        if notes:
            print("\nassumptions for cells the rows leave empty (rows):")
            for a, n in notes.most_common():
                print(f"  {a}: {n}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--split", choices=("validate", "calibrate", "all"), default="validate")
    ap.add_argument("--source", nargs="*", default=None,
                    help="source ids or prefixes (S1, S2_llm-foundry, ...)")
    ap.add_argument("--rows", nargs="*", default=None, help="row_id values")
    ap.add_argument("--max-rows", type=int, default=None, help="simulate at most N rows")
    ap.add_argument("--max-ops", type=float, default=5e5,
                    help="extrapolate rows whose workload would have more ops")
    ap.add_argument("--timeout", type=float, default=300.0, help="wall seconds per row")
    ap.add_argument("--markdown", action="store_true", help="tables only (for docs)")
    ap.add_argument("--json", type=Path, default=None, help="write the predictions here")
    ap.add_argument("--load", type=Path, nargs="*", default=None,
                    help="print the tables of saved predictions instead of simulating (a later "
                    "file's row replaces an earlier one's)")
    ap.add_argument("--skipped", action="store_true", help="list every skipped row")
    ap.add_argument("--host-us", type=float, default=None,
                    help="give every row a host timeline at this many us per launched op "
                    "(docs/compute.md#host-time) instead of its framework's")
    ap.add_argument("--cuda-graphs", action="store_true",
                    help="with --host-us: one launch per layer forward or backward")
    ap.add_argument("--comm-sms", type=float, default=None,
                    help="SMs collectives take from compute (0: no interference; default: "
                    "the part's, docs/compute.md)")
    args = ap.parse_args(argv)

    rows = read_csv(args.csv)
    if args.split != "all":
        rows = [r for r in rows if split_of(r) == args.split]
    if args.source:
        rows = [r for r in rows if any(source_matches(r["source_id"], s) for s in args.source)]
    if args.rows:
        rows = [r for r in rows if r["row_id"] in set(args.rows)]
    mapped, skipped = map_rows(rows)
    if args.host_us is not None:
        for m in mapped:
            m.params.update(host_us=args.host_us, cuda_graphs=args.cuda_graphs)
    if args.skipped:
        for s in skipped:
            print(f"skip row {s.row_id} ({s.split}, {s.source}, {s.model}): {s.reason}")
    if args.load:
        # A later file's prediction of a row replaces an earlier one's: re-run only the
        # rows a change moves and load them after the full set.
        latest = {p.mapped.row_id: p for f in args.load
                  for p in map(from_json, json.loads(f.read_text()))}
        keep = {m.row_id for m in mapped}
        preds = [p for r, p in sorted(latest.items()) if r in keep]
        have = {p.mapped.row_id for p in preds}
        skipped += [Skip(m.row_id, m.source, m.model, m.split, "not run (no saved prediction)")
                    for m in mapped if m.row_id not in have]
        print_report(preds, skipped, args.markdown)
        return 0
    if args.max_rows is not None:
        mapped = mapped[:args.max_rows]
    print(f"{len(rows)} rows selected: {len(mapped)} to simulate, {len(skipped)} skipped",
          file=sys.stderr)
    preds: list[Prediction] = []
    t0 = time.perf_counter()
    for i, m in enumerate(mapped):
        p = predict(m, args.max_ops, args.timeout, args.comm_sms)
        preds.append(p)
        res = (f"{p.predicted_s:.3f} s ({100 * p.error:+.1f} %)" if p.predicted_s is not None
               else p.failure)
        cp = m.params.get("cp", 1)
        print(f"[{i + 1}/{len(mapped)}] row {m.row_id} {m.source.split('_')[0]} {m.model} "
              f"{m.gpus}x{m.gpu} TP{m.tp} PP{m.pp} DP{m.dp}{f' CP{cp}' if cp > 1 else ''} "
              f"{m.dtype}: measured "
              f"{m.measured_s:.3f} s, predicted {res}; {p.how}{' OOM' if p.oom else ''} "
              f"[{p.wall_s:.1f} s]", file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps([to_json(q) for q in preds], indent=1))
    print(f"simulated {len(preds)} rows in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    print_report(preds, skipped, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Framework profiles: the settings a training framework uses unless told otherwise.

Much of a prediction's error comes from settings a user does not know to set: which attention
kernel runs, whether the loss is fused, whether TP communication overlaps, whether the
optimizer is sharded. A profile sets them as the framework does at a named version; anything
given explicitly wins. The settings are :class:`~.transformer.TransformerConfig` fields.

Example:
    >>> settings_of("llm-foundry-2023", {"zero": 2})["attention_kernel"]
    'flash1'
    >>> settings_of("LLM-Foundry-2023", {"zero": 2})["zero"]
    2
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.names import suggestion


@dataclass(frozen=True)
class Framework:
    """A framework at a named version: its default settings and where they come from.

    ``compute`` holds, per calibrated chip (``A100``, ``H100``: ``sim.compute.CHIP_OF``), the
    kernel efficiencies of this framework's software stack where they differ from the chip's
    built-in calibration, as a topology ``compute:`` entry (``ComputeParams`` fields, e.g.
    ``{"gemm_efficiency": 0.6, "families": {"flash1": {"gemm_efficiency": 0.3}}}``): an older
    CUDA/cuBLAS/attention library on a newer chip sustains less of its peak.
    """

    name: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    compute: dict[str, dict[str, Any]] = field(default_factory=dict)


# Megatron-Core's performance settings, which NeMo uses as they are. Its DDP buckets hold
# max(40M, 1M x DP) parameters (megatron/core/distributed/distributed_data_parallel.py,
# core_r0.8.0). The Megatron-LM README's benchmarks and NeMo's performance recipes also
# overlap the TP collectives with their GEMMs through Transformer Engine's userbuffers
# (--tp-comm-overlap), but the profiles do not set ``tp_comm_overlap``: the generator's
# overlap is the ideal chunked schedule (no loss from the smaller GEMM chunks, no
# contention from the userbuffers kernels), and with it the calibrate split's NeMo 24.07
# rows with sequence parallelism go from about 0 to about -10 % (docs/validation.md, "The
# Megatron-Core rows (S4)"). Set it per run to see the bound.
_MCORE: dict[str, Any] = {
    "flash_attention": True, "attention_kernel": "flash", "loss_kernel": "fused",
    "dp_overlap": True, "tp_overlap": True, "zero": 1,
    "sequence_parallel": True, "bucket_per_dp_rank": 1_000_000}

# The 2023 llm-foundry stack's kernels where they differ from the chip's calibration, fitted
# by ``python bench/fit_stack.py`` on the calibrate split's llm-foundry rows only (the tables
# "H100 80GB BF16" up to 64 GPUs, "H100 80GB FP8", "A100 80GB"; 59 H100 and 61 A100 rows).
# - memory_efficiency: the fraction of HBM bandwidth its memory-bound kernels (PyTorch eager
#   LayerNorm, GELU, residual adds, the eager loss, FSDP's flat-parameter copies) reach:
#   0.58 on A100 80GB (1.18 TB/s of 2.04) and 0.39 on H100 SXM (1.31 TB/s of 3.35), against
#   0.79 and 0.87 for STREAM Copy (the chips' calibration). Nearly the same bytes per second
#   on both chips: the eager kernels of the 2023 images did not use Hopper's HBM3 bandwidth
#   (early Hopper software; the NeMo rows of 2025 need no such factor).
# - flash1 gemm_efficiency: FlashAttention 1.x, refitted jointly with the above (0.52 and 0.27
#   when fitted alone, bench/fit_attention.py; the chips keep those for recorded kernels).
_FOUNDRY_2023_COMPUTE: dict[str, dict[str, Any]] = {
    "A100": {"memory_efficiency": 0.58, "families": {"flash1": {"gemm_efficiency": 0.55}},
             "source": "llm-foundry-2023 on A100: fitted on S2 calibrate (bench/fit_stack.py)"},
    "H100": {"memory_efficiency": 0.39, "families": {"flash1": {"gemm_efficiency": 0.31}},
             "source": "llm-foundry-2023 on H100: fitted on S2 calibrate (bench/fit_stack.py)"},
}

FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (
    Framework(
        "megatron-2021", "Megatron-LM as in Narayanan et al. 2021 (SC'21)",
        {"flash_attention": False, "loss_kernel": "unfused", "kernels": "megatron-2021",
         "dp_overlap": False, "tp_overlap": False, "zero": 0},
        "Narayanan et al. 2021, sections 3-5: no fused attention, the backward waits for its "
        "TP all-reduces, gradients all-reduced after the backward, no optimizer sharding; "
        "NVIDIA/Megatron-LM of 2020-2021 (megatron/mpu/cross_entropy.py, "
        "megatron/model/transformer.py, Apex FusedLayerNorm): the vocab-parallel "
        "cross-entropy in PyTorch ops on fp32 logits, separate bias-gradient reductions, "
        "a two-pass LayerNorm backward, the attention context's permute copy"),
    Framework(
        "megatron-core", "Megatron-Core (2024-2025) with Transformer Engine", _MCORE,
        "Megatron-LM README and NeMo/Megatron-Bridge performance recipes: cuDNN fused "
        "attention, fused vocab-parallel cross-entropy, --overlap-grad-reduce, "
        "--use-distributed-optimizer, --sequence-parallel with TP (--tp-comm-overlap, "
        "Transformer Engine userbuffers, not set: its model is the ideal overlap); DDP "
        "buckets of max(40M, 1M x DP) parameters "
        "(NVIDIA/Megatron-LM core_r0.8.0 distributed_data_parallel.py)"),
    Framework(
        "nemo", "NVIDIA NeMo 2.x (runs Megatron-Core)", _MCORE,
        "NeMo performance recipes: Megatron-Core with the distributed optimizer, sequence "
        "parallelism with TP, communication overlap"),
    Framework(
        "llm-foundry-2023", "MosaicML Composer + llm-foundry, 2023 (PyTorch FSDP)",
        {"flash_attention": True, "attention_kernel": "flash1", "loss_kernel": "eager",
         "zero": 3, "sequence_parallel": False, "tp_overlap": False},
        "llm-foundry scripts/train/benchmarking/README.md (tables from 2023, before the "
        "torch 2.0 Composer release): attn_impl flash (FlashAttention 1.x), "
        "torch.nn.CrossEntropyLoss, FSDP FULL_SHARD; kernel efficiencies of the 2023 stack "
        "(PyTorch 1.13/2.0 eager, CUDA 11.7-11.8 images such as "
        "mosaicml/llm-foundry:2.0.1_cu118) fitted on the calibrate split's llm-foundry rows "
        "(bench/fit_stack.py, docs/validation.md)",
        _FOUNDRY_2023_COMPUTE),
    Framework(
        "torchtitan", "torchtitan (PyTorch FSDP2, 2024-2025)",
        {"flash_attention": True, "attention_kernel": "flash", "loss_kernel": "eager",
         "zero": 3, "sequence_parallel": False},
        "torchtitan: scaled_dot_product_attention, cross_entropy on logits.float(), FSDP2 "
        "fully_shard"),
)}


def framework(name: str) -> Framework:
    """The profile called ``name``.

    Raises:
        WorkloadError: no such profile (the message lists them).
    """
    found = FRAMEWORKS.get(name.strip().lower())
    if found is None:
        hint = suggestion(name, list(FRAMEWORKS))
        raise WorkloadError(f"unknown framework {name!r}; {hint}use one of "
                            f"{', '.join(FRAMEWORKS)}.")
    return found


def compute_entry(name: str | None, chip: str | None) -> dict[str, Any] | None:
    """The topology ``compute:`` entry (``ComputeParams`` fields) of framework ``name``'s
    software stack on calibrated chip ``chip`` (``A100``, ``H100``), or None where the stack
    runs at the chip's built-in calibration (no name, no chip, or none given).

    Example:
        >>> compute_entry("megatron-core", "H100") is None
        True
    """
    if not name or not chip:
        return None
    entry = framework(name).compute.get(chip)
    return copy.deepcopy(entry) if entry else None


def settings_of(name: str | None, explicit: dict[str, Any]) -> dict[str, Any]:
    """``explicit`` settings over framework ``name``'s defaults, with ``framework`` set to
    its canonical name (no name: ``explicit`` as is)."""
    if not name:
        return dict(explicit)
    profile = framework(name)
    return {**profile.settings, **explicit, "framework": profile.name}

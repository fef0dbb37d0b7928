"""Closed forms of a configuration and the metadata the analysis reads: model and hardware
FLOPs per step (the MFU numerator), the optimizer's HBM bytes per parameter, and
:func:`training_meta` (stored in the workload's ``extra``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from simcluster.workload.generate.transformer.config import TransformerConfig
from simcluster.workload.generate.transformer.memory import memory_breakdown
from simcluster.workload.generate.transformer.moe import expert_layout


def _matmul_params(cfg: TransformerConfig, routed_scale: float = 1.0) -> float:
    """Matrix weights each token is multiplied by, summed over the layers (MoE layers:
    attention, router, shared and ``top_k`` routed experts, the routed ones times
    ``routed_scale``), plus the LM head."""
    m = cfg.model
    total = float(m.vocab * m.hidden)
    for layer in range(m.layers):
        total += m.layer_matmul_params_of(layer)
        if m.is_moe_layer(layer):
            total += (routed_scale - 1.0) * m.top_k * m.expert_params
    return total


def _attention_flops(cfg: TransformerConfig) -> float:
    """Forward attention-core FLOPs of a step: ``2 L B s^2 (q_dim + v_dim)`` (``4 L B s^2 h``
    for standard heads)."""
    m = cfg.model
    return 2.0 * m.layers * cfg.batch * m.seq_len**2 * (m.q_dim + m.v_dim)


def model_flops_per_step(cfg: TransformerConfig) -> float:
    """Model FLOPs of one step (no recompute): ``6 N_matmul tokens + 12 L b s^2 h`` per
    micro-batch, N_matmul the active matrix weights (``top_k`` routed experts, the shared
    ones and the router in MoE layers) including the LM head; the MFU numerator."""
    tokens = cfg.batch * cfg.model.seq_len
    return 6.0 * _matmul_params(cfg) * tokens + 3.0 * _attention_flops(cfg)


def hardware_flops_per_step(cfg: TransformerConfig) -> float:
    """FLOPs the workload executes: the model FLOPs plus recomputation, with the routed
    experts' work times the busiest rank's load factor (every EP rank is modelled as the
    busiest: ``moe.py``)."""
    m = cfg.model
    tokens = cfg.batch * m.seq_len
    scale = expert_layout(cfg).factor if m.moe else 1.0
    attn = _attention_flops(cfg)
    layer_fwd = 2.0 * (_matmul_params(cfg, scale) - m.vocab * m.hidden) * tokens + attn
    # save_qkv_proj recomputes the output projection and FC1 (dense layers only: config.py)
    rcp_qkv = 2.0 * m.layers * (m.v_dim * m.hidden
                                + (m.mlp_matrices - 1) * m.hidden * m.ffn) * tokens + attn
    extra = {"none": 0.0, "full": layer_fwd, "save_qkv_proj": rcp_qkv,
             "selective": 0.0 if cfg.flash_attention else attn}[cfg.recompute]
    return 6.0 * _matmul_params(cfg, scale) * tokens + 3.0 * attn + extra


def optimizer_bytes_per_param(grad_bytes: int, loss_scaling: bool = False) -> int:
    """HBM bytes per parameter of a mixed-precision Adam step: fp16 gradients copied to fp32
    (read 2, write 4; none with fp32 gradients), unscale/overflow check and gradient norm
    (read 4 each; with ``loss_scaling``, fp16 training, the unscale also writes the fp32
    gradient back, 4: ``torch._amp_foreach_non_finite_check_and_unscale_`` works in place,
    as Megatron-LM's ``_unscale_main_grads_and_check_for_nan`` calls it), Adam (read
    parameter, m, v, gradient: 16; write parameter, m, v: 12), and the 16-bit copy of the
    parameter (read 4, write 2)."""
    return (6 if grad_bytes == 2 else 0) + (4 if loss_scaling else 0) + 8 + 28 + 6


def training_meta(cfg: TransformerConfig) -> dict[str, Any]:
    """What the analysis needs to report MFU, tokens/s, memory and bubble (JSON-ready)."""
    m = cfg.model
    mem = {str(p): memory_breakdown(cfg, p) for p in range(cfg.pp)}
    v, mb, p = cfg.chunks, cfg.micro_batches, cfg.pp
    return {
        "generator": "transformer",
        "model": asdict(m),
        "params": m.params,
        "active_params": m.active_params,
        "moe": _moe_meta(cfg),
        "config": cfg.describe(),
        "tokens_per_step": cfg.batch * m.seq_len,
        "model_flops_per_step": model_flops_per_step(cfg),
        "hardware_flops_per_step": hardware_flops_per_step(cfg),
        "peak_dtype": "fp8" if cfg.dtype == "fp8" else "bf16",
        "steps": cfg.steps,
        "pipeline": {"stages": p, "micro_batches": mb, "chunks": v,
                     "schedule": cfg.schedule_name,
                     "ideal_bubble": (p - 1) / (v * mb + p - 1) if cfg.schedule_name != "gpipe"
                     else (p - 1) / (mb + p - 1)},
        "memory": mem,
        "fold": {"replicas": cfg.dp, "ranks_per_replica": cfg.tp * cfg.cp * cfg.pp,
                 "full_replicas": cfg.ep_span,
                 "full_ranks": cfg.tp * cfg.cp * cfg.pp * cfg.ep_span}
        if cfg.fold and cfg.dp > cfg.ep_span else None,
    }


def _moe_meta(cfg: TransformerConfig) -> dict[str, Any] | None:
    """The MoE layout (None for a dense model)."""
    m = cfg.model
    if not m.moe:
        return None
    lay = expert_layout(cfg)
    return {"experts": m.experts, "top_k": m.top_k, "shared_experts": m.shared_experts,
            "moe_layers": m.moe_layers, "ep": cfg.ep, "expert_tp": cfg.expert_tp,
            "expert_dp": lay.edp, "local_experts": lay.local_experts,
            "load_factor": lay.factor, "dispatcher": cfg.moe_dispatcher,
            "ep_span": cfg.ep_span}

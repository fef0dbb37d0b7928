"""Closed forms of a configuration and the metadata the analysis reads: model and hardware
FLOPs per step (the MFU numerator), the optimizer's HBM bytes per parameter, and
:func:`training_meta` (stored in the workload's ``extra``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from simcluster.workload.generate.transformer.config import TransformerConfig
from simcluster.workload.generate.transformer.memory import memory_breakdown


def model_flops_per_step(cfg: TransformerConfig) -> float:
    """Model FLOPs of one step (no recompute): ``6 N_matmul tokens + 12 L b s^2 h`` per
    micro-batch, N_matmul including the LM head; the MFU numerator."""
    m = cfg.model
    tokens = cfg.batch * m.seq_len
    n_matmul = m.layers * m.layer_matmul_params + m.vocab * m.hidden
    return 6.0 * n_matmul * tokens + 12.0 * m.layers * cfg.batch * m.seq_len**2 * m.hidden


def hardware_flops_per_step(cfg: TransformerConfig) -> float:
    """FLOPs actually executed: the model FLOPs plus recomputation."""
    m = cfg.model
    tokens = cfg.batch * m.seq_len
    attn = 4.0 * m.layers * cfg.batch * m.seq_len**2 * m.hidden
    layer_fwd = 2.0 * m.layers * m.layer_matmul_params * tokens + attn
    extra = {"none": 0.0, "full": layer_fwd,
             "selective": 0.0 if cfg.flash_attention else attn}[cfg.recompute]
    return model_flops_per_step(cfg) + extra


def optimizer_bytes_per_param(grad_bytes: int) -> int:
    """HBM bytes per parameter of a mixed-precision Adam step: fp16 gradients copied to fp32
    (read 2, write 4; none with fp32 gradients), unscale/overflow check and gradient norm
    (read 4 each), Adam (read parameter, m, v, gradient: 16; write parameter, m, v: 12), and
    the 16-bit copy of the parameter (read 4, write 2)."""
    return (6 if grad_bytes == 2 else 0) + 8 + 28 + 6


def training_meta(cfg: TransformerConfig) -> dict[str, Any]:
    """What the analysis needs to report MFU, tokens/s, memory and bubble (JSON-ready)."""
    m = cfg.model
    mem = {str(p): memory_breakdown(cfg, p) for p in range(cfg.pp)}
    v, mb, p = cfg.chunks, cfg.micro_batches, cfg.pp
    return {
        "generator": "transformer",
        "model": asdict(m),
        "params": m.params,
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
        "fold": {"replicas": cfg.dp, "ranks_per_replica": cfg.tp * cfg.pp}
        if cfg.fold and cfg.dp > 1 else None,
    }

"""The analytic memory model: parameters per stage, weights, gradients and optimizer states
per ZeRO stage, the activation peak over the schedule, and whether a configuration fits a
GPU's memory (bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.workload.generate.schedules import stage_units
from simcluster.workload.generate.transformer.config import TransformerConfig
from simcluster.workload.generate.transformer.cp import ring_buffers
from simcluster.workload.generate.transformer.moe import (
    expert_layout,
    layer_keep,
    layer_rank_params,
)


@dataclass(frozen=True)
class StageParams:
    """Parameters held by one rank of a stage (TP-sharded, before DP sharding): ``layers``
    the layers' data-parallel ones, ``experts`` their routed experts (split over EP and
    expert TP, sharded over the expert-data-parallel group)."""

    layers: int
    embedding: int
    head: int
    experts: int = 0

    @property
    def dense(self) -> int:
        """Parameters reduced over the full data-parallel group."""
        return self.layers + self.embedding + self.head

    @property
    def total(self) -> int:
        return self.layers + self.embedding + self.head + self.experts


def stage_params(cfg: TransformerConfig, stage: int) -> StageParams:
    """Parameters on one TP rank of ``stage``: matrices split over TP, biases and norms
    counted whole (an upper bound of a few hidden-sized vectors)."""
    m, t = cfg.model, cfg.tp
    dense = experts = 0
    for c in range(cfg.chunks):
        for layer in cfg.layers_of(c * cfg.pp + stage):
            d, e = layer_rank_params(cfg, layer)
            dense, experts = dense + d, experts + e
    emb = head = 0
    if m.vocab:
        if stage == 0:
            emb = m.vocab * m.hidden // t + (m.seq_len * m.hidden if m.learned_positions else 0)
        if stage == cfg.pp - 1:
            head = m.head_params - (0 if m.tied_embeddings else m.vocab * m.hidden)
            if not m.tied_embeddings or cfg.pp > 1:  # untied head, or the tied copy
                head += m.vocab * m.hidden // t
    return StageParams(layers=dense, embedding=emb, head=head, experts=experts)


def _layer_param_bytes(cfg: TransformerConfig) -> int:
    """bf16 bytes of one layer's parameters on a TP rank (ZeRO-3 gather buffer)."""
    m = cfg.model
    return 2 * (m.layer_matmul_params // cfg.tp + m.layer_params - m.layer_matmul_params)


def static_memory(cfg: TransformerConfig, stage: int) -> dict[str, int]:
    """Weights (bf16), gradients and Adam states (fp32 master, m, v) of one rank, bytes,
    sharded per the ZeRO stage over the ``dp x cp`` ranks, or with hybrid sharding the
    shard group's (routed experts: over the expert-data-parallel group)."""
    sp = stage_params(cfg, stage)
    groups = [(sp.dense, cfg.shard_ranks)]
    if sp.experts:
        groups.append((sp.experts, expert_layout(cfg).edp))
    return {
        "weights": sum(2 * p // (d if cfg.zero >= 3 else 1) for p, d in groups),
        "grads": sum(cfg.gbytes * p // (d if cfg.zero >= 2 else 1) for p, d in groups),
        "optimizer": sum(12 * p // (d if cfg.zero >= 1 else 1) for p, d in groups),
    }


def _backward_bump(cfg: TransformerConfig, layers: range, logits: int) -> int:
    """The most a chunk's backward adds to the memory live at its start: the head's
    backward frees the logits first; then, layer by layer from the last, the transient of
    recomputing the layer (all of its activations with full recompute, all but the kept ones
    with ``save_qkv_proj``, the score matrix
    with selective recompute and no flash attention) and its ring attention's receive
    buffers (context parallelism) while the layers after it are freed."""
    shape = cfg.shape()
    freed, bump = logits, 0
    ring = ring_buffers(cfg, backward=True)
    for layer in reversed(layers):
        transient = ring
        if cfg.recompute == "full":
            transient += layer_keep(cfg, layer, "none")
        elif cfg.recompute == "save_qkv_proj":  # all but the kept input and Q, K, V
            transient += layer_keep(cfg, layer, "none") - layer_keep(cfg, layer, cfg.recompute)
        elif cfg.recompute == "selective" and not cfg.flash_attention:
            transient += int(2 * shape.score_elems
                            + (shape.score_elems if cfg.model.dropout else 0))
        bump = max(bump, transient - freed)
        freed += layer_keep(cfg, layer, cfg.recompute)
    return bump


def memory_breakdown(cfg: TransformerConfig, stage: int) -> dict[str, int]:
    """Analytic peak memory of one rank of ``stage`` by category, bytes.

    ``activations`` is the largest sum, over the schedule, of the activations of the
    micro-batches in flight (including logits on the last stage) plus the transient of
    recomputing one layer and, with context parallelism, the ring's receive buffers;
    ``buffers`` the ZeRO-3 gathered parameters (two layers, and the embedding and head,
    kept gathered for the step). The replay's ledger reaches this peak
    exactly, except with ZeRO-3, where it is an upper bound (the gathers run ahead on their
    own stream).
    """
    shape = cfg.shape()
    last_vs = cfg.pp * cfg.chunks - 1
    logits = shape.logits_bytes() if cfg.model.vocab else 0
    per_vs, bump, fwd = {}, {}, {}
    ring = ring_buffers(cfg, backward=False)
    for c in range(cfg.chunks):
        vs = c * cfg.pp + stage
        layers = cfg.layers_of(vs)
        per_vs[c] = sum(layer_keep(cfg, layer, cfg.recompute) for layer in layers) \
            + (logits if vs == last_vs else 0)
        # the ring's receive buffers during the last layer's forward (before the logits)
        fwd[c] = per_vs[c] - (logits if vs == last_vs else 0) + ring if layers else 0
        bump[c] = _backward_bump(cfg, layers, logits if vs == last_vs else 0)
    live = peak = 0
    for u in stage_units(cfg.schedule_name, stage, cfg.pp, cfg.micro_batches, cfg.chunks):
        if u.forward:
            peak = max(peak, live + fwd[u.chunk])
            live += per_vs[u.chunk]
            peak = max(peak, live)
            continue
        peak = max(peak, live + bump[u.chunk])
        live -= per_vs[u.chunk]
    out = static_memory(cfg, stage)
    out["activations"] = int(peak)
    out["buffers"] = 0
    if cfg.zero >= 3 and cfg.dp_ranks > 1:  # two gathered layers, the gathered embedding and head
        sp = stage_params(cfg, stage)
        out["buffers"] = 2 * _layer_param_bytes(cfg) + 2 * (sp.embedding + sp.head)
    out["total"] = sum(out.values())
    return out


def memory_fit(cfg: TransformerConfig, capacity_bytes: int) -> str | None:
    """Why ``cfg`` cannot fit in ``capacity_bytes`` per GPU (the analytic memory model of
    its largest stage), or None if every stage fits."""
    for stage in range(cfg.pp):
        mem = memory_breakdown(cfg.padded(), stage)
        if mem["total"] > capacity_bytes:
            parts = ", ".join(f"{k} {mem[k] / 2**30:.1f}" for k in
                              ("weights", "grads", "optimizer", "activations", "buffers"))
            return (f"out of memory (analytic, not simulated): pipeline stage {stage} needs "
                    f"{mem['total'] / 2**30:.1f} GiB per GPU ({parts} GiB), more than "
                    f"{capacity_bytes / 2**30:.0f} GiB")
    return None

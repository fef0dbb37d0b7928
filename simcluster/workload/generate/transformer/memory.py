"""The analytic memory model: parameters per stage, weights, gradients and optimizer states
per ZeRO stage, the activation peak over the schedule, and whether a configuration fits a
GPU's memory (bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.workload.generate.schedules import stage_units
from simcluster.workload.generate.transformer.config import TransformerConfig


@dataclass(frozen=True)
class StageParams:
    """Parameters held by one rank of a stage (TP-sharded, before DP sharding)."""

    layers: int
    embedding: int
    head: int

    @property
    def total(self) -> int:
        return self.layers + self.embedding + self.head


def stage_params(cfg: TransformerConfig, stage: int) -> StageParams:
    """Parameters on one TP rank of ``stage``: matrices split over TP, biases and norms
    counted whole (an upper bound of a few hidden-sized vectors)."""
    m, t = cfg.model, cfg.tp
    nlayers = sum(len(cfg.layers_of(c * cfg.pp + stage)) for c in range(cfg.chunks))
    per_layer = m.layer_matmul_params // t + (m.layer_params - m.layer_matmul_params)
    emb = head = 0
    if m.vocab:
        if stage == 0:
            emb = m.vocab * m.hidden // t + (m.seq_len * m.hidden if m.learned_positions else 0)
        if stage == cfg.pp - 1:
            head = m.head_params - (0 if m.tied_embeddings else m.vocab * m.hidden)
            if not m.tied_embeddings or cfg.pp > 1:  # untied head, or the tied copy
                head += m.vocab * m.hidden // t
    return StageParams(layers=nlayers * per_layer, embedding=emb, head=head)


def _layer_param_bytes(cfg: TransformerConfig) -> int:
    """bf16 bytes of one layer's parameters on a TP rank (ZeRO-3 gather buffer)."""
    m = cfg.model
    return 2 * (m.layer_matmul_params // cfg.tp + m.layer_params - m.layer_matmul_params)


def static_memory(cfg: TransformerConfig, stage: int) -> dict[str, int]:
    """Weights (bf16), gradients and Adam states (fp32 master, m, v) of one rank, bytes,
    sharded over DP per the ZeRO stage."""
    p = stage_params(cfg, stage).total
    d = cfg.dp
    return {
        "weights": 2 * p // (d if cfg.zero >= 3 else 1),
        "grads": cfg.gbytes * p // (d if cfg.zero >= 2 else 1),
        "optimizer": 12 * p // (d if cfg.zero >= 1 else 1),
    }


def memory_breakdown(cfg: TransformerConfig, stage: int) -> dict[str, int]:
    """Analytic peak memory of one rank of ``stage`` by category, bytes.

    ``activations`` is the largest sum, over the schedule, of the activations of the
    micro-batches in flight (including logits on the last stage) plus the transient of
    recomputing one layer; ``buffers`` the ZeRO-3 gathered parameters (two layers, and the
    embedding and head, kept gathered for the step). The replay's ledger reaches this peak
    exactly, except with ZeRO-3, where it is an upper bound (the gathers run ahead on their
    own stream).
    """
    shape = cfg.shape()
    keep = shape.layer_activation_bytes(cfg.recompute)
    transient = 0
    if cfg.recompute == "full":
        transient = shape.layer_activation_bytes("none")
    elif cfg.recompute == "selective" and not cfg.flash_attention:
        transient = int(2 * shape.score_elems + (shape.score_elems if cfg.model.dropout else 0))
    last_vs = cfg.pp * cfg.chunks - 1
    logits = shape.logits_bytes() if cfg.model.vocab else 0
    per_vs = {}
    for c in range(cfg.chunks):
        vs = c * cfg.pp + stage
        per_vs[c] = len(cfg.layers_of(vs)) * keep + (logits if vs == last_vs else 0)
    live = peak = 0
    for u in stage_units(cfg.schedule_name, stage, cfg.pp, cfg.micro_batches, cfg.chunks):
        if u.forward:
            live += per_vs[u.chunk]
            peak = max(peak, live)
            continue
        if u.chunk * cfg.pp + stage == last_vs:  # the head's backward frees the logits first
            peak = max(peak, live, live - logits + transient)
        else:
            peak = max(peak, live + transient)
        live -= per_vs[u.chunk]
    out = static_memory(cfg, stage)
    out["activations"] = int(peak)
    out["buffers"] = 0
    if cfg.zero >= 3 and cfg.dp > 1:  # two gathered layers, the gathered embedding and head
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

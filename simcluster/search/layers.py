"""What the closed-form estimate (``estimate.py``) needs to know about a MoE layer and
context parallelism: the ops' costs, the collectives and the groups they run over, all
taken from the generator's own closed forms (``workload/generate/transformer/moe.py``,
``cp.py``) so that the estimate and the simulated workload agree on every FLOP and byte.

**MoE layer** (per micro-batch, forward; the backward mirrors it): the router GEMM and
top-k, the permutation, the grouped expert GEMMs on the busiest rank's ``M = R etp`` rows
(``R = min(skew, capacity) T_l k``: the load factor sets the pace), the un-permutation and
the shared experts as a dense MLP, and the copies around the experts (regrouping by
local expert, the expert-TP collectives' flat buffers unless padded to capacity,
SequentialMLP's ``cat``: ``moe.dispatcher_copies``). Its
communication: dispatch and combine over the EP
group (two all-to-alls of ``R h e`` bytes per rank, or with the all-gather dispatcher an
all-gather and a reduce-scatter of the group's ``ep T_l`` rows), and with expert TP an
all-gather and a reduce-scatter of the ``M`` rows over the TP group. They block the
experts that follow them, so all of it is exposed.

**Context parallelism.** Ring attention (``p2p``): ``C`` attention steps of the per-rank
shape, each of ``C - 1`` K/V exchanges hidden under one step's attention: the layer's
attention takes ``a + (C - 1) max(a, x)`` (``a`` one step, ``x`` one exchange; the
backward's messages are twice the size), so a ring whose exchange fits under the attention
adds nothing, and one that does not adds exactly ``(C - 1) (x - a)``. Ulysses (``a2a``):
the attention on the whole sequence and ``1 / (tp C)`` of the heads, between two blocking
all-to-alls over the CP group.
"""

from __future__ import annotations

from dataclasses import replace

from simcluster.workload.generate.costs import Cost, Shape
from simcluster.workload.generate.transformer import TransformerConfig
from simcluster.workload.generate.transformer.cp import a2a_bytes, kv_bytes, ulysses_shape
from simcluster.workload.generate.transformer.moe import (
    dispatcher_copies,
    expert_gemms,
    expert_groups,
    expert_layout,
    grouped_gemm,
    grouped_gemm_bwd,
    permute,
    router_topk,
    separate_expert_dp,
    unpermute,
)


def moe_costs(cfg: TransformerConfig, shape: Shape, backward: bool
              ) -> tuple[list[Cost], list[Cost]]:
    """(GEMM, other) costs of one MoE layer's MLP block on a rank, one micro-batch: the
    ops ``moe_ops._MoeOps`` emits, without the fp8 casts."""
    m, lay, eg = cfg.model, expert_layout(cfg), expert_gemms(cfg)
    h, a2a = m.hidden, cfg.moe_dispatcher == "alltoall"
    r1 = (lay.received if a2a else lay.ep * lay.tokens) * lay.etp
    # the permutation and its backward cost the same (``moe.permute``)
    perm = permute(shape, lay.tokens, lay.routed, h) if a2a \
        else permute(shape, r1, lay.expert_tokens, h)
    unperm = unpermute(shape, lay.routed, lay.tokens, h, backward) if a2a \
        else unpermute(shape, lay.expert_tokens, r1, h, backward)
    router = (lay.tokens, h, m.experts)
    grouped = grouped_gemm_bwd if backward else grouped_gemm
    gemms = [grouped(shape, *eg["fc1"], lay.local_experts),
             grouped(shape, *eg["fc2"], lay.local_experts)]
    gemms += [shape.gemm_dgrad(*router) + shape.gemm_wgrad(*router)] if backward \
        else [shape.gemm(*router)]
    other = [router_topk(shape, lay, m.experts, m.top_k, backward), perm, unperm,
             shape.activation_fn(backward, elems=lay.expert_tokens * eg["fc2"][1]),
             *dispatcher_copies(cfg, shape)]
    if m.shared_experts:
        shared = replace(shape, model=replace(m, ffn=m.shared_experts * m.expert_ffn))
        g = shared.layer_gemms()
        for k in ("fc1", "fc2"):
            gemms += [shared.gemm_dgrad(*g[k]) + shared.gemm_wgrad(*g[k])] if backward \
                else [shared.gemm(*g[k])]
        other.append(shared.activation_fn(backward))
    return gemms, other


def moe_collectives(cfg: TransformerConfig) -> list[tuple[str, str, int]]:
    """(group ``ep`` or ``tp``, collective, bytes per rank) of one MoE layer's forward on a
    rank (the backward runs the same ones), as the generator emits them.

    >>> from simcluster.workload.generate.presets import ModelSpec
    >>> moe = ModelSpec(name="m", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256,
    ...                 vocab=256, seq_len=32, experts=4, top_k=2, moe_ffn=64)
    >>> moe_collectives(TransformerConfig(model=moe, dp=4, ep=4))  # 32 tokens x 2 x 64 x 2 B
    [('ep', 'all_to_all', 8192), ('ep', 'all_to_all', 8192)]
    """
    lay = expert_layout(cfg)
    row = 2 * cfg.model.hidden  # bytes of one 16-bit token row
    a2a = cfg.moe_dispatcher == "alltoall"
    r0 = lay.received if a2a else lay.ep * lay.tokens
    out = []
    if lay.ep > 1:
        out += [("ep", "all_to_all", int(r0 * row))] * 2 if a2a else \
            [("ep", "all_gather", int(r0 * row)), ("ep", "reduce_scatter", int(r0 * row))]
    if lay.etp > 1:
        size = int(r0 * lay.etp * row)
        out += [("tp", "all_gather", size), ("tp", "reduce_scatter", size)]
    return out


def rank0_groups(cfg: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """The groups of rank 0 (TP rank 0, stage 0, replica 0, CP rank 0) the estimate times:
    ``tp``, ``cp``, ``dp`` (dense gradients: the ``dp x cp`` ranks), ``pp`` (rank 0 and its
    next stage's peer) and, for a MoE model, ``ep`` and ``edp`` (expert gradients; the
    ``dp`` group when the experts are laid out as the dense weights)."""
    out = {"tp": tuple(range(cfg.tp)),
           "cp": tuple(cfg.rank(0, 0, 0, c) for c in range(cfg.cp)),
           "dp": tuple(sorted(cfg.rank(0, 0, d, c) for d in range(cfg.dp)
                              for c in range(cfg.cp))),
           "pp": (0, cfg.rank(0, 1, 0)) if cfg.pp > 1 else (0,)}
    if cfg.hybrid:  # the shard group (consecutive replicas) and the shard across groups
        n = cfg.shard_group
        out["shard"] = tuple(sorted(cfg.rank(0, 0, d, c) for d in range(n)
                                    for c in range(cfg.cp)))
        out["repl"] = tuple(cfg.rank(0, 0, d, 0) for d in range(0, cfg.dp, n))
    if cfg.model.moe:
        groups = expert_groups(cfg, 1)
        mine = {k.split(".")[0]: v for k, v in groups.items() if 0 in v}
        out["ep"] = mine.get("ep", (0,))
        out["edp"] = mine.get("edp", (0,)) if separate_expert_dp(cfg) else out["dp"]
    return out


def dp_collectives(cfg: TransformerConfig, params: int) -> list[tuple[str, str, int]]:
    """(group, collective, bytes) that reduce ``params`` dense gradients of a rank over data
    parallelism and, with ZeRO, gather its updated parameters, summed over buckets as the
    generator emits them for ZeRO 0-2: an all-reduce over ``dp``; or a reduce-scatter and
    a bf16 all-gather over the ZeRO group (``dp``, or with hybrid sharding ``shard``) and,
    hybrid, the all-reduce of the rank's gradient shard over ``repl``.

    >>> from simcluster.workload.generate.presets import ModelSpec
    >>> m = ModelSpec(name="m", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256,
    ...               vocab=256, seq_len=32)
    >>> dp_collectives(TransformerConfig(model=m, dp=4, zero=1, shard_group=2), 1000)
    [('shard', 'reduce_scatter', 4000), ('shard', 'all_gather', 2000), ('repl', 'all_reduce', 2000)]
    """
    grads = params * cfg.gbytes
    if cfg.zero == 0:
        return [("dp", "all_reduce", grads)]
    zg = "shard" if cfg.hybrid else "dp"
    out = [(zg, "reduce_scatter", grads), (zg, "all_gather", 2 * params)]
    if cfg.hybrid:
        out.append(("repl", "all_reduce", -(-grads // cfg.shard_ranks)))
    return out


def ring_us(step_us: float, exchange_us: float, cp: int) -> tuple[float, float]:
    """(time, exposed communication) of one ring attention of ``cp`` steps of ``step_us``
    each, every exchange after the first step hidden under one step (module docstring).

    >>> ring_us(10.0, 6.0, 4)  # the exchange fits under a step: nothing exposed
    (40.0, 0.0)
    >>> ring_us(10.0, 15.0, 4)  # 5 us over, 3 times
    (55.0, 15.0)
    """
    if cp <= 1:
        return step_us, 0.0
    exposed = (cp - 1) * max(exchange_us - step_us, 0.0)
    return cp * step_us + exposed, exposed


def cp_attention(cfg: TransformerConfig, shape: Shape, backward: bool
                 ) -> tuple[Cost, list[tuple[str, int]]]:
    """One step's attention cost and the CP communication of one layer's attention
    (forward or backward): for the ring, one exchange ``("sendrecv", bytes)`` (K/V, with
    dK/dV backward); for Ulysses, the whole attention and its two all-to-alls; without CP,
    the attention and nothing."""
    if cfg.cp <= 1:
        return shape.attention(backward), []
    if cfg.cp_comm == "a2a":
        qkv, out = a2a_bytes(cfg)
        return ulysses_shape(cfg).attention(backward), [("all_to_all", int(qkv)),
                                                        ("all_to_all", int(out))]
    return shape.attention(backward), [("sendrecv", int((2 if backward else 1)
                                                         * kv_bytes(cfg)))]

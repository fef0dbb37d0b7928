"""Context parallelism (CP): each sequence split over ``cp`` ranks, attention as a ring.

**Layout** (Megatron-Core / Transformer Engine): a CP group is the ``cp`` ranks of one TP rank,
stage and replica; ranks are numbered ``rank = t + T (c + C (i + S (p + P j)))`` for CP rank
``c`` of ``C`` (``config.TransformerConfig.rank``), so a ``T C`` block of consecutive ranks
(one server when ``T C`` <= GPUs per server) holds a TP x CP grid. The ranks of one TP rank
and stage hold the same weights whatever their CP rank, so gradients are reduced (and ZeRO
shards) over the ``dp x cp`` ranks of a TP rank and stage: the group ``dp.p<p>.t<t>``.

**Tokens.** Causal load balancing splits a sequence into ``2 C`` chunks; CP rank ``c`` holds
chunks ``c`` and ``2C - 1 - c``: ``s / C`` tokens per sequence. Every per-token op (GEMMs,
norms, embedding, loss, the stored activations) works on ``b s / C`` tokens
(``config.TransformerConfig.shape`` is the per-rank shape with ``seq_len = s / C``).

**Ring attention** (``cp_comm = p2p``), per layer and micro-batch, ``C`` steps: step ``i``
computes the rank's queries against one K/V block (its own at step 0, then the block of CP
rank ``c - i``); meanwhile the block is passed on: a send to the next CP rank and a receive
from the previous one (``C - 1`` exchanges of :func:`kv_bytes`, streams ``cp_send`` and
``cp_recv``). The receive of step ``i + 1``'s block is posted when step ``i - 1``'s attention
ends (double buffering: it reuses that buffer), so it overlaps step ``i``'s attention: a step
whose exchange is shorter than its attention adds no time; a longer one adds the difference.

**FLOPs.** The attention FLOPs are counted as everywhere here (``2 b s^2 (q + v)`` per layer
forward, Megatron's convention without causal halving). With load balancing every ring step
does the same work, one ``(s/C) x (s/C)`` block's: the diagonal step has two half-diagonal
chunk pairs and one full pair (2 chunk pairs of 4), an off-diagonal step exactly 2 of its 4
chunk pairs. So one step costs ``attention()`` of the per-rank shape (``1 / C^2`` of the
sequence's), a rank ``1 / C`` of it, and the ``C`` ranks the non-CP total: the model FLOPs
per step (``metrics.py``) do not change.

**All-to-all** (``cp_comm = a2a``, DeepSpeed-Ulysses): an ``all_to_all`` over the CP group
(``cp.d<d>.p<p>.t<t>``) turns the rank's Q, K, V of ``b s / C`` tokens and ``1 / t`` of the
heads into the full sequence with ``1 / (t C)`` of the heads (``L<l>.<pass>.cp_a2a_qkv``,
``e b (s / C) (q/t + k_t + v_t)`` bytes per rank); the attention runs on it (``1 / C`` of the
sequence's FLOPs); a second one brings the output back (``cp_a2a_out``, ``e b (s / C) v/t``
bytes). The backward mirrors it (dO, then dQ, dK, dV). They block the compute (stream
``compute``): nothing to overlap. Needs ``heads`` divisible by ``tp x cp`` (KV heads: divisible,
or replicated as with TP).

**Backward** mirrors it: ``C`` steps of the attention backward (each ``1 / C^2`` of the
sequence's), with ``C - 1`` exchanges of the K/V block together with its accumulated
gradient dK/dV (twice the forward's bytes).

**Memory.** Activations scale by ``1 / C`` (per-rank shape); the ring's receive buffers are
allocated by each receive and freed by the attention step that uses them: at most
``min(C - 1, 2)`` are live (:func:`ring_buffers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simcluster.workload.generate.costs import Cost, Shape
from simcluster.workload.generate.transformer.template import _CP

if TYPE_CHECKING:
    from simcluster.workload.generate.transformer.config import TransformerConfig
    from simcluster.workload.generate.transformer.template import _Rank

CP_COMMS = ("p2p", "a2a")
# Peer codes of ring exchanges in a template (``_Rank.peer_stage``; stages are >= 0, -1 none).
NEXT_CP, PREV_CP = -2, -3


def check_cp(cfg: TransformerConfig) -> list[str]:
    """Problems with the context-parallel settings, as messages naming the option and its
    valid values (empty when fine)."""
    out: list[str] = []
    if cfg.cp_comm not in CP_COMMS:
        out.append(f"cp_comm {cfg.cp_comm!r} is not one of {', '.join(CP_COMMS)}")
    if cfg.cp <= 1:
        return out
    m = cfg.model
    if m.seq_len % (2 * cfg.cp):
        out.append(f"cp {cfg.cp} needs seq_len ({m.seq_len}) divisible by 2 x cp = "
                   f"{2 * cfg.cp} (causal load balancing: 2 cp chunks per sequence)")
    tc = cfg.tp * cfg.cp
    if cfg.cp_comm == "a2a" and (m.heads % tc or m.kv_heads % tc and tc % m.kv_heads):
        out.append(f"cp_comm a2a (Ulysses) splits the heads over tp x cp = {tc}: heads "
                   f"{m.heads} / kv_heads {m.kv_heads} do not split; use cp_comm p2p or a cp "
                   f"with heads divisible by tp x cp")
    if not cfg.flash_attention:
        out.append("cp > 1 needs flash_attention (ring attention runs the fused kernel)")
    return out


def kv_bytes(cfg: TransformerConfig) -> float:
    """Bytes of one rank's K/V block (K and V of its ``b s / C`` tokens, its TP share of
    the KV heads, 16-bit): one forward ring message."""
    s = cfg.shape()
    return s.act_bytes * s.tokens * (s.kv_width + s.v_width)


def ring_buffers(cfg: TransformerConfig, backward: bool) -> int:
    """Most bytes of ring receive buffers live at once during a layer's (forward or
    backward) attention: ``min(C - 1, 2)`` messages (0 without CP)."""
    if cfg.cp <= 1 or cfg.cp_comm != "p2p":
        return 0
    return int(min(cfg.cp - 1, 2) * (2 if backward else 1) * kv_bytes(cfg))


def ulysses_shape(cfg: TransformerConfig) -> Shape:
    """The shape the Ulysses attention runs on: the whole sequence, ``1 / (tp cp)`` of the
    heads (its ``attention()`` is one rank's)."""
    return Shape(model=cfg.model, micro_batch=cfg.micro_batch, tp=cfg.tp * cfg.cp, sp=False,
                 act_bytes=2, flash=cfg.flash_attention)


def a2a_bytes(cfg: TransformerConfig) -> tuple[float, float]:
    """Bytes per rank of the Ulysses all-to-alls: (Q, K, V in; the output back)."""
    s, m = cfg.shape(), cfg.model
    qkv = s.act_bytes * s.tokens * (m.q_dim / cfg.tp + s.kv_width + s.v_width)
    return qkv, s.act_bytes * s.tokens * m.v_dim / cfg.tp


def ulysses_attention(r: _Rank, cfg: TransformerConfig, prefix: str, attn: str,
                      dtype: str, backward: bool) -> int:
    """Emit one layer's Ulysses attention (forward or backward) in stream order: the
    all-to-all in, the attention on the full sequence and ``1 / (t C)`` of the heads, the
    all-to-all out; returns the last op."""
    qkv, out = a2a_bytes(cfg)
    first, last = (out, qkv) if backward else (qkv, out)
    names = ("cp_a2a_dout", "cp_a2a_dqkv") if backward else ("cp_a2a_qkv", "cp_a2a_out")
    r.coll(f"{prefix}.{names[0]}", "all_to_all", first, _CP, "compute")
    r.compute(f"{prefix}.{attn}", ulysses_shape(cfg).attention(backward), dtype)
    return r.coll(f"{prefix}.{names[1]}", "all_to_all", last, _CP, "compute")


def ring_attention(r: _Rank, cfg: TransformerConfig, prefix: str, attn: str, cost: Cost,
                   dtype: str, backward: bool, after: int) -> int:
    """Emit one layer's ring attention (forward or backward) after op ``after`` (the last
    op before it); ``cost`` is one step's (the per-rank shape's attention). Returns the last
    attention step. Steps are compute ops named
    ``<prefix>.cp<i>.<attn>``; exchanges ``<prefix>.cp_send<i>`` / ``cp_recv<i>``."""
    C = cfg.cp
    size = int((2 if backward else 1) * kv_bytes(cfg))
    prev_attn = prev_recv = -1
    for i in range(C):
        recv = -1
        if i < C - 1:
            src = after if i == 0 else prev_recv
            r.p2p("send", f"{prefix}.cp_send{i}", size, NEXT_CP, "cp_send", grad=backward,
                  deps=[src])
            recv = r.p2p("recv", f"{prefix}.cp_recv{i}", size, PREV_CP, "cp_recv",
                         grad=backward, deps=[after if i == 0 else prev_attn])
            r.alloc[recv] += size
        deps = [prev_recv] if i > 0 else [after]
        prev_attn = r.compute(f"{prefix}.cp{i}.{attn}", cost, dtype, deps=deps,
                              free=size if i > 0 else 0)
        prev_recv = recv
    return prev_attn

"""Mixture-of-experts layers with expert parallelism: where the experts and the tokens land,
the EP groups, the checks, and the closed forms (FLOPs, bytes, parameters, activations).

**Layout** (Megatron-Core's): the routed experts of a MoE layer are split over ``ep`` ranks
(``E / ep`` local experts each) and, with ``expert_tp = tp``, each expert's matrices over the
TP group as the dense MLP's are. The EP groups are carved out of the data-parallel ranks:
with ``expert_tp = tp`` (or ``tp = 1``) an EP group is ``ep`` replicas' ranks of the same TP
rank; with ``expert_tp = 1 < tp`` it runs over the ``tp x dp`` ranks of a stage, TP rank
fastest (``ep`` a multiple of ``tp``). Either way an EP group spans
``S = ep_span`` replicas, and ranks are numbered ``rank = t + T (i + S (p + P j))`` for
replica ``d = j S + i``: the ``T S`` ranks of an EP block are consecutive, inside one
NVLink domain whenever ``T S`` <= GPUs per server (for ``S = 1``, the dense numbering
``t + T (p + P d)``). The ranks holding the same experts (same TP rank, same EP index)
form the expert-data-parallel group (``edp``, size ``tp dp / (ep expert_tp)``), over which
expert gradients are reduced and, with ZeRO, their optimizer states sharded; everything
else is reduced over the full data-parallel group.

**Tokens.** With sequence parallelism (required with TP, as in Megatron-Core) a rank routes
``T_l = T / tp`` tokens (``T`` without TP), each to ``k`` experts: ``T_l k`` token copies.
Balanced, every EP rank receives ``T_l k`` copies. ``moe_skew`` ``s`` makes the busiest rank
receive ``s T_l k``, and a capacity factor ``c`` caps it (tokens beyond are dropped): the
busiest rank receives ``R = min(s, c) T_l k`` copies, and every rank is modelled as that one
(the slowest sets the pace of the collectives that follow).

**Dispatch.** ``alltoall``: an all-to-all over the EP group before the experts (dispatch)
and after them (combine), each of size ``R h e`` (the busiest rank's receive total). Balanced
(``s = 1``), every pair moves ``T_l k h e / ep`` and the ops carry no ``splits``. Under skew
the all-to-alls are uneven all-to-allv with per-pair ``splits`` (``docs/formats.md``): in
MoE layer ``l`` the busiest EP rank is the one at position ``l mod ep`` of the EP group (the
hot experts move from layer to layer), its load is ``s`` times the mean and every other
rank's ``(ep - s) / (ep - 1)`` times it (the mean stays 1), each capped at ``c``. Each rank
sends ``floor(T_l k h e min(load_j, c) / ep)`` bytes to member ``j`` towards the experts
(forward dispatch, backward combine) and receives as much back from it the other way
(forward combine, backward dispatch): :func:`a2a_splits`. ``allgather``: the ``ep T_l``
tokens all-gathered over the EP group, and the outputs reduce-scattered back (``ep T_l h e``
bytes each). With ``expert_tp > 1`` the received tokens are all-gathered over the TP group
before the experts and reduce-scattered after.

**Ops per MoE layer and micro-batch**: router GEMM ``T_l x h x E``, ``router_topk`` (scores,
top-k, auxiliary loss: elementwise on ``T_l E`` fp32 scores), ``permute`` (the ``T_l k``
copies gathered in expert order), dispatch, the grouped expert GEMMs ``experts.fc1``,
``experts.act``, ``experts.fc2`` on the ``M = R expert_tp`` copies of the local experts
(``E / ep`` weight matrices read), combine, ``unpermute`` (the ``k`` outputs of a token
weighted and summed), then the shared experts as a dense MLP of width ``shared_experts x
moe_ffn`` (TP-sharded, with its TP communication). The backward mirrors it: the shared
experts (dgrad/wgrad split as in a dense MLP), ``unpermute``, combine's all-to-all, each
expert GEMM's dgrad and wgrad as one grouped op, dispatch's all-to-all, ``permute``, the
router.

**Framework copies** (Megatron-Core's all-to-all dispatcher, core_v0.10.0
``transformer/moe/token_dispatcher.py``, ``tensor_parallel/mappings.py``): with several
local experts the received rows are regrouped by expert (``sort_chunks``) after the
expert-TP all-gather and back before the reduce-scatter, a copy of the ``M`` rows each, and
one more each in the backward; the expert-TP all-gather and reduce-scatter pass split sizes,
so ``torch.distributed`` runs them on a flat buffer with a copy of the ``M`` rows out of it
(all-gather) or into it (reduce-scatter): ``etp_ag_unflatten``, ``etp_rs_flatten``.

**Padding to capacity** (``moe_pad_to_capacity``, Megatron-Core's
``moe_pad_expert_input_to_capacity``): the router drops tokens over capacity and pads every
expert's input to exactly ``capacity_factor`` times its mean share, so the busiest rank
receives ``R = c T_l k`` rows whatever the skew and every all-to-all is even. The
dispatcher's ``preprocess`` then returns before it computes split sizes (core_v0.10.0
``token_dispatcher.py``: ``input_splits``, ``output_splits``, ``output_splits_tp`` stay
None), so the all-to-alls run as ``all_to_all_single`` and the expert-TP all-gather and
reduce-scatter as ``all_gather_into_tensor`` / ``reduce_scatter_tensor``
(``mappings.py``: ``output_split_sizes is None``): no flat-buffer copies.

**SequentialMLP** (``moe_grouped_gemm`` False, Megatron-Core ``experts.py``): one MLP per
local expert on its slice of the rows (``torch.split``, a view), the outputs joined by
``torch.cat`` (a copy of the ``M`` rows, ``experts_cat``), and in the backward the input
gradient joined from the split's pieces (the gradient of ``split`` is a ``cat``: one more
copy). With one local expert there is neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from simcluster.workload.generate.costs import Cost, Shape
from simcluster.workload.generate.presets import PRESETS

if TYPE_CHECKING:
    from simcluster.workload.generate.transformer.config import TransformerConfig

MOE_DISPATCHERS = ("alltoall", "allgather")
_MOE_OPTIONS = (("ep", 1), ("expert_tp", 1), ("capacity_factor", None), ("moe_skew", 1.0),
                ("moe_dispatcher", "alltoall"), ("moe_pad_to_capacity", False),
                ("moe_grouped_gemm", True))


@dataclass(frozen=True)
class ExpertLayout:
    """Where one MoE layer's experts and tokens land on a rank (module docstring).

    Attributes:
        ep, etp: expert-parallel and expert tensor-parallel sizes.
        edp: expert-data-parallel size (ranks holding the same experts).
        local_experts: routed experts per rank, ``E / ep``.
        tokens: tokens a rank routes, ``T_l``.
        routed: token copies a rank sends, ``T_l k``.
        factor: received over the balanced share, ``min(skew, capacity)``.
        received: token copies the busiest rank receives from the dispatch, ``R``.
        expert_tokens: rows of the expert GEMMs on a rank, ``M = R etp``.
    """

    ep: int
    etp: int
    edp: int
    local_experts: int
    tokens: float
    routed: float
    factor: float
    received: float
    expert_tokens: float


def ep_span(cfg: TransformerConfig) -> int:
    """Data-parallel replicas one EP group spans (1 for a dense model). With context
    parallelism an EP group takes all ``cp`` ranks of each replica it spans: ``ep / cp``."""
    if not cfg.model.moe:
        return 1
    if cfg.tp == 1 or cfg.expert_tp == cfg.tp:
        return max(1, cfg.ep // cfg.cp)  # ep is a multiple of cp (checked)
    return max(1, cfg.ep // cfg.tp)  # ep is a multiple of tp (checked)


def expert_layout(cfg: TransformerConfig) -> ExpertLayout:
    """The layout of ``cfg``'s MoE layers (a checked MoE configuration)."""
    m, shape = cfg.model, cfg.shape()
    tokens = shape.ln_tokens
    if cfg.capacity_factor is None:
        factor = cfg.moe_skew
    elif cfg.moe_pad_to_capacity:  # every expert computes exactly its capacity
        factor = cfg.capacity_factor
    else:
        factor = min(cfg.moe_skew, cfg.capacity_factor)
    received = factor * tokens * m.top_k
    return ExpertLayout(ep=cfg.ep, etp=cfg.expert_tp,
                        edp=cfg.tp * cfg.dp * cfg.cp // (cfg.ep * cfg.expert_tp),
                        local_experts=m.experts // cfg.ep, tokens=tokens,
                        routed=tokens * m.top_k, factor=factor, received=received,
                        expert_tokens=received * cfg.expert_tp)


def a2a_splits(cfg: TransformerConfig, position: int, hot: int, towards: bool) -> list[int]:
    """The bytes EP member ``position`` sends to each member of its EP group in an uneven
    all-to-all whose busiest member is ``hot`` (module docstring): ``towards`` the experts,
    each member ``j``'s share of this rank's tokens; back from them, this rank's share of
    every member's tokens.

    Example:
        >>> from simcluster.workload.generate.presets import ModelSpec
        >>> from simcluster.workload.generate.transformer.config import TransformerConfig
        >>> m = ModelSpec("toy", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
        ...               seq_len=32, experts=4, top_k=2, moe_ffn=64)
        >>> cfg = TransformerConfig(model=m, dp=4, ep=4, moe_skew=2.5, global_batch=4)
        >>> a2a_splits(cfg, 0, 1, True)  # 32 tokens x 2 copies x 64 x 2 B; loads .5 2.5 .5 .5
        [1024, 5120, 1024, 1024]
        >>> a2a_splits(cfg, 1, 1, False)  # the busiest sends its 2.5 / 4 share back to each
        [5120, 5120, 5120, 5120]
    """
    lay = expert_layout(cfg)
    ep, skew = lay.ep, cfg.moe_skew
    cap = cfg.capacity_factor if cfg.capacity_factor is not None else float("inf")
    unit = lay.routed * cfg.shape().act_bytes * cfg.model.hidden / ep
    load = [min(skew if j == hot else (ep - skew) / (ep - 1), cap) for j in range(ep)]
    if towards:
        return [int(unit * x) for x in load]
    return [int(unit * load[position])] * ep


def uneven_a2a(cfg: TransformerConfig) -> bool:
    """Whether the EP all-to-alls are uneven (per-pair ``splits``): under skew, unless every
    expert's input is padded to capacity (then every pair moves its capacity)."""
    return cfg.moe_skew > 1 and not cfg.moe_pad_to_capacity


def separate_expert_dp(cfg: TransformerConfig) -> bool:
    """Whether expert gradients need their own data-parallel group (they do unless the
    experts are laid out as the dense weights are: ``ep`` 1 and ``expert_tp = tp``)."""
    return cfg.model.moe and not (cfg.ep == 1 and cfg.expert_tp == cfg.tp)


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def check_moe(cfg: TransformerConfig) -> list[str]:
    """Problems with the MoE settings of ``cfg``, as messages naming the option and its
    valid values (empty when fine)."""
    m = cfg.model
    if not m.moe:
        given = [name for name, default in _MOE_OPTIONS if getattr(cfg, name) != default]
        if not given:
            return []
        moe = ", ".join(k for k, v in PRESETS.items() if v.moe)
        return [(f"{', '.join(given)} set, but model {m.name!r} is dense (experts 0): use a "
                 f"mixture-of-experts preset ({moe}) or set experts and top_k")]
    out = []
    if cfg.expert_tp not in (1, cfg.tp):
        out.append(f"expert_tp {cfg.expert_tp} must be 1 or tp ({cfg.tp})")
    if cfg.cp > 1 and cfg.expert_tp != cfg.tp:
        out.append(f"expert_tp {cfg.expert_tp} with cp {cfg.cp} is not modelled yet: use "
                   f"expert_tp = tp ({cfg.tp})")
    grid = cfg.dp * cfg.cp if cfg.expert_tp == cfg.tp else cfg.tp * cfg.dp
    valid = [e for e in _divisors(m.experts) if grid % e == 0
             and (cfg.expert_tp == cfg.tp or e % cfg.tp == 0) and e % cfg.cp == 0]
    if cfg.ep not in valid:
        over = ("dp x cp" if cfg.cp > 1 else "dp") if cfg.expert_tp == cfg.tp else "tp x dp"
        whole = "" if cfg.expert_tp == cfg.tp else f", and be a multiple of tp ({cfg.tp})"
        whole += f", and be a multiple of cp ({cfg.cp})" if cfg.cp > 1 else ""
        out.append(f"ep {cfg.ep} must divide the experts ({m.experts}) and the {over} ranks "
                   f"({grid}) it is carved from{whole}: use one of "
                   f"{', '.join(map(str, valid)) or 'none (change tp or expert_tp)'}")
    if m.expert_ffn % max(cfg.expert_tp, 1):
        out.append(f"moe_ffn {m.expert_ffn} must be a multiple of expert_tp {cfg.expert_tp}")
    if cfg.tp > 1 and not cfg.sequence_parallel:
        out.append("MoE layers with tp > 1 need sequence_parallel (as Megatron-Core requires)")
    if cfg.zero >= 2:
        out.append(f"zero {cfg.zero} is not modelled with MoE layers yet: use zero 0 or 1")
    if cfg.moe_pad_to_capacity and cfg.capacity_factor is None:
        out.append("moe_pad_to_capacity needs a capacity_factor (the capacity it pads to)")
    if cfg.capacity_factor is not None and cfg.capacity_factor <= 0:
        out.append(f"capacity_factor {cfg.capacity_factor} must be > 0 (or None: dropless)")
    if not 1.0 <= cfg.moe_skew <= max(cfg.ep, 1):
        out.append(f"moe_skew {cfg.moe_skew} must be between 1 (balanced) and ep ({cfg.ep}: "
                   "every token on one rank)")
    if cfg.moe_dispatcher not in MOE_DISPATCHERS:
        out.append(f"moe_dispatcher {cfg.moe_dispatcher!r} is not one of "
                   f"{', '.join(MOE_DISPATCHERS)}")
    return out


# -- groups -----------------------------------------------------------------------------------

def expert_group_names(cfg: TransformerConfig, t: int, p: int, d: int,
                       c: int = 0) -> tuple[str, str]:
    """The EP group and the expert-data-parallel group of rank ``(t, p, d, c)``: an EP group
    is the ``cp x ep_span`` ranks of one TP rank and stage in one block of replicas (as
    Megatron-Core carves EP out of the data-parallel-with-context-parallel ranks); its
    member ``c + cp i`` holds the same experts in every block."""
    s = ep_span(cfg)
    i, j = d % s, d // s
    if cfg.tp == 1 or cfg.expert_tp == cfg.tp:
        return f"ep.p{p}.b{j}.t{t}", f"edp.p{p}.t{t}.e{c + cfg.cp * i}"
    x = t + cfg.tp * i
    return f"ep.p{p}.b{j}.g{x // cfg.ep}", f"edp.p{p}.e{x % cfg.ep}"


def expert_groups(cfg: TransformerConfig, blocks: int) -> dict[str, tuple[int, ...]]:
    """EP groups of the first ``blocks`` EP blocks and all expert-data-parallel groups,
    members in rank order."""
    s = ep_span(cfg)
    ep: dict[str, list[int]] = {}
    edp: dict[str, list[int]] = {}
    for d in range(cfg.dp):
        for p in range(cfg.pp):
            for c in range(cfg.cp):
                for t in range(cfg.tp):
                    a, b = expert_group_names(cfg, t, p, d, c)
                    if d // s < blocks:
                        ep.setdefault(a, []).append(cfg.rank(t, p, d, c))
                    edp.setdefault(b, []).append(cfg.rank(t, p, d, c))
    out = {k: tuple(sorted(v)) for k, v in ep.items()} if cfg.ep > 1 else {}
    if separate_expert_dp(cfg):
        out.update({k: tuple(sorted(v)) for k, v in edp.items() if len(v) > 1})
    return out


# -- parameters -------------------------------------------------------------------------------

def layer_rank_params(cfg: TransformerConfig, layer: int) -> tuple[int, int]:
    """(dense, expert) parameters of ``layer`` on one rank: matrices split over TP (the
    router replicated), vectors whole; the local routed experts split over ``expert_tp``."""
    m, t = cfg.model, cfg.tp
    if not m.is_moe_layer(layer):
        return m.layer_matmul_params // t + (m.layer_params - m.layer_matmul_params), 0
    sharded = m.attention_matmul_params + m.shared_experts * m.expert_params
    dense = sharded // t + (m.moe_dense_params - sharded)
    return dense, (m.experts // cfg.ep) * m.expert_params // cfg.expert_tp


# -- costs ------------------------------------------------------------------------------------

def grouped_gemm(s: Shape, rows: float, k: float, n: float, mats: int) -> Cost:
    """Forward grouped GEMM: ``rows`` tokens over ``mats`` weight matrices ``k x n``."""
    w, e = s.gemm_bytes, s.act_bytes
    return Cost(2.0 * rows * k * n, w * (rows * k + mats * k * n) + e * rows * n)


def grouped_gemm_bwd(s: Shape, rows: float, k: float, n: float, mats: int) -> Cost:
    """Its dgrad (reads dY and W, writes dX) and wgrad (reads X and dY, accumulates the
    fp32 gradients) together."""
    w, e, g = s.gemm_bytes, s.act_bytes, s.grad_bytes
    dgrad = Cost(2.0 * rows * k * n, w * (rows * n + mats * k * n) + e * rows * k)
    wgrad = Cost(2.0 * rows * k * n, w * (rows * k + rows * n) + 2 * g * mats * k * n)
    return dgrad + wgrad


def expert_gemms(cfg: TransformerConfig) -> dict[str, tuple[float, float, float]]:
    """(rows, k, n) of a rank's expert GEMMs."""
    m, lay = cfg.model, expert_layout(cfg)
    f = m.expert_ffn / cfg.expert_tp
    return {"fc1": (lay.expert_tokens, m.hidden, (m.mlp_matrices - 1) * f),
            "fc2": (lay.expert_tokens, f, m.hidden)}


def router_topk(s: Shape, lay: ExpertLayout, experts: int, k: int,
                backward: bool = False) -> Cost:
    """Scores (softmax or sigmoid in fp32), top-k and the auxiliary loss on ``T_l E``
    scores: reads the logits, writes and rereads the fp32 scores, writes the top-k indices
    and weights (12 bytes per copy); backward reads the scores and writes the logits'
    gradient."""
    n = lay.tokens * experts
    if backward:
        return Cost(4.0 * n, (8 + s.act_bytes) * n)
    return Cost(8.0 * n, (s.act_bytes + 8) * n + 12.0 * lay.tokens * k)


def permute(s: Shape, rows_in: float, rows_out: float, hidden: int) -> Cost:
    """Gathering token rows in expert order (``rows_in`` read, ``rows_out`` written, an
    8-byte index per row of the larger side); its backward, the scatter-add back, is the
    same with the roles swapped."""
    big = max(rows_in, rows_out)
    return Cost(big * hidden, s.act_bytes * hidden * (rows_in + rows_out) + 8.0 * big)


def unpermute(s: Shape, copies: float, rows: float, hidden: int,
              backward: bool = False) -> Cost:
    """The ``copies`` expert outputs weighted and summed into ``rows`` token rows (2 FLOPs
    per element; an 8-byte index and a 4-byte weight per copy). Backward: reads the rows'
    gradient and the saved outputs (for the weights' gradient), writes the copies' gradient
    and the weights' (4 bytes per copy)."""
    e = s.act_bytes
    if backward:
        return Cost(2.0 * copies * hidden, e * hidden * (rows + 2 * copies) + 16.0 * copies)
    return Cost(2.0 * copies * hidden, e * hidden * (rows + copies) + 12.0 * copies)


def sort_chunks(s: Shape, rows: float, hidden: int) -> Cost:
    """The all-to-all dispatcher's second permutation with several local experts: the
    received rows, in (source rank, expert) chunks, regrouped by local expert
    (Megatron-Core's ``sort_chunks_by_idxs``: ``torch.split`` then ``torch.cat``, one copy
    of the ``rows`` expert rows, read and written); its inverse after the experts, and in
    the backward the gradient of each (``cat``'s split is a view, ``split``'s gradient a
    ``cat``), are one copy each."""
    return _row_copy(s, rows, hidden)


def split_list_copy(s: Shape, rows: float, hidden: int) -> Cost:
    """The copy that ``torch.distributed``'s list API adds to an expert-TP all-gather or
    reduce-scatter: Megatron-Core's all-to-all dispatcher passes split sizes, so the rows
    go through ``all_gather(list, ...)`` / ``reduce_scatter(out, list)``, which NCCL runs
    on a flat buffer: the ``rows`` gathered rows are copied out of it, or the rows to
    reduce copied into it (read and written once)."""
    return _row_copy(s, rows, hidden)


def _row_copy(s: Shape, rows: float, hidden: int) -> Cost:
    """One copy of ``rows x hidden`` activations: read and written once, no FLOPs."""
    return Cost(0.0, 2.0 * s.act_bytes * rows * hidden)


def flat_buffer_copies(cfg: TransformerConfig) -> bool:
    """Whether the expert-TP all-gather and reduce-scatter pass split sizes and so copy
    through a flat buffer (:func:`split_list_copy`): with the all-to-all dispatcher and
    expert TP, unless the input is padded to capacity (module docstring)."""
    return (cfg.moe_dispatcher == "alltoall" and cfg.expert_tp > 1
            and not cfg.moe_pad_to_capacity)


def sequential_cat(s: Shape, rows: float, hidden: int) -> Cost:
    """SequentialMLP's ``torch.cat`` of the local experts' outputs (forward) or of the
    input gradient's pieces (backward): one copy of the ``rows`` expert rows."""
    return _row_copy(s, rows, hidden)


def dispatcher_copies(cfg: TransformerConfig, s: Shape) -> list[Cost]:
    """The copies around the experts in one pass (forward, or backward) of a MoE layer on
    a rank: the all-to-all dispatcher's ``sort_chunks`` both ways with several local
    experts, the flat-buffer copy of the expert-TP all-gather and of its reduce-scatter
    (:func:`flat_buffer_copies`), and SequentialMLP's ``cat`` with several local experts
    (module docstring)."""
    lay, h = expert_layout(cfg), cfg.model.hidden
    several = lay.local_experts > 1
    out = [sequential_cat(s, lay.expert_tokens, h)] if several and not cfg.moe_grouped_gemm \
        else []
    if cfg.moe_dispatcher != "alltoall":
        return out
    out += [sort_chunks(s, lay.expert_tokens, h)] * 2 if several else []
    return out + ([split_list_copy(s, lay.expert_tokens, h)] * 2
                  if flat_buffer_copies(cfg) else [])


def moe_mlp_activation_bytes(cfg: TransformerConfig) -> float:
    """Bytes a MoE layer's MLP part keeps for the backward (no recompute), in place of the
    dense MLP's: the norm's input and output (the router's and the shared experts' input),
    the fp32 scores and top-k (``4 E + 12 k`` per token), the experts' FC1 input, activation
    input and FC2 input on ``M`` rows, the ``T_l k`` expert outputs ``unpermute`` weights,
    and the shared experts' activation and FC2 inputs."""
    m, s, lay = cfg.model, cfg.shape(), expert_layout(cfg)
    e, h, T = s.act_bytes, m.hidden, float(s.tokens)
    fe = m.expert_ffn / cfg.expert_tp
    fs = m.shared_experts * m.expert_ffn / cfg.tp
    drop = 1 if m.dropout else 0
    return (2 * e * lay.tokens * h + (4 * m.experts + 12 * m.top_k) * lay.tokens
            + e * lay.expert_tokens * (h + m.mlp_matrices * fe)
            + e * lay.routed * h + e * T * m.mlp_matrices * fs + drop * lay.tokens * h)


def layer_keep(cfg: TransformerConfig, layer: int, recompute: str) -> int:
    """Bytes ``layer`` keeps for its backward pass (``costs.Shape.layer_activation_bytes``
    for a dense layer; a MoE layer's MLP part replaced)."""
    s = cfg.shape()
    dense = s.layer_activation_bytes(recompute)
    if recompute == "full" or not cfg.model.is_moe_layer(layer):
        return dense
    return int(dense - s.mlp_activation_bytes() + moe_mlp_activation_bytes(cfg))

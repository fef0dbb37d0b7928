"""The ops of a MoE layer's MLP block, forward and backward (what each is: ``moe.py``):
router, token permutation, dispatch and combine over the EP group, grouped expert GEMMs,
the shared experts."""

from __future__ import annotations

from dataclasses import replace

from simcluster.workload.generate.costs import Cost
from simcluster.workload.generate.transformer.config import TransformerConfig
from simcluster.workload.generate.transformer.layers import _LayerOps
from simcluster.workload.generate.transformer.moe import (
    expert_gemms,
    expert_layout,
    flat_buffer_copies,
    grouped_gemm,
    grouped_gemm_bwd,
    permute,
    router_topk,
    sequential_cat,
    sort_chunks,
    split_list_copy,
    unpermute,
)
from simcluster.workload.generate.transformer.template import _EP, _TP, FROM_EXPERTS, TO_EXPERTS


class _MoeOps(_LayerOps):
    """MoE layers of :class:`~.stage._StageBuilder` (dense layers: :class:`_LayerOps`)."""

    def __init__(self, cfg: TransformerConfig, stage: int) -> None:
        super().__init__(cfg, stage)
        m = cfg.model
        if not m.moe:
            return
        self.lay = expert_layout(cfg)
        self.eg = expert_gemms(cfg)
        self.shared = replace(self.s, model=replace(m, ffn=m.shared_experts * m.expert_ffn)) \
            if m.shared_experts else None
        # Token rows around the experts: received by the dispatch (r0), and after the
        # expert-TP gather (r1); the all-gather dispatcher receives every token of the group.
        lay = self.lay
        self.r0 = lay.received if cfg.moe_dispatcher == "alltoall" else lay.ep * lay.tokens
        self.r1 = self.r0 * lay.etp
        self.row = self.s.act_bytes * m.hidden  # bytes of one token row

    # -- helpers -------------------------------------------------------------------------------

    def _ep(self, name: str, collective: str, rows: float, dep: int, layer: int = 0,
            a2a: int = 0) -> int:
        """A collective over the EP group (stream ``ep``); without EP, ``dep`` itself.
        ``a2a``: an all-to-all's direction (its per-pair bytes follow ``layer``'s skew)."""
        if self.lay.ep == 1:
            return dep
        return self.r.coll(name, collective, rows * self.row, _EP, "ep", deps=[dep], a2a=a2a,
                           hot=layer % self.lay.ep)

    def _etp(self, name: str, collective: str, dep: int) -> int:
        """An all-gather or reduce-scatter of the expert rows over the TP group (expert
        TP); without it, ``dep`` itself. With the all-to-all dispatcher the rows travel
        through ``torch.distributed``'s list API (:func:`split_list_copy`): a copy out of
        the gathered buffer after an all-gather, into a flat buffer before a
        reduce-scatter; not when the input is padded to capacity (no split sizes:
        :func:`~.moe.flat_buffer_copies`)."""
        if self.lay.etp == 1:
            return dep
        copy = split_list_copy(self.s, self.r1, self.cfg.model.hidden) \
            if flat_buffer_copies(self.cfg) else None
        if copy is not None and collective == "reduce_scatter":
            dep = self._c(f"{name}_flatten", copy, deps=[dep])
        op = self.r.coll(name, collective, self.r1 * self.row, _TP, "tp", deps=[dep])
        if copy is not None and collective == "all_gather":
            op = self._c(f"{name}_unflatten", copy, deps=[op])
        return op

    def _sort_chunks(self, name: str, dep: int) -> int:
        """The all-to-all dispatcher's second permutation with several local experts
        (:func:`sort_chunks`), after op ``dep``: one copy of the expert rows; nothing with
        one local expert (``dep`` itself)."""
        if not self._a2a or self.lay.local_experts == 1:
            return dep
        cost = sort_chunks(self.s, self.lay.expert_tokens, self.cfg.model.hidden)
        return self._c(name, cost, deps=[dep])

    def _cat(self, name: str, dep: int) -> int:
        """SequentialMLP's ``torch.cat`` of the local experts' rows after op ``dep``
        (:func:`~.moe.sequential_cat`); nothing with a grouped GEMM or one local expert
        (``dep`` itself)."""
        if self.cfg.moe_grouped_gemm or self.lay.local_experts == 1:
            return dep
        cost = sequential_cat(self.s, self.lay.expert_tokens, self.cfg.model.hidden)
        return self._c(name, cost, deps=[dep])

    @property
    def _a2a(self) -> bool:
        return self.cfg.moe_dispatcher == "alltoall"

    def _expert_costs(self, backward: bool) -> dict[str, Cost]:
        lay = self.lay
        f = self.eg["fc2"][1]
        gemm = grouped_gemm_bwd if backward else grouped_gemm
        return {"fc1": gemm(self.s, *self.eg["fc1"], lay.local_experts),
                "act": self.s.activation_fn(backward, elems=lay.expert_tokens * f),
                "fc2": gemm(self.s, *self.eg["fc2"], lay.local_experts)}

    # -- forward ---------------------------------------------------------------------------------

    def _mlp_fwd(self, layer: int, p: str, last: int) -> list[int] | None:
        if not self.cfg.model.is_moe_layer(layer):
            return super()._mlp_fwd(layer, p, last)
        s, c, lay, m = self.s, self._c, self.lay, self.cfg.model
        c(f"{p}.router", s.gemm(lay.tokens, m.hidden, m.experts))
        op = c(f"{p}.router_topk", router_topk(s, lay, m.experts, m.top_k))
        if self._a2a:
            op = c(f"{p}.permute", permute(s, lay.tokens, lay.routed, m.hidden))
            op = self._ep(f"{p}.ep_dispatch", "all_to_all", self.r0, op, layer, TO_EXPERTS)
            op = self._etp(f"{p}.etp_ag", "all_gather", op)
            op = self._sort_chunks(f"{p}.sort_chunks", op)
        else:
            op = self._ep(f"{p}.ep_dispatch", "all_gather", self.r0, op)
            op = self._etp(f"{p}.etp_ag", "all_gather", op)
            op = c(f"{p}.permute", permute(s, self.r1, lay.expert_tokens, m.hidden), deps=[op])
        costs = self._expert_costs(backward=False)
        self._cast(f"{p}.experts.fc1_cast", lay.expert_tokens * m.hidden, deps=[op])
        c(f"{p}.experts.fc1", costs["fc1"], gemm=True, deps=[op])
        c(f"{p}.experts.act", costs["act"])
        self._cast(f"{p}.experts.fc2_cast", lay.expert_tokens * self.eg["fc2"][1])
        op = self._cat(f"{p}.experts.cat", c(f"{p}.experts.fc2", costs["fc2"], gemm=True))
        if self._a2a:
            op = self._sort_chunks(f"{p}.unsort_chunks", op)
            op = self._etp(f"{p}.etp_rs", "reduce_scatter", op)
            op = self._ep(f"{p}.ep_combine", "all_to_all", self.r0, op, layer, FROM_EXPERTS)
            op = c(f"{p}.unpermute", unpermute(s, lay.routed, lay.tokens, m.hidden), deps=[op])
        else:
            op = c(f"{p}.unpermute", unpermute(s, lay.expert_tokens, self.r1, m.hidden))
            op = self._etp(f"{p}.etp_rs", "reduce_scatter", op)
            op = self._ep(f"{p}.ep_combine", "reduce_scatter", self.r0, op)
        if self.shared is None:
            return [op]
        dep = self._dense_mlp_fwd(p, op, self.shared, "shared.")
        return (dep or []) + [op]

    # -- backward --------------------------------------------------------------------------------

    def _mlp_bwd(self, layer: int, p: str) -> list[int]:
        if not self.cfg.model.is_moe_layer(layer):
            return super()._mlp_bwd(layer, p)
        s, c, lay, m = self.s, self._c, self.lay, self.cfg.model
        out: list[int] = []
        if self.shared is not None:
            out.append(self._block_bwd(
                p, "fc2", "fc1", [("act", self.shared.activation_fn(backward=True), 0, 0)],
                s=self.shared, pre="shared."))
        if self._a2a:
            op = c(f"{p}.unpermute", unpermute(s, lay.routed, lay.tokens, m.hidden, True))
            op = self._ep(f"{p}.ep_combine", "all_to_all", self.r0, op, layer, TO_EXPERTS)
            op = self._etp(f"{p}.etp_ag", "all_gather", op)
            op = self._sort_chunks(f"{p}.unsort_chunks", op)
        else:
            op = self._ep(f"{p}.ep_combine", "all_gather", self.r0, len(self.r.name) - 1)
            op = self._etp(f"{p}.etp_ag", "all_gather", op)
            op = c(f"{p}.unpermute", unpermute(s, lay.expert_tokens, self.r1, m.hidden, True),
                   deps=[op])
        costs = self._expert_costs(backward=True)
        self._cast(f"{p}.experts.fc2_cast", lay.expert_tokens * m.hidden, deps=[op])
        c(f"{p}.experts.fc2", costs["fc2"], gemm=True, deps=[op])
        c(f"{p}.experts.act", costs["act"])
        self._cast(f"{p}.experts.fc1_cast", self.eg["fc1"][0] * self.eg["fc1"][2])
        op = self._cat(f"{p}.experts.cat", c(f"{p}.experts.fc1", costs["fc1"], gemm=True))
        if self._a2a:
            op = self._sort_chunks(f"{p}.sort_chunks", op)
            op = self._etp(f"{p}.etp_rs", "reduce_scatter", op)
            op = self._ep(f"{p}.ep_dispatch", "all_to_all", self.r0, op, layer, FROM_EXPERTS)
            c(f"{p}.permute", permute(s, lay.routed, lay.tokens, m.hidden), deps=[op])
        else:
            op = c(f"{p}.permute", permute(s, lay.expert_tokens, self.r1, m.hidden))
            op = self._etp(f"{p}.etp_rs", "reduce_scatter", op)
            op = self._ep(f"{p}.ep_dispatch", "reduce_scatter", self.r0, op)
        gemm = (lay.tokens, m.hidden, m.experts)
        c(f"{p}.router_topk", router_topk(s, lay, m.experts, m.top_k, backward=True),
          deps=[op])
        out.append(c(f"{p}.router", s.gemm_dgrad(*gemm) + s.gemm_wgrad(*gemm)))
        return out

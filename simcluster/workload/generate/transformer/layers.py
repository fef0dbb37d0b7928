"""The compute ops of a stage and their TP communication: one layer's forward, backward and
recomputation, the embedding, and the LM head with the loss (what each op is: the package
docstring)."""

from __future__ import annotations

from typing import Any

from simcluster.workload.generate.costs import Cost, Shape
from simcluster.workload.generate.transformer.config import TransformerConfig
from simcluster.workload.generate.transformer.cp import ring_attention, ulysses_attention
from simcluster.workload.generate.transformer.moe import layer_keep, layer_rank_params
from simcluster.workload.generate.transformer.template import _TP, _Rank

#: Transformer Engine userbuffers' ``num_splits`` of the pipelined reduce-scatters (the
#: generator's schedule and the search estimate both use it).
UB_SPLITS = 4


class _LayerOps:
    """The ops of one TP rank of one pipeline stage: the per-rank state and the layer,
    embedding and head ops (the base of :class:`~.stage._StageBuilder`)."""

    def __init__(self, cfg: TransformerConfig, stage: int) -> None:
        self.cfg = cfg
        self.stage = stage
        self.s = cfg.shape()
        self.r = _Rank()
        m = cfg.model
        self.e_th = 2.0 * self.s.tokens * m.hidden  # bytes of one full activation [T x h]
        self.gemm_dtype = cfg.dtype
        self.act_dtype = "fp16" if cfg.dtype == "fp16" else "bf16"
        self.keep = {layer: layer_keep(cfg, layer, cfg.recompute) for layer in range(m.layers)}
        self.keep_full = {layer: layer_keep(cfg, layer, "none") for layer in range(m.layers)}
        self.nv = cfg.pp * cfg.chunks
        self.tp = cfg.tp > 1

    # -- helpers ---------------------------------------------------------------------------

    def _c(self, name: str, cost: Cost, gemm: bool = False, **kw: Any) -> int:
        return self.r.compute(name, cost, self.gemm_dtype if gemm else self.act_dtype, **kw)

    @property
    def fp8(self) -> bool:
        return self.cfg.dtype == "fp8"

    def _cast(self, name: str, elems: float, **kw: Any) -> None:
        """With fp8 GEMMs, Transformer Engine's cast-transpose of a GEMM operand (an input
        activation, or an output gradient): reads it in bf16, writes it in fp8 in both
        layouts (``e + 2`` bytes per element), a separate kernel."""
        if self.fp8:
            self._c(name, Cost(2.0 * elems, (self.s.act_bytes + 2) * elems), **kw)

    def _fp8_copies(self, elems: float) -> Cost:
        """The fp8 copies (both layouts, 2 bytes per element) a norm writes besides its
        output when Transformer Engine fuses the cast into it (LayerNormLinear)."""
        return Cost(0.0, 2.0 * elems if self.fp8 else 0.0)

    @property
    def _attn(self) -> str:
        """The attention op's name in a layer (``attention_kernel``)."""
        return "attn.fa1" if self.cfg.attention_kernel == "flash1" else "attn"

    def _attention(self, p: str, cost: Cost, after: int | None, alloc: int = 0,
                   free: int = 0) -> int:
        """The attention core of layer prefix ``p`` (one op; with context parallelism the
        ring of ``cp.py``) after op ``after`` (None: the last op emitted); one op is
        ordered by its stream alone."""
        if self.cfg.cp == 1:
            return self._c(f"{p}.{self._attn}", cost, alloc=alloc, free=free)
        if self.cfg.cp_comm == "a2a":
            last = ulysses_attention(self.r, self.cfg, p, self._attn, self.act_dtype,
                                     backward=".bwd" in p)
            self.r.alloc[last - 2] += alloc
            self.r.add_free(last, free)
            return last
        prev = len(self.r.name) - 1 if after is None else after
        last = ring_attention(self.r, self.cfg, p, self._attn, cost, self.act_dtype,
                              backward=".bwd" in p, after=prev)
        self.r.alloc[last] += alloc
        self.r.add_free(last, free)
        return last

    def _tp_out(self, name: str, dep: int) -> int:
        """The TP reduction after a row-parallel GEMM: reduce-scatter (SP) or all-reduce."""
        coll = "reduce_scatter" if self.cfg.sp else "all_reduce"
        return self.r.coll(name, coll, self.e_th, _TP, "tp", deps=[dep])

    def _tp_in(self, name: str, deps: list[int]) -> int:
        """The SP all-gather before a column-parallel GEMM."""
        return self.r.coll(name, "all_gather", self.e_th, _TP, "tp", deps=deps)

    # -- Transformer Engine's userbuffers overlap (``cfg.ub``) ---------------------------------
    # TE's defaults (transformer_engine/pytorch/module/base.py, ``initialize_ub``): a ring
    # exchange for the all-gathers of qkv_fprop, fc1_fprop, proj_dgrad and fc2_dgrad (the
    # GEMM split into ``tp`` chunks, chunk i computed once the ring has brought it: the local
    # one first), a pipeline of 4 splits for the reduce-scatters of proj_fprop and fc2_fprop
    # (each chunk's reduce-scatter after its GEMM chunk), bulk overlaps in the backward (the
    # input all-gather under the dgrad GEMM, the dgrad's reduce-scatter under the wgrad GEMM,
    # as without it). Two ops per GEMM give the chunked schedule's end exactly:
    # max(G, A + G/n) for a ring exchange (A the all-gather, G the GEMM, n chunks),
    # max(G + R/s, G/s + R) for the pipeline (R the reduce-scatter, s splits).
    UB_SPLITS = UB_SPLITS

    def _ag_gemm(self, gather: str, name: str, cost: Cost, deps: list[int]) -> int:
        """SP all-gather ``gather`` after ``deps``, then the GEMM ``name`` of ``cost`` on
        its output; with userbuffers the ring exchange: ``(tp-1)/tp`` of the GEMM under the
        all-gather, the last chunk (``<name>.tail``) after it. Returns the GEMM's last op."""
        ag = self._tp_in(gather, deps)
        if not self.cfg.ub:
            return self._c(name, cost, gemm=True, deps=[ag])
        n = self.cfg.tp
        self._c(name, cost.part((n - 1) / n), gemm=True, deps=deps)
        return self._c(f"{name}.tail", cost.part(1 / n), gemm=True, deps=[ag])

    def _gemm_rs(self, name: str, cost: Cost, red: str) -> int:
        """A row-parallel GEMM ``name`` of ``cost`` (after the last op), then its TP
        reduction ``red``; with userbuffers the pipeline: the reduce-scatter of the first
        ``(s-1)/s`` of the output starts after the GEMM's first split and runs under the
        rest (``<name>.tail``), the last split's (``<red>.tail``) after both. Returns the
        reduction's (last) op."""
        if not self.cfg.ub:
            return self._tp_out(red, self._c(name, cost, gemm=True))
        s = self.UB_SPLITS
        first = self._c(name, cost.part(1 / s), gemm=True)
        rest = self._c(f"{name}.tail", cost.part((s - 1) / s), gemm=True)
        rs = self.r.coll(red, "reduce_scatter", self.e_th * (s - 1) / s, _TP, "tp",
                         deps=[first])
        return self.r.coll(f"{red}.tail", "reduce_scatter", self.e_th / s, _TP, "tp",
                           deps=[rest, rs])

    # -- one layer ---------------------------------------------------------------------------

    def layer_fwd(self, layer: int, tag: str, deps: list[int], alloc: int,
                  save_qkv: bool = False) -> tuple[int, int]:
        """Forward (``tag`` fwd) or recomputed forward (rcp) of ``layer``; returns the
        (first, last) op ids. ``save_qkv``: the recomputation of ``recompute=
        save_qkv_proj`` (JAX's remat with Q, K, V saved; dead code dropped): what the
        backward needs from the layer input and the saved Q, K, V: the first norm (the QKV
        weight gradient's input), the attention core, the output projection and its TP
        reduction, the second norm, FC1, the activation and, with fp8, FC2's input cast; not
        the QKV GEMM (saved), FC2 and the last residual (no gradient reads their outputs)."""
        s, c = self.s, self._c
        g = s.layer_gemms()
        p = f"L{layer}.{tag}"
        first = c(f"{p}.ln1", s.norm() + self._fp8_copies(s.ln_tokens * s.model.hidden),
                  deps=deps, alloc=alloc)
        if not save_qkv:
            if self.cfg.sp:
                self._ag_gemm(f"{p}.ag_qkv", f"{p}.qkv", s.gemm(*g["qkv"]), [first])
            else:
                c(f"{p}.qkv", s.gemm(*g["qkv"]), gemm=True, deps=[first])
        self._attention(p, s.attention(), None)
        self._cast(f"{p}.proj_cast", g["proj"][0] * g["proj"][1])
        if self.tp:
            dep = [self._gemm_rs(f"{p}.proj", s.gemm(*g["proj"]), f"{p}.tp_attn")]
        else:
            c(f"{p}.proj", s.gemm(*g["proj"]), gemm=True)
            dep = None
        last = c(f"{p}.res_ln2", s.residual() + s.norm()
                 + self._fp8_copies(s.ln_tokens * s.model.hidden), deps=dep)
        if save_qkv:
            return first, self._dense_mlp_fwd(p, last, s, "", upto_act=True)
        dep = self._mlp_fwd(layer, p, last)
        last = c(f"{p}.res", s.residual(), deps=dep)
        return first, last

    def _mlp_fwd(self, layer: int, p: str, last: int) -> list[int] | None:
        """The MLP block after ``last`` (the second norm); returns the deps of the residual
        (None: the stream order). MoE layers: :class:`~.moe_ops._MoeOps`."""
        return self._dense_mlp_fwd(p, last, self.s, "")

    def _dense_mlp_fwd(self, p: str, last: int, s: Shape, pre: str,
                       upto_act: bool = False) -> Any:
        """A TP-sharded MLP of ``s``'s width (ops named ``<p>.<pre>fc1`` ...); returns the
        deps of the residual after it, or with ``upto_act`` (recompute ``save_qkv_proj``)
        the last op before FC2 (the activation or, with fp8, FC2's input cast)."""
        c, g = self._c, s.layer_gemms()
        if self.cfg.sp:
            self._ag_gemm(f"{p}.{pre}ag_fc1", f"{p}.{pre}fc1", s.gemm(*g["fc1"]), [last])
        else:
            c(f"{p}.{pre}fc1", s.gemm(*g["fc1"]), gemm=True)
        c(f"{p}.{pre}act", s.activation_fn())
        self._cast(f"{p}.{pre}fc2_cast", g["fc2"][0] * g["fc2"][1])
        if upto_act:
            return len(self.r.name) - 1
        if self.tp:
            return [self._gemm_rs(f"{p}.{pre}fc2", s.gemm(*g["fc2"]), f"{p}.{pre}tp_mlp")]
        c(f"{p}.{pre}fc2", s.gemm(*g["fc2"]), gemm=True)
        return None

    def _block_bwd(self, p: str, out_gemm: str, in_gemm: str,
                   middle: list[tuple[str, Cost, int, int]], s: Shape | None = None,
                   pre: str = "") -> int:
        """Backward of one block (of ``s``, default the layer's; ops named ``<p>.<pre>...``):
        [SP: gather the output grad], output GEMM (dgrad+wgrad), the middle ops ``(name,
        cost, alloc, free)``, input GEMM dgrad, then the TP reduction of the input grad
        overlapping the input GEMM's wgrad ([SP: the input re-gathered meanwhile]); returns
        the reduction (the wgrad without TP)."""
        c, r = self._c, self.r
        s = s or self.s
        g = s.layer_gemms()
        p = f"{p}.{pre}" if pre else p
        q = p if pre else f"{p}."
        deps = [self._tp_in(f"{q}ag_grad_{out_gemm}", [len(r.name) - 1])] if self.cfg.sp \
            else None
        mo = g[out_gemm]
        ring = self.cfg.ub
        if self.fp8:  # the output gradient, cast before its GEMMs (userbuffers: its shard)
            self._cast(f"{q}{out_gemm}_cast", mo[0] * mo[2], deps=None if ring else deps)
            deps = deps if ring else None
        if ring:  # the dgrad GEMM's chunks under the ring exchange, the wgrad after it
            n = self.cfg.tp
            c(f"{q}{out_gemm}", s.gemm_dgrad(*mo).part((n - 1) / n), gemm=True)
            last = c(f"{q}{out_gemm}.tail", s.gemm_dgrad(*mo).part(1 / n)
                     + s.gemm_wgrad(*mo), gemm=True, deps=deps)
        else:
            last = c(f"{q}{out_gemm}", s.gemm_dgrad(*mo) + s.gemm_wgrad(*mo), gemm=True,
                     deps=deps)
        last = self._grad_acc(f"{q}{out_gemm}", s, mo, last)
        for name, cost, alloc, free in middle:
            if name == self._attn:
                last = self._attention(p, cost, last, alloc=alloc, free=free)
            else:
                last = c(f"{q}{name}", cost, alloc=alloc, free=free)
        gather = self._tp_in(f"{q}ag_in_{in_gemm}", [last]) if self.cfg.sp else None
        mi = g[in_gemm]
        self._cast(f"{q}{in_gemm}_cast", mi[0] * mi[2])
        dgrad = c(f"{q}{in_gemm}.dgrad", s.gemm_dgrad(*mi), gemm=True)
        red = self._tp_out(f"{q}tp_{in_gemm}", dgrad) if self.tp else None
        wdeps = [x for x in (gather, None if self.cfg.tp_overlap else red) if x is not None]
        wgrad = c(f"{q}{in_gemm}.wgrad", s.gemm_wgrad(*mi), gemm=True, deps=wdeps or None)
        wgrad = self._grad_acc(f"{q}{in_gemm}", s, mi, wgrad)
        return red if red is not None else wgrad

    def _grad_acc(self, name: str, s: Shape, mkn: tuple[float, float, float], last: int) -> int:
        """With the legacy kernels, the main-grad accumulation after the weight gradient of
        GEMM ``mkn`` (``costs.Shape.grad_accumulate``); returns the last op."""
        if not s.legacy:
            return last
        return self._c(f"{name}.grad_acc", s.grad_accumulate(mkn[1], mkn[2]))

    def layer_bwd(self, layer: int, deps: list[int] | None, free_extra: int = 0
                  ) -> tuple[int, int]:
        """Backward of ``layer`` (with its recomputation); returns (first, last) op ids.
        The last op frees the layer's activations (and ``free_extra``)."""
        s, c, cfg = self.s, self._c, self.cfg
        p = f"L{layer}.bwd"
        first = None
        free = self.keep[layer] + free_extra
        if cfg.recompute in ("full", "save_qkv_proj"):
            rcp = self.keep_full[layer] - (self.keep[layer] if cfg.recompute != "full" else 0)
            first, _ = self.layer_fwd(layer, "rcp", deps or [], alloc=rcp,
                                      save_qkv=cfg.recompute == "save_qkv_proj")
            deps = None
            free += rcp
        start = c(f"{p}.res", s.residual(backward=True), deps=deps)
        first = start if first is None else first
        red = self._mlp_bwd(layer, p)
        c(f"{p}.res_ln2", s.residual(backward=True) + s.norm(backward=True), deps=red)
        middle: list[tuple[str, Cost, int, int]] = []
        tmp = 0
        if cfg.recompute == "selective" and not cfg.flash_attention:
            tmp = int(2 * s.score_elems + (s.score_elems if cfg.model.dropout else 0))
            middle.append(("attn_rcp", s.attention(), tmp, 0))
        middle.append((self._attn, s.attention(backward=True), 0, tmp))
        red = self._block_bwd(p, "proj", "qkv", middle)
        last = c(f"{p}.ln1", s.norm(backward=True), deps=[red], free=free)
        return first, last

    def _mlp_bwd(self, layer: int, p: str) -> list[int]:
        """The MLP block's backward; returns the deps of the second norm's backward."""
        return [self._block_bwd(p, "fc2", "fc1",
                                [("act", self.s.activation_fn(backward=True), 0, 0)])]

    # -- embedding and head --------------------------------------------------------------------

    def embed_fwd(self, deps: list[int], alloc: int) -> int:
        last = self._c("embed", self.s.embedding(), deps=deps, alloc=alloc)
        if self.tp:  # vocab-parallel embedding: sum (or reduce-scatter) the partial lookups
            last = self._tp_out("tp_embed", last)
        return last

    def embed_bwd(self, deps: list[int] | None) -> int:
        return self._c("embed.bwd", self.s.embedding(backward=True), deps=deps)

    def head_fwd(self, deps: list[int]) -> int:
        s, c = self.s, self._c
        c("final_norm", s.norm(), deps=deps)
        dep = [self._tp_in("ag_head", [len(self.r.name) - 1])] if self.cfg.sp else None
        # The output layer is no Transformer Engine module: it stays in bf16 with fp8 runs.
        c("logits", s.gemm(*s.head_gemm()), gemm=not self.fp8, deps=dep,
          alloc=s.logits_bytes())
        last = c("loss", s.loss())
        if self.tp:  # max, sum of exp and target logit over the vocab shards: 3 fp32 per token
            last = self.r.coll("tp_loss", "all_reduce", 12 * s.tokens, _TP, "tp", deps=[last])
        return last

    def head_bwd(self, deps: list[int] | None) -> int:
        s, c = self.s, self._c
        c("loss.bwd", s.loss(backward=True), deps=deps)
        m = s.head_gemm()
        last = c("logits.dgrad", s.gemm_dgrad(*m), gemm=not self.fp8)
        red = self._tp_out("tp_head", last) if self.tp else None
        last = c("logits.wgrad", s.gemm_wgrad(*m), gemm=not self.fp8, free=s.logits_bytes())
        self._grad_acc("logits", s, m, last)
        return c("final_norm.bwd", s.norm(backward=True), deps=[red] if red is not None else None)

    def _layer_params(self, layer: int) -> int:
        """Data-parallel (non-expert) parameters of ``layer`` on this rank."""
        return layer_rank_params(self.cfg, layer)[0]

    def _expert_params(self, layer: int) -> int:
        """Routed-expert parameters of ``layer`` on this rank."""
        return layer_rank_params(self.cfg, layer)[1]

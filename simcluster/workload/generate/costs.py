"""FLOPs, bytes and activation memory of the pieces of a transformer layer, per TP rank.

Notation: ``b`` micro-batch, ``s`` sequence, ``T = b s`` tokens, ``h`` hidden, ``f`` FFN, ``a``
heads, ``k`` the K (and V) width (``kv_heads * head_dim``), ``t`` tensor-parallel size, ``e``
bytes per activation element (2), ``w`` bytes per GEMM operand element (2; 1 for fp8), ``g``
bytes per gradient element (4 with fp32 main grads). With sequence parallelism (SP) the
norms, dropouts and residuals work on ``T/t`` tokens, otherwise every TP rank repeats them on
all ``T``.

**FLOPs** (forward; a backward is twice its forward): a GEMM of ``m x k`` by ``k x n`` is
``2 m k n``; per layer the GEMMs give ``2 T (h (h + 2k) + h^2 + M h f) / t`` (``M`` = 2 or 3
matrices) and the attention core ``4 b s^2 h / t`` (QK^T and AV over all heads; causal
masking is not discounted, as in Narayanan et al. 2021, eq. 3); the LM head ``2 T h V / t``.
With head sizes that do not multiply to ``h`` (``q_dim = a d``, ``v_dim = a d_v``) the core is
``2 b s^2 (q_dim + v_dim) / t``. Multi-head latent attention (MLA) is approximated: its
down and up projections are one GEMM ``T x h x (N_in / h t)`` with their exact weights
``N_in`` (so exact FLOPs, approximate bytes), and its core and stored Q, K, V are those of
multi-head attention with MLA's head sizes (``d`` = 192, ``d_v`` = 128 for DeepSeek-V3); the
compressed latents it stores besides are not counted.
Summed, a training step is ``6 N_matmul T + 12 L b s^2 h`` per micro-batch, plus the
recomputed forward work (all of it for full recompute, the attention core for selective).
Elementwise ops get nominal FLOPs (a few per element); they are memory-bound, so their time
comes from their bytes.

**Bytes accessed** count reads and writes of HBM by the fused kernels Megatron-LM runs: a GEMM
reads both operands and writes its result; its weight-gradient GEMM reads and writes the fp32
gradient (``2 g`` per weight); norms read their input and write their output; an unfused
attention core writes, reads and rewrites the ``b (a/t) s^2`` score matrix (scores, softmax,
dropout, AV), a flash-attention core only its Q, K, V, O tiles.

**The Megatron-LM kernels of 2020-2021** (``kernels="megatron-2021"``; the default
``current`` has none of these passes): each linear layer's bias gradient is a separate
reduction that reads the layer's output gradient once (``F.linear``'s bias, and the biases
Megatron adds in its fused bias-GeLU and bias-dropout-add; ``e`` bytes per element of the QKV,
FC1, projection and FC2 outputs), Apex's ``FusedLayerNorm`` backward reads ``dy`` and ``x``
twice (``cuComputePartGradGammaBeta``, then ``cuComputeGradInput``: ``5 e`` per element, not
``3 e``), a weight-gradient GEMM writes a fresh ``param.grad`` that the data-parallel wrapper's
hook then adds to the contiguous main-grad buffer (``param.main_grad.add_(param.grad)``,
``megatron/model/distributed.py``; a separate op, :meth:`Shape.grad_accumulate`), and the attention's context is permuted from ``[b, a, s, d]`` to ``[s, b, a d]``
with ``.contiguous()`` after AV (a copy: read and write ``e`` per element). These passes are
counted in the op they follow (one kernel launch fewer each). The loss these runs used is
``loss_kernel="unfused"`` (:meth:`Shape.loss`).

**Activation memory** stored for the backward pass, per layer and micro-batch: the
generalised tensor-by-tensor count of Korthikanti et al. 2022 (section 4.1). For a GPT layer
(``k = h``, ``f = 4h``, dropout) it is exactly their ``s b h (10 + 24/t + 5 a s / (h t))``
bytes, ``s b h (34/t + 5 a s / (h t))`` with SP; selective recompute and flash attention drop
the ``5 a s / h`` term; full recompute keeps only the layer input, ``2 s b h`` (``/t`` with SP).
"""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.workload.generate.presets import ModelSpec


@dataclass(frozen=True)
class Cost:
    """FLOPs and HBM bytes of one op."""

    flops: float
    nbytes: float

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.nbytes + other.nbytes)

    def part(self, fraction: float) -> Cost:
        """``fraction`` of the op (a chunk of a GEMM split along its rows: FLOPs and bytes
        in proportion)."""
        return Cost(self.flops * fraction, self.nbytes * fraction)


@dataclass(frozen=True)
class Shape:
    """The sizes one TP rank works with for one micro-batch.

    Attributes:
        model: the transformer.
        micro_batch: sequences per micro-batch.
        tp: tensor-parallel size.
        sp: sequence parallelism on.
        act_bytes: bytes per activation element (e).
        gemm_bytes: bytes per GEMM operand element (w).
        grad_bytes: bytes per gradient element (g).
        flash: flash attention (fused core, no score matrix in HBM).
        loss_kernel: the cross-entropy's kernels, ``fused``, ``eager`` or ``unfused``
            (:meth:`loss`).
        kernels: ``current`` or ``megatron-2021`` (the module docstring: the extra passes of
            the 2020-2021 Megatron-LM kernels).
    """

    model: ModelSpec
    micro_batch: int
    tp: int
    sp: bool
    act_bytes: int = 2
    gemm_bytes: int = 2
    grad_bytes: int = 4
    flash: bool = True
    loss_kernel: str = "fused"
    kernels: str = "current"

    @property
    def legacy(self) -> bool:
        """The 2020-2021 Megatron-LM kernels (module docstring)."""
        return self.kernels == "megatron-2021"

    def bias_grad(self, tokens: float, width: float) -> Cost:
        """A bias gradient computed by a separate reduction over a ``tokens x width`` output
        gradient (read once, ``e`` bytes per element; the legacy kernels of a model with
        biases), else nothing."""
        if not (self.legacy and self.model.biases):
            return Cost(0.0, 0.0)
        n = tokens * width
        return Cost(n, self.act_bytes * n)

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.model.seq_len

    @property
    def ln_tokens(self) -> float:
        """Tokens the replicated region (norms, dropout, residual) works on."""
        return self.tokens / self.tp if self.sp else float(self.tokens)

    @property
    def kv_width(self) -> float:
        """Width of K (and of V) on this rank: ``k / t``, or one head when there are fewer
        KV heads than TP ranks (each rank then holds a replica of its group's KV head, as
        Megatron-LM does)."""
        m = self.model
        return max(m.kv_heads / self.tp, 1.0) * m.head_dim

    @property
    def v_width(self) -> float:
        """Width of V on this rank (as :attr:`kv_width`, with the V head size)."""
        m = self.model
        return max(m.kv_heads / self.tp, 1.0) * m.v_head_dim

    @property
    def score_elems(self) -> float:
        """Elements of the attention score matrix on this rank: b (a/t) s^2."""
        m = self.model
        return self.micro_batch * (m.heads / self.tp) * m.seq_len**2

    # -- GEMMs ---------------------------------------------------------------------------------

    def gemm(self, m: float, k: float, n: float) -> Cost:
        """Forward GEMM ``[m x k] @ [k x n]``: reads both operands, writes the result."""
        w, e = self.gemm_bytes, self.act_bytes
        return Cost(2.0 * m * k * n, w * (m * k + k * n) + e * m * n)

    def gemm_dgrad(self, m: float, k: float, n: float) -> Cost:
        """Input gradient ``dY [m x n] @ W^T``: reads dY and W, writes dX [m x k]."""
        w, e = self.gemm_bytes, self.act_bytes
        return Cost(2.0 * m * k * n, w * (m * n + k * n) + e * m * k)

    def gemm_wgrad(self, m: float, k: float, n: float) -> Cost:
        """Weight gradient ``X^T @ dY``: reads X and dY, accumulates into the fp32 grad (the
        legacy kernels: writes a fresh ``param.grad`` of ``e`` bytes, :meth:`grad_accumulate`
        adds it to the main grad)."""
        w, g = self.gemm_bytes, self.grad_bytes
        out = self.act_bytes if self.legacy else 2 * g
        return Cost(2.0 * m * k * n, w * (m * k + m * n) + out * k * n)

    def grad_accumulate(self, k: float, n: float) -> Cost:
        """Megatron-LM 2021's gradient hook after a ``k x n`` weight gradient (the legacy
        kernels): ``param.main_grad.add_(param.grad)`` reads the main grad and the grad and
        writes the main grad (``2 g + e`` bytes per weight; none otherwise: the GEMM
        accumulates in place)."""
        if not self.legacy:
            return Cost(0.0, 0.0)
        return Cost(k * n, (2 * self.grad_bytes + self.act_bytes) * k * n)

    def layer_gemms(self) -> dict[str, tuple[float, float, float]]:
        """(m, k, n) of the layer's GEMMs on this rank."""
        mdl, t, T = self.model, self.tp, float(self.tokens)
        h, f = mdl.hidden, mdl.ffn
        qkv = mdl.attention_in_params / (h * t) if mdl.mla \
            else mdl.q_dim / t + self.kv_width + self.v_width
        return {
            "qkv": (T, h, qkv),
            "proj": (T, mdl.v_dim / t, h),
            "fc1": (T, h, (mdl.mlp_matrices - 1) * f / t),
            "fc2": (T, f / t, h),
        }

    def head_gemm(self) -> tuple[float, float, float]:
        """(m, k, n) of the LM head (vocab-parallel)."""
        return (float(self.tokens), self.model.hidden, self.model.vocab / self.tp)

    # -- attention core ------------------------------------------------------------------------

    def attention(self, backward: bool = False) -> Cost:
        """Core attention (QK^T, softmax, dropout, AV) of one layer."""
        mdl, t, e = self.model, self.tp, self.act_bytes
        T = float(self.tokens)
        flops = 2.0 * self.micro_batch * mdl.seq_len**2 * (mdl.q_dim + mdl.v_dim) / t
        qkvo = e * T * ((mdl.q_dim + mdl.v_dim) / t + self.kv_width + self.v_width)
        if self.flash:
            stats = 4.0 * self.micro_batch * (mdl.heads / t) * mdl.seq_len
            if backward:  # reads Q, K, V, O, dO; writes dQ, dK, dV
                return Cost(2 * flops, 2 * qkvo + e * T * mdl.v_dim / t + stats)
            return Cost(flops, qkvo + stats)
        drop = 1 if mdl.dropout else 0
        if backward:  # AV bwd 2e, dropout bwd 2e+1, softmax bwd 3e, QK^T bwd 2e (dQ and dK
            # are two batched GEMMs, each reads the score gradient)
            per = (9 * e + drop) if mdl.dropout else 7 * e
            qkv = self.layer_gemms()["qkv"]
            return Cost(2 * flops, 2 * qkvo + per * self.score_elems) \
                + self.bias_grad(qkv[0], qkv[2])
        per = (6 * e + drop) if mdl.dropout else 4 * e  # QK^T write, softmax r/w, dropout, AV
        permute = 2 * e * T * mdl.v_dim / t if self.legacy else 0.0  # .contiguous() copy
        return Cost(flops, qkvo + per * self.score_elems + permute)

    # -- elementwise ---------------------------------------------------------------------------

    def norm(self, backward: bool = False) -> Cost:
        """A LayerNorm/RMSNorm (fwd: read x, write y; bwd: read x, dy, write dx)."""
        n = self.ln_tokens * self.model.hidden
        e = self.act_bytes
        passes = (5 if self.legacy else 3) if backward else 2
        return Cost((16.0 if backward else 8.0) * n, passes * e * n)

    def residual(self, backward: bool = False) -> Cost:
        """Bias + dropout + residual add after a block (fwd: read y, residual; write out,
        mask; bwd: read grad, mask; write grad)."""
        n = self.ln_tokens * self.model.hidden
        e = self.act_bytes
        mask = 1 if self.model.dropout else 0
        if backward:  # with the legacy kernels, the bias gradient of the block's last GEMM
            return Cost(2.0 * n, (2 * e + mask) * n) + self.bias_grad(self.ln_tokens,
                                                                      self.model.hidden)
        return Cost(3.0 * n, (3 * e + mask) * n)

    def activation_fn(self, backward: bool = False, elems: float | None = None) -> Cost:
        """GELU, or SwiGLU (gate * silu(up)), on the FFN width (or on ``elems`` outputs)."""
        mdl, e = self.model, self.act_bytes
        n = self.tokens * mdl.ffn / self.tp if elems is None else elems
        if mdl.gated_mlp:
            return Cost(12.0 * n, (5 if backward else 3) * e * n)
        if backward:  # with the legacy kernels, FC1's bias gradient (a reduction of the output)
            return Cost(10.0 * n, 3 * e * n) + self.bias_grad(n, 1.0)
        return Cost(10.0 * n, 2 * e * n)

    def embedding(self, backward: bool = False) -> Cost:
        """Token (+ position) lookup, dropout; bwd: scatter-add into the fp32 grad."""
        n = self.tokens * self.model.hidden / (self.tp if self.sp else 1)
        e = self.act_bytes
        if backward:
            return Cost(n, (e + 2 * self.grad_bytes) * n)
        return Cost(n, 3 * e * n)

    def loss(self, backward: bool = False) -> Cost:
        """Vocab-parallel cross-entropy on fp32 logits (``loss_kernel``), bytes per logit.

        ``fused`` (Megatron-Core's fused loss): forward reads the logits and writes the fp32
        softmax it keeps (``e + 8``); backward reads it and writes the logits' grad
        (``4 + e``). ``eager`` (PyTorch's ``F.cross_entropy(logits.float())``): forward, the
        cast (``e + 4``) and a log-softmax that reads its input for the max, for the sum and
        for the output it writes (``16``); backward, the NLL grad written in full (``4``),
        the log-softmax backward (reads the grad for its sum, then grad and output, writes:
        ``16``) and the cast back (``4 + e``). ``unfused`` (Megatron-LM's
        ``_VocabParallelCrossEntropy`` of 2019-2023 in PyTorch ops on ``output.float()``,
        NVIDIA/Megatron-LM ``megatron/mpu/cross_entropy.py``): forward, the cast (``e + 4``),
        ``max`` (read 4), ``sub_`` (8), ``exp(out=)`` (8), ``sum`` (4), ``div_`` (8) into the
        softmax it keeps: ``e + 36``; backward, ``mul_`` by the loss gradient in place (8)
        and the cast back (``4 + e``): ``12 + e``.
        """
        n = self.tokens * self.model.vocab / self.tp
        e = self.act_bytes
        if self.loss_kernel == "eager":
            if backward:
                return Cost(4.0 * n, (24 + e) * n)
            return Cost(6.0 * n, (e + 20) * n)
        if self.loss_kernel == "unfused":
            if backward:
                return Cost(2.0 * n, (12 + e) * n)
            return Cost(6.0 * n, (e + 36) * n)
        if backward:  # read the saved softmax, write the logits' grad
            return Cost(2.0 * n, (4 + e) * n)
        return Cost(6.0 * n, (e + 4 + 4) * n)

    # -- activation memory ---------------------------------------------------------------------

    def layer_activation_bytes(self, recompute: str) -> int:
        """Bytes one layer keeps for its backward pass (module docstring).

        ``recompute``: ``none``, ``selective`` (the attention core is recomputed),
        ``full`` (only the layer input is kept) or ``save_qkv_proj`` (the layer input and
        Q, K, V are kept).
        """
        mdl, t, e = self.model, self.tp, self.act_bytes
        T = float(self.tokens)
        h, f = mdl.hidden, mdl.ffn
        kw = self.kv_width
        ln = self.ln_tokens
        if recompute == "full":
            return int(e * ln * h)
        if recompute == "save_qkv_proj":
            return int(e * ln * h + e * T * (mdl.q_dim / t + kw) + e * T * self.v_width)
        drop = 1 if mdl.dropout else 0
        total = (
            2 * e * ln * h                                   # LN1 input, QKV input
            + e * T * (mdl.q_dim / t + kw)                   # Q, K
            + e * T * self.v_width                           # V
            + e * T * mdl.v_dim / t                          # projection input
            + drop * ln * h                                  # attention dropout mask
            + 2 * e * ln * h                                 # LN2 input, FC1 input
            + e * T * f * (mdl.mlp_matrices - 1) / t         # activation-function input
            + e * T * f / t                                  # FC2 input
            + drop * ln * h                                  # MLP dropout mask
        )
        if self.flash:
            total += 4.0 * self.micro_batch * (mdl.heads / t) * mdl.seq_len  # softmax stats
        elif recompute != "selective":
            # softmax output, dropout mask, dropout output
            total += (e + drop + (e if mdl.dropout else 0)) * self.score_elems
        return int(total)

    def mlp_activation_bytes(self) -> float:
        """The MLP block's share of :meth:`layer_activation_bytes` (no full recompute):
        LN2 and FC1 inputs, activation-function and FC2 inputs, the dropout mask."""
        mdl, t, e = self.model, self.tp, self.act_bytes
        T, ln, f = float(self.tokens), self.ln_tokens, mdl.ffn
        drop = 1 if mdl.dropout else 0
        return (2 * e * ln * mdl.hidden + e * T * f * (mdl.mlp_matrices - 1) / t
                + e * T * f / t + drop * ln * mdl.hidden)

    def logits_bytes(self) -> int:
        """The LM head's output and the fp32 softmax the loss keeps: (e + 4) T V / t."""
        return int((self.act_bytes + 4) * self.tokens * self.model.vocab / self.tp)

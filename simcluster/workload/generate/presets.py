"""Decoder-only transformer descriptions and the presets with their published dimensions.

Parameter counts (per layer, ``h`` hidden, ``f`` FFN, ``a`` heads, ``g`` KV heads,
``d = h/a``):

- attention: ``h (h + 2 g d)`` for Q, K, V and ``h^2`` for the output projection;
- MLP: ``2 h f`` (GELU) or ``3 h f`` (SwiGLU, gated);
- biases (GPT): ``h + 2 g d + h`` (attention) and ``f + h`` (MLP); norms: ``2h`` per
  LayerNorm (weight and bias) or ``h`` per RMSNorm, two per layer;
- embeddings: ``V h`` tokens, plus ``S h`` learned positions (GPT), plus ``V h`` for an untied
  LM head (Llama), plus the final norm.

With an explicit ``head_size`` ``d`` (Qwen3: ``a d != h``) Q is ``a d`` wide and the output
projection ``a d_v h``. Multi-head latent attention (MLA, DeepSeek-V2/V3; ``kv_lora_rank > 0``)
has ``h q' + q' a d`` (Q through a rank-``q'`` down/up projection; ``h a d`` without one),
``h (c + r) + c a (d - r + d_v)`` (the compressed K/V of rank ``c`` and the shared rotary key
of width ``r``), ``a d_v h`` out, and the ``q' + c`` weights of the two latent norms.

**Mixture of experts** (``experts > 0``): a MoE layer replaces the MLP by a router (``h E``
weights, plus ``E`` score biases with the ``sigmoid`` router of DeepSeek-V3), ``E`` routed
experts and ``shared_experts`` shared ones, each an MLP of width ``moe_ffn`` (``M h
moe_ffn``, no biases). The first ``dense_layers`` layers keep the dense MLP of width ``ffn``,
and after them every ``moe_every``-th layer is MoE. Active parameters count ``top_k`` routed
experts per MoE layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.names import match, suggestion


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer.

    Attributes:
        name: short name.
        layers, hidden, heads: depth, width, attention heads.
        kv_heads: key/value heads (grouped-query attention); equal to ``heads`` for MHA.
        ffn: MLP inner width.
        vocab: vocabulary size; 0 means a bare layer stack without embedding and LM head
            (for uniform toy pipelines).
        seq_len: training sequence length, tokens.
        gated_mlp: SwiGLU-style MLP with three matrices (Llama), else two with GELU (GPT).
        norm: ``layernorm`` (weight and bias) or ``rmsnorm`` (weight only).
        biases: linear layers have biases (GPT) or not (Llama).
        learned_positions: a learned position embedding table of ``seq_len x hidden`` (GPT);
            otherwise rotary embeddings without parameters (Llama).
        tied_embeddings: the LM head reuses the token embedding (GPT).
        dropout: dropout after attention and MLP (GPT training recipes; Llama uses none).
        source: where the dimensions are published.
        head_size: per-head Q/K width (0: ``hidden / heads``); with MLA, the no-rope part
            plus ``rope_dim``.
        v_head_size: per-head V width (0: ``head_size``).
        q_lora_rank, kv_lora_rank, rope_dim: MLA (``kv_lora_rank > 0``; module docstring).
        experts: routed experts per MoE layer (0: a dense model).
        top_k: routed experts per token.
        shared_experts: experts every token goes through (DeepSeek-V3: 1).
        moe_ffn: width of one expert's MLP (0: ``ffn``).
        dense_layers: the first layers that keep a dense MLP (DeepSeek-V3: 3).
        moe_every: after them, every ``moe_every``-th layer is MoE (1: all of them).
        router: the router's score function, ``softmax`` or ``sigmoid`` (with per-expert
            score biases, DeepSeek-V3's auxiliary-loss-free balancing).
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    seq_len: int
    gated_mlp: bool = False
    norm: str = "layernorm"
    biases: bool = True
    learned_positions: bool = True
    tied_embeddings: bool = True
    dropout: bool = True
    source: str = ""
    head_size: int = 0
    v_head_size: int = 0
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    rope_dim: int = 0
    experts: int = 0
    top_k: int = 0
    shared_experts: int = 0
    moe_ffn: int = 0
    dense_layers: int = 0
    moe_every: int = 1
    router: str = "softmax"

    @property
    def head_dim(self) -> int:
        """Per-head Q/K width."""
        return self.head_size or self.hidden // self.heads

    @property
    def v_head_dim(self) -> int:
        """Per-head V width."""
        return self.v_head_size or self.head_dim

    @property
    def q_dim(self) -> int:
        """Width of Q over all heads (``hidden`` unless ``head_size`` says otherwise)."""
        return self.heads * self.head_dim

    @property
    def v_dim(self) -> int:
        """Width of the attention output over all heads (the projection's input)."""
        return self.heads * self.v_head_dim

    @property
    def kv_dim(self) -> int:
        """Width of K: kv_heads x head_dim."""
        return self.kv_heads * self.head_dim

    @property
    def mla(self) -> bool:
        """Multi-head latent attention."""
        return self.kv_lora_rank > 0

    @property
    def qkv_out(self) -> int:
        """Output width of the fused QKV projection (with MLA: of the equivalent one,
        ``attention_in_params / hidden``, rounded down)."""
        if self.mla:
            return self.attention_in_params // self.hidden
        return self.q_dim + self.kv_dim + self.kv_heads * self.v_head_dim

    @property
    def attention_in_params(self) -> int:
        """Weights of the Q, K and V projections (with MLA: the down and up projections)."""
        h, a, d = self.hidden, self.heads, self.head_dim
        if not self.mla:
            return h * (self.q_dim + self.kv_dim + self.kv_heads * self.v_head_dim)
        q = h * self.q_lora_rank + self.q_lora_rank * a * d if self.q_lora_rank else h * a * d
        c, r = self.kv_lora_rank, self.rope_dim
        return q + h * (c + r) + c * a * (d - r + self.v_head_dim)

    @property
    def attention_matmul_params(self) -> int:
        """Weights of the attention's matrix multiplications (projections in and out)."""
        return self.attention_in_params + self.v_dim * self.hidden

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def layer_matmul_params(self) -> int:
        """Weights of a dense layer's matrix multiplications."""
        return self.attention_matmul_params + self.mlp_matrices * self.hidden * self.ffn

    @property
    def _norm_params(self) -> int:
        """The layer's two norms, and MLA's latent norms."""
        norm = 2 * self.hidden if self.norm == "layernorm" else self.hidden
        return 2 * norm + (self.q_lora_rank + self.kv_lora_rank if self.mla else 0)

    @property
    def layer_params(self) -> int:
        """All parameters of one dense layer (matrices, biases, norms)."""
        h = self.hidden
        extra = 0
        if self.biases:
            extra += self.qkv_out + h + self.ffn * (self.mlp_matrices - 1) + h
        return self.layer_matmul_params + extra + self._norm_params

    # -- mixture of experts ------------------------------------------------------------------

    @property
    def moe(self) -> bool:
        """A mixture-of-experts model."""
        return self.experts > 0

    def is_moe_layer(self, layer: int) -> bool:
        """Whether ``layer`` (0-based) has routed experts instead of the dense MLP."""
        return self.moe and layer >= self.dense_layers \
            and (layer - self.dense_layers) % max(self.moe_every, 1) == 0

    @property
    def moe_layers(self) -> int:
        """MoE layers in the model."""
        return sum(self.is_moe_layer(layer) for layer in range(self.layers))

    @property
    def expert_ffn(self) -> int:
        """Width of one expert's MLP."""
        return self.moe_ffn or self.ffn

    @property
    def expert_params(self) -> int:
        """Weights of one expert (routed or shared)."""
        return self.mlp_matrices * self.hidden * self.expert_ffn

    @property
    def router_params(self) -> int:
        """The router's weights (``h E``) and, for ``sigmoid``, its score biases."""
        return self.hidden * self.experts + (self.experts if self.router == "sigmoid" else 0)

    @property
    def moe_dense_params(self) -> int:
        """Parameters of a MoE layer outside its routed experts: attention, norms, router,
        shared experts (data-parallel like a dense layer's)."""
        bias = (self.qkv_out + self.hidden) if self.biases else 0
        return (self.attention_matmul_params + bias + self._norm_params + self.router_params
                + self.shared_experts * self.expert_params)

    def layer_params_of(self, layer: int, routed: int | None = None) -> int:
        """All parameters of ``layer``, counting ``routed`` routed experts (default all)."""
        if not self.is_moe_layer(layer):
            return self.layer_params
        n = self.experts if routed is None else routed
        return self.moe_dense_params + n * self.expert_params

    def layer_matmul_params_of(self, layer: int, routed: int | None = None) -> int:
        """Matrix weights ``layer`` multiplies each token by: a dense layer's, or the
        attention, router, shared and ``routed`` (default ``top_k``) routed experts."""
        if not self.is_moe_layer(layer):
            return self.layer_matmul_params
        n = self.top_k if routed is None else routed
        return (self.attention_matmul_params + self.hidden * self.experts
                + (self.shared_experts + n) * self.expert_params)

    @property
    def embedding_params(self) -> int:
        """Token (and position) embeddings."""
        if not self.vocab:
            return 0
        return self.vocab * self.hidden + (self.seq_len * self.hidden
                                           if self.learned_positions else 0)

    @property
    def head_params(self) -> int:
        """The final norm and, if untied, the LM head."""
        if not self.vocab:
            return 0
        norm = 2 * self.hidden if self.norm == "layernorm" else self.hidden
        return norm + (0 if self.tied_embeddings else self.vocab * self.hidden)

    @property
    def params(self) -> int:
        """Total parameters."""
        return (sum(self.layer_params_of(layer) for layer in range(self.layers))
                + self.embedding_params + self.head_params)

    @property
    def active_params(self) -> int:
        """Parameters one token goes through: ``top_k`` of the routed experts (``params``
        for a dense model)."""
        return (sum(self.layer_params_of(layer, self.top_k) for layer in range(self.layers))
                + self.embedding_params + self.head_params)

    def validate(self) -> list[str]:
        """Problems with the dimensions, as messages (empty when fine)."""
        out = []
        for name in ("layers", "hidden", "heads", "kv_heads", "ffn", "seq_len"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be at least 1")
        if self.vocab < 0:
            out.append("vocab must be >= 0")
        if self.heads and self.hidden % self.heads:
            out.append(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if self.kv_heads and self.heads % self.kv_heads:
            out.append(f"heads {self.heads} is not divisible by kv_heads {self.kv_heads}")
        if self.norm not in ("layernorm", "rmsnorm"):
            out.append(f"norm {self.norm!r} is not layernorm or rmsnorm")
        if self.mla and not 0 <= self.rope_dim < self.head_dim:
            out.append(f"rope_dim {self.rope_dim} must be below head_size {self.head_dim}")
        return out + self._validate_moe()

    def _validate_moe(self) -> list[str]:
        if not self.moe:
            given = [k for k in ("top_k", "shared_experts", "moe_ffn", "dense_layers")
                     if getattr(self, k)]
            msg = f"{', '.join(given)} set on a dense model (experts 0); set experts, or drop them"
            return [msg] if given else []
        out = []
        if not 1 <= self.top_k <= self.experts:
            out.append(f"top_k {self.top_k} must be between 1 and experts {self.experts}")
        if self.moe_every < 1 or not 0 <= self.dense_layers < self.layers:
            out.append(f"dense_layers {self.dense_layers} must be below layers {self.layers}, "
                       f"and moe_every {self.moe_every} at least 1")
        if self.router not in ("softmax", "sigmoid"):
            out.append(f"router {self.router!r} is not softmax or sigmoid")
        if min(self.shared_experts, self.moe_ffn) < 0:
            out.append("shared_experts and moe_ffn must be >= 0")
        return out


def _gpt(name: str, layers: int, hidden: int, heads: int, vocab: int, seq: int,
         source: str) -> ModelSpec:
    return ModelSpec(name=name, layers=layers, hidden=hidden, heads=heads, kv_heads=heads,
                     ffn=4 * hidden, vocab=vocab, seq_len=seq, source=source)


def _llama(name: str, layers: int, hidden: int, heads: int, kv: int, ffn: int, vocab: int,
           seq: int, source: str) -> ModelSpec:
    return ModelSpec(name=name, layers=layers, hidden=hidden, heads=heads, kv_heads=kv,
                     ffn=ffn, vocab=vocab, seq_len=seq, gated_mlp=True, norm="rmsnorm",
                     biases=False, learned_positions=False, tied_embeddings=False,
                     dropout=False, source=source)


def _moe(name: str, layers: int, hidden: int, heads: int, kv: int, ffn: int, vocab: int,
         seq: int, source: str, **moe: Any) -> ModelSpec:
    """A Llama-style (RMSNorm, SwiGLU, RoPE, untied, no biases) mixture of experts."""
    return replace(_llama(name, layers, hidden, heads, kv, ffn, vocab, seq, source), **moe)


PRESETS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        _gpt("gpt2-xl", 48, 1600, 25, 50257, 1024,
             "Radford et al. 2019, 'Language Models are Unsupervised Multitask Learners', "
             "Table 2 (48 layers, d_model 1600); 25 heads, vocab 50257, context 1024 per the "
             "released gpt2-xl config"),
        _gpt("gpt3-175b", 96, 12288, 96, 50257, 2048,
             "Brown et al. 2020, 'Language Models are Few-Shot Learners', Table 2.1 (96 "
             "layers, d_model 12288, 96 heads, d_ff = 4 d_model, context 2048)"),
        _llama("llama2-7b", 32, 4096, 32, 32, 11008, 32000, 4096,
               "Touvron et al. 2023, 'Llama 2', Table 1 and the released config (32 layers, "
               "4096 hidden, 32 heads, FFN 11008, vocab 32000, context 4096)"),
        _llama("llama2-70b", 80, 8192, 64, 8, 28672, 32000, 4096,
               "Touvron et al. 2023, 'Llama 2' (GQA with 8 KV heads) and the released config "
               "(80 layers, 8192 hidden, 64 heads, FFN 28672, vocab 32000, context 4096)"),
        _llama("llama3-8b", 32, 4096, 32, 8, 14336, 128256, 8192,
               "Llama Team 2024, 'The Llama 3 Herd of Models', Table 3 (32 layers, 4096 "
               "model dim, FFN 14336, 32 heads, 8 KV heads, vocab 128256, context 8192)"),
        _llama("llama3-70b", 80, 8192, 64, 8, 28672, 128256, 8192,
               "Llama Team 2024, 'The Llama 3 Herd of Models', Table 3 (80 layers, 8192 "
               "model dim, FFN 28672, 64 heads, 8 KV heads, vocab 128256, context 8192)"),
        _llama("llama3-405b", 126, 16384, 128, 8, 53248, 128256, 8192,
               "Llama Team 2024, 'The Llama 3 Herd of Models', Table 3 (126 layers, 16384 "
               "model dim, FFN 53248, 128 heads, 8 KV heads, vocab 128256, context 8192)"),
        _moe("mixtral-8x7b", 32, 4096, 32, 8, 14336, 32000, 4096,
             "Jiang et al. 2024, 'Mixtral of Experts' (arXiv 2401.04088), Table 1, and "
             "mistralai/Mixtral-8x7B-v0.1 config.json (32 layers, hidden 4096, 32 heads, 8 KV "
             "heads, expert FFN 14336, 8 experts, top-2, every layer MoE, vocab 32000; 46.7B "
             "total, 12.9B active); sequence 4096 as in NeMo's pre-training recipe (context "
             "32768)",
             experts=8, top_k=2, moe_ffn=14336),
        _moe("mixtral-8x22b", 56, 6144, 48, 8, 16384, 32768, 4096,
             "mistralai/Mixtral-8x22B-v0.1 config.json (56 layers, hidden 6144, 48 heads, 8 KV "
             "heads, expert FFN 16384, 8 experts, top-2, vocab 32768) and Mistral AI's "
             "announcement 'Cheaper, Better, Faster, Stronger' (2024-04-17: 141B total, 39B "
             "active); sequence 4096 (context 65536)",
             experts=8, top_k=2, moe_ffn=16384),
        _moe("deepseek-v3", 61, 7168, 128, 128, 18432, 129280, 4096,
             "DeepSeek-AI 2024, 'DeepSeek-V3 Technical Report' (arXiv 2412.19437), section "
             "4.2, and deepseek-ai/DeepSeek-V3 config.json: 61 layers, hidden 7168, 128 heads, "
             "MLA (q_lora_rank 1536, kv_lora_rank 512, qk head 128 + rope 64, v head 128), "
             "first 3 layers dense (FFN 18432), then 256 routed experts (width 2048) top-8 + "
             "1 shared, sigmoid router, vocab 129280; 671B total, 37B active (without the "
             "14B multi-token-prediction module, which is not modelled); sequence 4096",
             head_size=192, v_head_size=128, q_lora_rank=1536, kv_lora_rank=512, rope_dim=64,
             experts=256, top_k=8, shared_experts=1, moe_ffn=2048, dense_layers=3,
             router="sigmoid"),
        _moe("qwen3-30b-a3b", 48, 2048, 32, 4, 6144, 151936, 4096,
             "Qwen Team 2025, 'Qwen3 Technical Report' (arXiv 2505.09388), Table 2, and "
             "Qwen/Qwen3-30B-A3B config.json (48 layers, hidden 2048, 32 heads, 4 KV heads, "
             "head_dim 128, 128 experts of width 768, top-8, every layer MoE, vocab 151936, "
             "untied; 30.5B total, 3.3B active); sequence 4096 (the pre-training stages' "
             "length)",
             head_size=128, experts=128, top_k=8, moe_ffn=768),
        _moe("qwen3-235b-a22b", 94, 4096, 64, 4, 12288, 151936, 4096,
             "Qwen Team 2025, 'Qwen3 Technical Report' (arXiv 2505.09388), Table 2, and "
             "Qwen/Qwen3-235B-A22B config.json (94 layers, hidden 4096, 64 heads, 4 KV heads, "
             "head_dim 128, 128 experts of width 1536, top-8, every layer MoE, vocab 151936, "
             "untied; 235B total, 22B active); sequence 4096",
             head_size=128, experts=128, top_k=8, moe_ffn=1536),
    )
}


def model_from(preset: str | None, overrides: dict[str, Any]) -> ModelSpec:
    """A preset with some dimensions overridden, or a GPT-style model from dimensions alone.

    Dimensions that follow from others move with them unless given: a multi-head preset
    (``kv_heads == heads``) stays multi-head when ``heads`` changes, and a preset whose FFN
    is ``4 * hidden`` keeps that ratio when ``hidden`` changes.

    Raises:
        WorkloadError: unknown preset, or without one, ``layers``, ``hidden`` or ``heads``
            missing.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if preset is not None:
        key = match(preset, PRESETS)
        if key is None:
            raise WorkloadError(f"unknown preset {preset!r}; {suggestion(preset, PRESETS)}use "
                                f"one of {', '.join(sorted(PRESETS))}, or give the dimensions "
                                "(layers, hidden, heads, ...) without a preset.")
        base = PRESETS[key]
        if "heads" in given and "kv_heads" not in given and base.kv_heads == base.heads:
            given["kv_heads"] = given["heads"]
        if "hidden" in given and "ffn" not in given and base.ffn == 4 * base.hidden:
            given["ffn"] = 4 * given["hidden"]
        return replace(base, **given)
    missing = [k for k in ("layers", "hidden", "heads") if k not in given]
    if missing:
        raise WorkloadError(f"without a preset the model needs {', '.join(missing)}; or pick "
                            f"a preset: {', '.join(sorted(PRESETS))}.")
    h = given["hidden"]
    return ModelSpec(**{"name": f"custom-{given['layers']}x{h}", "kv_heads": given["heads"],
                        "ffn": 4 * h, "vocab": 50257, "seq_len": 2048, **given})

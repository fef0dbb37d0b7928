"""Decoder-only transformer descriptions and the presets with their published dimensions.

Parameter counts (per layer, ``h`` hidden, ``f`` FFN, ``a`` heads, ``g`` KV heads,
``d = h/a``):

- attention: ``h (h + 2 g d)`` for Q, K, V and ``h^2`` for the output projection;
- MLP: ``2 h f`` (GELU) or ``3 h f`` (SwiGLU, gated);
- biases (GPT): ``h + 2 g d + h`` (attention) and ``f + h`` (MLP); norms: ``2h`` per
  LayerNorm (weight and bias) or ``h`` per RMSNorm, two per layer;
- embeddings: ``V h`` tokens, plus ``S h`` learned positions (GPT), plus ``V h`` for an untied
  LM head (Llama), plus the final norm.
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

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        """Width of K (and of V): kv_heads x head_dim."""
        return self.kv_heads * self.head_dim

    @property
    def qkv_out(self) -> int:
        """Output width of the fused QKV projection."""
        return self.hidden + 2 * self.kv_dim

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def layer_matmul_params(self) -> int:
        """Weights of the layer's matrix multiplications."""
        h = self.hidden
        return h * self.qkv_out + h * h + self.mlp_matrices * h * self.ffn

    @property
    def layer_params(self) -> int:
        """All parameters of one layer (matrices, biases, norms)."""
        h = self.hidden
        extra = 0
        if self.biases:
            extra += self.qkv_out + h + self.ffn * (self.mlp_matrices - 1) + h
        norm = 2 * h if self.norm == "layernorm" else h
        return self.layer_matmul_params + extra + 2 * norm

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
        return self.layers * self.layer_params + self.embedding_params + self.head_params

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

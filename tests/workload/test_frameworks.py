"""Framework profiles, the attention and loss kernels they choose, and fp8's casts."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from simcluster.cli import main
from simcluster.errors import WorkloadError
from simcluster.workload.generate.costs import Shape
from simcluster.workload.generate.frameworks import FRAMEWORKS
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.registry import transformer_config
from simcluster.workload.generate.transformer import TransformerConfig, transformer

GPT = ModelSpec("toy-gpt", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                seq_len=32)
DIMS = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "ffn": 256, "vocab": 256,
        "seq_len": 32}


def _names(wl) -> list[str]:
    return wl.ops.filter(pc.equal(wl.ops["kind"], "compute"))["name"].to_pylist()


def test_a_framework_fills_only_the_settings_not_given() -> None:
    cfg = transformer_config({**DIMS, "framework": "LLM-Foundry-2023", "zero": 2,
                              "flash_attention": None})
    assert cfg.framework == "llm-foundry-2023"
    assert (cfg.attention_kernel, cfg.loss_kernel, cfg.zero) == ("flash1", "eager", 2)
    assert cfg.flash_attention is True  # None counts as not given: the profile's
    plain = transformer_config(dict(DIMS))
    assert (plain.attention_kernel, plain.loss_kernel, plain.zero, plain.framework) == (
        "flash", "fused", 0, "")
    for profile in FRAMEWORKS.values():  # every profile makes a valid configuration
        transformer(transformer_config({**DIMS, "dp": 2, "framework": profile.name}))
        assert profile.source


def test_unknown_framework_and_kernels_are_explained(capsys, tmp_path) -> None:
    with pytest.raises(WorkloadError, match="did you mean 'torchtitan'"):
        transformer_config({**DIMS, "framework": "torchtitn"})
    with pytest.raises(WorkloadError, match="loss_kernel 'fast' is not one of fused, eager"):
        transformer(TransformerConfig(model=GPT, loss_kernel="fast"))
    out = tmp_path / "x.parquet"
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "transformer", "--layers", "2", "--hidden", "64", "--heads", "4",
              "--ffn", "256", "--vocab", "256", "--seq-len", "32", "--framework", "nope",
              "-o", str(out)])
    assert exit_.value.code == 2 and not out.exists()
    assert "unknown framework 'nope'" in capsys.readouterr().err


def test_flash1_names_the_attention_ops_for_the_compute_model() -> None:
    names = _names(transformer(TransformerConfig(model=GPT, attention_kernel="flash1")))
    assert [n for n in names if "attn" in n] == [
        "L0.fwd.attn.fa1", "L1.fwd.attn.fa1", "L1.bwd.attn.fa1", "L0.bwd.attn.fa1"]
    names = _names(transformer(TransformerConfig(model=GPT)))
    assert "L0.fwd.attn" in names and not any(n.endswith(".fa1") for n in names)


def test_eager_loss_moves_the_counted_bytes_per_logit() -> None:
    # T = 2 x 32 tokens, V = 256: fused 10 + 6 bytes per logit, eager 22 + 26.
    n = 64 * 256
    fused = Shape(model=GPT, micro_batch=2, tp=1, sp=False)
    eager = Shape(model=GPT, micro_batch=2, tp=1, sp=False, eager_loss=True)
    assert (fused.loss().nbytes, fused.loss(backward=True).nbytes) == (10 * n, 6 * n)
    assert (eager.loss().nbytes, eager.loss(backward=True).nbytes) == (22 * n, 26 * n)


def test_fp8_casts_every_gemm_operand_once_and_keeps_the_head_in_bf16() -> None:
    wl = transformer(TransformerConfig(model=GPT, dtype="fp8", micro_batch=2))
    rows = wl.ops.filter(pc.equal(wl.ops["kind"], "compute")).to_pylist()
    casts = {r["name"]: r["bytes_accessed"] for r in rows if r["name"].endswith("_cast")}
    T, h, f = 64, 64, 256
    # Per layer: forward, the projection's and FC2's inputs; backward, the output gradient
    # of all four GEMMs. Read 2 bytes, write 1 + 1 (both layouts) per element.
    assert casts == {
        **{f"L{i}.fwd.proj_cast": 4 * T * h for i in (0, 1)},
        **{f"L{i}.fwd.fc2_cast": 4 * T * f for i in (0, 1)},
        **{f"L{i}.bwd.fc2_cast": 4 * T * h for i in (0, 1)},
        **{f"L{i}.bwd.fc1_cast": 4 * T * f for i in (0, 1)},
        **{f"L{i}.bwd.proj_cast": 4 * T * h for i in (0, 1)},
        **{f"L{i}.bwd.qkv_cast": 4 * T * 3 * h for i in (0, 1)},
    }
    dtype = {r["name"]: r["dtype"] for r in rows}
    assert dtype["L0.fwd.qkv"] == "fp8" and dtype["logits"] == "bf16"
    assert dtype["logits.dgrad"] == dtype["logits.wgrad"] == "bf16"
    bf16 = transformer(TransformerConfig(model=GPT, micro_batch=2))
    assert not any(n.endswith("_cast") for n in _names(bf16))
    # The norms that feed fp8 GEMMs also write their fp8 copies (2 bytes per element).
    norm = {r["name"]: r["bytes_accessed"] for r in bf16.ops.to_pylist()}
    assert next(r["bytes_accessed"] for r in rows if r["name"] == "L0.fwd.ln1") \
        == norm["L0.fwd.ln1"] + 2 * T * h

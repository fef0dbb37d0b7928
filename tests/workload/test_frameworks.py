"""Framework profiles, the attention and loss kernels they choose, and fp8's casts."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from simcluster.cli import main
from simcluster.errors import WorkloadError
from simcluster.workload.generate.costs import Shape
from simcluster.workload.generate.frameworks import FRAMEWORKS, compute_entry
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.registry import transformer_config
from simcluster.workload.generate.transformer import (
    TransformerConfig,
    optimizer_bytes_per_param,
    transformer,
)

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


def test_compute_entry_is_the_stacks_kernels_on_a_chip_and_a_copy() -> None:
    entry = compute_entry("LLM-Foundry-2023", "H100")
    assert entry is not None and entry["memory_efficiency"] == 0.39
    assert entry["families"] == {"flash1": {"gemm_efficiency": 0.31}}
    entry["families"]["flash1"]["gemm_efficiency"] = 1.0  # the caller's copy only
    assert compute_entry("llm-foundry-2023", "H100")["families"]["flash1"][
        "gemm_efficiency"] == 0.31
    assert compute_entry("llm-foundry-2023", "A100")["memory_efficiency"] == 0.58
    for name in ("megatron-core", "nemo", "torchtitan", "megatron-2021"):
        assert compute_entry(name, "H100") is None  # the chip's own calibration
    assert compute_entry("llm-foundry-2023", None) is None
    assert compute_entry(None, "H100") is None
    with pytest.raises(WorkloadError):
        compute_entry("nope", "H100")


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
    eager = Shape(model=GPT, micro_batch=2, tp=1, sp=False, loss_kernel="eager")
    assert (fused.loss().nbytes, fused.loss(backward=True).nbytes) == (10 * n, 6 * n)
    assert (eager.loss().nbytes, eager.loss(backward=True).nbytes) == (22 * n, 26 * n)
    # Megatron-LM's vocab-parallel loss in PyTorch ops: cast 2 + 4, max 4, sub_ 8, exp 8,
    # sum 4, div_ 8 forward; mul_ 8 and the cast back 4 + 2 backward.
    ops = Shape(model=GPT, micro_batch=2, tp=1, sp=False, loss_kernel="unfused")
    assert (ops.loss().nbytes, ops.loss(backward=True).nbytes) == (38 * n, 14 * n)


def _bytes(**kw) -> dict[str, float]:
    wl = transformer(TransformerConfig(model=kw.pop("model", GPT), micro_batch=2,
                                       flash_attention=False, dtype="fp16", **kw))
    rows = wl.ops.filter(pc.equal(wl.ops["kind"], "compute")).to_pylist()
    return {r["name"]: r["bytes_accessed"] for r in rows if r["rank"] == 0}


@pytest.mark.parametrize("tp", [1, 2])
def test_megatron_2021_kernels_add_their_passes(tp: int) -> None:
    cur, old = _bytes(tp=tp), _bytes(tp=tp, kernels="megatron-2021")
    e, T, h, f, V = 2, 64, 64, 256, 256  # bytes per element (fp16 grads too), tokens
    weights = {"qkv": h * 3 * h / tp, "proj": h * h / tp, "fc1": h * f / tp,
               "fc2": f * h / tp}
    delta = {k: old[k] - cur[k] for k in cur if old[k] != cur[k]}
    wgrad = {**{f"L{i}.bwd.{g}": weights[g] for i in (0, 1) for g in ("proj", "fc2")},
             **{f"L{i}.bwd.{g}.wgrad": weights[g] for i in (0, 1) for g in ("qkv", "fc1")},
             "logits.wgrad": h * V / tp}
    assert delta == {
        # the context's permute copy after AV (read and write), forward only
        "L0.fwd.attn": 2 * e * T * h / tp, "L1.fwd.attn": 2 * e * T * h / tp,
        # bias gradients: QKV's (from the attention's output gradient), FC2's (after the
        # MLP residual), FC1's (after the GeLU), the projection's (after the attention
        # residual, whose LayerNorm backward also reads dy and x again)
        **{f"L{i}.bwd.attn": e * T * 3 * h / tp for i in (0, 1)},
        **{f"L{i}.bwd.res": e * T * h for i in (0, 1)},
        **{f"L{i}.bwd.act": e * T * f / tp for i in (0, 1)},
        **{f"L{i}.bwd.res_ln2": e * T * h + 2 * e * T * h for i in (0, 1)},
        **{f"L{i}.bwd.ln1": 2 * e * T * h for i in (0, 1)},
        "final_norm.bwd": 2 * e * T * h,
        # a weight gradient writes a fresh fp16 grad (2) instead of accumulating (2 + 2)
        **{k: -2 * n for k, n in wgrad.items()}}
    # ... that the hook adds to the main grad: read 2 + 2, write 2 per weight
    assert {k: v for k, v in old.items() if k not in cur} == {
        k.removesuffix(".wgrad") + ".grad_acc": 6 * n for k, n in wgrad.items()}
    # Without biases (Llama-style) no bias gradient is added.
    nob = ModelSpec("toy-nobias", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256,
                    vocab=256, seq_len=32, biases=False)
    cur, old = _bytes(model=nob, tp=tp), _bytes(model=nob, tp=tp, kernels="megatron-2021")
    assert old["L0.bwd.act"] == cur["L0.bwd.act"]
    assert old["L0.bwd.res_ln2"] - cur["L0.bwd.res_ln2"] == 2 * e * T * h


def test_unfused_attention_backward_reads_the_score_gradient_twice() -> None:
    s = Shape(model=GPT, micro_batch=2, tp=1, sp=False, flash=False)
    scores = 2 * 4 * 32 * 32  # b a s^2
    qkvo = 2 * 64 * 4 * 64  # Q, K, V and the output, 2 bytes each
    # AV bwd 2e, dropout bwd 2e + 1, softmax bwd 3e, the dQ and dK GEMMs e each
    assert s.attention(backward=True).nbytes == 2 * qkvo + (9 * 2 + 1) * scores
    assert s.attention().nbytes == qkvo + (6 * 2 + 1) * scores


def test_megatron_2021_profile_and_the_fp16_optimizer_bytes() -> None:
    cfg = transformer_config({**DIMS, "framework": "megatron-2021"})
    assert (cfg.loss_kernel, cfg.kernels, cfg.flash_attention) == (
        "unfused", "megatron-2021", False)
    # fp16 gradients: copy 2 + 4, unscale in place 4 + 4, norm 4, Adam 28, param copy 6
    assert optimizer_bytes_per_param(2, loss_scaling=True) == 52
    # bf16 (no loss scale): 16-bit gradients 48, fp32 gradients 42
    assert optimizer_bytes_per_param(2) == 48 and optimizer_bytes_per_param(4) == 42
    with pytest.raises(WorkloadError, match="kernels 'apex' is not one of current"):
        transformer(TransformerConfig(model=GPT, kernels="apex"))


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


def test_cli_kernels_option(capsys, tmp_path) -> None:
    out = tmp_path / "x.parquet"
    args = ["generate", "transformer", "--layers", "2", "--hidden", "64", "--heads", "4",
            "--ffn", "256", "--vocab", "256", "--seq-len", "32", "-o", str(out)]
    with pytest.raises(SystemExit) as ok:
        main([*args, "--framework", "megatron-2021"])
    assert ok.value.code == 0 and out.exists()
    assert "megatron-2021" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--kernels", "apex"])
    assert exit_.value.code == 2
    assert "kernels 'apex' is not one of current, megatron-2021" in capsys.readouterr().err

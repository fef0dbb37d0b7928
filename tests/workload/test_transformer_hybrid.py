"""Hybrid sharding (``shard_group``) and the ``save_qkv_proj`` recompute of the transformer
generator: group membership, collective sizes and recomputed ops, by hand."""

from __future__ import annotations

import pytest

from simcluster.cli import main
from simcluster.errors import WorkloadError
from simcluster.placement import bind
from simcluster.search.layers import rank0_groups
from simcluster.sim import simulate
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import (
    TransformerConfig,
    memory_breakdown,
    transformer,
)
from tests.conftest import servers

# h = 64, 4 heads, FFN 256, vocab 256, 32 tokens a sequence, tied embeddings, learned
# positions: a layer has 12 h^2 + 13 h = 49,984 parameters; the embedding and head (the
# tied table, the position table, the final LayerNorm) 256 x 64 + 32 x 64 + 2 x 64 = 18,560.
GPT = ModelSpec("toy-gpt", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                seq_len=32)
LAYER, ENDS = 49_984, 18_560


def _colls(wl, rank: int) -> list[tuple[str, str, int, str]]:
    return [(r["name"], r["collective"], r["comm_bytes"], r["group"])
            for r in wl.ops.to_pylist() if r["rank"] == rank and r["kind"] == "collective"]


def test_zero3_hybrid_groups_and_sizes_by_hand() -> None:
    """dp 4 in shard groups of 2: parameters gathered and gradients reduce-scattered over
    ranks {0, 1} (and {2, 3}); each reduced half all-reduced over {0, 2} (and {1, 3})."""
    cfg = TransformerConfig(model=GPT, dp=4, zero=3, shard_group=2, micro_batch=1,
                            global_batch=4, fold=False)
    wl = transformer(cfg)
    assert wl.groups == {"shard.p0.t0.g0": (0, 1), "shard.p0.t0.g1": (2, 3),
                         "repl.p0.t0.i0": (0, 2), "repl.p0.t0.i1": (1, 3)}
    g0, r0 = "shard.p0.t0.g0", "repl.p0.t0.i0"
    assert _colls(wl, 0) == [
        ("dp.z3_ag_embed_head", "all_gather", 2 * ENDS, g0),
        ("L0.z3_ag_fwd", "all_gather", 2 * LAYER, g0),
        ("L1.z3_ag_fwd", "all_gather", 2 * LAYER, g0),
        ("L1.z3_ag_bwd", "all_gather", 2 * LAYER, g0),
        ("L1.z3_rs", "reduce_scatter", 4 * LAYER, g0),
        ("L1.z3_rs.ar", "all_reduce", 4 * LAYER // 2, r0),  # this rank's half, fp32
        ("L0.z3_ag_bwd", "all_gather", 2 * LAYER, g0),
        ("L0.z3_rs", "reduce_scatter", 4 * LAYER, g0),
        ("L0.z3_rs.ar", "all_reduce", 4 * LAYER // 2, r0),
        ("dp.z3_rs_embed_head", "reduce_scatter", 4 * ENDS, g0),
        ("dp.z3_rs_embed_head.ar", "all_reduce", 4 * ENDS // 2, r0)]
    assert [g for *_, g in _colls(wl, 3)] == [
        "shard.p0.t0.g1"] * 4 + ["shard.p0.t0.g1", "repl.p0.t0.i1"] + [
        "shard.p0.t0.g1"] * 2 + ["repl.p0.t0.i1", "shard.p0.t0.g1", "repl.p0.t0.i1"]
    # Sharded over 2 ranks, not 4: Adam states 12 B / 2 and weights 2 B / 2 per parameter.
    mem = memory_breakdown(cfg.padded(), 0)
    params = 2 * LAYER + ENDS
    assert (mem["optimizer"], mem["weights"], mem["grads"]) == (6 * params, params,
                                                                2 * params)
    opt = [r for r in wl.ops.to_pylist() if r["rank"] == 0 and r["name"] == "optimizer"]
    assert opt[0]["flops"] == 15.0 * (params // 2)


def test_hybrid_groups_with_tp_and_cp_by_hand() -> None:
    """tp 2, cp 2, dp 4, shard groups of 2 replicas: rank = t + 2 (c + 2 d). A shard group
    holds its 2 replicas' CP ranks (4 ranks); a replica group the same (c, place) of each."""
    cfg = TransformerConfig(model=GPT, tp=2, cp=2, dp=4, zero=1, shard_group=2,
                            micro_batch=1, global_batch=4, fold=False)
    wl = transformer(cfg)
    assert wl.groups["shard.p0.t0.g0"] == (0, 2, 4, 6)
    assert wl.groups["shard.p0.t1.g1"] == (9, 11, 13, 15)
    assert wl.groups["repl.p0.t0.i1.c1"] == (6, 14)  # d = 1, 3; c = 1
    assert "dp.p0.t0" not in wl.groups
    # ZeRO-1: one bucket reduce-scattered over the 4 ranks, its quarter all-reduced.
    tp_params = (wl.meta.extra["memory"]["0"]["weights"]) // 2
    colls = _colls(wl, 6)
    assert [c[1:] for c in colls if c[0].startswith("dp.grad")] == [
        ("reduce_scatter", 4 * tp_params, "shard.p0.t0.g0"),
        ("all_reduce", tp_params, "repl.p0.t0.i1.c1")]
    assert rank0_groups(cfg)["shard"] == (0, 2, 4, 6)
    assert rank0_groups(cfg)["repl"] == (0, 8)


def test_fold_mirrors_outside_the_shard_group_hold_only_their_all_reduces() -> None:
    """Folded (tp 2, dp 4 in groups of 2): replica 1's mirrors (ranks 2, 3) keep their shard
    and replica collectives, replicas 2 and 3 (ranks 4-7) only the all-reduces across the
    groups; only replica 0's shard group is declared. (Fold against full replays:
    ``test_transformer.py``.)"""
    cfg = TransformerConfig(model=GPT, tp=2, dp=4, zero=3, shard_group=2, global_batch=4)
    wl = transformer(cfg)
    kinds = {r["rank"]: set() for r in wl.ops.to_pylist()}
    for r in wl.ops.to_pylist():
        if r["rank"] >= 2:
            kinds[r["rank"]].add(r["group"].split(".")[0])
    assert [kinds[k] for k in range(2, 8)] == [{"shard", "repl"}] * 2 + [{"repl"}] * 4
    assert sorted(g for g in wl.groups if g.startswith("shard")) == ["shard.p0.t0.g0",
                                                                     "shard.p0.t1.g0"]


def test_save_qkv_proj_recomputes_all_but_qkv_and_fc2() -> None:
    """tp 2 with SP and fp8: before each backward, the norm, the attention core, the
    projection (its input cast, its reduce-scatter), the second norm, FC1 (after its
    all-gather), the activation and FC2's input cast; no QKV GEMM, FC2 or residual."""
    cfg = TransformerConfig(model=GPT, tp=2, dp=1, sequence_parallel=True, dtype="fp8",
                            recompute="save_qkv_proj", micro_batch=1, fold=False)
    wl = transformer(cfg)
    rcp = [r for r in wl.ops.to_pylist() if r["rank"] == 0 and ".rcp." in r["name"]
           and r["name"].startswith("L1.")]
    assert [r["name"][len("L1.rcp."):] for r in rcp] == [
        "ln1", "attn", "proj_cast", "proj", "tp_attn", "res_ln2", "ag_fc1", "fc1", "act",
        "fc2_cast"]
    fwd = {r["name"][len("L1.fwd."):]: r for r in wl.ops.to_pylist()
           if r["rank"] == 0 and r["name"].startswith("L1.fwd.")}
    for r in rcp:  # the same ops as the forward's, cost for cost
        name = r["name"][len("L1.rcp."):]
        assert (r["flops"], r["comm_bytes"]) == (fwd[name]["flops"], fwd[name]["comm_bytes"])
    # Keeps the input (SP: 32 x 64 / 2 bf16) and Q, K, V (32 x 3 x 64 / 2 bf16) per layer.
    keep = 2 * 32 * 64 // 2 + 2 * 32 * 3 * 64 // 2
    assert cfg.shape().layer_activation_bytes("save_qkv_proj") == keep
    assert rcp[0]["name"] == "L1.rcp.ln1"


@pytest.mark.parametrize("kw", [
    dict(dp=2, recompute="save_qkv_proj", global_batch=4),
    dict(tp=2, dp=4, zero=2, shard_group=2, recompute="save_qkv_proj", global_batch=8,
         sequence_parallel=True),
])
def test_replay_peak_memory_equals_the_memory_model(kw: dict) -> None:
    cfg = TransformerConfig(model=GPT, micro_batch=1, **kw)
    wl = transformer(cfg)
    peak = simulate(bind(wl, servers(1, 8))).memory.column("peak_bytes").to_pylist()
    for rank in range(cfg.tp):
        assert peak[rank] == memory_breakdown(cfg.padded(), 0)["total"], rank


@pytest.mark.parametrize("kw,why", [
    (dict(dp=4, zero=3, shard_group=3), "must divide dp"),
    (dict(dp=4, zero=0, shard_group=2), "needs ZeRO"),
    (dict(dp=4, zero=3, shard_group=1), "one rank"),
    (dict(dp=4, zero=3, shard_group=-2), "must divide dp"),
])
def test_bad_shard_groups_are_typed_errors(kw: dict, why: str) -> None:
    with pytest.raises(WorkloadError, match=why):
        transformer(TransformerConfig(model=GPT, global_batch=4, **kw))


def test_cli_shard_group_that_does_not_divide_dp_exits_2(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "transformer", "--layers", "2", "--hidden", "64", "--heads", "4",
              "--kv-heads", "4", "--ffn", "256", "--vocab", "256", "--seq-len", "32",
              "--dp", "4", "--zero", "3", "--shard-group", "3",
              "-o", str(tmp_path / "w.parquet")])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert "shard_group 3 must divide dp 4" in out + err
    assert "Traceback" not in out + err and not (tmp_path / "w.parquet").exists()


def test_one_shard_group_of_all_replicas_is_plain_zero() -> None:
    base = dict(model=GPT, dp=4, zero=3, micro_batch=1, global_batch=4)
    plain = transformer(TransformerConfig(**base))
    whole = transformer(TransformerConfig(**base, shard_group=4))
    assert whole.ops.equals(plain.ops) and whole.groups == plain.groups

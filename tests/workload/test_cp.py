"""Context parallelism in the transformer generator: ranks and groups, ring-attention volumes
and overlap, FLOPs, memory, the fold and the checks (hand-computable values)."""

from __future__ import annotations

import pytest

from simcluster.errors import WorkloadError
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import (
    TransformerConfig,
    memory_breakdown,
    transformer,
)
from simcluster.workload.generate.transformer.cp import kv_bytes, ring_buffers
from tests.conftest import fold_cluster, servers, star, timeline
from tests.workload.test_transformer import GPT, _matmul_flops, _rows


def _ids(wl, rank: int) -> dict[str, int]:
    return {r["name"]: r["op_id"] for r in _rows(wl, rank=rank)}


def test_ranks_groups_and_ring_peers() -> None:
    """rank = t + T (c + C (p + P d)): a TP x CP block is consecutive; the DP group of a TP
    rank and stage spans dp x cp ranks; the ring sends to c + 1 and receives from c - 1."""
    cfg = TransformerConfig(model=GPT, tp=2, cp=2, pp=2, dp=2, global_batch=4, fold=False)
    assert cfg.world == 16
    assert [cfg.rank(1, 0, 0, 1), cfg.rank(0, 1, 0, 0), cfg.rank(1, 1, 1, 1)] == [3, 4, 15]
    wl = transformer(cfg)
    assert wl.groups["tp.d0.c1.p0"] == (2, 3)
    assert wl.groups["dp.p0.t0"] == (0, 2, 8, 10)
    assert wl.groups["emb.d1.c0.t1"] == (9, 13)
    sends = _rows(wl, rank=3, name="L0.fwd.cp_send0")
    recvs = _rows(wl, rank=3, name="L0.fwd.cp_recv0")
    assert [r["peer"] for r in sends + recvs] == [1] * 4  # 2 micro-batches
    # cp 4: ring 0 -> 1 -> 2 -> 3 -> 0 over consecutive ranks (tp 1)
    wl4 = transformer(TransformerConfig(model=GPT, cp=4))
    assert [r["peer"] for r in _rows(wl4, rank=1, name="L0.fwd.cp_send0")] == [2]
    assert [r["peer"] for r in _rows(wl4, rank=1, name="L0.fwd.cp_recv0")] == [0]
    # cp == 1 keeps the dense names and numbering
    dense = transformer(TransformerConfig(model=GPT, tp=2, pp=2, dp=2, global_batch=4))
    assert "tp.d0.p1" in dense.groups and dense.groups["dp.p1.t1"] == (3, 7)


def test_ring_message_sizes() -> None:
    """K/V of b s / C tokens, 2 bytes, width (k + v) / t: C - 1 exchanges per layer forward,
    the same count with twice the bytes (K/V and dK/dV) backward."""
    b, s, kv = 2, 32, GPT.kv_dim  # 64: 4 KV heads x 16
    for cp, tp in ((2, 1), (4, 2)):
        cfg = TransformerConfig(model=GPT, micro_batch=b, tp=tp, cp=cp)
        expected = 2 * (b * s // cp) * (2 * kv // tp)
        assert kv_bytes(cfg) == expected
        wl = transformer(cfg)
        fwd = [r["comm_bytes"] for r in _rows(wl, rank=0, kind="send")
               if r["name"].startswith("L1.fwd.")]
        bwd = [r["comm_bytes"] for r in _rows(wl, rank=0, kind="send")
               if r["name"].startswith("L1.bwd.")]
        assert fwd == [expected] * (cp - 1)
        assert bwd == [2 * expected] * (cp - 1)
        steps = [r for r in _rows(wl, rank=0, kind="compute") if ".fwd.cp" in r["name"]]
        assert len(steps) == cp * GPT.layers


@pytest.mark.parametrize("cp", [2, 4])
def test_flops_equal_the_non_cp_model(cp: int) -> None:
    """Each ring step is one (s/C)^2 block (1/C^2 of the sequence's attention), C steps per
    rank, C ranks: the GEMM and attention FLOPs over all ranks equal the non-CP run's."""
    base = {"model": GPT, "tp": 2, "pp": 2, "dp": 2, "micro_batch": 2, "global_batch": 8,
            "fold": False}
    ref = transformer(TransformerConfig(**base))
    wl = transformer(TransformerConfig(cp=cp, **base))
    assert _matmul_flops(wl) == pytest.approx(_matmul_flops(ref), rel=1e-12)
    for key in ("model_flops_per_step", "hardware_flops_per_step", "tokens_per_step"):
        assert wl.meta.extra[key] == ref.meta.extra[key]
    step = _rows(wl, rank=0, name="L0.fwd.cp0.attn")[0]["flops"]
    assert step * cp * cp == _rows(ref, rank=0, name="L0.fwd.attn")[0]["flops"]


def test_ring_exchange_overlaps_attention_exactly() -> None:
    """A step whose exchange is shorter than its attention adds no time; a longer one adds
    exactly the difference (star of 2, no latency: an exchange takes bytes / bandwidth)."""
    cfg = TransformerConfig(model=GPT, cp=2)
    wl = transformer(cfg)
    ids = _ids(wl, 0)
    f, b = kv_bytes(cfg), 2 * kv_bytes(cfg)  # 4,096 and 8,192 bytes
    done = {}
    for bw in (1000.0, 0.01):  # GB/s: 4.1 ns and 410 us forward
        _, t = timeline(wl, star(2, bandwidth_GBps=bw))
        exposed = 0.0
        for layer in range(GPT.layers):
            for tag, size in (("fwd", f), ("bwd", b)):
                s0, e0 = t[(0, ids[f"L{layer}.{tag}.cp0.attn"])]
                s1, _ = t[(0, ids[f"L{layer}.{tag}.cp1.attn"])]
                rs, re_ = t[(0, ids[f"L{layer}.{tag}.cp_recv0"])]
                comm = size / (bw * 1e3)  # us
                assert rs == s0 and re_ - rs == pytest.approx(comm, rel=1e-9)
                assert s1 - e0 == pytest.approx(max(0.0, comm - (e0 - s0)), rel=1e-9,
                                                abs=1e-9)
                exposed += max(0.0, comm - (e0 - s0))
        done[bw] = (t[(0, ids["embed.bwd"])][1], exposed)
    assert done[1000.0][1] == 0.0
    assert done[0.01][0] - done[1000.0][0] == pytest.approx(done[0.01][1], rel=1e-9)


@pytest.mark.parametrize("kw", [
    {"tp": 2, "pp": 2, "cp": 2},
    {"cp": 4, "recompute": "full"},
    {"tp": 2, "cp": 2, "sequence_parallel": True, "zero": 1, "dp": 2, "global_batch": 4,
     "fold": False},
])
def test_replay_peak_memory_equals_the_memory_model(kw: dict) -> None:
    """Activations at s / C tokens plus the ring's receive buffers: the replay's peak is
    the analytic model's."""
    cfg = TransformerConfig(model=GPT, micro_batch=1, **kw)
    wl = transformer(cfg)
    peak = simulate(bind(wl, servers(1, 8))).memory.column("peak_bytes").to_pylist()
    for rank in range(cfg.world):
        stage = (rank // (cfg.tp * cfg.cp)) % cfg.pp
        assert peak[rank] == memory_breakdown(cfg.padded(), stage)["total"], rank


def test_memory_scales_with_cp() -> None:
    """Stored activations (flash attention: linear in tokens) halve with cp 2, plus the
    ring's buffers; ZeRO-1 shards the optimizer over dp x cp."""
    one = memory_breakdown(TransformerConfig(model=GPT, micro_batch=2), 0)
    cfg = TransformerConfig(model=GPT, micro_batch=2, cp=2, dp=2, zero=1, global_batch=4)
    two = memory_breakdown(cfg, 0)
    logits = 2 * 32 * 256 * 4  # fp32 logits of b s tokens
    assert two["activations"] - logits // 2 == (one["activations"] - logits) // 2
    assert ring_buffers(cfg, backward=False) == kv_bytes(cfg) == 2 * 32 * 128
    assert ring_buffers(TransformerConfig(model=GPT, cp=8), backward=True) \
        == 2 * 2 * kv_bytes(TransformerConfig(model=GPT, cp=8))
    assert two["optimizer"] == one["optimizer"] // 4


@pytest.mark.parametrize("kw", [
    {"tp": 1, "cp": 2, "pp": 1, "dp": 4, "global_batch": 8, "zero": 1},
    {"tp": 2, "cp": 2, "pp": 2, "dp": 2, "global_batch": 8, "recompute": "full"},
])
def test_fold_keeps_every_cp_rank_of_replica_0(kw: dict) -> None:
    cluster = fold_cluster()
    full = transformer(TransformerConfig(model=GPT, fold=False, **kw))
    folded = transformer(TransformerConfig(model=GPT, fold=True, **kw))
    assert folded.num_ops < full.num_ops
    real = folded.meta.extra["fold"]["ranks_per_replica"]
    assert real == kw["tp"] * kw["cp"] * kw["pp"]
    run_full, t_full = timeline(full, cluster)
    run_fold, t_fold = timeline(folded, cluster)
    for (rank, op), times in t_fold.items():
        if rank < real:
            assert times == t_full[(rank, op)], (rank, op)
    assert run_fold.makespan_us == pytest.approx(run_full.makespan_us, rel=1e-12)


def test_bad_cp_configurations_are_explained() -> None:
    moe = ModelSpec("toy-moe", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                    seq_len=32, experts=4, top_k=2, moe_ffn=64)
    for kw, match in (({"cp": 3}, "divisible by 2 x cp = 6"),
                      ({"cp": 0}, "cp must be at least 1"),
                      ({"cp": 4, "tp": 2, "cp_comm": "a2a"}, "tp x cp = 8: heads 4"),
                      ({"cp": 2, "cp_comm": "ring"}, "cp_comm 'ring' is not one of p2p, a2a"),
                      ({"cp": 2, "flash_attention": False}, "needs flash_attention"),
                      ({"cp": 2, "dp": 2, "ep": 1, "model": moe}, "multiple of cp \\(2\\)"),
                      ({"cp": 2, "tp": 2, "dp": 2, "ep": 2, "expert_tp": 1,
                        "sequence_parallel": True, "model": moe}, "expert_tp 1 with cp 2")):
        with pytest.raises(WorkloadError, match=match):
            transformer(TransformerConfig(**{"model": GPT, **kw}))


def test_cli_sweep_and_analysis_know_cp(tmp_path) -> None:
    """The generator registry (CLI, sweeps) takes ``cp``; the analysis finds stages and the
    world with it; the search takes it from its space, not as a model setting."""
    from simcluster.analysis.training import TrainingInfo
    from simcluster.search.driver import SearchError, search
    from simcluster.workload.generate.registry import generate
    from tests.conftest import ROOT

    wl = generate("transformer", {"layers": 4, "hidden": 64, "heads": 4, "kv_heads": 4,
                                  "ffn": 256, "vocab": 256, "seq_len": 32, "tp": 2, "cp": 2,
                                  "pp": 2})
    info = TrainingInfo.of(wl)
    assert info is not None and info.world == wl.num_ranks == 8
    assert [info.stage_of(r) for r in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(SearchError, match="cp given as a model setting: the search chooses"):
        search({"preset": "llama3-8b", "global_batch": 64, "cp": 2},
               ROOT / "topologies" / "dgx-h100.yaml", 8, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--preset", "llama3-8b", "--cp", "3"], "divisible by 2 x cp = 6"),
    (["--preset", "llama3-8b", "--cp", "2", "--cp-comm", "ring"], "cp_comm 'ring'"),
    (["--preset", "mixtral-8x7b", "--cp", "2", "--ep", "1"], "multiple of cp (2)"),
])
def test_cli_rejects_bad_cp_before_any_work(tmp_path, capsys, args, message) -> None:
    from tests.conftest import cli_exit_2

    out = tmp_path / "wl.parquet"
    assert message in cli_exit_2(["generate", "transformer", *args, "-o", str(out)], out, capsys)


def test_ulysses_all_to_all_sizes_flops_and_memory() -> None:
    """cp_comm a2a: Q, K, V of b s / C tokens in (2 (q + k + v) / t bytes per token), the
    output back (2 v / t), over the CP group; the attention on the whole sequence with
    1 / (t C) of the heads; FLOPs as without CP; no ring buffers, the replay's peak is the
    model's."""
    base = {"model": GPT, "tp": 2, "pp": 2, "dp": 2, "micro_batch": 2, "global_batch": 8,
            "fold": False}
    ref = transformer(TransformerConfig(**base))
    wl = transformer(TransformerConfig(cp=2, cp_comm="a2a", **base))
    assert _matmul_flops(wl) == pytest.approx(_matmul_flops(ref), rel=1e-12)
    assert wl.groups["cp.d1.p0.t1"] == (9, 11)
    ops = {r["name"]: r for r in _rows(wl, rank=0) if ".cp_a2a" in r["name"]}
    tokens = 2 * 32 // 2
    assert ops["L0.fwd.cp_a2a_qkv"]["comm_bytes"] == 2 * tokens * (32 + 32 + 32) == 6144
    assert ops["L0.fwd.cp_a2a_out"]["comm_bytes"] == 2 * tokens * 32
    assert ops["L0.bwd.cp_a2a_dout"]["comm_bytes"] == 2048
    assert ops["L0.bwd.cp_a2a_dqkv"]["comm_bytes"] == 6144
    assert {r["group"] for r in ops.values()} == {"cp.d0.p0.t0"}
    attn = _rows(wl, rank=0, name="L0.fwd.attn")[0]["flops"]
    assert attn * 2 == _rows(ref, rank=0, name="L0.fwd.attn")[0]["flops"]
    cfg = TransformerConfig(model=GPT, micro_batch=1, tp=2, cp=2, pp=2, cp_comm="a2a",
                            recompute="full")
    assert ring_buffers(cfg, backward=True) == 0
    peak = simulate(bind(transformer(cfg), servers(1, 8))).memory.column(
        "peak_bytes").to_pylist()
    for rank in range(8):
        assert peak[rank] == memory_breakdown(cfg.padded(), (rank // 4) % 2)["total"], rank


def test_ulysses_fold_agrees_with_the_full_simulation() -> None:
    kw = {"tp": 1, "cp": 2, "pp": 2, "dp": 4, "global_batch": 8, "cp_comm": "a2a"}
    cluster = fold_cluster()
    full = transformer(TransformerConfig(model=GPT, fold=False, **kw))
    folded = transformer(TransformerConfig(model=GPT, fold=True, **kw))
    run_full, t_full = timeline(full, cluster)
    run_fold, t_fold = timeline(folded, cluster)
    for (rank, op), times in t_fold.items():
        if rank < 4:
            assert times == t_full[(rank, op)], (rank, op)
    assert run_fold.makespan_us == pytest.approx(run_full.makespan_us, rel=1e-12)


@pytest.mark.parametrize("cp_comm", ["p2p", "a2a"])
def test_the_cp_exchange_is_its_own_kind_of_communication(cp_comm: str) -> None:
    """The ring's K/V send/recv and Ulysses' all-to-alls count as ``cp``, apart from the
    pipeline's send/recv (``pp``), the data-parallel all-reduce and the tied embeddings'."""
    import simcluster as sc

    wl = transformer(TransformerConfig(model=GPT, cp=2, pp=2, dp=2, cp_comm=cp_comm,
                                       global_batch=4))
    comm = sc.replay(wl, servers(1, 8)).training["communication"]
    assert set(comm) == {"cp", "dp", "emb", "pp"}
    assert comm["cp"]["time_us"] > 0

"""Mixture-of-experts layers with expert parallelism: parameters, FLOPs, bytes, all-to-all
volumes, groups, memory, the fold, presets, and impossible configurations."""

from __future__ import annotations

from dataclasses import replace

import pyarrow.compute as pc
import pytest

import simcluster as sc
from simcluster.errors import WorkloadError
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.workload.generate.presets import PRESETS, ModelSpec
from simcluster.workload.generate.registry import transformer_config
from simcluster.workload.generate.transformer import (
    TransformerConfig,
    memory_breakdown,
    transformer,
)
from tests.conftest import ROOT, cli_exit_2, fold_cluster, servers, timeline

# h 64, 4 heads, 2 KV heads (16 wide), SwiGLU; layer 0 dense (FFN 192), layer 1 MoE: 4
# experts of width 32, top-2, one shared expert.
MOE = ModelSpec("toy-moe", layers=2, hidden=64, heads=4, kv_heads=2, ffn=192, vocab=256,
                seq_len=32, gated_mlp=True, norm="rmsnorm", biases=False,
                learned_positions=False, tied_embeddings=False, dropout=False,
                experts=4, top_k=2, shared_experts=1, moe_ffn=32, dense_layers=1)
ATTN = 64 * (64 + 32 + 32) + 64 * 64  # QKV + projection = 12288
EXPERT = 3 * 64 * 32                    # one expert = 6144
MATMUL = {"qkv", "proj", "fc1", "fc2", "attn", "logits", "router"}


def _rows(wl, rank: int = 0, **eq) -> list[dict]:
    t = wl.ops.filter(pc.equal(wl.ops["rank"], rank))
    for k, v in eq.items():
        t = t.filter(pc.equal(t[k], v))
    return t.to_pylist()


def _op(wl, name: str, rank: int = 0) -> dict:
    rows = _rows(wl, rank, name=name)
    assert rows, name
    return rows[0]


def test_parameters_of_a_moe_layer() -> None:
    assert MOE.expert_params == EXPERT
    assert MOE.layer_params_of(0) == ATTN + 3 * 64 * 192 + 2 * 64       # dense: 49280
    assert MOE.layer_params_of(1) == ATTN + 2 * 64 + 64 * 4 + 5 * EXPERT  # 43392
    assert MOE.layer_params_of(1, routed=2) == ATTN + 2 * 64 + 64 * 4 + 3 * EXPERT
    embed, head = 256 * 64, 64 + 256 * 64
    assert MOE.params == 49280 + 43392 + embed + head
    assert MOE.active_params == 49280 + 43392 - 2 * EXPERT + embed + head


@pytest.mark.parametrize("zero", [0, 1])
def test_parameter_memory_splits_experts_over_ep_and_their_dp_group(zero: int) -> None:
    """dp 4, ep 2: each rank holds 2 of the 4 experts; their optimizer states are sharded
    over the 2 ranks holding the same experts, the rest over all 4."""
    mem = memory_breakdown(TransformerConfig(model=MOE, dp=4, ep=2, zero=zero), 0)
    dense = 49280 + (ATTN + 2 * 64 + 64 * 4 + EXPERT) + 256 * 64 + (64 + 256 * 64)
    experts = 2 * EXPERT
    assert mem["weights"] == 2 * (dense + experts)
    assert mem["grads"] == 4 * (dense + experts)
    assert mem["optimizer"] == (12 * (dense + experts) if zero == 0
                                else 12 * dense // 4 + 12 * experts // 2)


def test_expert_gemm_flops_and_bytes_on_the_busiest_rank() -> None:
    """T = 2 x 32 tokens, top-2: 128 copies per rank; skew 1.5 -> the busiest rank computes
    192 rows over its 2 local experts (h 64, expert width 32: FC1 64 -> 2 x 32 gated)."""
    cfg = TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2, moe_skew=1.5, fold=False)
    wl = transformer(cfg)
    fc1, fc2 = _op(wl, "L1.fwd.experts.fc1"), _op(wl, "L1.fwd.experts.fc2")
    assert fc1["flops"] == 2 * 192 * 64 * 64
    assert fc1["bytes_accessed"] == 2 * (192 * 64 + 2 * 64 * 64) + 2 * 192 * 64
    assert fc2["flops"] == 2 * 192 * 32 * 64
    assert fc2["bytes_accessed"] == 2 * (192 * 32 + 2 * 32 * 64) + 2 * 192 * 64
    bwd = _op(wl, "L1.bwd.experts.fc1")  # dgrad + wgrad (fp32 gradients read and written)
    assert bwd["flops"] == 2 * fc1["flops"]
    assert bwd["bytes_accessed"] == (2 * (192 * 64 + 2 * 64 * 64) + 2 * 192 * 64
                                     + 2 * (192 * 64 + 192 * 64) + 2 * 4 * 2 * 64 * 64)
    router = _op(wl, "L1.fwd.router")
    assert router["flops"] == 2 * 64 * 64 * 4
    act = _op(wl, "L1.fwd.experts.act")
    assert act["bytes_accessed"] == 3 * 2 * 192 * 32  # SwiGLU: read 2, write 1 per output


@pytest.mark.parametrize("skew,capacity,rows", [
    (1.0, None, 128),     # balanced: the 2 x 32 tokens x top-2
    (1.5, None, 192),     # the busiest rank gets 1.5 x the mean
    (1.5, 1.25, 160),     # capped at the capacity: the rest is dropped
    (1.0, 0.5, 64),       # a capacity below the mean drops tokens even when balanced
])
def test_all_to_all_volume_per_rank(skew: float, capacity: float | None, rows: int) -> None:
    cfg = TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2, moe_skew=skew,
                            capacity_factor=capacity, fold=False)
    wl = transformer(cfg)
    a2a = _rows(wl, 0, collective="all_to_all")
    assert {r["name"] for r in a2a} == {"L1.fwd.ep_dispatch", "L1.fwd.ep_combine",
                                        "L1.bwd.ep_combine", "L1.bwd.ep_dispatch"}
    assert {r["comm_bytes"] for r in a2a} == {rows * 64 * 2}  # rows x h x bf16
    assert {r["group"] for r in a2a} == {"ep.p0.b0.t0"} and wl.groups["ep.p0.b0.t0"] == (0, 1)
    assert _op(wl, "L1.fwd.experts.fc1")["flops"] == 2 * rows * 64 * 64


@pytest.mark.parametrize("skew,capacity,hot", [
    (1.5, None, 12288),   # the busiest rank's load 1.5 x the mean, the other's 0.5
    (1.5, 1.25, 10240),   # the busiest capped at 1.25 (the rest dropped)
])
def test_skewed_all_to_alls_are_uneven_per_pair(skew: float, capacity: float | None,
                                                hot: int) -> None:
    """2 x 32 tokens x top-2 = 128 copies of 64 x 2 B per rank: 8192 B to each of 2 EP ranks
    when balanced. MoE layer 1's busiest EP rank is position 1 mod 2 = 1 (rank 1)."""
    cfg = TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2, moe_skew=skew,
                            capacity_factor=capacity, fold=False)
    wl = transformer(cfg)
    cold = 4096
    want = {  # (rank, name) -> splits: towards the experts, then back from them
        (0, "L1.fwd.ep_dispatch"): [cold, hot], (1, "L1.fwd.ep_dispatch"): [cold, hot],
        (0, "L1.fwd.ep_combine"): [cold, cold], (1, "L1.fwd.ep_combine"): [hot, hot],
        (0, "L1.bwd.ep_combine"): [cold, hot], (1, "L1.bwd.ep_combine"): [cold, hot],
        (0, "L1.bwd.ep_dispatch"): [cold, cold], (1, "L1.bwd.ep_dispatch"): [hot, hot],
    }
    for (rank, name), splits in want.items():
        assert {tuple(r["splits"]) for r in _rows(wl, rank, name=name)} == {tuple(splits)}
    others = wl.ops.filter(pc.invert(pc.equal(wl.ops["collective"], "all_to_all")))
    assert others.column("splits").null_count == others.num_rows


def test_balanced_all_to_alls_carry_no_splits() -> None:
    wl = transformer(TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2, fold=False))
    assert wl.ops.column("splits").null_count == wl.num_ops


def test_allgather_dispatcher_and_expert_tensor_parallelism() -> None:
    cfg = TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2,
                            moe_dispatcher="allgather", fold=False)
    wl = transformer(cfg)
    assert [(r["name"], r["collective"], r["comm_bytes"]) for r in
            _rows(wl, 0, group="ep.p0.b0.t0")][:2] == [
        ("L1.fwd.ep_dispatch", "all_gather", 2 * 64 * 64 * 2),   # every token of the group
        ("L1.fwd.ep_combine", "reduce_scatter", 2 * 64 * 64 * 2)]
    # expert TP 2 with SP: each TP rank routes 32 tokens -> 64 copies, gathers the other
    # TP rank's after the dispatch (128 rows), computes half of each expert's width.
    cfg = TransformerConfig(model=MOE, micro_batch=1, tp=2, dp=2, ep=2, expert_tp=2,
                            sequence_parallel=True, fold=False)
    wl = transformer(cfg)
    assert _op(wl, "L1.fwd.ep_dispatch")["comm_bytes"] == 16 * 2 * 64 * 2
    assert _op(wl, "L1.fwd.etp_ag")["comm_bytes"] == 2 * 16 * 2 * 64 * 2
    assert _op(wl, "L1.fwd.experts.fc1")["flops"] == 2 * 64 * 64 * 32
    # ranks t + T (i + S (p + P j)): the EP group of TP rank 0 is replicas 0 and 1
    assert wl.groups["ep.p0.b0.t0"] == (0, 2) and wl.groups["tp.d1.p0"] == (2, 3)


@pytest.mark.parametrize("kw", [
    {"tp": 2, "pp": 2, "dp": 2, "ep": 2, "sequence_parallel": True, "recompute": "full", "moe_skew": 1.5},
    {"tp": 1, "pp": 2, "dp": 4, "ep": 4, "zero": 1, "moe_dispatcher": "allgather"},
    {"tp": 2, "pp": 1, "dp": 2, "ep": 2, "expert_tp": 2, "sequence_parallel": True},
])
def test_flops_match_the_closed_form(kw: dict) -> None:
    model = replace(MOE, layers=4)
    cfg = TransformerConfig(model=model, micro_batch=2, global_batch=16, fold=False, **kw)
    wl = transformer(cfg)
    total = 0.0
    for r in wl.ops.select(["name", "flops", "kind"]).to_pylist():
        if r["kind"] == "compute" and MATMUL & set(r["name"].split(".")):
            total += r["flops"]
    assert total == pytest.approx(wl.meta.extra["hardware_flops_per_step"], rel=1e-12)
    tokens, B, s, h = 16 * 32, 16, 32, 64
    per_layer = [ATTN + 3 * 64 * 192] + [ATTN + 64 * 4 + 3 * EXPERT] * 3
    model_flops = 6 * (sum(per_layer) + 256 * 64) * tokens + 12 * 4 * B * s * s * h
    assert wl.meta.extra["model_flops_per_step"] == pytest.approx(model_flops, rel=1e-12)
    assert wl.meta.extra["active_params"] == model.active_params


@pytest.mark.parametrize("kw", [
    {"tp": 1, "pp": 2, "dp": 4, "ep": 2, "global_batch": 8, "zero": 1},
    {"tp": 2, "pp": 1, "dp": 2, "ep": 2, "global_batch": 8, "sequence_parallel": True, "recompute": "full"},
    {"tp": 1, "pp": 1, "dp": 4, "ep": 4, "global_batch": 8, "recompute": "selective",
         "flash_attention": False, "moe_skew": 2.0},
    {"tp": 1, "cp": 2, "pp": 2, "dp": 2, "ep": 2, "global_batch": 4, "zero": 1},
])
def test_replay_peak_memory_equals_the_memory_model(kw: dict) -> None:
    cfg = TransformerConfig(model=replace(MOE, layers=4, dense_layers=1), micro_batch=1, **kw)
    wl = transformer(cfg)
    run = simulate(bind(wl, servers(1, 8)))
    peak = run.memory.column("peak_bytes").to_pylist()
    fold = wl.meta.extra["fold"]
    real = fold["full_ranks"] if fold else cfg.world
    span = cfg.ep_span
    for rank in range(real):
        stage = (rank // (cfg.tp * cfg.cp * span)) % cfg.pp
        assert peak[rank] == memory_breakdown(cfg.padded(), stage)["total"], rank


@pytest.mark.parametrize("kw", [
    {"tp": 1, "pp": 1, "dp": 8, "ep": 2, "global_batch": 16, "zero": 1},
    {"tp": 2, "pp": 1, "dp": 4, "ep": 2, "global_batch": 8, "sequence_parallel": True, "moe_skew": 1.5},
    {"tp": 2, "pp": 2, "dp": 4, "ep": 2, "expert_tp": 2, "global_batch": 8, "sequence_parallel": True},
    {"tp": 1, "pp": 2, "dp": 4, "ep": 2, "global_batch": 8, "moe_dispatcher": "allgather",
         "dp_overlap": False},
    {"tp": 1, "cp": 2, "pp": 1, "dp": 4, "ep": 2, "global_batch": 8, "zero": 1},
    {"tp": 2, "cp": 2, "pp": 1, "dp": 4, "ep": 4, "expert_tp": 2, "global_batch": 8,
         "sequence_parallel": True},
])
def test_fold_agrees_with_the_full_simulation(kw: dict) -> None:
    """With EP carved out of DP, the fold keeps the first EP group's replicas in full (the
    all-to-alls run between them) and mirrors the others' DP and expert-DP collectives;
    those ranks' timelines are identical to the full run's (4 servers of 4 GPUs, one NIC
    each, one switch)."""
    cluster = fold_cluster()
    full = transformer(TransformerConfig(model=MOE, fold=False, **kw))
    folded = transformer(TransformerConfig(model=MOE, fold=True, **kw))
    assert folded.num_ops < full.num_ops
    fold = folded.meta.extra["fold"]
    assert fold["full_ranks"] == kw["tp"] * kw.get("cp", 1) * kw["pp"] * fold["full_replicas"]
    run_full, t_full = timeline(full, cluster)
    run_fold, t_fold = timeline(folded, cluster)
    for (rank, op), times in t_fold.items():
        if rank < fold["full_ranks"]:
            assert times == t_full[(rank, op)], (rank, op)
    assert run_fold.makespan_us == pytest.approx(run_full.makespan_us, rel=1e-12)


def test_context_parallel_ranks_are_token_ranks_of_the_expert_groups() -> None:
    """With CP 2, an EP group of 4 is the two CP ranks of two replicas (Megatron-Core carves
    EP out of the data-parallel-with-context-parallel ranks); each routes its own
    ``b s / cp`` tokens, and expert gradients are reduced over ``dp x cp / ep`` ranks."""
    cfg = TransformerConfig(model=MOE, micro_batch=2, cp=2, dp=4, ep=4, global_batch=8,
                            fold=False)
    wl = transformer(cfg)
    # ranks c + 2 (i + 2 j) (tp 1, pp 1, ep_span 2): blocks of four consecutive ranks
    assert cfg.ep_span == 2
    assert wl.groups["ep.p0.b0.t0"] == (0, 1, 2, 3) and wl.groups["ep.p0.b1.t0"] == (4, 5, 6, 7)
    assert {g: wl.groups[g] for g in wl.groups if g.startswith("edp")} == {
        "edp.p0.t0.e0": (0, 4), "edp.p0.t0.e1": (1, 5), "edp.p0.t0.e2": (2, 6),
        "edp.p0.t0.e3": (3, 7)}
    assert wl.groups["dp.p0.t0"] == tuple(range(8))
    # 2 sequences x 16 tokens per rank, top-2: 64 copies of 64 bf16 values
    dispatch = _op(wl, "L1.fwd.ep_dispatch", rank=5)
    assert (dispatch["group"], dispatch["comm_bytes"]) == ("ep.p0.b1.t0", 64 * 64 * 2)
    # the expert GEMM of one rank: its one local expert gets 64 rows (balanced)
    assert _op(wl, "L1.fwd.experts.fc1")["flops"] == 2 * 64 * 64 * 64


def test_impossible_configurations_fail_before_any_work(capsys, tmp_path) -> None:
    with pytest.raises(WorkloadError, match=r"ep 3 must divide the experts \(4\) .* one of 1, 2"):
        transformer(TransformerConfig(model=MOE, dp=6, ep=3))
    with pytest.raises(WorkloadError, match=r"ep 4 must divide .* dp ranks \(2\)"):
        transformer(TransformerConfig(model=MOE, dp=2, ep=4))
    with pytest.raises(WorkloadError, match="top_k 5 must be between 1 and experts 4"):
        transformer(TransformerConfig(model=replace(MOE, top_k=5)))
    with pytest.raises(WorkloadError, match="ep, moe_skew set, but model 'llama3-8b' is dense"):
        transformer(transformer_config({"preset": "llama3-8b", "dp": 2, "ep": 2,
                                        "moe_skew": 1.5}))
    with pytest.raises(WorkloadError, match="top_k set on a dense model"):
        transformer(transformer_config({"preset": "llama3-8b", "top_k": 2}))
    with pytest.raises(WorkloadError, match="need sequence_parallel"):
        transformer(TransformerConfig(model=MOE, tp=2, dp=2, ep=2))
    with pytest.raises(WorkloadError, match="moe_skew 3.0 must be between 1"):
        transformer(TransformerConfig(model=MOE, dp=2, ep=2, moe_skew=3.0))
    for args, message in ((["--preset", "llama3-8b", "--dp", "2", "--ep", "2"], "is dense"),
                          (["--preset", "mixtral-8x7b", "--top-k", "9"], "top_k 9"),
                          (["--preset", "mixtral-8x7b", "--dp", "4", "--ep", "3"], "ep 3")):
        out = tmp_path / "x.parquet"
        assert message in cli_exit_2(["generate", "transformer", *args, "-o", str(out)], out,
                                     capsys)


def test_moe_presets_have_their_published_sizes() -> None:
    """Total and active parameters against the published figures (active ones are
    published rounded: 3.3B, 22B, 37B)."""
    published = {"mixtral-8x7b": (46.7, 12.9), "mixtral-8x22b": (141, 39),
                 "deepseek-v3": (671, 37), "qwen3-30b-a3b": (30.5, 3.3),
                 "qwen3-235b-a22b": (235, 22)}
    for name, (total, active) in published.items():
        spec = PRESETS[name]
        assert spec.params / 1e9 == pytest.approx(total, rel=0.01), name
        assert spec.active_params / 1e9 == pytest.approx(active, rel=0.02), name
        assert spec.source and not spec.validate()
    dsv3 = PRESETS["deepseek-v3"]
    assert dsv3.moe_layers == 58 and not dsv3.is_moe_layer(2) and dsv3.is_moe_layer(3)
    # MLA: Q down 7168 x 1536, up 1536 x 128 x 192; KV down 7168 x (512 + 64), up
    # 512 x 128 x (128 + 128); output 128 x 128 x 7168.
    assert dsv3.attention_matmul_params == (7168 * 1536 + 1536 * 128 * 192 + 7168 * 576
                                            + 512 * 128 * 256 + 128 * 128 * 7168)


def test_deepseek_v3_like_step_replays_on_a_superpod() -> None:
    """DeepSeek-V3's layers (5 of them: 3 dense, 2 MoE, 256 experts) on 16 H100s with
    EP 8 inside each DGX: generates, replays, reports MFU and the expert all-to-all."""
    cfg = transformer_config({"preset": "deepseek-v3", "layers": 5, "seq_len": 1024,
                              "dp": 16, "ep": 8, "global_batch": 32, "zero": 1})
    wl = transformer(cfg)
    assert wl.meta.extra["fold"]["full_ranks"] == 8
    assert set(wl.groups["ep.p0.b0.t0"]) == set(range(8))  # one DGX's NVLink domain
    result = sc.replay(wl, ROOT / "topologies" / "dgx-h100-superpod.yaml")
    assert 0.0 < result.mfu < 1.0
    a2a = result.run.timeline.filter(pc.equal(result.run.timeline["collective"], "all_to_all"))
    assert a2a.num_rows == 8 * 2 * 4 * 2  # 8 ranks x 2 MoE layers x 4 per micro-batch x 2
    comm = result.training["communication"]
    assert set(comm) == {"dp", "edp", "ep"}  # edp: the 2 DGXs holding the same experts
    # the dispatch and combine block the compute that follows them: all of it exposed
    assert comm["ep"]["exposed_us"] == pytest.approx(comm["ep"]["time_us"], rel=1e-9)
    assert result.training["active_params"] == cfg.model.active_params


def test_search_explores_expert_parallelism(tmp_path, dask_client) -> None:
    """A MoE model is searched over ``ep``: on one DGX, tp 1 (dp 8) takes ep 1, 2, 4, 8 and
    tp 2 (dp 4) ep 1, 2, 4 (ep divides dp); the budget's best are simulated with their
    ``ep``."""
    import pyarrow.parquet as pq

    from simcluster.search import SearchOptions, SearchSpace, search

    space = SearchSpace(tp=(1, 2), pp=(1,), micro_batch=(1,), recompute=("none",),
                        zero=(1,), interleave=(1,))
    report = search({"preset": "mixtral-8x7b", "layers": 2, "seq_len": 1024,
                     "global_batch": 8}, ROOT / "topologies" / "dgx-h100.yaml", 8,
                    tmp_path / "out", SearchOptions(space=space, budget=2, top=2),
                    client=dask_client)
    assert report.configurations == 7
    rows = pq.read_table(tmp_path / "out" / "candidates.parquet").to_pylist()
    assert sorted((r["tp"], r["ep"]) for r in rows) == [(1, 1), (1, 2), (1, 4), (1, 8),
                                                        (2, 1), (2, 2), (2, 4)]
    assert report.simulated == 2 and report.best
    best = report.best[0]
    assert best.full["status"] == "ok" and "ep" in best.varied()


def _names(wl, rank: int = 0) -> list[str]:
    return [r["name"] for r in _rows(wl, rank)]


def test_several_local_experts_regroup_their_rows_with_a_copy_each_way() -> None:
    """dp 2, ep 2: 2 local experts, 2 x 32 tokens x top-2 = 128 rows of 64 x 2 B received;
    Megatron-Core's sort_chunks_by_idxs copies them (read + write) before the experts and
    back after them, and once each in the backward."""
    wl = transformer(TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2, fold=False))
    names = _names(wl)
    for name in ("L1.fwd.sort_chunks", "L1.fwd.unsort_chunks", "L1.bwd.unsort_chunks",
                 "L1.bwd.sort_chunks"):
        op = _op(wl, name)
        assert (op["flops"], op["bytes_accessed"]) == (0, 2 * 2 * 128 * 64)
    assert (names.index("L1.fwd.ep_dispatch") < names.index("L1.fwd.sort_chunks")
            < names.index("L1.fwd.experts.fc1") < names.index("L1.fwd.experts.fc2")
            < names.index("L1.fwd.unsort_chunks") < names.index("L1.fwd.ep_combine"))
    # one local expert (ep 4 of 4 experts): nothing to regroup
    wl = transformer(TransformerConfig(model=MOE, micro_batch=2, dp=4, ep=4, fold=False))
    assert not [n for n in _names(wl) if "sort_chunks" in n]


def test_expert_tp_collectives_copy_through_a_flat_buffer_with_the_alltoall_dispatcher() -> None:
    """tp 2 = expert TP, SP: 16 tokens x top-2 = 32 rows dispatched, 64 after the expert-TP
    all-gather (8192 B); the list API copies them out of (all-gather) or into (reduce-
    scatter) NCCL's flat buffer: 2 x 8192 B each. The all-gather dispatcher has no copy."""
    cfg = TransformerConfig(model=MOE, micro_batch=1, tp=2, dp=2, ep=2, expert_tp=2,
                            sequence_parallel=True, fold=False)
    wl = transformer(cfg)
    names = _names(wl)
    for pas in ("fwd", "bwd"):
        ag, rs = f"L1.{pas}.etp_ag", f"L1.{pas}.etp_rs"
        assert _op(wl, ag)["comm_bytes"] == _op(wl, rs)["comm_bytes"] == 8192
        for copy in (f"{ag}_unflatten", f"{rs}_flatten"):
            assert (_op(wl, copy)["flops"], _op(wl, copy)["bytes_accessed"]) == (0, 16384)
        assert names.index(ag) < names.index(f"{ag}_unflatten")
        assert names.index(f"{rs}_flatten") < names.index(rs)
    wl = transformer(replace(cfg, moe_dispatcher="allgather"))
    assert not [n for n in _names(wl) if n.endswith("flatten")]


def test_padding_to_capacity_drops_the_flat_buffer_copies_and_evens_the_all_to_alls() -> None:
    """Megatron-Core core_v0.10.0 with ``moe_pad_expert_input_to_capacity``: the
    dispatcher's preprocess returns before it computes split sizes, so the expert-TP
    all-gather and reduce-scatter run on tensors (no flat-buffer copy) and the all-to-alls
    are even. tp 2 = expert TP: 16 tokens x top-2 = 32 rows; capacity 1.0 with skew 1.5:
    every expert computes exactly its capacity, 32 rows dispatched, 64 after the gather."""
    cfg = TransformerConfig(model=MOE, micro_batch=1, tp=2, dp=2, ep=2, expert_tp=2,
                            sequence_parallel=True, capacity_factor=1.0, moe_skew=1.5,
                            moe_pad_to_capacity=True, fold=False)
    wl = transformer(cfg)
    assert not [n for n in _names(wl) if n.endswith("flatten")]
    assert _op(wl, "L1.fwd.etp_ag")["comm_bytes"] == 64 * 64 * 2
    assert {r["comm_bytes"] for r in _rows(wl, 0, collective="all_to_all")} == {32 * 64 * 2}
    assert wl.ops.column("splits").null_count == wl.num_ops  # even, despite the skew
    # 64 rows x h 64 x (2 gated halves of 32 / expert TP 2)
    assert _op(wl, "L1.fwd.experts.fc1")["flops"] == 2 * 64 * 64 * 32
    # without padding the same skew makes the busiest rank receive 1.0 x (capped) and
    # uneven splits, and the collectives copy through the flat buffer
    wl = transformer(replace(cfg, moe_pad_to_capacity=False))
    assert [n for n in _names(wl) if n.endswith("flatten")]
    assert wl.ops.column("splits").null_count < wl.num_ops


def test_padding_pads_to_the_capacity_not_to_the_skew() -> None:
    """Capacity 1.25, skew 1.0: unpadded, every rank receives its balanced 128 rows; padded
    to capacity, 1.25 x 128 = 160 (the empty slots are computed)."""
    cfg = TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2, capacity_factor=1.25,
                            fold=False)
    assert _op(transformer(cfg), "L1.fwd.ep_dispatch")["comm_bytes"] == 128 * 64 * 2
    padded = transformer(replace(cfg, moe_pad_to_capacity=True))
    assert _op(padded, "L1.fwd.ep_dispatch")["comm_bytes"] == 160 * 64 * 2


def test_padding_needs_a_capacity_factor(capsys, tmp_path) -> None:
    with pytest.raises(WorkloadError):
        transformer(TransformerConfig(model=MOE, dp=2, ep=2, moe_pad_to_capacity=True))
    out = tmp_path / "x.parquet"
    args = ["--preset", "mixtral-8x7b", "--layers", "1", "--dp", "2", "--ep", "2",
            "--moe-pad-to-capacity"]
    assert "capacity_factor" in cli_exit_2(["generate", "transformer", *args, "-o", str(out)],
                                           out, capsys)


def test_sequential_mlp_concatenates_the_local_experts_rows_each_way() -> None:
    """moe_grouped_gemm False (SequentialMLP), dp 2, ep 2: 2 local experts on 128 rows of
    64 x 2 B; torch.cat of their outputs after FC2 and, in the backward, of the input
    gradient's pieces after FC1's dgrad: one copy (read + write) each. One local expert
    (ep 4) or a grouped GEMM: none."""
    cfg = TransformerConfig(model=MOE, micro_batch=2, dp=2, ep=2, moe_grouped_gemm=False,
                            fold=False)
    wl = transformer(cfg)
    names = _names(wl)
    assert names.count("L1.fwd.experts.cat") == names.count("L1.bwd.experts.cat") == 1
    for pas in ("fwd", "bwd"):
        op = _op(wl, f"L1.{pas}.experts.cat")
        assert (op["flops"], op["bytes_accessed"]) == (0, 2 * 2 * 128 * 64)
    assert (names.index("L1.fwd.experts.fc2") < names.index("L1.fwd.experts.cat")
            < names.index("L1.fwd.unsort_chunks"))
    assert (names.index("L1.bwd.experts.fc1") < names.index("L1.bwd.experts.cat")
            < names.index("L1.bwd.sort_chunks"))
    assert "L1.fwd.experts.cat" not in _names(transformer(replace(cfg, moe_grouped_gemm=True)))
    one = replace(cfg, dp=4, ep=4)
    assert "L1.fwd.experts.cat" not in _names(transformer(one))

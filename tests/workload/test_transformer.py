"""The transformer generator: FLOPs, message sizes, schedules, memory and the fold."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from simcluster.errors import WorkloadError
from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.sim.compute import ComputeModel, DeviceCalibration
from simcluster.workload.generate.costs import Shape
from simcluster.workload.generate.presets import PRESETS, ModelSpec
from simcluster.workload.generate.schedules import parse_schedule, stage_units
from simcluster.workload.generate.transformer import (
    TransformerConfig,
    memory_breakdown,
    transformer,
)
from tests.conftest import fold_cluster, servers, star, timeline

# A small GPT: h=64, 4 heads, FFN 256, vocab 256 (a multiple of 128 * tp: no padding).
GPT = ModelSpec("toy-gpt", layers=4, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                seq_len=32)
LLAMA = ModelSpec("toy-llama", layers=4, hidden=64, heads=4, kv_heads=2, ffn=192, vocab=256,
                  seq_len=32, gated_mlp=True, norm="rmsnorm", biases=False,
                  learned_positions=False, tied_embeddings=False, dropout=False)
MATMUL = ("qkv", "proj", "fc1", "fc2", "attn", "logits", "attn_rcp")


def _rows(wl, **eq):
    t = wl.ops
    mask = None
    for k, v in eq.items():
        m = pc.equal(t[k], v)
        mask = m if mask is None else pc.and_(mask, m)
    return (t.filter(mask) if mask is not None else t).to_pylist()


def _matmul_flops(wl) -> float:
    total = 0.0
    for r in wl.ops.select(["name", "flops", "kind"]).to_pylist():
        if r["kind"] != "compute":
            continue
        parts = r["name"].split(".")
        if any(p in MATMUL for p in parts):
            total += r["flops"]
    return total


@pytest.mark.parametrize("model", [GPT, LLAMA])
@pytest.mark.parametrize("recompute", ["none", "full", "selective", "save_qkv_proj"])
def test_flops_match_the_closed_form(model: ModelSpec, recompute: str) -> None:
    """Sum of GEMM and attention FLOPs over all ranks = 6 N T + 12 L b s^2 h per micro-batch
    (N: layer matrices + LM head), plus the recomputed forward."""
    b, m_batches, dp = 2, 4, 2
    cfg = TransformerConfig(model=model, tp=2, pp=2, dp=dp, micro_batch=b,
                            global_batch=b * m_batches * dp, recompute=recompute,
                            flash_attention=False, fold=False)
    wl = transformer(cfg)
    L, h, s, V, f, kv = (model.layers, model.hidden, model.seq_len, model.vocab, model.ffn,
                         model.kv_dim)
    mats = 3 if model.gated_mlp else 2
    n_layer = h * (h + 2 * kv) + h * h + mats * h * f
    tokens = cfg.batch * s
    expected = 6 * (L * n_layer + V * h) * tokens + 12 * L * cfg.batch * s * s * h
    if recompute == "full":
        expected += 2 * L * n_layer * tokens + 4 * L * cfg.batch * s * s * h
    elif recompute == "selective":
        expected += 4 * L * cfg.batch * s * s * h
    elif recompute == "save_qkv_proj":  # the projection, FC1 and the attention core
        expected += 2 * L * (h * h + (mats - 1) * h * f) * tokens + 4 * L * cfg.batch * s * s * h
    assert _matmul_flops(wl) == pytest.approx(expected, rel=1e-12)
    assert wl.meta.extra["hardware_flops_per_step"] == pytest.approx(expected, rel=1e-12)


def test_tp_pp_dp_message_sizes() -> None:
    b, s, h = 2, GPT.seq_len, GPT.hidden
    cfg = TransformerConfig(model=GPT, tp=2, pp=2, dp=2, micro_batch=b, global_batch=8,
                            fold=False, bucket_params=10**9)
    wl = transformer(cfg)
    act = 2 * b * s * h  # bytes of one [b s h] bf16 activation
    # TP: one all-reduce after attention and one after the MLP, in forward and backward.
    tp = _rows(wl, rank=0, group="tp.d0.p0")
    layer0 = [r for r in tp if r["name"].startswith("L0.")]
    from collections import Counter

    assert Counter((r["name"], r["collective"], r["comm_bytes"]) for r in layer0) == {
        ("L0.fwd.tp_attn", "all_reduce", act): 2, ("L0.fwd.tp_mlp", "all_reduce", act): 2,
        ("L0.bwd.tp_fc1", "all_reduce", act): 2, ("L0.bwd.tp_qkv", "all_reduce", act): 2}
    # PP: scatter/gather sends 1/tp of the activation, the receiver all-gathers it.
    sends = _rows(wl, rank=0, kind="send")
    assert {r["comm_bytes"] for r in sends} == {act // 2} and len(sends) == 2  # 2 micro-batches
    assert all(r["peer"] == 2 for r in sends)  # rank = t + T p: stage 1, same t
    recvs = _rows(wl, rank=2, kind="recv")
    assert {r["comm_bytes"] for r in recvs} == {act // 2} and {r["peer"] for r in recvs} == {0}
    gathers = [r for r in _rows(wl, rank=2, group="tp.d0.p1") if r["name"].endswith("gather")]
    assert {r["comm_bytes"] for r in gathers} == {act}
    # DP: one bucket with every gradient of the stage, fp32 (4 B), all-reduced on the replicas.
    dp = _rows(wl, rank=0, group="dp.p0.t0")
    params = wl.meta.extra["memory"]["0"]["weights"] // 2
    assert [(r["collective"], r["comm_bytes"]) for r in dp] == [("all_reduce", 4 * params)]
    assert wl.groups["dp.p0.t0"] == (0, 4)
    # Tied embeddings: first and last stage all-reduce the embedding gradient.
    emb = _rows(wl, rank=0, group="emb.d0.t0")
    assert emb[0]["comm_bytes"] == 4 * GPT.vocab * h // 2 and wl.groups["emb.d0.t0"] == (0, 2)


def test_sequence_parallel_and_zero_message_sizes() -> None:
    b, s, h = 2, GPT.seq_len, GPT.hidden
    act = 2 * b * s * h
    cfg = TransformerConfig(model=GPT, tp=2, pp=1, dp=2, micro_batch=b, global_batch=4,
                            sequence_parallel=True, zero=1, fold=False, bucket_params=10**9)
    wl = transformer(cfg)
    tp = [r for r in _rows(wl, rank=0, group="tp.d0.p0") if r["name"].startswith("L1.")]
    tp = tp[:10]  # the first micro-batch: forward, then backward
    assert [r["collective"] for r in tp] == [
        "all_gather", "reduce_scatter", "all_gather", "reduce_scatter",        # forward
        "all_gather", "all_gather", "reduce_scatter",                          # MLP backward
        "all_gather", "all_gather", "reduce_scatter"]                          # attn backward
    assert {r["comm_bytes"] for r in tp} == {act}  # full output (AG) / full input (RS)
    dp = _rows(wl, rank=0, group="dp.p0.t0")
    params = wl.meta.extra["memory"]["0"]["weights"] // 2
    assert [(r["collective"], r["comm_bytes"]) for r in dp] == [
        ("all_gather", 2 * params), ("reduce_scatter", 4 * params)]


def test_zero3_gathers_every_layer_every_micro_batch() -> None:
    cfg = TransformerConfig(model=GPT, dp=4, zero=3, micro_batch=1, global_batch=8, fold=False)
    wl = transformer(cfg)
    dp = _rows(wl, rank=0, group="dp.p0.t0")
    ag_fwd = [r for r in dp if r["name"].endswith("z3_ag_fwd")]
    rs = [r for r in dp if r["name"].endswith("z3_rs")]
    assert len(ag_fwd) == len(rs) == GPT.layers * 2  # 2 micro-batches
    assert ag_fwd[0]["comm_bytes"] == 2 * GPT.layer_params
    assert rs[0]["comm_bytes"] == 4 * GPT.layer_params


def _toy_run(p: int, m: int, schedule: str) -> tuple[float, dict]:
    """A uniform layer stack (no embedding/head), TP=DP=1, free communication."""
    model = ModelSpec("uniform", layers=2 * p * 2, hidden=256, heads=4, kv_heads=4, ffn=1024,
                      vocab=0, seq_len=64)
    cfg = TransformerConfig(model=model, pp=p, micro_batch=1, global_batch=m,
                            schedule=schedule)
    wl = transformer(cfg)
    c = star(p, bandwidth_GBps=1e12, latency_ns=0.0, overhead_us=0.0)
    ideal = ComputeModel(default=DeviceCalibration(0.5, 0.8, 0.0, float("inf")))
    run = simulate(bind(wl, c), SimOptions(compute=ideal))
    from simcluster.analysis import rank_breakdown
    from simcluster.analysis.training import training_summary

    ranks = rank_breakdown(run)
    specs = [c.specs[d] for d in c.accelerators]
    return run.makespan_us, training_summary(run, wl, ranks, specs)


@pytest.mark.parametrize("p,m", [(2, 4), (4, 8), (4, 3)])
def test_1f1b_bubble_is_p_minus_1_over_m_plus_p_minus_1(p: int, m: int) -> None:
    _, t = _toy_run(p, m, "1f1b")
    expected = (p - 1) / (m + p - 1)
    for stage_bubble in t["pipeline"]["bubble_by_stage"]:
        assert stage_bubble == pytest.approx(expected, abs=1e-9)
    assert t["pipeline"]["ideal_bubble"] == pytest.approx(expected)


def test_interleaving_shrinks_the_bubble() -> None:
    _, plain = _toy_run(4, 8, "1f1b")
    _, inter = _toy_run(4, 8, "1f1b-interleaved:2")
    assert inter["pipeline"]["bubble"] < plain["pipeline"]["bubble"]
    assert inter["pipeline"]["bubble"] == pytest.approx(3 / (2 * 8 + 3), abs=0.02)


def test_schedules() -> None:
    assert parse_schedule("1f1b-interleaved:3") == ("interleaved", 3)
    assert parse_schedule("1F1B") == ("1f1b", 1)
    with pytest.raises(ValueError):
        parse_schedule("zigzag")
    units = stage_units("1f1b", 0, 4, 6)
    assert [u.forward for u in units[:4]] == [True, True, True, True]  # 3 warm-up + 1
    assert sum(u.forward for u in units) == 6 and len(units) == 12
    last = stage_units("1f1b", 3, 4, 6)
    assert [u.forward for u in last[:4]] == [True, False, True, False]
    inter = stage_units("interleaved", 0, 2, 4, chunks=2)
    fwd = [(u.micro_batch, u.chunk) for u in inter if u.forward]
    assert fwd == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1)]
    bwd = [(u.micro_batch, u.chunk) for u in inter if not u.forward]
    assert bwd[:2] == [(0, 1), (1, 1)]
    with pytest.raises(ValueError):
        stage_units("interleaved", 0, 4, 6, chunks=2)


def test_activation_memory_is_korthikanti() -> None:
    """Per layer, GPT: s b h (10 + 24/t + 5 a s/(h t)); with SP s b h (34/t + 5 a s/(h t));
    selective drops the 5 a s/h term; full keeps 2 s b h (/t with SP)."""
    m = ModelSpec("k", layers=1, hidden=512, heads=8, kv_heads=8, ffn=2048, vocab=0,
                  seq_len=256)
    s, b, h, a = 256, 2, 512, 8
    for t in (1, 2, 4):
        plain = Shape(m, b, t, sp=False, flash=False)
        sp = Shape(m, b, t, sp=True, flash=False)
        assert plain.layer_activation_bytes("none") == int(
            s * b * h * (10 + 24 / t + 5 * a * s / (h * t)))
        assert sp.layer_activation_bytes("none") == int(s * b * h * (34 / t + 5 * a * s / (h * t)))
        assert sp.layer_activation_bytes("selective") == int(s * b * h * 34 / t)
        assert plain.layer_activation_bytes("full") == 2 * s * b * h
        assert sp.layer_activation_bytes("full") == 2 * s * b * h // t


@pytest.mark.parametrize("kw", [
    dict(tp=2, pp=2, dp=2, global_batch=8),
    dict(tp=2, pp=2, dp=2, global_batch=8, sequence_parallel=True, recompute="full"),
    dict(tp=1, pp=2, dp=2, global_batch=8, schedule="1f1b-interleaved:2", zero=1),
    dict(tp=1, pp=1, dp=4, global_batch=8, zero=3, recompute="selective",
         flash_attention=False),
    dict(tp=2, pp=1, dp=2, global_batch=8, zero=2),
])
def test_replay_peak_memory_equals_the_memory_model(kw: dict) -> None:
    cfg = TransformerConfig(model=GPT, micro_batch=1, **kw)
    wl = transformer(cfg)
    run = simulate(bind(wl, servers(1, 8)))
    peak = run.memory.column("peak_bytes").to_pylist()
    real = wl.meta.extra["fold"]["ranks_per_replica"] if wl.meta.extra["fold"] else cfg.world
    for rank in range(real):
        stage = (rank // cfg.tp) % cfg.pp
        model = memory_breakdown(cfg.padded(), stage)["total"]
        if cfg.zero < 3:
            assert peak[rank] == model, rank
        else:  # the gathers run ahead on their own stream: the model is an upper bound
            assert 0.95 * model <= peak[rank] <= model, rank


def test_zero_stages_shard_memory() -> None:
    base = dict(model=GPT, dp=4, micro_batch=1, global_batch=4)
    mem = [memory_breakdown(TransformerConfig(zero=z, **base), 0) for z in range(4)]
    p = mem[0]["weights"] // 2
    assert [m["optimizer"] for m in mem] == [12 * p, 3 * p, 3 * p, 3 * p]
    assert [m["grads"] for m in mem] == [4 * p, 4 * p, p, p]
    assert [m["weights"] for m in mem] == [2 * p, 2 * p, 2 * p, p // 2]


@pytest.mark.parametrize("kw", [
    dict(tp=2, pp=2, dp=4, global_batch=16, zero=1, sequence_parallel=True),
    dict(tp=2, pp=2, dp=2, global_batch=8, dp_overlap=False, recompute="full"),
    dict(tp=1, pp=1, dp=4, global_batch=8, zero=3),
    # hybrid sharding: the shard group without replica 0 (on the other server) loses its
    # shard collectives in the fold, which share no link with replica 0's
    dict(tp=2, pp=1, dp=4, global_batch=8, zero=3, shard_group=2),
    dict(tp=1, pp=1, dp=8, global_batch=8, zero=1, shard_group=4, recompute="save_qkv_proj"),
])
def test_fold_agrees_with_the_full_simulation(kw: dict) -> None:
    """Replica 0 of the folded workload has exactly the timeline it has in the full one
    (servers of 4 GPUs, one NIC each, one switch: replicas span servers)."""
    cluster = fold_cluster()
    full = transformer(TransformerConfig(model=GPT, fold=False, **kw))
    folded = transformer(TransformerConfig(model=GPT, fold=True, **kw))
    assert folded.num_ops < full.num_ops
    run_full, t_full = timeline(full, cluster)
    run_fold, t_fold = timeline(folded, cluster)
    real = folded.meta.extra["fold"]["ranks_per_replica"]
    for (rank, op), times in t_fold.items():
        if rank < real:
            assert times == t_full[(rank, op)], (rank, op)
    assert run_fold.makespan_us == pytest.approx(run_full.makespan_us, rel=1e-12)


def test_bad_configurations_are_explained() -> None:
    with pytest.raises(WorkloadError, match="heads 25"):
        transformer(TransformerConfig(model=PRESETS["gpt2-xl"], tp=2))
    with pytest.raises(WorkloadError, match="multiple of micro_batch x dp"):
        transformer(TransformerConfig(model=GPT, dp=3, global_batch=4))
    with pytest.raises(WorkloadError, match="ZeRO-2/3"):
        transformer(TransformerConfig(model=GPT, pp=2, dp=2, zero=3))
    with pytest.raises(WorkloadError, match="interleaved"):
        transformer(TransformerConfig(model=GPT, pp=2, global_batch=3,
                                      schedule="1f1b-interleaved:2"))


def test_presets_have_their_published_sizes() -> None:
    billions = {k: v.params / 1e9 for k, v in PRESETS.items()}
    assert billions["gpt2-xl"] == pytest.approx(1.56, abs=0.01)
    assert billions["gpt3-175b"] == pytest.approx(175, rel=0.01)
    assert billions["llama2-7b"] == pytest.approx(6.74, abs=0.01)
    assert billions["llama2-70b"] == pytest.approx(68.98, abs=0.05)
    assert billions["llama3-8b"] == pytest.approx(8.03, abs=0.01)
    assert billions["llama3-70b"] == pytest.approx(70.55, abs=0.05)
    assert billions["llama3-405b"] == pytest.approx(405.9, abs=0.5)
    for spec in PRESETS.values():
        assert spec.source and not spec.validate()


def test_generation_is_deterministic() -> None:
    cfg = TransformerConfig(model=GPT, tp=2, pp=2, dp=2, global_batch=8)
    assert transformer(cfg).ops.equals(transformer(cfg).ops)


def test_kv_heads_are_replicated_when_fewer_than_tp_ranks() -> None:
    """GQA with 2 KV heads on TP 4: each rank holds its query heads and one KV head."""
    hd = LLAMA.head_dim
    s = Shape(LLAMA, micro_batch=1, tp=4, sp=False)
    assert s.kv_width == hd
    assert s.layer_gemms()["qkv"] == (LLAMA.seq_len, LLAMA.hidden, LLAMA.hidden / 4 + 2 * hd)
    assert Shape(LLAMA, micro_batch=1, tp=2, sp=False).kv_width == hd  # 2 heads / 2 ranks
    assert Shape(LLAMA, micro_batch=1, tp=1, sp=False).kv_width == 2 * hd

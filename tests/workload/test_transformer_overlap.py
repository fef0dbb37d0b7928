"""Megatron-Core's communication overlap in the transformer generator, checked on the
simulated schedule of tiny cases (``transformer/layers.py``, ``transformer/comm.py``):

- Transformer Engine's userbuffers TP overlap (``tp_comm_overlap``): the ring-exchange
  all-gather under ``(tp-1)/tp`` of its GEMM, the reduce-scatter pipelined with the GEMM's
  4 splits, the output-gradient all-gather under the dgrad GEMM;
- the distributed optimizer's overlap as in Megatron-Core r0.8: each bucket's
  reduce-scatter once its gradients are complete in the last micro-batch's backward, the
  parameter all-gathers of the next step under its first forward;
- Megatron-Core's bucket size ``max(40M, 1M x DP)`` (``bucket_per_dp_rank``).
"""

from __future__ import annotations

import pytest

from simcluster.workload.generate.frameworks import settings_of
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import TransformerConfig, transformer
from tests.conftest import fold_cluster, timeline

GPT = ModelSpec("toy-gpt", layers=2, hidden=256, heads=4, kv_heads=4, ffn=1024, vocab=0,
                seq_len=512)
EPS = 1e-6


def _ops(wl, rank: int = 0) -> dict[str, dict]:
    """Op rows of ``rank`` by name (first occurrence of a name)."""
    out: dict[str, dict] = {}
    for r in wl.ops.to_pylist():
        if r["rank"] == rank:
            out.setdefault(r["name"], r)
    return out


def _run(cfg: TransformerConfig):
    wl = transformer(cfg)
    _, times = timeline(wl, fold_cluster())
    ops = _ops(wl)
    return wl, ops, {name: times[(0, r["op_id"])] for name, r in ops.items()}


def _tp(ub: bool, **kw) -> TransformerConfig:
    return TransformerConfig(model=GPT, tp=4, sequence_parallel=True, tp_comm_overlap=ub,
                             fold=False, **kw)


def test_userbuffers_split_each_gemm_and_keep_its_work() -> None:
    plain, ub = _ops(transformer(_tp(False))), _ops(transformer(_tp(True)))
    for gemm, chunk in (("L0.fwd.qkv", 3 / 4), ("L0.fwd.fc1", 3 / 4), ("L0.fwd.proj", 1 / 4),
                        ("L0.fwd.fc2", 1 / 4)):
        whole = plain[gemm]["flops"]
        assert ub[gemm]["flops"] == pytest.approx(chunk * whole)
        assert ub[gemm]["flops"] + ub[f"{gemm}.tail"]["flops"] == pytest.approx(whole)
    # the pipelined reduce-scatter: 3 of 4 splits, then the last one
    rs = plain["L0.fwd.tp_attn"]["comm_bytes"]
    assert (ub["L0.fwd.tp_attn"]["comm_bytes"], ub["L0.fwd.tp_attn.tail"]["comm_bytes"]) == (
        3 * rs // 4, rs // 4)
    # backward: the dgrad's first (tp-1)/tp under the output-gradient gather, then the rest
    whole = plain["L0.bwd.fc2"]["flops"]
    assert ub["L0.bwd.fc2"]["flops"] == pytest.approx(3 / 4 * whole / 2)
    assert ub["L0.bwd.fc2"]["flops"] + ub["L0.bwd.fc2.tail"]["flops"] == pytest.approx(whole)


def test_userbuffers_schedule_is_the_chunked_one() -> None:
    _, _, t = _run(_tp(True))
    ag, gemm, tail = t["L0.fwd.ag_qkv"], t["L0.fwd.qkv"], t["L0.fwd.qkv.tail"]
    # ring exchange: the GEMM starts with the all-gather, its last chunk after both
    assert gemm[0] == pytest.approx(ag[0]) == pytest.approx(t["L0.fwd.ln1"][1])
    assert tail[0] == pytest.approx(max(gemm[1], ag[1]))
    # pipeline: the reduce-scatter of 3 splits starts after the first split, under the rest
    first, rest = t["L0.fwd.proj"], t["L0.fwd.proj.tail"]
    rs, rs_tail = t["L0.fwd.tp_attn"], t["L0.fwd.tp_attn.tail"]
    assert rs[0] == pytest.approx(first[1]) and rest[0] == pytest.approx(first[1])
    assert rs_tail[0] == pytest.approx(max(rest[1], rs[1]))
    assert t["L0.fwd.res_ln2"][0] == pytest.approx(rs_tail[1])
    # backward: the output-gradient gather runs under the dgrad chunks
    ag, dgrad = t["L0.bwd.ag_grad_fc2"], t["L0.bwd.fc2"]
    assert dgrad[0] == pytest.approx(ag[0])
    assert t["L0.bwd.fc2.tail"][0] == pytest.approx(max(dgrad[1], ag[1]))


def test_without_userbuffers_each_gemm_waits_for_its_gather() -> None:
    _, _, t = _run(_tp(False))
    assert t["L0.fwd.qkv"][0] == pytest.approx(t["L0.fwd.ag_qkv"][1])
    assert t["L0.fwd.res_ln2"][0] == pytest.approx(t["L0.fwd.tp_attn"][1])
    assert t["L0.bwd.fc2"][0] == pytest.approx(t["L0.bwd.ag_grad_fc2"][1])


def test_userbuffers_hide_bandwidth_bound_tp_communication() -> None:
    # 4 MB activations, GEMMs of 3-13 GFLOP on 100 TFLOP/s: the GEMMs' chunks cover most
    # of each collective
    big = ModelSpec("gpt-1k", layers=1, hidden=1024, heads=8, kv_heads=8, ffn=4096, vocab=0,
                    seq_len=2048)
    runs = [_run(TransformerConfig(model=big, tp=4, sequence_parallel=True,
                                   tp_comm_overlap=ub, fold=False)) for ub in (False, True)]
    (_, _, plain), (_, _, ub) = runs
    assert ub["L0.fwd.res"][1] < plain["L0.fwd.res"][1] - EPS
    assert ub["L0.bwd.ln1"][1] < plain["L0.bwd.ln1"][1] - EPS


def test_userbuffers_need_sequence_parallelism() -> None:
    def names(ub: bool) -> list[str]:
        wl = transformer(TransformerConfig(model=GPT, tp=4, tp_comm_overlap=ub, fold=False))
        return wl.ops["name"].to_pylist()
    assert names(True) == names(False)


def test_reduce_scatter_per_bucket_in_the_last_micro_batch_and_gathers_under_forward(
        ) -> None:
    # 2 layers of 788,224 parameters, one bucket each; 2 micro-batches of 1 sequence.
    cfg = TransformerConfig(model=GPT, dp=4, micro_batch=1, global_batch=8, zero=1,
                            fold=False, bucket_params=500_000)
    wl, ops, t = _run(cfg)
    rank0 = [r for r in wl.ops.to_pylist() if r["rank"] == 0]
    grads = [r for r in rank0 if r["name"].startswith("dp.grad")]
    gathers = [r for r in rank0 if r["name"].startswith("dp.param_ag")]
    assert [r["collective"] for r in grads] == ["reduce_scatter"] * 2
    assert len(gathers) == 2
    # the last micro-batch's backward of each layer, by op id
    last_bwd = {layer: max(r["op_id"] for r in rank0
                           if r["name"] == f"L{layer}.bwd.ln1") for layer in (0, 1)}
    first_bwd = {layer: min(r["op_id"] for r in rank0
                            if r["name"] == f"L{layer}.bwd.ln1") for layer in (0, 1)}
    starts = {r["op_id"]: r for r in rank0}
    _, times = timeline(wl, fold_cluster())
    # bucket 0 (layer 1, backward order) starts when layer 1's last backward ends, before
    # layer 0's last backward ends: it overlaps the backward
    b0 = times[(0, grads[0]["op_id"])]
    assert b0[0] == pytest.approx(times[(0, last_bwd[1])][1])
    assert b0[0] < times[(0, last_bwd[0])][1]
    assert b0[0] > times[(0, first_bwd[0])][1]  # not in the first micro-batch
    # the second gather runs while the first forward runs (layer 0 computes under it)
    g1 = times[(0, gathers[1]["op_id"])]
    fwd0 = times[(0, ops["L0.fwd.ln1"]["op_id"])]
    assert g1[0] == pytest.approx(times[(0, gathers[0]["op_id"])][1])
    assert fwd0[0] == pytest.approx(times[(0, gathers[0]["op_id"])][1])
    assert g1[0] < times[(0, ops["L1.fwd.ln1"]["op_id"])][0]
    assert times[(0, ops["L1.fwd.ln1"]["op_id"])][0] >= g1[1] - EPS
    assert starts  # every op was replayed


def test_megatron_core_buckets_grow_with_data_parallelism() -> None:
    assert settings_of("megatron-core", {})["bucket_per_dp_rank"] == 1_000_000
    # The userbuffers overlap is an option no profile sets (its model is the ideal bound).
    for name in ("megatron-core", "nemo", "megatron-2021", "llm-foundry-2023", "torchtitan"):
        assert not settings_of(name, {}).get("tp_comm_overlap", False)
    assert settings_of("nemo", {"tp_comm_overlap": True})["tp_comm_overlap"] is True
    cfg = TransformerConfig(model=GPT, dp=48, bucket_per_dp_rank=1_000_000)
    assert cfg.bucket_size == 48_000_000
    assert TransformerConfig(model=GPT, dp=8, bucket_per_dp_rank=1_000_000).bucket_size == (
        40_000_000)
    # buckets of max(bucket_params, per-rank x dp): 100 x 8 = 800,000 > 500,000 parameters
    wl = transformer(TransformerConfig(model=GPT, dp=8, global_batch=8, zero=1, fold=False,
                                       bucket_params=500_000, bucket_per_dp_rank=100_000))
    rs = [r for r in wl.ops.to_pylist() if r["rank"] == 0
          and r["name"].startswith("dp.grad")]
    assert len(rs) == 1  # both layers (2 x 788,224) in one bucket: the first closes at 1.58M

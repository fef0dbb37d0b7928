"""The estimate's MoE and context-parallel terms, on hand-computable cases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simcluster.search.estimate import Estimator
from simcluster.search.layers import (
    dp_collectives,
    moe_collectives,
    moe_costs,
    rank0_groups,
    ring_us,
)
from simcluster.topology import load_cluster
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import TransformerConfig, transformer
from tests.conftest import ROOT

# 32 tokens a sequence, hidden 64 (a 16-bit row: 128 bytes), 4 experts, top-2.
TOY = ModelSpec(name="toy-moe", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                seq_len=32, experts=4, top_k=2, moe_ffn=64)
DENSE = ModelSpec(name="toy", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                  seq_len=32)


def test_moe_collective_sizes_by_hand() -> None:
    # Balanced: every EP rank receives its 32 tokens x 2 copies = 64 rows: 8,192 bytes.
    base = {"model": TOY, "dp": 4, "ep": 4}
    assert moe_collectives(TransformerConfig(**base)) == [("ep", "all_to_all", 8192)] * 2
    # Skew 2 capped by a capacity factor 1.5: 1.5 x 64 = 96 rows.
    skewed = TransformerConfig(**base, moe_skew=2.0, capacity_factor=1.5)
    assert moe_collectives(skewed) == [("ep", "all_to_all", 96 * 128)] * 2
    # The all-gather dispatcher gathers the group's 4 x 32 tokens, and scatters them back.
    ag = TransformerConfig(**base, moe_dispatcher="allgather")
    assert moe_collectives(ag) == [("ep", "all_gather", 128 * 128),
                                   ("ep", "reduce_scatter", 128 * 128)]
    # Expert TP 2 (with SP: 16 tokens a rank, 32 copies received), gathered over TP: 64 rows.
    etp = TransformerConfig(model=TOY, tp=2, dp=4, ep=4, expert_tp=2, sequence_parallel=True)
    assert moe_collectives(etp) == [("ep", "all_to_all", 32 * 128)] * 2 + [
        ("tp", "all_gather", 64 * 128), ("tp", "reduce_scatter", 64 * 128)]
    assert moe_collectives(TransformerConfig(model=TOY, dp=4)) == []  # ep 1: nothing to send


def test_estimate_has_the_dispatcher_copies_the_generator_emits() -> None:
    """tp 2 = expert TP, dp 2, ep 2 (2 local experts): the forward's other costs include
    the sort and unsort copies and the two flat-buffer copies, byte for byte the
    generator's ops; the all-gather dispatcher has none of them."""
    cfg = TransformerConfig(model=TOY, tp=2, dp=2, ep=2, expert_tp=2, sequence_parallel=True,
                            fold=False)
    names = ("L0.fwd.sort_chunks", "L0.fwd.unsort_chunks", "L0.fwd.etp_ag_unflatten",
             "L0.fwd.etp_rs_flatten")
    ops = {r["name"]: r for r in transformer(cfg).ops.to_pylist() if r["rank"] == 0}
    copies = [ops[n]["bytes_accessed"] for n in names]
    assert copies == [2 * 2 * 64 * 64] * 4  # 64 rows of 64 x 2 B, read and written
    for backward in (False, True):
        other = [c.nbytes for c in moe_costs(cfg, cfg.shape(), backward)[1]]
        assert other[-4:] == copies
    ag = TransformerConfig(model=TOY, tp=2, dp=2, ep=2, expert_tp=2, sequence_parallel=True,
                           moe_dispatcher="allgather")
    assert len(moe_costs(ag, ag.shape(), False)[1]) == len(moe_costs(cfg, cfg.shape(),
                                                                     False)[1]) - 4


def test_rank0_groups_by_hand() -> None:
    # rank = t + 2 (c + 2 (p + 2 d)): CP peer 2, next stage 4, dense gradients over dp x cp.
    g = rank0_groups(TransformerConfig(model=DENSE, tp=2, cp=2, pp=2, dp=2,
                                       sequence_parallel=True))
    assert g == {"tp": (0, 1), "cp": (0, 2), "dp": (0, 2, 8, 10), "pp": (0, 4)}
    # MoE, tp 1, dp 4, ep 2: the EP group is replicas 0-1, the experts' DP group 0 and 2.
    moe = rank0_groups(TransformerConfig(model=TOY, dp=4, ep=2))
    assert moe["ep"] == (0, 1) and moe["edp"] == (0, 2) and moe["dp"] == (0, 1, 2, 3)


def test_ring_overlap_adds_only_what_outlasts_the_attention() -> None:
    assert ring_us(10.0, 10.0, 2) == (20.0, 0.0)  # exactly hidden
    assert ring_us(10.0, 12.5, 2) == (22.5, 2.5)
    assert ring_us(10.0, 99.0, 1) == (10.0, 0.0)  # no CP: no exchange


def test_estimate_counts_the_all_to_alls() -> None:
    # Two MoE layers, one micro-batch: dispatch and combine forward and backward, each an
    # all-to-all of 8,192 bytes over ranks 0-3 of one DGX: 2 x 4 of them, all exposed.
    est = Estimator(load_cluster(ROOT / "topologies" / "dgx-h100.yaml"))
    cfg = TransformerConfig(model=TOY, dp=4, ep=4)
    one = est._coll("all_to_all", 8192, (0, 1, 2, 3))
    assert one > 0
    assert est.estimate(cfg).moe_cp_comm_us == pytest.approx(2 * 4 * one, rel=1e-12)
    # Full recompute runs the forward's two again.
    full = TransformerConfig(model=TOY, dp=4, ep=4, recompute="full")
    assert est.estimate(full).moe_cp_comm_us == pytest.approx(2 * 6 * one, rel=1e-12)
    # Without EP (ep 1) there is none, and no CP exchange in a dense model.
    assert est.estimate(TransformerConfig(model=TOY, dp=4)).moe_cp_comm_us == 0.0


def test_estimate_reduces_the_bytes_the_generator_emits() -> None:
    """ZeRO-1, dp 4 in groups of 2, one bucket: the estimate's collectives are the
    generator's rank-0 collectives over the same groups, byte for byte."""
    cfg = TransformerConfig(model=DENSE, dp=4, zero=1, shard_group=2, micro_batch=1,
                            global_batch=4, fold=False)
    wl = transformer(cfg)
    names = {v: k for k, v in rank0_groups(cfg).items()}
    emitted = sorted((names[wl.groups[r["group"]]], r["collective"], r["comm_bytes"])
                     for r in wl.ops.to_pylist() if r["rank"] == 0 and r["collective"])
    assert emitted == sorted(dp_collectives(cfg, 2 * 49_984 + 18_560))
    est = Estimator(load_cluster(ROOT / "topologies" / "dgx-h100.yaml"))
    flat = Estimator(est.cluster).estimate(TransformerConfig(
        model=DENSE, dp=4, zero=1, micro_batch=1, global_batch=4))
    assert est.estimate(cfg).optimizer_us > flat.optimizer_us  # half, not a quarter, each


def test_estimate_recomputes_what_save_qkv_proj_recomputes() -> None:
    """tp 2: the estimate's save_qkv_proj adds, per layer, one forward TP all-reduce (the
    projection's) where full recompute adds two; its compute lies between none and full."""
    est = Estimator(load_cluster(ROOT / "topologies" / "dgx-h100.yaml"))
    e = {rc: est.estimate(TransformerConfig(model=DENSE, tp=2, recompute=rc))
         for rc in ("none", "save_qkv_proj", "full")}
    one = est._coll("all_reduce", 2 * 32 * 64, (0, 1))
    assert one > 0
    assert e["save_qkv_proj"].tp_comm_us - e["none"].tp_comm_us == pytest.approx(
        2 * one, rel=1e-9)  # 2 layers
    assert e["full"].tp_comm_us - e["none"].tp_comm_us == pytest.approx(4 * one, rel=1e-9)
    assert (e["none"].stage_compute_us < e["save_qkv_proj"].stage_compute_us
            < e["full"].stage_compute_us)


def test_estimate_has_the_copies_of_padding_and_sequential_experts() -> None:
    """Padded to capacity: no flat-buffer copies (2 fewer costs); SequentialMLP with 2 local
    experts: one cat copy more, byte for byte the generator's op."""
    cfg = TransformerConfig(model=TOY, tp=2, dp=2, ep=2, expert_tp=2, sequence_parallel=True,
                            fold=False)
    base = len(moe_costs(cfg, cfg.shape(), False)[1])
    padded = replace(cfg, capacity_factor=1.0, moe_pad_to_capacity=True)
    assert len(moe_costs(padded, padded.shape(), False)[1]) == base - 2
    seq = replace(padded, moe_grouped_gemm=False)
    other = [c.nbytes for c in moe_costs(seq, seq.shape(), True)[1]]
    ops = {r["name"]: r for r in transformer(seq).ops.to_pylist() if r["rank"] == 0}
    assert len(other) == base - 1 and ops["L0.bwd.experts.cat"]["bytes_accessed"] in other


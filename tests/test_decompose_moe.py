"""bench/decompose_moe.py: every MoE op of a generated layer falls under its own kind."""

from __future__ import annotations

import simcluster as sc
from tests.conftest import bench_module


def test_moe_ops_fall_under_their_kinds() -> None:
    dm = bench_module("decompose_moe")
    wl = sc.generate("transformer", preset="mixtral-8x7b", layers=1, seq_len=64, tp=2, dp=2,
                     ep=2, expert_tp=2, sequence_parallel=True, dtype="fp8", global_batch=2,
                     fold=False)
    kinds = {}
    for name in wl.ops.column("name").to_pylist():
        kinds.setdefault(name.split(".", 1)[-1], dm.kind_of(name))
    assert kinds["fwd.experts.fc1"] == kinds["bwd.experts.fc2"] == "expert GEMMs"
    assert kinds["fwd.experts.fc1_cast"] == "fp8 casts (experts)"
    assert kinds["fwd.ep_dispatch"] == kinds["bwd.ep_combine"] == "EP all-to-all"
    assert kinds["fwd.etp_ag"] == "expert-TP all-gather, reduce-scatter"
    assert kinds["fwd.etp_ag_unflatten"] == kinds["bwd.etp_rs_flatten"] == \
        "expert-TP flat-buffer copies"
    assert kinds["fwd.sort_chunks"] == "regroup by expert (sort_chunks)"
    assert kinds["fwd.router_topk"] == "router, top-k, aux loss"
    assert kinds["fwd.permute"] == kinds["bwd.unpermute"] == "permute, unpermute"
    assert dm.kind_of("L3.fwd.experts.cat") == dm.kind_of("L3.bwd.experts.cat") == \
        "SequentialMLP cat"
    assert dm.kind_of("optimizer") == "optimizer" and dm.kind_of("logits") == \
        "LM head, loss, embedding"

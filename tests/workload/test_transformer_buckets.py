"""Gradient buckets of the transformer generator (``transformer/comm.py``): whole layers per
bucket, or buckets of exactly ``bucket_params`` that split a layer (``bucket_split``, Apex's
DistributedFusedAdam)."""

from __future__ import annotations

import pytest

from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import TransformerConfig, transformer

GPT = ModelSpec("toy-gpt", layers=4, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                seq_len=32)
BUCKET = 10_000  # parameters: a toy layer holds 49,984, so it spans five buckets


def _dp_ops(split: bool, zero: int = 1, grad_bytes: int | None = None):
    cfg = TransformerConfig(model=GPT, dp=2, micro_batch=2, global_batch=4, zero=zero,
                            fold=False, bucket_params=BUCKET, bucket_split=split,
                            grad_bytes=grad_bytes)
    wl = transformer(cfg)
    ops = [r for r in wl.ops.to_pylist() if r["rank"] == 0 and r["group"] == "dp.p0.t0"]
    params = wl.meta.extra["memory"]["0"]["weights"] // 2
    return wl, ops, params


def test_split_buckets_hold_exactly_bucket_params() -> None:
    _, ops, params = _dp_ops(split=True)
    full, rest = divmod(params, BUCKET)
    rs = [r["comm_bytes"] for r in ops if r["collective"] == "reduce_scatter"]
    ag = [r["comm_bytes"] for r in ops if r["collective"] == "all_gather"]
    # fp32 gradients (4 B) reduce-scattered, bf16 parameters (2 B) all-gathered: every
    # bucket full but the last one reduced, which is gathered first (the same buckets in
    # forward order, as Megatron-Core's distributed optimizer gathers them).
    assert rs == [4 * BUCKET] * full + [4 * rest]
    assert ag == [2 * rest] + [2 * BUCKET] * full
    assert len({r["name"] for r in ops}) == len(ops)  # every bucket named apart


def test_whole_layer_buckets_close_at_layer_boundaries() -> None:
    _, ops, params = _dp_ops(split=False)
    rs = [r["comm_bytes"] // 4 for r in ops if r["collective"] == "reduce_scatter"]
    assert sum(rs) == params
    assert all(b >= BUCKET for b in rs[:-1])
    assert len(rs) < params // BUCKET  # fewer, larger collectives than split buckets


def test_split_gradient_buckets_take_grad_bytes() -> None:
    _, ops, params = _dp_ops(split=True, zero=0, grad_bytes=2)
    ar = [r["comm_bytes"] for r in ops if r["collective"] == "all_reduce"]
    assert sum(ar) == 2 * params and max(ar) == 2 * BUCKET


@pytest.mark.parametrize("split", [False, True])
def test_each_layer_waits_for_the_gather_of_its_last_parameters(split: bool) -> None:
    wl, ops, _ = _dp_ops(split=split)
    gathers = [r["op_id"] for r in ops if r["collective"] == "all_gather"]
    rows = [r for r in wl.ops.to_pylist() if r["rank"] == 0 and r["stream"] == "compute"]
    first_fwd = {}
    for r in rows:
        name = r["name"]
        if ".fwd." in name and name.startswith("L"):
            first_fwd.setdefault(int(name[1:name.index(".")]), r)
    waited = [max((d for d in (r["deps"] or []) if d in gathers), default=None)
              for _, r in sorted(first_fwd.items())]
    assert None not in waited
    assert waited == sorted(waited)  # later layers wait for later buckets
    if split:  # a layer (49,984 parameters) is larger than a bucket: each ends in its own
        assert len(set(waited)) == 4

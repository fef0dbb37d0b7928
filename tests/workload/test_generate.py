"""The data-parallel generator: structure, sizes and FLOPs by hand."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel


def test_ops_buckets_and_dependencies() -> None:
    dims = TransformerDims(layers=4, hidden=64, seq_len=16, vocab=100)
    # Layer gradients: 2 B x (12*64^2 + 13*64) = 99,968 B; buckets of 0.15 MB take 2 layers.
    cfg = DataParallelConfig(ranks=3, micro_batch=2, dims=dims, bucket_mb=0.15, steps=2)
    wl = data_parallel(cfg)
    r0 = wl.ops.filter(pc.equal(wl.ops["rank"], 0)).to_pylist()
    names = [r["name"] for r in r0]
    # Per step: load, embed, 4 fwd, head_loss, bwd.head, 4 bwd, bwd.embed, 3 buckets, optimizer
    # = 17 ops.
    assert len(names) == 2 * 17
    buckets = [r for r in r0 if r["kind"] == "collective" and r["step"] == 0]
    assert [b["comm_bytes"] for b in buckets] == [2 * 99_968, 2 * 99_968, 2 * 100 * 64]
    by_id = {r["op_id"]: r for r in r0}
    assert by_id[buckets[0]["deps"][0]]["name"] == "bwd.layer2"
    opt = next(r for r in r0 if r["name"] == "optimizer")
    assert sorted(opt["deps"]) == sorted(b["op_id"] for b in buckets)
    fwd = next(r for r in r0 if r["name"] == "fwd.layer0")
    assert fwd["flops"] == 24 * 2 * 16 * 64**2 + 4 * 2 * 16**2 * 64
    assert fwd["alloc_bytes"] == 34 * 16 * 2 * 64
    assert r0[1]["name"] == "fwd.embed" and r0[1]["alloc_bytes"] == 16 * dims.params
    assert wl.groups == {"dp": (0, 1, 2)} and wl.meta.extra["params"] == dims.params


def test_fsdp_is_zero_3_for_the_cli_and_sweeps_alike(tmp_path) -> None:
    from simcluster.errors import WorkloadError
    from simcluster.workload.generate.registry import generate, transformer_config

    base = {"preset": "llama2-7b", "layers": 2, "dp": 2}
    assert transformer_config({**base, "zero": "fsdp"}).zero == 3
    assert transformer_config({**base, "zero": "FSDP "}) == transformer_config({**base, "zero": 3})
    a = generate("transformer", {**base, "zero": "fsdp"})
    b = generate("transformer", {**base, "zero": 3})
    assert a.ops.equals(b.ops)
    with pytest.raises(WorkloadError, match="zero 'four': use 0, 1, 2, 3 or fsdp"):
        transformer_config({**base, "zero": "four"})


def test_presets_match_case_and_punctuation_and_suggest() -> None:
    from simcluster.errors import WorkloadError
    from simcluster.workload.generate.presets import model_from

    assert model_from("LLaMA3_8B", {}).name == "llama3-8b"
    with pytest.raises(WorkloadError, match="did you mean 'llama3-8b'"):
        model_from("lama3-8b", {})

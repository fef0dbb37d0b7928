"""bench/validate_published.py: the published data parses, rows map to the configurations
a reader of the source would write down, and skipped rows say why. No timing or accuracy is
checked here (docs/validation.md has the measured figures)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter

import numpy as np
import pytest

import simcluster as sc
from tests.conftest import ROOT

DATA = ROOT / "bench" / "data" / "published"


@pytest.fixture(scope="module")
def vp():
    """The bench script as a module."""
    spec = importlib.util.spec_from_file_location("validate_published",
                                                  ROOT / "bench" / "validate_published.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["validate_published"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rows(vp):
    return {r["row_id"]: r for r in vp.read_csv(DATA / "training_steps.csv")}


def test_csv_parses_with_sources_splits_and_step_times(vp, rows) -> None:
    assert len(rows) == 425
    assert all(r["source_id"] and r["source_ref"] for r in rows.values())
    splits = Counter(vp.split_of(r) for r in rows.values())
    # 179 calibrate rows plus S7's 11 marked "calibrate (low confidence) or exclude"
    assert splits == {"validate": 235, "calibrate": 190}
    for r in rows.values():
        if r["derived_step_time_s"]:
            assert float(r["derived_step_time_s"]) > 0
    assert (DATA / "SOURCES.md").is_file()
    assert sorted(p.name for p in (DATA / "nccl").glob("*.txt")) == [
        "aac10_mi300x_2node_16gpu_allreduce.txt",
        "aac11_mi325x_1node_8gpu_allreduce_plateau.txt",
        "aac_mi300x_1node_8gpu_allreduce.txt",
        "coreweave_gb200_nvl72_1rack_72gpu_allreduce.txt",
        "coreweave_gb200_nvl72_20racks_1440gpu_allreduce.txt",
        "coreweave_gb200_nvl72_2racks_144gpu_allreduce.txt",
        "coreweave_h100_64gpu_sharp_allreduce.txt",
        "gcp_a3mega_h100_2node_16gpu_allreduce.txt",
        "gke_a4_b200_1node_8gpu_allreduce.txt",
        "gke_a4_b200_2node_16gpu_allreduce.txt",
    ]


def test_nemo_gpt3_175b_row_maps_to_its_published_configuration(vp, rows) -> None:
    # dgxc-benchmarking GPT-3 175B BF16, 128 GPUs: TP 4, PP 8, VP 12, MBS 1, GBS 256.
    m = vp.map_row(rows["61"])
    assert (m.gpu, m.gpus, m.tp, m.pp, m.dp) == ("H100-SXM5-80GB", 128, 4, 8, 4)
    q = m.params
    assert (q["micro_batch"], q["global_batch"], m.micro_batches) == (1, 256, 64)
    assert q["schedule"] == "1f1b-interleaved:12"
    assert (q["sequence_parallel"], q["recompute"], q["zero"], q["dtype"]) == (
        True, "none", 1, "bf16")
    assert (q["layers"], q["hidden"], q["heads"], q["vocab"], q["seq_len"]) == (
        96, 12288, 96, 50257, 2048)
    assert m.measured_s == pytest.approx(8.309)
    assert m.split == "validate"


def test_llm_foundry_rows_map_to_fsdp_data_parallel(vp, rows) -> None:
    # MPT-7b on 512 H100: FSDP FULL_SHARD, micro-batch 6, GBS 3072, no accumulation.
    m = vp.map_row(rows["116"])
    assert (m.gpu, m.gpus, m.tp, m.pp, m.dp) == ("H100-SXM5-80GB", 512, 1, 1, 512)
    assert (m.params["micro_batch"], m.global_batch, m.micro_batches) == (6, 3072, 1)
    assert (m.params["zero"], m.params["recompute"], m.params["dtype"]) == (3, "none", "bf16")
    assert m.nics is None
    # MPT-70b on 128 A100-40GB: full recompute, FSDP PURE (bf16 gradients), RoCE servers.
    m = vp.map_row(rows["245"])
    assert (m.gpu, m.gpus, m.dp, m.global_batch, m.params["micro_batch"]) == (
        "A100-SXM4-40GB", 128, 128, 512, 4)
    assert (m.params["recompute"], m.params["zero"], m.params["grad_bytes"]) == ("full", 3, 2)
    assert m.nics == {"count": 8, "bandwidth_GBps": 25.0, "kind": "ethernet"}
    # SHARD_GRAD_OP is ZeRO-2.
    assert vp.map_row(rows["119"]).params["zero"] == 2


def test_maxtext_rows_take_the_recipes_sharding_and_remat(vp, rows) -> None:
    """dgxc-benchmarking@5f23b67 maxtext/configure.sh: remat_policy=save_qkv_proj; FSDP
    within 128 GPUs x pure DP from 64 nodes (one group of all ranks below)."""
    for row, dp, group in (("71", 128, None), ("72", 256, None), ("73", 512, 128),
                           ("80", 2048, 128)):
        m = vp.map_row(rows[row])
        assert (m.dp, m.params["zero"], m.params["recompute"]) == (dp, 3, "save_qkv_proj")
        assert m.params.get("shard_group") == group, row
    assert vp.shard_group("FSDP=128 (shard group) x 4 pure-DP replicas", 500) is None
    assert vp.shard_group("PyTorch FSDP FULL_SHARD over all 512 GPUs", 512) == 0
    # A MaxText row of another recipe: MaxText's default remat policy.
    other = dict(rows["71"], source_id="S9_other", model="Llama 3 8B")
    assert vp.map_row(other).params["recompute"] == "full"


def test_rows_take_their_framework_profile(vp, rows) -> None:
    # llm-foundry's 2023 tables: FlashAttention 1 and PyTorch's eager loss; the row's own
    # settings (FSDP SHARD_GRAD_OP) win over the profile's FULL_SHARD.
    m = vp.map_row(rows["119"])
    cfg = sc.generate("transformer", **{**m.params, "global_batch": m.dp * m.params[
        "micro_batch"], "layers": 1}).meta.extra["config"]
    assert (cfg["framework"], cfg["attention_kernel"], cfg["loss_kernel"], cfg["zero"]) == (
        "llm-foundry-2023", "flash1", "eager", 2)
    assert vp.map_row(rows["61"]).params["framework"] == "nemo"
    assert vp.map_row(rows["355"]).params["framework"] == "megatron-core"


def test_s1_nemo_rows_take_their_recipes_gradient_buckets(vp, rows) -> None:
    # dgxc-benchmarking@5f23b67: Llama 3.1 8B runs Apex's distributed_fused_adam with
    # bucket_cap_mb 75 and grad_sync_dtype bf16: buckets of 75 MiB / 2 B elements that split
    # parameters; GPT-3 175B 220 MiB.
    q = vp.map_row(rows["5"]).params
    assert (q["bucket_split"], q["grad_bytes"], q["bucket_params"]) == (True, 2, 39_321_600)
    assert q["bucket_per_dp_rank"] == 0  # Apex's buckets do not grow with DP
    assert vp.map_row(rows["61"]).params["bucket_params"] == 220 * 2**20 // 2
    # Nemotron-4 15B runs Megatron-Core's optimizer: max(40M, 1M x DP) parameters, fp32.
    for row, size in (("35", 40_000_000), ("42", 512_000_000)):
        q = vp.map_row(rows[row]).params
        assert q["bucket_params"] == size and "bucket_split" not in q and "grad_bytes" not in q
    # MaxText (S1) and llm-foundry rows keep the generator's buckets.
    for row in ("71", "119"):
        assert not {"bucket_split", "bucket_params"} & set(vp.map_row(rows[row]).params)


def test_unpublished_settings_are_assumed_and_said(vp, rows) -> None:
    m = vp.map_row(rows["355"])  # Megatron-Core weak scaling, 1.7B on 48 H100
    assert (m.tp, m.pp, m.dp, m.global_batch, m.params["micro_batch"]) == (1, 1, 48, 192, 1)
    assert "micro-batch 1 (not published)" in m.assumptions
    assert m.params["zero"] == 1 and m.params["dtype"] == "bf16"
    assert m.params["tied_embeddings"] is False  # the source's stated assumption


@pytest.mark.parametrize("row_id, reason", [
    ("99", "GPU not in the catalog: GB200"),
    ("323", "GPU not in the catalog: H100 96GB"),
    ("365", "model dimensions not published"),
    ("415", "no measured step time"),
])
def test_skipped_rows_say_why(vp, rows, row_id: str, reason: str) -> None:
    s = vp.map_row(rows[row_id])
    assert isinstance(s, vp.Skip) and reason in s.reason


def test_every_row_maps_or_is_skipped_with_a_reason(vp, rows) -> None:
    mapped, skipped = vp.map_rows(rows.values())
    assert len(mapped) + len(skipped) == len(rows)
    assert all(s.reason for s in skipped)
    for m in mapped:  # every mapped row is a valid generator configuration
        assert m.tp * m.pp * m.dp * m.params["cp"] == m.gpus
        assert m.global_batch % (m.params["micro_batch"] * m.dp) == 0


def test_context_parallel_rows_map_with_their_cp(vp, rows) -> None:
    m = vp.map_row(rows["1"])  # Llama 3.1 8B on 8 H100: TP 1, PP 1, CP 2, DP 4
    assert isinstance(m, vp.Mapped)
    assert (m.tp, m.pp, m.params["cp"], m.dp) == (1, 1, 2, 4)
    wl = sc.generate("transformer", **{**m.params, "layers": 2, "global_batch": 8})
    assert wl.num_ranks == 8 and wl.meta.extra["config"]["cp"] == 2


def test_moe_rows_map_with_their_experts_and_expert_parallelism(vp, rows) -> None:
    m = vp.map_row(rows["85"])  # Grok-1 proxy, 16 layers on 128 H100: TP 4 PP 2 CP 2 EP 8
    assert isinstance(m, vp.Mapped)
    assert (m.tp, m.pp, m.params["cp"], m.dp) == (4, 2, 2, 8)
    assert {k: m.params[k] for k in ("experts", "top_k", "ep", "expert_tp", "vocab")} == {
        "experts": 8, "top_k": 2, "ep": 8, "expert_tp": 4, "vocab": 128256}
    assert m.params["gated_mlp"] is True and any("MoE" in a for a in m.assumptions)
    wl = sc.generate("transformer", **{**m.params, "layers": 16, "global_batch": 16})
    assert wl.num_ranks == 128 and wl.meta.extra["moe"]["ep"] == 8


def test_mapped_row_generates_and_its_cluster_has_its_gpus(vp, rows) -> None:
    m = vp.map_row(rows["35"])  # Nemotron-4 15B, TP 4 x DP 4 on 16 H100
    spec = vp.cluster_spec(m.gpu, m.gpus, m.nics)
    assert spec["nodes"][0]["count"] == 2 and spec["fabric"]["topology"] == "rail-optimized"
    assert len(vp.cluster_for(m.gpu, m.gpus).accelerators) == 16
    wl = sc.generate("transformer", **{**m.params, "layers": 2, "global_batch": 16})
    assert wl.num_ranks == 16


def _spec(cluster):
    """The accelerator spec of a cluster's first GPU."""
    return cluster.specs[cluster.accelerators[0]]


def test_llm_foundry_rows_run_at_their_2023_stacks_kernel_efficiencies(vp, rows) -> None:
    """The row's framework profile's ``compute:`` entry applies at replay
    (``scenario.stack_calibration``), so a memory-bound op on H100 reaches 0.39 of the
    3,350 GB/s (not STREAM's 0.866) and a FlashAttention 1 op 0.31 of the bf16 peak; the
    row's cluster itself carries no entry, other frameworks keep the chip's calibration."""
    from simcluster.scenario import stack_calibration
    from simcluster.sim.compute import ComputeModel, overrides_for
    m = vp.map_row(rows["107"])  # MPT-70b on 512 H100, llm-foundry
    assert m.params["framework"] == "llm-foundry-2023"
    assert "compute" not in vp.cluster_spec(m.gpu, 8)
    h100_cluster = vp.cluster_for(m.gpu, 8)
    wl = _toy(m.params["framework"])
    model = ComputeModel(overrides=overrides_for(stack_calibration(wl, h100_cluster)[0]))
    h100 = _spec(h100_cluster)
    nbytes = np.array([3350e3 * 0.39 * 100.0])  # 100 us at 0.39 of 3,350 GB/s
    assert model.roofline_us(np.zeros(1), nbytes, "bf16", h100)[0] == pytest.approx(106.25)
    plain = ComputeModel(overrides=overrides_for(stack_calibration(_toy("nemo"),
                                                                   h100_cluster)[0]))
    assert plain.roofline_us(np.zeros(1), nbytes, "bf16", h100)[0] == pytest.approx(
        6.25 + 100.0 * 0.39 / 0.866)
    flops = np.array([h100.peak_flops_per_us("bf16") * 0.31 * 50.0])  # 50 us at 0.31
    assert model.roofline_us(flops, np.zeros(1), "bf16", h100, "flash1")[0] == pytest.approx(
        56.25)
    # A100 40GB takes the A100 entry at its own 1,555 GB/s: 0.58 of it
    a40 = vp.cluster_for("A100-SXM4-40GB", 8)
    spec40 = _spec(a40)
    assert spec40.hbm_GBps == 1555
    a_model = ComputeModel(overrides=overrides_for(stack_calibration(wl, a40)[0]))
    assert a_model.roofline_us(np.zeros(1), np.array([1555e3 * 0.58 * 10.0]), "bf16",
                               spec40)[0] == pytest.approx(9.0 + 10.0)


def _toy(framework: str):
    """A one-layer transformer generated under ``framework``'s profile."""
    from simcluster.workload.generate.presets import ModelSpec
    from simcluster.workload.generate.transformer import TransformerConfig, transformer
    m = ModelSpec("toy", layers=1, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
                  seq_len=32)
    return transformer(TransformerConfig(model=m, dp=8, global_batch=8, framework=framework))


def test_report_lists_skip_reasons_with_counts(vp, tmp_path, capsys) -> None:
    saved = tmp_path / "none.json"
    saved.write_text(json.dumps([]))
    vp.main(["--split", "all", "--source", "S6", "--load", str(saved)])
    out = capsys.readouterr().out
    assert "| calibrate | GPU not in the catalog: GB200 | 12 |" in out  # 5 of them MoE
    # the H100 rows and the two context-parallel rows (404, 414)
    assert "| calibrate | not run (no saved prediction) | 4 |" in out


def test_spearman_is_rank_correlation_with_ties(vp) -> None:
    assert vp.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert vp.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert vp.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)

"""The facade: one pipeline behind the CLI and the Python API, folds handled once, what-ifs,
and typed failures with their details."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow.compute as pc
import pytest

import simcluster as sc
from simcluster.cli import main
from simcluster.errors import DeadlockError, OutOfMemoryError, TopologyError
from tests.conftest import ROOT, star, workload

TOPO = ROOT / "topologies" / "h100-2node.yaml"
SAMPLE = ROOT / "traces" / "dp-transformer-16.parquet"


def _cli(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
        raise SystemExit(0)
    assert exit_.value.code in (0, None)


def _same_folders(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _folded(tmp_path: Path) -> Path:
    wl = sc.generate("transformer", preset="llama2-7b", layers=4, tp=2, dp=4)
    path = tmp_path / "l7.parquet"
    sc.write_workload(wl, path)
    return path


def test_cli_and_python_write_the_same_folder_for_the_sample(tmp_path: Path, capsys) -> None:
    _cli("replay", str(SAMPLE), "-t", str(TOPO), "--out", str(tmp_path / "A"))
    result = sc.replay(str(SAMPLE), str(TOPO))
    assert result.write(tmp_path / "B") == tmp_path / "B"
    _same_folders(tmp_path / "A", tmp_path / "B")
    assert sorted(p.name for p in (tmp_path / "A").iterdir()) == sorted(result.output_files)


def test_cli_and_python_write_the_same_folder_for_a_folded_transformer(tmp_path: Path,
                                                                       capsys) -> None:
    path = _folded(tmp_path)
    _cli("replay", str(path), "-t", str(TOPO), "--out", str(tmp_path / "A"))
    sc.replay(path, TOPO).write(tmp_path / "B")
    _same_folders(tmp_path / "A", tmp_path / "B")


def test_cli_and_python_write_the_same_folder_for_a_recorded_trace(tmp_path: Path, capsys,
                                                                   shared_data: Path) -> None:
    trace = shared_data / "kineto" / "dlrm-v100-8rank"
    _cli("replay", str(trace), "--out", str(tmp_path / "A"))
    result = sc.replay(trace)
    result.write(tmp_path / "B")
    _same_folders(tmp_path / "A", tmp_path / "B")
    folder = sc.export.load_run(tmp_path / "A")
    assert folder.fidelity is not None and folder.fidelity.equals(result.fidelity)
    assert folder.fidelity.num_rows == 8  # one ProfilerStep on each of 8 ranks
    assert folder.import_report == result.import_report and folder.import_report["skipped"]
    assert result.cluster_note is not None and "V100" in result.cluster.name


def test_a_folded_workload_reports_its_replica_only(tmp_path: Path) -> None:
    folded = sc.replay(_folded(tmp_path), TOPO)
    full_wl = sc.generate("transformer", preset="llama2-7b", layers=4, tp=2, dp=4, fold=False)
    full = sc.replay(full_wl, TOPO)
    assert folded.real_ranks == 2 and full.real_ranks == 8
    assert folded.step_time_us == pytest.approx(full.step_time_us, rel=1e-12)
    assert folded.breakdown.num_rows == 2
    assert pc.max(folded.steps.column("rank")).as_py() == 1
    # Replica 0's breakdown is the same in both: the mirrors add no sync wait.
    cols = ["compute_us", "exposed_comm_us", "sync_wait_us", "idle_us"]
    assert folded.breakdown.select(cols).equals(full.breakdown.slice(0, 2).select(cols))
    assert folded.summary["training"]["folded"] and not full.summary["training"]["folded"]
    # The mirrors' idle time does not make the replica's alike ranks "stragglers".
    assert folded.summary["stragglers"] == full.summary["stragglers"] == []
    assert folded.training["mfu"] == pytest.approx(full.training["mfu"], rel=1e-12)


def test_price_and_token_budget_are_what_ifs() -> None:
    wl = sc.load_workload(SAMPLE)
    result = sc.replay(wl, TOPO, price=2.0, token_budget=1e9)
    step, tokens = result.step_time_us, wl.meta.extra["tokens_per_step"]
    assert result.cost.usd_per_hour == 32.0  # 16 GPUs at 2 USD
    assert result.cost.usd_per_step == pytest.approx(32.0 * step / 3.6e9)
    plan = result.training_run
    assert plan is not None and plan["tokens"] == 1e9
    assert plan["hours"] == pytest.approx(1e9 / tokens * step / 3.6e9)
    assert plan["usd"] == pytest.approx(1e9 / tokens * result.cost.usd_per_step)
    assert result.summary["cost"]["training_run"] == plan
    assert "training_run" not in sc.replay(wl, TOPO).summary["cost"]


def test_link_scaling_and_device_what_ifs_change_the_step() -> None:
    wl = sc.load_workload(SAMPLE)
    base = sc.replay(wl, TOPO)
    slower = sc.replay(wl, TOPO, scale_links={"ib": 0.25})
    assert slower.step_time_us > base.step_time_us
    assert sc.replay(wl, TOPO, device="H200").cluster.specs["node0/gpu0"].model == "H200"
    with pytest.raises(TopologyError, match="unknown accelerator"):
        sc.replay(wl, TOPO, device="no-such-gpu")


def test_without_a_cluster_the_recorded_device_is_used() -> None:
    rows = [{"rank": r, "kind": "compute", "duration_us": 10.0} for r in range(2)]
    wl = workload(rows)
    with pytest.raises(TopologyError, match="does not say which accelerator"):
        sc.Scenario(wl).run()
    recorded = dataclasses.replace(wl, meta=dataclasses.replace(wl.meta, recorded_device="A100"))
    result = sc.Scenario(recorded).run()
    assert result.cluster.name == "recorded-A100-SXM4-80GB-x2"
    assert "built from the trace's metadata" in (result.cluster_note or "")
    assert result.step_time_us == 10.0
    other = sc.Scenario(recorded, whatif=sc.WhatIf(device="H100")).run()
    assert "built from --device" in (other.cluster_note or "")


def test_slow_ranks_stretch_their_compute() -> None:
    rows = [{"rank": r, "kind": "compute", "duration_us": 10.0} for r in range(2)]
    result = sc.Scenario(workload(rows), star(2), whatif=sc.WhatIf(slow_ranks={1: 1.5})).run()
    assert result.step_time_us == 15.0
    assert result.breakdown.column("compute_us").to_pylist() == [10.0, 15.0]


def test_out_of_memory_of_a_transformer_carries_the_stage_breakdown() -> None:
    wl = sc.generate("transformer", preset="llama2-70b", layers=8)
    with pytest.raises(OutOfMemoryError) as err:
        sc.replay(wl, TOPO)
    exc = err.value
    assert exc.rank == 0 and exc.capacity_bytes == 80 * 2**30
    assert list(exc.breakdown) == [0]
    stage = exc.breakdown[0]
    assert stage["total"] > exc.capacity_bytes
    assert set(stage) >= {"weights", "grads", "optimizer", "activations", "buffers", "total"}
    assert "Memory model: pipeline stage 0 needs" in str(exc)


def test_deadlock_is_typed_through_the_facade() -> None:
    rows = [{"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8,
             "group": "g"}, {"rank": 1, "kind": "compute", "duration_us": 1.0}]
    with pytest.raises(DeadlockError) as err:
        sc.Scenario(workload(rows, {"g": [0, 1]}), star(2)).run()
    assert err.value.ranks == [0]


def test_analyses_are_computed_once() -> None:
    result = sc.replay(SAMPLE, TOPO)
    assert result.breakdown is result.breakdown
    assert result.critical_path is result.critical_path
    assert result.summary is result.summary
    assert result.summary["step_time_us"] == result.step_time_us
    assert result.bottleneck == "compute" and result.limits["compute"] > 0.5
    assert result.fidelity.num_rows == 0 and result.import_report is None


def test_html_repr_names_the_step_time_and_the_limit() -> None:
    result = sc.replay(SAMPLE, TOPO)
    text = result._repr_html_()
    assert f"{result.step_time_us / 1e3:.3f} ms" in text and "compute" in text
    assert text.count("<tr>") == 1 + 5  # header + the five busiest links


def test_a_folded_workload_is_refused_on_a_mixed_cluster() -> None:
    """The fold mirrors replica 0's speed onto the others: wrong where replicas sit on
    different accelerators, so the facade refuses it (the unfolded workload runs)."""
    from simcluster.errors import PlacementError

    kw = dict(layers=1, hidden=64, heads=8, kv_heads=8, ffn=256, vocab=256, seq_len=32,
              tp=8, dp=4, global_batch=8)
    mixed = sc.load_cluster(ROOT / "topologies" / "mixed-a100-h100.yaml")
    folded = sc.generate("transformer", **kw)
    with pytest.raises(PlacementError, match="A100-SXM4-80GB and H100-SXM5-80GB"):
        sc.Scenario(folded, mixed).run()
    whole = sc.generate("transformer", **kw, fold=False)
    assert sc.Scenario(whole, mixed).run().step_time_us > 0
    # a folded workload on accelerators of one model is fine (the H100 servers only)
    two = sc.generate("transformer", **{**kw, "dp": 2})
    assert sc.Scenario(two, mixed).run().step_time_us > 0


def test_a_framework_profiles_stack_applies_at_replay_unless_the_topology_calibrates() -> None:
    """A workload generated under ``llm-foundry-2023`` replays at that stack's efficiencies
    (memory-bound kernels at 0.39 of an H100's HBM bandwidth, not 0.866), says so in the
    cluster note, and a topology ``compute:`` entry for the model wins over it."""
    from dataclasses import replace as dc_replace

    from simcluster.topology.recorded import recorded_cluster
    from simcluster.topology.schema import ComputeParams
    from simcluster.workload.generate.presets import ModelSpec
    from simcluster.workload.generate.transformer import TransformerConfig, transformer

    m = ModelSpec("toy", layers=1, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
                  seq_len=32)

    def toy(framework: str):
        return transformer(TransformerConfig(model=m, dp=8, global_batch=8,
                                             framework=framework))

    cluster = recorded_cluster("H100", 8)
    stack = sc.Scenario(toy("llm-foundry-2023"), cluster).run()
    assert stack.cluster_note is not None and "llm-foundry-2023" in stack.cluster_note
    assert sc.Scenario(toy("nemo"), cluster).run().cluster_note is None
    own = dc_replace(cluster, compute={"H100-SXM5-80GB": ComputeParams(
        memory_efficiency=0.866)})
    mine = sc.Scenario(toy("llm-foundry-2023"), own).run()
    assert mine.cluster_note is None
    assert mine.step_time_us < stack.step_time_us  # the memory-bound ops at 0.866, not 0.39
    assert sc.replay(toy("llm-foundry-2023"), cluster).step_time_us == stack.step_time_us


@pytest.mark.parametrize("extra", [{"config": "gpt"}, {"config": ["x"]},
                                   {"config": {"framework": ["a"]}}, {"jobs": "x"},
                                   {"config": {"framework": "no-such-profile"}}])
def test_odd_framework_metadata_applies_no_stack(extra) -> None:
    """A workload file's metadata of any shape replays: no framework named, nothing
    applied (no traceback from the stack lookup)."""
    from dataclasses import replace as dc_replace

    from simcluster.scenario import stack_calibration
    from simcluster.topology.recorded import recorded_cluster

    wl = sc.generate("data-parallel", ranks=2, layers=1, hidden=64, seq_len=16, vocab=128)
    odd = dc_replace(wl, meta=dc_replace(wl.meta, extra=extra))
    cluster = recorded_cluster("H100", 2)
    assert stack_calibration(odd, cluster) == (dict(cluster.compute), None)

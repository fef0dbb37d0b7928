"""Kineto import and replay on the real traces of ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.analysis.fidelity import step_fidelity
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology import load_cluster
from simcluster.topology.recorded import recorded_cluster
from simcluster.workload.kineto import KinetoOptions, import_kineto
from simcluster.workload.kineto.pyet import read_execution_traces
from tests.conftest import ROOT

SINGLE = ("a100-16rank-rank0-5streams", "a100-2rank-rank0-nccl", "a100-event-sync-3streams",
          "mi250-rocm-minitoy", "sampled-128rank-rank0", "v100-2rank-rank1",
          "v100-resnet50-1gpu")
DEVICES = {"a100-16rank-rank0-5streams": "A100-SXM4-80GB", "a100-2rank-rank0-nccl":
           "A100-SXM4-40GB", "a100-event-sync-3streams": "A100-SXM4-40GB",
           "mi250-rocm-minitoy": "MI250-GCD", "sampled-128rank-rank0": "A100-SXM4-80GB",
           "v100-2rank-rank1": "V100-SXM2-16GB", "v100-resnet50-1gpu": "V100-SXM2-32GB"}


@pytest.mark.parametrize("name", SINGLE)
def test_single_rank_traces_replay_within_3_percent(shared_data: Path, name: str) -> None:
    wl = import_kineto(shared_data / "kineto" / "single-rank" / f"{name}.json.gz")
    assert wl.num_ranks == 1 and wl.meta.recorded_device == DEVICES[name]
    report = wl.meta.extra["import"]
    assert report["skipped"]  # the importer says what it skipped
    comm = [r for r in wl.ops.select(["kind", "fixed_duration"]).to_pylist()
            if r["kind"] in ("collective", "send", "recv")]
    assert all(r["fixed_duration"] for r in comm)  # peers absent: recorded durations
    run = simulate(bind(wl, recorded_cluster(wl.meta.recorded_device, 1)))
    errors = step_fidelity(run, wl).column("error").to_pylist()
    assert errors and max(abs(e) for e in errors) < 0.03


def test_dlrm_8_ranks_on_dgx1_within_10_percent(shared_data: Path) -> None:
    wl = import_kineto(shared_data / "kineto" / "dlrm-v100-8rank")
    assert wl.num_ranks == 8 and wl.groups["world"] == tuple(range(8))
    coll = [r for r in wl.ops.select(["kind", "fixed_duration", "comm_bytes"]).to_pylist()
            if r["kind"] == "collective"]
    assert len(coll) == 64 and not any(r["fixed_duration"] for r in coll)  # network model
    run = simulate(bind(wl, load_cluster(ROOT / "topologies" / "dgx1-v100.yaml")))
    fid = step_fidelity(run, wl)
    assert fid.num_rows == 8
    assert max(abs(e) for e in fid.column("error").to_pylist()) < 0.10


def test_dlrm_execution_traces_agree_with_the_annotations(shared_data: Path) -> None:
    d = shared_data / "kineto" / "dlrm-v100-8rank"
    et = read_execution_traces(d / "pytorch-et.tar.gz")
    assert sorted(et) == list(range(8)) and all(len(v) == 8 for v in et.values())
    wl = import_kineto(d, KinetoOptions(et=d / "pytorch-et.tar.gz"))
    notes = wl.meta.extra["import"]["notes"]
    assert "execution-trace sizes that agree with the Kineto trace's: 64" in notes

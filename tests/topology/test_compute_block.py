"""A topology's ``compute:`` block: validated, keyed by the model it names, merged over the
built-in calibration, and used by every simulation on the cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import simcluster as sc
from simcluster.errors import TopologyError
from simcluster.sim.compute import (
    A100_CALIBRATION,
    UNCALIBRATED,
    ComputeModel,
    builtin_calibration,
    overrides_for,
)
from simcluster.topology import load_cluster
from simcluster.topology.catalog import lookup
from tests.conftest import TEST_ACCEL

BASE = {"name": "t", "nodes": [{"accelerator": "A100", "accelerators": 2}]}


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_values_given_override_the_chip_and_the_rest_stay(tmp_path: Path) -> None:
    doc = {**BASE, "compute": {"A100 80GB": {"gemm_efficiency": 0.7, "families": {
        "small": {"fixed_us": 2.5}, "attention": {"gemm_efficiency": 0.6}}}}}
    cluster = load_cluster(_write(tmp_path, doc))
    assert list(cluster.compute) == ["A100-SXM4-80GB"]  # keyed by the model an alias names
    cal = overrides_for(cluster.compute)["A100-SXM4-80GB"]
    assert cal.gemm_efficiency == 0.7 and cal.fixed_us == A100_CALIBRATION.fixed_us
    assert cal.memory_efficiency == A100_CALIBRATION.memory_efficiency
    assert cal.for_family("small").fixed_us == 2.5
    assert cal.for_family("flash1").gemm_efficiency == 0.52  # built-in family kept
    assert cal.for_family("attention").gemm_efficiency == 0.6
    # Another model is untouched.
    model = ComputeModel(overrides=overrides_for(cluster.compute))
    h100 = lookup("H100")
    assert model.calibration(h100) == ComputeModel().calibration(h100)


def test_a_user_defined_model_starts_from_the_uncalibrated_roofline(tmp_path: Path) -> None:
    doc = {"name": "t", "accelerator_models": {"X1": TEST_ACCEL},
           "nodes": [{"accelerator": "X1", "accelerators": 1, "fabric": "pcie"}],
           "compute": {"X1": {"memory_efficiency": 0.5}}}
    cluster = load_cluster(_write(tmp_path, doc))
    cal = ComputeModel(overrides=overrides_for(cluster.compute)).calibration(
        cluster.specs[cluster.accelerators[0]])
    assert cal.memory_efficiency == 0.5
    assert cal.gemm_efficiency == UNCALIBRATED.gemm_efficiency
    assert cal.fixed_us == 0.0  # NaN: the spec's launch overhead
    assert builtin_calibration("X1") is UNCALIBRATED


@pytest.mark.parametrize(("compute", "where"), [
    ({"A100": {"gemm_efficiency": 1.5}}, "compute.A100.gemm_efficiency"),
    ({"A100": {"families": {"tiny": {"fixed_us": 1.0}}}}, "unknown kernel family 'tiny'"),
    ({"A100": {"families": {"small": {"sharpness": 2.0}}}}, "families.small.sharpness"),
    ({"A100": {"fixed_us": -1.0}}, "compute.A100.fixed_us"),
    ({"B9000": {"fixed_us": 1.0}}, "compute.B9000"),
    ({"A100": {"fixed_us": 1.0}, "A100-SXM4-80GB": {"fixed_us": 2.0}}, "both name"),
])
def test_bad_blocks_are_refused_with_their_place(tmp_path: Path, compute: dict,
                                                   where: str) -> None:
    with pytest.raises(TopologyError, match=where.replace(".", r"\.?")):
        load_cluster(_write(tmp_path, {**BASE, "compute": compute}))


def test_a_replay_on_the_topology_uses_its_calibration(tmp_path: Path) -> None:
    """The simulator's compute model is the topology's: a GEMM-bound workload slows down by
    what the lower efficiency and larger fixed time say."""
    wl = sc.generate("data-parallel", ranks=2, layers=1, hidden=256, seq_len=64, vocab=128)
    plain = sc.replay(wl, load_cluster(_write(tmp_path, BASE))).step_time_us
    slow = {**BASE, "compute": {"A100": {"gemm_efficiency": 0.4, "fixed_us": 20.0}}}
    slower = sc.replay(wl, load_cluster(_write(tmp_path, slow))).step_time_us
    assert slower > plain * 1.2
    # The same numbers from the model directly, one kernel.
    cal = overrides_for(load_cluster(tmp_path / "t.yaml").compute)["A100-SXM4-80GB"]
    spec = lookup("A100")
    t = ComputeModel(overrides={"A100-SXM4-80GB": cal}).roofline_us(
        np.array([1e12]), np.array([0.0]), "bf16", spec)[0]
    assert t == pytest.approx(20.0 + 1e12 / (spec.peak_flops_per_us("bf16") * 0.4))

"""Placement: strategies, YAML files, and errors when it does not fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.errors import PlacementError
from simcluster.placement import bind, load_placement, strategy_placement
from simcluster.topology import load_cluster
from tests.conftest import ROOT, workload

C = {"kind": "compute", "duration_us": 1.0}


@pytest.fixture(scope="module")
def h100():
    return load_cluster(ROOT / "topologies" / "h100-2node.yaml")


def _yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "place.yaml"
    p.write_text(text)
    return p


def test_packed_is_topology_order(h100) -> None:
    assert strategy_placement(h100, 3).devices == ("node0/gpu0", "node0/gpu1", "node0/gpu2")


def test_spread_alternates_servers(h100) -> None:
    assert strategy_placement(h100, 4, "spread").devices == (
        "node0/gpu0", "node1/gpu0", "node0/gpu1", "node1/gpu1")


def test_yaml_map(tmp_path: Path, h100) -> None:
    p = _yaml(tmp_path, "ranks:\n  0: node1/gpu3\n  1: node0/gpu0\n")
    assert load_placement(p, h100, 2).devices == ("node1/gpu3", "node0/gpu0")
    p = _yaml(tmp_path, "ranks: [node1/gpu3, node0/gpu0]\n")
    assert load_placement(p, h100, 2).devices == ("node1/gpu3", "node0/gpu0")
    p = _yaml(tmp_path, "strategy: spread\n")
    assert load_placement(p, h100, 2).devices == ("node0/gpu0", "node1/gpu0")


def test_too_many_ranks(h100) -> None:
    wl = workload([{"rank": r, **C} for r in range(17)])
    with pytest.raises(PlacementError, match="17 ranks but cluster 'h100-2node' has 16"):
        bind(wl, h100)


def test_device_named_twice(tmp_path: Path, h100) -> None:
    p = _yaml(tmp_path, "ranks:\n  0: node0/gpu1\n  1: node0/gpu1\n")
    with pytest.raises(PlacementError, match="place.yaml:3: ranks\\[1\\]: device 'node0/gpu1' is "
                                             "given to rank 0 and rank 1"):
        load_placement(p, h100, 2)


def test_unknown_device_suggests(tmp_path: Path, h100) -> None:
    p = _yaml(tmp_path, "ranks:\n  0: node0/gpu9\n")
    with pytest.raises(PlacementError, match="unknown device 'node0/gpu9'; did you mean"):
        load_placement(p, h100, 1)


def test_non_accelerator_and_missing_and_extra_ranks(tmp_path: Path, h100) -> None:
    with pytest.raises(PlacementError, match="is a switch, not an accelerator"):
        load_placement(_yaml(tmp_path, "ranks:\n  0: node0/nvswitch\n"), h100, 1)
    with pytest.raises(PlacementError, match="rank\\(s\\) 1 have no device"):
        load_placement(_yaml(tmp_path, "ranks:\n  0: node0/gpu0\n"), h100, 2)
    with pytest.raises(PlacementError, match="rank 5 is not in the workload"):
        load_placement(_yaml(tmp_path, "ranks:\n  5: node0/gpu0\n"), h100, 2)


def test_bad_placement_file(tmp_path: Path, h100) -> None:
    with pytest.raises(PlacementError, match="give either strategy"):
        load_placement(_yaml(tmp_path, "strategy: packed\nranks: [node0/gpu0]\n"), h100, 1)
    with pytest.raises(PlacementError, match="strategy: input should be 'packed' or 'spread'"):
        load_placement(_yaml(tmp_path, "strategy: random\n"), h100, 1)


def test_bind_accepts_strategy_names_and_paths(tmp_path: Path, h100) -> None:
    wl = workload([{"rank": r, **C} for r in range(2)])
    assert bind(wl, h100, "spread").placement.devices[1] == "node1/gpu0"
    p = _yaml(tmp_path, "ranks: [node0/gpu4, node0/gpu5]\n")
    assert bind(wl, h100, p).placement.devices == ("node0/gpu4", "node0/gpu5")
    assert bind(wl, h100, str(p)).placement.source == str(p)

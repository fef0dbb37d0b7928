"""Closed-form fabric routes are identical to the generic Dijkstra's, route by route."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from simcluster.topology import Router, load_cluster
from simcluster.topology.cluster import Cluster
from simcluster.topology.updown import fat_tree, two_level
from tests.conftest import ROOT, TEST_ACCEL, cluster_from

BUNDLED = sorted((ROOT / "topologies").glob("*.yaml"))


def _servers(count: int, nics: int, gpus: int | None = None) -> dict[str, Any]:
    gpus = gpus or nics
    return {"name": "n", "count": count, "accelerator": "T", "accelerators": gpus,
            "fabric": "pcie", "nics": {"count": nics}}


def _generated(servers: dict[str, Any], fabric: dict[str, Any]) -> Cluster:
    return cluster_from({"name": "gen", "accelerator_models": {"T": TEST_ACCEL},
                         "nodes": [servers], "fabric": fabric})


GENERATED = {
    # small
    "leaf-spine-8": lambda: _generated(
        _servers(8, 1), {"topology": "leaf-spine", "nodes_per_leaf": 4, "spines": 4}),
    "leaf-spine-partial-oversub": lambda: _generated(
        _servers(11, 2), {"topology": "leaf-spine", "nodes_per_leaf": 4, "spines": 3,
                          "oversubscription": 3.0}),
    "rail-small": lambda: _generated(
        _servers(6, 4), {"topology": "rail-optimized", "nodes_per_leaf": 2, "spines": 2}),
    "fat-tree-k4": lambda: _generated(_servers(16, 1), {"topology": "fat-tree", "k": 4}),
    "fat-tree-k6-oversub": lambda: _generated(
        _servers(20, 2), {"topology": "fat-tree", "k": 6, "oversubscription": 2.0}),
    # medium
    "rail-dgx-256": lambda: cluster_from({
        "name": "rail", "nodes": [{"name": "node", "count": 32, "preset": "dgx-h100"}],
        "fabric": {"topology": "rail-optimized", "nodes_per_leaf": 8, "spines": 8}}),
    "rail-dgx-partial-oversub": lambda: cluster_from({
        "name": "rail", "nodes": [{"name": "node", "count": 21, "preset": "dgx-h100"}],
        "fabric": {"topology": "rail-optimized", "nodes_per_leaf": 8, "spines": 6,
                   "oversubscription": 2.0}}),
    "leaf-spine-uneven-spine-link": lambda: _generated(
        _servers(24, 4), {"topology": "leaf-spine", "nodes_per_leaf": 5, "spines": 7,
                          "spine_link": {"bandwidth_GBps": 3.0}}),
    "fat-tree-k8-medium": lambda: _generated(_servers(64, 2), {"topology": "fat-tree", "k": 8}),
}


def _pairs(cluster: Cluster, limit: int = 6000) -> list[tuple[str, str]]:
    """Every ordered pair of accelerators and memories, or a seeded sample of ``limit``."""
    nodes = [n for n, a in cluster.graph.nodes(data=True)
             if a["kind"] in ("accelerator", "memory")]
    pairs = [(a, b) for a in nodes for b in nodes if a != b]
    if len(pairs) > limit:
        pairs = random.Random(19).sample(pairs, limit)
    return pairs


def _same_routes(cluster: Cluster) -> int:
    fast, reference = Router(cluster), Router(cluster, closed_form=False)
    pairs = _pairs(cluster)
    for a, b in pairs:
        try:
            want = reference.route(a, b).links
        except Exception as e:  # noqa: BLE001 - the same error, or the same route
            with pytest.raises(type(e)):
                fast.route(a, b)
            continue
        np.testing.assert_array_equal(fast.route(a, b).links, want, err_msg=f"{a} -> {b}")
    return len(pairs)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_bundled_topologies_route_as_before(path) -> None:
    assert _same_routes(load_cluster(path)) > 0


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_fabrics_route_as_before(name: str) -> None:
    assert _same_routes(GENERATED[name]()) > 0


def _switches(cluster: Cluster, router: Router) -> list[str]:
    return [n for n in cluster.graph.nodes if router._fabric_transit(n)]


@pytest.mark.parametrize("name", ["leaf-spine-8", "leaf-spine-partial-oversub", "rail-small",
                                  "rail-dgx-partial-oversub", "leaf-spine-uneven-spine-link"])
def test_two_level_templates_take_the_closed_form(name: str) -> None:
    cluster = GENERATED[name]()
    r = Router(cluster)
    assert two_level(_switches(cluster, r), r._succ, r._fabric_transit) is not None


@pytest.mark.parametrize("name", ["fat-tree-k4", "fat-tree-k6-oversub", "fat-tree-k8-medium"])
def test_fat_trees_take_their_closed_form(name: str) -> None:
    cluster = GENERATED[name]()
    r = Router(cluster)
    switches = _switches(cluster, r)
    assert two_level(switches, r._succ, r._fabric_transit) is None
    assert fat_tree(switches, r._succ, r._fabric_transit,
                    lambda n: cluster.graph.nodes[n].get("role")) is not None


def test_a_torus_keeps_the_generic_router() -> None:
    cluster = load_cluster(ROOT / "topologies" / "tpu-torus-4x4x4.yaml")
    r = Router(cluster)
    assert r._closed() is None


def test_a_fat_tree_with_a_missing_core_link_falls_back() -> None:
    # k = 4: drop both directions of pod0-agg0 <-> core0: core0 no longer reaches pod 0.
    cluster = GENERATED["fat-tree-k4"]()
    r = Router(cluster)
    drop = {"fabric/pod0-agg0", "fabric/core0"}
    succ = {u: [(v, i, c) for v, i, c in r._succ[u] if {u, v} != drop] for u in r._succ}
    assert fat_tree(_switches(cluster, r), succ, r._fabric_transit,
                    lambda n: cluster.graph.nodes[n].get("role")) is None


def test_a_link_much_dearer_than_its_neighbours_falls_back() -> None:
    # Two spines, two leaves; leaf0 -> spine0 costs far more than leaf0's other uplink and
    # than spine0's other downlink's reverse: a detour could tie, so no closed form.
    succ = {"l0": [("s0", 0, 900), ("s1", 1, 10)], "l1": [("s0", 2, 10), ("s1", 3, 10)],
            "s0": [("l0", 4, 10), ("l1", 5, 10)], "s1": [("l0", 6, 10), ("l1", 7, 10)]}
    switches = ["l0", "l1", "s0", "s1"]
    assert two_level(switches, succ, lambda n: n in succ) is None
    succ["l0"][0] = ("s0", 0, 25)
    assert two_level(switches, succ, lambda n: n in succ) is not None

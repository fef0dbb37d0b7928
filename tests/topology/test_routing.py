"""Routes: shortest by bandwidth-weighted cost, hierarchical, deterministic ECMP."""

from __future__ import annotations

import pytest

from simcluster.errors import TopologyError
from simcluster.topology import Router, load_cluster
from tests.conftest import ROOT, TEST_ACCEL, cluster_from


@pytest.fixture(scope="module")
def h100():
    return load_cluster(ROOT / "topologies" / "h100-2node.yaml")


def test_inside_a_node_traffic_takes_nvlink(h100) -> None:
    r = Router(h100)
    assert r.path("node0/gpu0", "node0/gpu5") == ["node0/gpu0", "node0/nvswitch", "node0/gpu5"]
    # 350 ns per NVLink hop (catalog default), two hops.
    assert r.route("node0/gpu0", "node0/gpu5").latency_us == pytest.approx(0.7)


def test_across_nodes_traffic_leaves_through_the_gpus_own_nic(h100) -> None:
    r = Router(h100)
    assert r.path("node0/gpu3", "node1/gpu6") == [
        "node0/gpu3", "node0/pcie3", "node0/nic3", "fabric/switch", "node1/nic6", "node1/pcie6",
        "node1/gpu6"]


def test_host_copies_go_through_the_cpu_root_complex(h100) -> None:
    r = Router(h100)
    assert r.nearest("node0/gpu6", "memory") == "node0/mem1"
    assert r.path("node0/mem1", "node0/gpu6") == ["node0/mem1", "node0/cpu1", "node0/pcie6",
                                                  "node0/gpu6"]


def test_pcie_box_crosses_sockets_between_far_gpus() -> None:
    r = Router(load_cluster(ROOT / "topologies" / "pcie-8gpu.yaml"))
    assert r.path("box0/gpu0", "box0/gpu1") == ["box0/gpu0", "box0/pcie0", "box0/gpu1"]
    assert r.path("box0/gpu0", "box0/gpu7") == [
        "box0/gpu0", "box0/pcie0", "box0/cpu0", "box0/cpu1", "box0/pcie3", "box0/gpu7"]


def _leaf_spine(spines: int = 4, per_leaf: int = 4):
    return cluster_from({
        "name": "ls", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 8, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "nics": {"count": 1}}],
        "fabric": {"topology": "leaf-spine", "nodes_per_leaf": per_leaf, "spines": spines},
    })


def _spine(r: Router, a: str, b: str) -> str:
    return next(n for n in r.path(a, b) if "spine" in n)


def test_destination_mod_k_spreads_a_leafs_destinations_over_spines() -> None:
    # Leaf 1 holds n4..n7 on ports 0..3: traffic to them climbs spines 0..3, whatever the
    # source, and the same inputs always give the same routes.
    r = Router(_leaf_spine())
    for src in ("n0/gpu0", "n1/gpu0", "n3/gpu0"):
        assert [_spine(r, src, f"n{k}/gpu0") for k in range(4, 8)] == [
            f"fabric/spine{k}" for k in range(4)]
    again = Router(_leaf_spine())
    assert again.path("n2/gpu0", "n6/gpu0") == r.path("n2/gpu0", "n6/gpu0")


def test_a_shifted_permutation_across_leaves_has_no_spine_collision() -> None:
    # n_i -> n_(i+4): each uplink of leaf 0 carries exactly one of the four flows.
    r = Router(_leaf_spine())
    spines = [_spine(r, f"n{i}/gpu0", f"n{i + 4}/gpu0") for i in range(4)]
    assert len(set(spines)) == 4


def test_same_leaf_traffic_does_not_climb_to_a_spine() -> None:
    path = Router(_leaf_spine(per_leaf=2)).path("n0/gpu0", "n1/gpu0")
    assert not any("spine" in n for n in path) and "fabric/leaf0" in path


def test_accelerators_do_not_forward() -> None:
    c = cluster_from({
        "name": "chain", "accelerator_models": {"T": TEST_ACCEL},
        "devices": [{"name": x, "kind": "accelerator", "model": "T"} for x in "abc"],
        "links": [{"src": "a", "dst": "b", "bandwidth_GBps": 1},
                  {"src": "b", "dst": "c", "bandwidth_GBps": 1}],
    })
    r = Router(c)
    assert r.path("a", "b") == ["a", "b"]
    with pytest.raises(TopologyError, match="no route from 'a' to 'c'"):
        r.route("a", "c")


def test_routes_are_cached_arrays_of_link_ids(h100) -> None:
    r = Router(h100)
    a = r.route("node0/gpu0", "node1/gpu0")
    assert a is r.route("node0/gpu0", "node1/gpu0")
    assert [h100.link_src[i] for i in a.links] == r.path("node0/gpu0", "node1/gpu0")[:-1]
    assert len(r.route("node0/gpu0", "node0/gpu0").links) == 0


def test_destination_mod_k_spreads_a_pods_destinations_over_all_cores() -> None:
    # k = 4: 16 one-NIC servers, 4 per pod. From n0, the 4 destinations of pod 2 climb
    # aggregation switch (port) and core (edge), so they use 4 distinct cores; all 16
    # destinations outside pod 0 use every one of the 4 cores.
    c = cluster_from({
        "name": "ft", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 16, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "nics": {"count": 1}}],
        "fabric": {"topology": "fat-tree", "k": 4},
    })
    r = Router(c)

    def core(dst: int) -> str:
        return next(n for n in r.path("n0/gpu0", f"n{dst}/gpu0") if "core" in n)

    assert len({core(d) for d in range(8, 12)}) == 4
    assert {core(d) for d in range(4, 16)} == {f"fabric/core{i}" for i in range(4)}

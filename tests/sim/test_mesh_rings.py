"""Rings over point-to-point links (servers without an NVSwitch), with times by hand.

The clusters here run links at exactly their bandwidth and with no protocol latency, so a
ring all-reduce of ``S`` bytes on ``p`` ranks takes ``2(p-1)/p x S`` over the aggregate
bandwidth of the rings: the number of rings times the bandwidth each gets.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from simcluster.sim.algorithms import plan
from simcluster.sim.collectives import Layout, mesh_rings, ring_hops
from simcluster.sim.comm import CommModel
from simcluster.topology import Router, load_cluster
from simcluster.topology.cluster import Cluster
from tests.conftest import ROOT, TEST_ACCEL, cluster_from, replay, workload

GB = 10**9
EXACT = {"nvlink": 1.0, "pcie": 1.0, "ib": 1.0}
QUIET: dict[str, Any] = {"latency_scale": 0.0, "collective_overhead_us": 0.0,
                         "link_efficiency": EXACT, "protocol": "Simple"}
# DGX-1 hybrid cube-mesh by GPU id: (a, b, NVLinks between them).
CUBE_MESH = [(0, 1, 1), (0, 2, 1), (0, 3, 2), (0, 4, 2), (1, 2, 2), (1, 3, 1), (1, 5, 2),
             (2, 3, 2), (2, 6, 1), (3, 7, 1), (4, 5, 1), (4, 6, 1), (4, 7, 2), (5, 6, 2),
             (5, 7, 1), (6, 7, 2)]


def _mesh(n: int, pairs: list[tuple[int, int, int]], link_GBps: float = 100.0,
          slow_switch_GBps: float = 0.0, **network: Any) -> Cluster:
    """``n`` accelerators a0.. with duplex NVLinks of ``links x link_GBps`` between the given
    pairs; optionally every one also on a slow PCIe switch (a path where links are missing)."""
    devices: list[dict[str, Any]] = [{"name": f"a{i}", "kind": "accelerator", "model": "T"}
                                     for i in range(n)]
    links = [{"src": f"a{a}", "dst": f"a{b}", "bandwidth_GBps": m * link_GBps, "kind": "nvlink"}
             for a, b, m in pairs]
    if slow_switch_GBps:
        devices.append({"name": "sw", "kind": "switch"})
        links += [{"src": f"a{i}", "dst": "sw", "bandwidth_GBps": slow_switch_GBps,
                   "kind": "pcie"} for i in range(n)]
    return cluster_from({"name": "mesh", "accelerator_models": {"T": TEST_ACCEL},
                         "devices": devices, "links": links,
                         "network": {**QUIET, "algorithm": "ring", **network}})


def _all_reduce(cluster: Cluster, p: int, size: int = GB) -> float:
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce", "comm_bytes": size,
             "group": "g"} for r in range(p)]
    return replay(workload(rows, {"g": list(range(p))}), cluster).makespan_us


def _layout(cluster: Cluster, devices: list[str] | None = None) -> Layout:
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {})
    return model.layout_of(list(devices or cluster.accelerators))


def _check_direct(cluster: Cluster, layout: Layout) -> dict[tuple[str, str], int]:
    """Assert every ring hop is a direct link; return how many rings use each link."""
    uses: dict[tuple[str, str], int] = {}
    for rings in layout.rings:
        for ring in rings or ():
            for a, b in zip(ring, ring[1:] + ring[:1]):
                u, v = layout.devices[a], layout.devices[b]
                assert cluster.graph.has_edge(u, v), f"ring hop {u} -> {v} is not a direct link"
                uses[(u, v)] = uses.get((u, v), 0) + 1
    return uses


def _undirected(pairs: list[tuple[int, int, int]], capacity: float = 1.0
                ) -> tuple[tuple[int, int, float], ...]:
    return tuple(sorted(arc for a, b, m in pairs
                        for arc in ((a, b, m * capacity), (b, a, m * capacity))))


# -- the search --------------------------------------------------------------------------------

def test_fully_connected_four_uses_every_ring_at_half_a_link() -> None:
    # The 6 directed Hamiltonian cycles of K4 use every link twice: 6 rings at half a link
    # each move 3 links' worth (three disjoint rings do not exist on 4 nodes).
    rings = mesh_rings(4, _undirected([(a, b, 1) for a, b in itertools.combinations(range(4), 2)]))
    assert sorted(rings) == sorted((0, *q) for q in itertools.permutations((1, 2, 3)))


def test_cube_mesh_splits_into_six_rings() -> None:
    # The doubled links form one Hamiltonian cycle, the single links another: each run both
    # ways, the doubled one twice, 6 rings of one link each (6 links per GPU, all used).
    rings = mesh_rings(8, _undirected(CUBE_MESH))
    assert len(rings) == 6
    uses: dict[tuple[int, int], int] = {}
    for r in rings:
        assert sorted(r) == list(range(8)) and r[0] == 0
        for a, b in zip(r, r[1:] + r[:1]):
            uses[(a, b)] = uses.get((a, b), 0) + 1
    assert uses == {(a, b): m for a, b, m in CUBE_MESH} | {(b, a): m for a, b, m in CUBE_MESH}


def test_search_is_deterministic_and_finds_no_ring_on_a_path() -> None:
    arcs = _undirected(CUBE_MESH, 25.0)
    first = mesh_rings(8, arcs)
    mesh_rings.cache_clear()
    assert mesh_rings(8, arcs) == first
    assert mesh_rings(4, _undirected([(0, 1, 1), (1, 2, 1), (2, 3, 1)])) == ()
    assert mesh_rings(2, _undirected([(0, 1, 2)])) == ((0, 1),)
    assert mesh_rings(1, ()) == ()


# -- simulated times ----------------------------------------------------------------------------

def test_full_mesh_of_four_all_reduce_by_hand() -> None:
    # 2(p-1)/p S = 1.5 GB over 3 links' worth (300 GB/s): 5 ms. One ring would take 15 ms.
    cluster = _mesh(4, [(a, b, 1) for a, b in itertools.combinations(range(4), 2)])
    layout = _layout(cluster)
    assert len(layout.rings[0] or ()) == 6
    assert set(_check_direct(cluster, layout).values()) == {2}
    assert _all_reduce(cluster, 4) == pytest.approx(5_000.0)


def test_ring_of_four_avoids_the_missing_links() -> None:
    # Links 0-2, 2-1, 1-3, 3-0 only: topology order 0,1,2,3 would cross 0 -> 1 over the
    # 10 GB/s switch (150 ms). The rings 0,2,1,3 and its reverse use NVLink only: 1.5 GB
    # over 2 x 100 GB/s = 7.5 ms.
    cluster = _mesh(4, [(0, 2, 1), (2, 1, 1), (1, 3, 1), (3, 0, 1)], slow_switch_GBps=10.0)
    layout = _layout(cluster)
    assert layout.rings == (((0, 2, 1, 3), (0, 3, 1, 2)),)
    assert _check_direct(cluster, layout) == {k: 1 for k in cluster.graph.edges
                                              if "sw" not in k}
    assert _all_reduce(cluster, 4) == pytest.approx(7_500.0)


def test_ring_of_four_broadcast_uses_both_chains() -> None:
    # Each ring carries half of S along its 3-hop chain from the root: 0.5 GB at 100 GB/s.
    cluster = _mesh(4, [(0, 2, 1), (2, 1, 1), (1, 3, 1), (3, 0, 1)], slow_switch_GBps=10.0,
                    algorithm="auto")
    rows = [{"rank": r, "kind": "collective", "collective": "broadcast", "comm_bytes": GB,
             "group": "g", "root": 1} for r in range(4)]
    run = replay(workload(rows, {"g": [0, 1, 2, 3]}), cluster)
    assert run.makespan_us == pytest.approx(5_000.0)


def test_cube_mesh_of_single_links_doubles_the_rings() -> None:
    # DGX-1 with P100 (every pair one link): two edge-disjoint Hamiltonian cycles, each both
    # ways: 4 rings, every link used once. 2(p-1)/p S = 1.75 GB over 400 GB/s: 4.375 ms,
    # where one ring, both ways, would give 200 GB/s.
    cluster = _mesh(8, [(a, b, 1) for a, b, _ in CUBE_MESH])
    layout = _layout(cluster)
    assert len(layout.rings[0] or ()) == 4
    assert set(_check_direct(cluster, layout).values()) == {1}
    assert _all_reduce(cluster, 8) == pytest.approx(4_375.0)


def test_dgx1_topology_runs_six_rings_of_one_nvlink() -> None:
    cluster = load_cluster(ROOT / "topologies" / "dgx1-v100.yaml")
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {"g": tuple(range(8))})
    layout = model.layout("g")
    uses = _check_direct(cluster, layout)
    assert len(layout.rings[0] or ()) == 6 and len(uses) == 32  # every NVLink, both ways
    for (u, v), n in uses.items():  # doubled links carry two rings, single links one
        e = cluster.graph.edges[u, v]
        assert cluster.bandwidth_Bpus[e["id"]] == pytest.approx(n * 25e3)
    # Time per byte of S: 2(p-1)/p over 6 rings of one NVLink (25 GB/s x efficiency 0.774).
    (ph,) = model.resolved(("g", "ring", "all_reduce", 0), layout, "ring", "all_reduce")
    one_link = float(cluster.capacity_Bpus[cluster.graph.edges["dgx1/gpu0", "dgx1/gpu1"]["id"]])
    assert one_link == pytest.approx(25e3 * 0.774)
    assert ph.unit_us == pytest.approx(1.75 / (6 * one_link), rel=1e-12)


def test_no_nvlink_ring_falls_back_to_topology_order() -> None:
    # GPUs 0, 1, 2, 3, 7 of a DGX-1: GPU 7 has one NVLink into the group, so no ring closes
    # over NVLink; the ring keeps topology order, as NCCL falls back to PCIe.
    cluster = load_cluster(ROOT / "topologies" / "dgx1-v100.yaml")
    layout = _layout(cluster, [f"dgx1/gpu{i}" for i in (0, 1, 2, 3, 7)])
    assert layout.rings == () and layout.ring_count == 1
    hops = ring_hops(layout, None)
    assert [h[0] for h in hops] == list(layout.devices)


# -- two mesh servers: rings leave through the NICs ---------------------------------------------

def _two_mesh_servers(**network: Any) -> Cluster:
    """2 servers of 4 GPUs on a ring of NVLinks 0-2-1-3-0 (100 GB/s; topology order would
    cross 0 -> 1 over a 10 GB/s PCIe switch), a 25 GB/s NIC per GPU, every NIC on one
    switch."""
    devices: list[dict[str, Any]] = [{"name": "sw", "kind": "switch"}]
    links: list[dict[str, Any]] = []
    for s in range(2):
        devices.append({"name": f"s{s}/pcie", "kind": "switch", "host": f"s{s}"})
        for g in range(4):
            gpu, nic = f"s{s}/gpu{g}", f"s{s}/nic{g}"
            devices += [{"name": gpu, "kind": "accelerator", "model": "T", "host": f"s{s}",
                         "nic": nic},
                        {"name": nic, "kind": "nic", "host": f"s{s}"}]
            links += [{"src": gpu, "dst": nic, "bandwidth_GBps": 100.0, "kind": "pcie"},
                      {"src": gpu, "dst": f"s{s}/pcie", "bandwidth_GBps": 10.0, "kind": "pcie"},
                      {"src": nic, "dst": "sw", "bandwidth_GBps": 25.0, "kind": "ib"}]
        links += [{"src": f"s{s}/gpu{a}", "dst": f"s{s}/gpu{b}", "bandwidth_GBps": 100.0,
                   "kind": "nvlink"} for a, b in ((0, 2), (2, 1), (1, 3), (3, 0))]
    return cluster_from({"name": "two-mesh", "accelerator_models": {"T": TEST_ACCEL},
                         "devices": devices, "links": links,
                         "network": {**QUIET, **network}})


@pytest.mark.parametrize(("algorithm", "expected"), [
    # 4 rails x 2 rings = 8 channels of 2(p-1)/p / 8 = 0.21875 S per hop; each NIC carries
    # the crossings of its rail's 2 rings: 0.4375 GB at 25 GB/s.
    ("ring", 17_500.0),
    # Reduce-scatter on both rings (0.375 GB per link at 100 GB/s), all-reduce across the
    # servers per rail (0.25 GB per NIC at 25 GB/s), all-gather: 3.75 + 10 + 3.75 ms.
    ("hierarchical", 17_500.0),
    # Per NIC direction, 2 rings x 2 trees of S/16: 0.25 GB at 25 GB/s, at tree Simple's 0.9.
    ("tree", 0.25 * GB / (0.9 * 25e3)),
])
def test_two_mesh_servers_by_hand(algorithm: str, expected: float) -> None:
    cluster = _two_mesh_servers(algorithm=algorithm)
    layout = _layout(cluster)
    assert layout.channel_rails() == ["nic0", "nic1", "nic2", "nic3"]
    assert layout.rings == (((0, 2, 1, 3), (0, 3, 1, 2)), ((4, 6, 5, 7), (4, 7, 5, 6)))
    _check_direct(cluster, layout)
    for rail in layout.channel_rails():
        for k in range(2):
            for hop in ring_hops(layout, rail, ring=k):
                if hop[0][:2] == hop[-1][:2]:  # inside a server: a direct NVLink
                    assert len(hop) == 2 and cluster.graph.has_edge(*hop)
                else:  # leaving: NVLink to the rail's rank, then its NIC (PXN)
                    assert hop[-2].endswith(rail.replace("nic", "gpu"))
    assert len(plan("ring", "all_reduce", layout)[0].paths) == 4 * 2 * 8
    assert _all_reduce(cluster, 8) == pytest.approx(expected)

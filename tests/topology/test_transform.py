"""Failed, flapping and per-element scaled links and switches (``topology/transform.py``),
and the routes around them."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.errors import TopologyError
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology import Router
from simcluster.topology.cluster import Cluster
from simcluster.topology.transform import fail, flapping, scale_links
from tests.conftest import TEST_ACCEL, cluster_from, workload

GB = 10**9
EXACT = {"nvlink": 1.0, "pcie": 1.0, "ib": 1.0, "memory": 1.0, "socket": 1.0}
UPLINK = "fabric/pod0-edge0--fabric/pod0-agg0"


def fat_tree_k4() -> Cluster:
    """16 one-GPU servers on a k = 4 fat-tree (4 pods of 2 edge and 2 aggregation switches,
    4 cores), every fabric link and NIC 25 GB/s, PCIe 100 GB/s, no latency, efficiency 1.
    Servers n0, n1 hang off pod0-edge0, n2, n3 off pod0-edge1."""
    return cluster_from({
        "name": "ft4", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 16, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "pcie": {"bandwidth_GBps": 100.0},
                   "nics": {"count": 1, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "fat-tree", "k": 4},
        "network": {"latency_scale": 0.0, "link_efficiency": EXACT},
    })


def _two_sends() -> list[dict]:
    # n0 -> n2 and n1 -> n3: from edge0 to edge1 of pod 0, one flow per aggregation switch.
    return [{"rank": 0, "kind": "send", "peer": 2, "comm_bytes": GB},
            {"rank": 2, "kind": "recv", "peer": 0, "comm_bytes": GB},
            {"rank": 1, "kind": "send", "peer": 3, "comm_bytes": GB},
            {"rank": 3, "kind": "recv", "peer": 1, "comm_bytes": GB}]


def _path(cluster: Cluster, a: int, b: int) -> list[str]:
    return Router(cluster).path(f"n{a}/gpu0", f"n{b}/gpu0")


def test_a_failed_uplink_reroutes_and_the_two_flows_share_the_other() -> None:
    c = fat_tree_k4()
    assert {_path(c, 0, 2)[4], _path(c, 1, 3)[4]} == {"fabric/pod0-agg0", "fabric/pod0-agg1"}
    wl = workload(_two_sends())
    # Healthy: each 1 GB flow has its own uplink, 25 GB/s end to end: 40 ms.
    assert simulate(bind(wl, c)).makespan_us == pytest.approx(40_000.0)
    down = fail(c, [UPLINK])
    assert _path(down, 0, 2)[4] == _path(down, 1, 3)[4] == "fabric/pod0-agg1"
    # Both climb edge0 -> agg1 at 12.5 GB/s each: 80 ms.
    assert simulate(bind(wl, down)).makespan_us == pytest.approx(80_000.0)


def test_a_failed_switch_takes_all_its_links_down() -> None:
    down = fail(fat_tree_k4(), ["fabric/pod0-agg0"])
    assert "fabric/pod0-agg0" not in _path(down, 0, 2)
    assert simulate(bind(workload(_two_sends()), down)).makespan_us == pytest.approx(80_000.0)
    assert all("fabric/pod0-agg0" not in (down.link_src[i], down.link_dst[i])
               for i in range(down.num_links) if i not in down.down_links)


@pytest.mark.parametrize("element", [UPLINK, "fabric/core0", "fabric/pod1-agg1",
                                     "fabric/pod2-edge1--fabric/pod2-agg0"])
def test_routes_never_use_a_failed_link(element: str) -> None:
    # The closed-form fat-tree routes are off: every pair takes the generic search, which
    # skips the failed links; the healthy cluster still takes the closed form.
    c = fat_tree_k4()
    down = fail(c, [element])
    assert Router(c)._closed() is not None and Router(down)._closed() is None
    r = Router(down)
    gpus = [f"n{i}/gpu0" for i in range(16)]
    for a in gpus:
        for b in gpus:
            if a != b:
                assert not set(r.route(a, b).links.tolist()) & down.down_links


def test_a_failed_nic_link_sends_through_another_nic_of_the_server() -> None:
    c = cluster_from({
        "name": "two", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "s", "count": 2, "accelerator": "T", "accelerators": 2,
                   "fabric": "pcie", "nics": {"count": 2, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "single-switch"}})
    down = fail(c, ["s0/nic0"])
    assert "nic" not in down.graph.nodes["s0/gpu0"] and "s0/nic1" in Router(down).path(
        "s0/gpu0", "s1/gpu0")


def test_a_failed_gpu_leaves_the_accelerators() -> None:
    down = fail(fat_tree_k4(), ["n3/gpu0"])
    assert len(down.accelerators) == 15 and "n3/gpu0" not in down.specs
    assert down.accelerator_index["n4/gpu0"] == 3


def test_flapping_is_the_long_run_average_bandwidth() -> None:
    # n0's NIC down 25 % of the time: its links run at 0.75 x 25 GB/s; the n0 -> n2 flow
    # alone takes 1 GB / 18.75 GB/s.
    c = flapping(fat_tree_k4(), {"n0/nic0": 0.25})
    rows = _two_sends()[:2]
    rows += [{"rank": r, "kind": "host", "duration_us": 0.0} for r in (1, 3)]
    assert simulate(bind(workload(rows), c)).makespan_us == pytest.approx(GB / 18_750.0)
    with pytest.raises(TopologyError, match="--fail n0/nic0"):
        flapping(c, {"n0/nic0": 1.0})


def test_scale_link_selects_a_link_or_a_switch() -> None:
    c = fat_tree_k4()
    half = scale_links(c, {UPLINK: 0.5})
    changed = np.flatnonzero(half.capacity_Bpus != c.capacity_Bpus).tolist()
    assert sorted((half.link_src[i], half.link_dst[i]) for i in changed) == [
        ("fabric/pod0-agg0", "fabric/pod0-edge0"), ("fabric/pod0-edge0", "fabric/pod0-agg0")]
    assert half.capacity_Bpus[changed].tolist() == [12_500.0, 12_500.0]
    core = scale_links(c, {"fabric/core0": 0.5})
    assert int((core.capacity_Bpus != c.capacity_Bpus).sum()) == 8  # 4 pods, both ways


@pytest.mark.parametrize("name, message", [
    ("fabric/core9", "did you mean 'fabric/core0'"),
    ("fabric/core0--fabric/pod0-edge0", "are not linked"),
    ("ib", "no node or link of that name"),
])
def test_unknown_elements_are_errors_that_say_what_to_name(name: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        fail(fat_tree_k4(), [name])


def test_a_failed_server_takes_all_its_accelerators_and_links_down() -> None:
    c = fat_tree_k4()
    down = fail(c, ["n3"])
    assert "n3/gpu0" not in down.accelerators and len(down.accelerators) == 15
    assert {c.host_of(down.link_src[i]) for i in down.down_links} >= {"n3"}
    assert all("n3/" not in down.link_src[i] + down.link_dst[i]
               for i in range(down.num_links) if i not in down.down_links)

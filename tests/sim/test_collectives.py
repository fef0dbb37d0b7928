"""Collective algorithms: plans, protocol choice, and simulated times by hand.

Topologies here run links at exactly their bandwidth (efficiency 1) so that every expected
time is a short formula: the protocol's base latency and per-step latencies (NCCL's tables in
``sim/protocols.py``) plus bytes over bottleneck bandwidth.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simcluster.errors import SimulationError
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.sim.algorithms import plan
from simcluster.sim.collectives import Layout, ring_hops
from simcluster.sim.comm import CommModel
from simcluster.sim.protocols import BASE_LATENCY_US, STEP_LATENCY_US
from simcluster.topology import Router
from tests.conftest import TEST_ACCEL, cluster_from, ends, replay, star, workload

GB = 10**9
EXACT = {"nvlink": 1.0, "pcie": 1.0, "ib": 1.0, "memory": 1.0, "socket": 1.0}
# NCCL's tables alone: no fitted per-protocol overhead on top.
NCCL_ONLY: dict[str, Any] = {"protocol_overhead_us": {}, "step_latency_scale": {}}
RING = STEP_LATENCY_US["ring"]["nvlink"]


def _one(collective: str, p: int, size: int, root: int | None = None) -> list[dict[str, Any]]:
    return [{"rank": r, "kind": "collective", "collective": collective, "comm_bytes": size,
             "group": "g", "root": root} for r in range(p)]


def _time(collective: str, p: int, size: int, root: int | None = None, **net: Any) -> float:
    """Simulated time of one collective on a star of p accelerators and 100 GB/s links."""
    for key, value in NCCL_ONLY.items():
        net.setdefault(key, value)
    run = replay(workload(_one(collective, p, size, root), {"g": list(range(p))}),
                 star(p, 100.0, **net))
    return run.makespan_us


@pytest.mark.parametrize("p", [2, 3, 4, 8, 16])
def test_ring_all_reduce_matches_the_formula(p: int) -> None:
    # overhead + Simple base + 2(p-1) NVLink-class steps + 2(p-1)/p * S / B (B = 1e5 B/us).
    expected = 5.0 + 8.4 + 2 * (p - 1) * RING["Simple"] + 2 * (p - 1) / p * GB / 1e5
    got = _time("all_reduce", p, GB, overhead_us=5.0, latency_scale=1.0, protocol="Simple")
    assert got == pytest.approx(expected, rel=1e-3)
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("collective", ["all_gather", "reduce_scatter"])
def test_ring_all_gather_and_reduce_scatter(collective: str) -> None:
    p = 4
    expected = 8.4 + (p - 1) * RING["Simple"] + (p - 1) / p * GB / 1e5
    assert _time(collective, p, GB, latency_scale=1.0, protocol="Simple") == pytest.approx(
        expected)


@pytest.mark.parametrize("collective", ["broadcast", "reduce"])
def test_pipelined_chain_broadcast_and_reduce(collective: str) -> None:
    p = 4
    expected = 8.4 + (p - 1) * RING["Simple"] + GB / 1e5
    assert _time(collective, p, GB, root=2, latency_scale=1.0, protocol="Simple") == (
        pytest.approx(expected))


def test_all_to_all_direct_and_pairwise() -> None:
    # Each rank's uplink carries (p-1)/p * S either way; pairwise pays p-1 steps, direct one.
    p = 4
    drain = (p - 1) / p * GB / 1e5
    direct = _time("all_to_all", p, GB, latency_scale=1.0, protocol="Simple", algorithm="auto")
    assert direct == pytest.approx(8.4 + RING["Simple"] + drain)
    pairwise = _time("all_to_all", p, GB, latency_scale=1.0, protocol="Simple",
                     algorithm="pairwise")
    assert pairwise == pytest.approx(8.4 + (p - 1) * RING["Simple"] + drain)


def test_barrier_is_a_zero_byte_all_reduce_on_LL() -> None:
    p = 4
    assert _time("barrier", p, 0, latency_scale=1.0) == pytest.approx(
        BASE_LATENCY_US["ring"]["LL"] + 2 * (p - 1) * RING["LL"])


def test_single_rank_collective_costs_only_the_fixed_part() -> None:
    assert _time("all_reduce", 1, GB, overhead_us=7.0) == pytest.approx(7.0)


@pytest.mark.parametrize(("size", "protocol"), [(256_000, "LL"), (700_000, "LL128"),
                                                (40_000_000, "Simple")])
def test_protocol_chosen_by_size(size: int, protocol: str) -> None:
    # p = 8 on 100 GB/s, NCCL 2.18.5's latencies: LL = 15.0 + 7.0e-5 S, LL128 = 40.6 +
    # 1.90e-5 S, Simple = 56 + 1.75e-5 S (us, S in bytes): LL below 502 KB, Simple above
    # 10.1 MB.
    run = replay(workload(_one("all_reduce", 8, size), {"g": list(range(8))}),
                 star(8, 100.0, latency_scale=1.0, **NCCL_ONLY))
    assert run.timeline["algorithm"][0].as_py() == f"ring/{protocol}"
    lat, bw = {"LL": (6.6 + 14 * 0.6, 0.25), "LL128": (14.0 + 14 * 1.9, 0.92),
               "Simple": (8.4 + 14 * 3.4, 1.0)}[protocol]
    assert run.makespan_us == pytest.approx(lat + 1.75 * size / (bw * 1e5))


def test_send_recv_one_flow_after_both_sides_are_posted() -> None:
    rows = [
        {"rank": 0, "kind": "send", "peer": 1, "comm_bytes": GB},
        {"rank": 1, "kind": "compute", "duration_us": 100.0},
        {"rank": 1, "kind": "recv", "peer": 0, "comm_bytes": GB},
    ]
    run = replay(workload(rows), star(2, 100.0, overhead_us=2.0, latency_scale=1.0,
                                      **NCCL_ONLY))
    t = ends(run)
    # Simple wins at 1 GB: 2 + 8.4 base + one 3.4 us step + 10 ms, from t = 100 us.
    assert t[(0, 0)] == pytest.approx((0.0, 100.0 + 2.0 + 8.4 + 3.4 + 10_000.0))
    assert run.timeline["wait_us"].to_pylist() == pytest.approx([100.0, 0.0, 0.0])
    assert run.timeline["algorithm"][0].as_py() == "p2p/Simple"


# -- two servers: ring with PXN, tree, hierarchical ------------------------------------------------

def _two_servers(**network: Any):
    """2 servers x 2 GPUs (NVSwitch 400 GB/s), one 25 GB/s NIC per GPU, one switch."""
    return cluster_from({
        "name": "two", "accelerator_models": {"T": {**TEST_ACCEL, "hbm_GiB": 80.0}},
        "nodes": [{"name": "n", "count": 2, "accelerator": "T", "accelerators": 2,
                   "nvlink": {"bandwidth_GBps": 400.0}, "pcie": {"bandwidth_GBps": 100.0},
                   "nics": {"count": 2, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "single-switch"},
        "network": {"latency_scale": 0.0, "protocol": "Simple", "link_efficiency": EXACT,
                    **network},
    })


def _all_reduce_on_two(**network: Any) -> tuple[float, str]:
    run = replay(workload(_one("all_reduce", 4, GB), {"g": [0, 1, 2, 3]}), _two_servers(**network))
    return run.makespan_us, run.timeline["algorithm"][0].as_py()


def test_ring_uses_one_channel_per_rail_and_pxn() -> None:
    # 2 channels (one per NIC rail), each hop 2(p-1)/p / 2 = 0.75 S; each NIC direction
    # carries one channel's crossing: 0.75 GB at 25 GB/s = 30 ms.
    t, algo = _all_reduce_on_two(algorithm="ring")
    assert algo == "ring/Simple" and t == pytest.approx(30_000.0)


def test_double_binary_tree_by_hand() -> None:
    # Per rail, each NIC direction carries two of the four S/4 tree flows (one per tree):
    # S/2 at 25 GB/s, at tree Simple's 0.9 of bandwidth: 1e9 / (0.9 * 50e3) us.
    t, algo = _all_reduce_on_two(algorithm="tree")
    assert algo == "tree/Simple" and t == pytest.approx(1e9 / 45e3)


def test_hierarchical_by_hand() -> None:
    # Reduce-scatter in each server (0.5 S over 400 GB/s NVLink), all-reduce across servers
    # per rail (0.5 S over a 25 GB/s NIC), all-gather in each server: 1250 + 20000 + 1250 us.
    t, algo = _all_reduce_on_two(algorithm="hierarchical")
    assert algo == "hierarchical/Simple" and t == pytest.approx(22_500.0)


def test_auto_picks_the_fastest_algorithm() -> None:
    t, algo = _all_reduce_on_two()
    assert algo == "tree/Simple" and t == pytest.approx(1e9 / 45e3)


def test_forced_algorithm_that_does_not_apply_is_an_error() -> None:
    with pytest.raises(SimulationError, match="algorithm 'nvls' cannot run all_reduce on 4"):
        _all_reduce_on_two(algorithm="nvls")


def test_ring_hops_leave_through_the_rail_owner() -> None:
    layout = Layout(devices=("a0", "a1", "b0", "b1"), hosts=((0, 1), (2, 3)),
                    rails=("nic0", "nic1", "nic0", "nic1"), nvls_switch=(None, None))
    assert layout.channel_rails() == ["nic0", "nic1"]
    assert ring_hops(layout, "nic1") == [("a1", "a0"), ("a0", "a1", "b1"), ("b1", "b0"),
                                         ("b0", "b1", "a1")]
    assert ring_hops(layout, "nic1", pxn=False)[1] == ("a0", "b1")
    (ph,) = plan("tree", "all_reduce", layout)
    assert len(ph.paths) == 2 * 2 * (4 + 2) and np.allclose(ph.share, 0.25)
    assert [len(ph.paths) for ph in plan("hierarchical", "all_reduce", layout)] == [4, 4, 4]


# -- NVLS ------------------------------------------------------------------------------------------

def _nvls_box(efficiency: float):
    return cluster_from({
        "name": "nvls", "accelerator_models": {"T": {**TEST_ACCEL, "nvls": True}},
        "nodes": [{"accelerator": "T", "accelerators": 4, "nvlink": {"bandwidth_GBps": 400.0}}],
        "network": {"latency_scale": 0.0, "link_efficiency": EXACT,
                    "nvls_efficiency": efficiency},
    })


@pytest.mark.parametrize(("efficiency", "algo", "expected"), [
    (0.5, "ring/Simple", 1.5e9 / 400e3),   # NVLS would take 1e9 / (0.5 * 400e3) = 5 ms
    # After NVLS's pipeline fill: 2 chunks of 128 KiB on 16 channels x 4 heads, at its rate.
    (0.9, "nvls/Simple", (1e9 + 2 * 131072 * 64) / (0.9 * 400e3)),
])
def test_nvls_sends_S_up_and_gets_S_back(efficiency: float, algo: str, expected: float) -> None:
    run = replay(workload(_one("all_reduce", 4, GB), {"g": [0, 1, 2, 3]}), _nvls_box(efficiency))
    assert run.timeline["algorithm"][0].as_py() == algo
    assert run.makespan_us == pytest.approx(expected)


# -- contention and oversubscription ---------------------------------------------------------------

def _leaf_spine_4():
    """4 one-GPU servers, 2 per leaf, one spine; every link 25 GB/s."""
    return cluster_from({
        "name": "ls", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "s", "count": 4, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "pcie": {"bandwidth_GBps": 100.0},
                   "nics": {"count": 1, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "leaf-spine", "nodes_per_leaf": 2, "spines": 1,
                   "spine_link": {"bandwidth_GBps": 25.0}},
        "network": {"latency_scale": 0.0, "link_efficiency": EXACT, "algorithm": "ring"},
    })


def test_two_jobs_rings_sharing_a_leaf_uplink_slow_each_other() -> None:
    # Job A on servers 0 and 2, job B on 1 and 3: both rings cross leaf0 -> spine.
    cluster = _leaf_spine_4()
    a = _one("all_reduce", 2, GB)
    alone = replay(workload([{**r, "rank": (0, 2)[r["rank"]]} for r in a], {"g": [0, 2]},
                            world=4), cluster, "packed")
    rows = [{**r, "rank": (0, 2)[r["rank"]], "group": "A"} for r in a] + [
        {**r, "rank": (1, 3)[r["rank"]], "group": "B"} for r in a]
    both = replay(workload(rows, {"A": [0, 2], "B": [1, 3]}), cluster)
    # Alone: 2(p-1)/p * S = 1 GB at 25 GB/s = 40 ms; together each gets 12.5 GB/s.
    assert alone.makespan_us == pytest.approx(40_000.0)
    assert both.makespan_us == pytest.approx(80_000.0)
    up = next(r for r in both.links.to_pylist() if (r["src"], r["dst"]) == (
        "fabric/leaf0", "fabric/spine0"))
    assert up["max_flows"] == 2 and up["saturated_us"] == pytest.approx(80_000.0)


def _rails(oversubscription: float):
    return cluster_from({
        "name": "rails", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "s", "count": 2, "accelerator": "T", "accelerators": 2,
                   "fabric": "pcie", "pcie": {"bandwidth_GBps": 100.0},
                   "nics": {"count": 2, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "rail-optimized", "nodes_per_leaf": 2, "spines": 1,
                   "oversubscription": oversubscription},
        "network": {"latency_scale": 0.0, "link_efficiency": EXACT},
    })


@pytest.mark.parametrize("oversubscription", [1.0, 2.0])
def test_oversubscribed_spine_slows_cross_rail_traffic_only(oversubscription: float) -> None:
    # Ranks: 0 = s0/gpu0 (rail 0), 1 = s0/gpu1 (rail 1), 2 = s1/gpu0, 3 = s1/gpu1.
    # Cross-rail: 0 -> 3 and 2 -> 1 both climb the rail-0 leaf's uplink, which carries
    # 2 x 25 / oversubscription GB/s. Same-rail: 0 -> 2 stays on its leaf.
    cross = [{"rank": 0, "kind": "send", "peer": 3, "comm_bytes": GB},
             {"rank": 3, "kind": "recv", "peer": 0, "comm_bytes": GB},
             {"rank": 2, "kind": "send", "peer": 1, "comm_bytes": GB},
             {"rank": 1, "kind": "recv", "peer": 2, "comm_bytes": GB}]
    run = replay(workload(cross), _rails(oversubscription))
    assert run.makespan_us == pytest.approx(40_000.0 * oversubscription)
    same = [{"rank": 0, "kind": "send", "peer": 2, "comm_bytes": GB},
            {"rank": 2, "kind": "recv", "peer": 0, "comm_bytes": GB},
            {"rank": 1, "kind": "host", "duration_us": 0.0},
            {"rank": 3, "kind": "host", "duration_us": 0.0}]
    assert replay(workload(same), _rails(oversubscription)).makespan_us == pytest.approx(40_000.0)


# -- the estimate the tuner uses is what the simulator does for a lone collective ----------------

@pytest.mark.parametrize("size", [1024, 3 * 10**6, 7 * 10**8])
def test_isolated_estimate_equals_simulation(size: int) -> None:
    from simcluster.topology import load_cluster
    from tests.conftest import ROOT

    cluster = load_cluster(ROOT / "topologies" / "dgx-h100.yaml")
    wl = workload(_one("all_reduce", 8, size), {"g": list(range(8))})
    run = simulate(bind(wl, cluster))
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {"g": tuple(range(8))})
    est = model.collective("g", "all_reduce", size).estimate_us
    assert run.makespan_us == pytest.approx(est, rel=1e-9)

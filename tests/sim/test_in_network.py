"""Reduction inside switches: NVLS in an NVLink domain of any size, NVLS-tree across domains,
CollNet (SHARP) direct and chain, with times by hand.

Links run at exactly their bandwidth (efficiency 1). Servers are 2 GPUs on an NVSwitch
(400 GB/s per direction), one PCIe switch, one NIC per GPU (a rail each) on one fabric switch,
unless a test says otherwise. ``S`` = 1 GB.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from simcluster.errors import SimulationError
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.sim.algorithms import plan
from simcluster.sim.comm import CommModel
from simcluster.sim.protocols import NVLS_TREE_NET_FACTOR, STEP_LATENCY_US
from simcluster.topology import Router
from tests.conftest import TEST_ACCEL, cluster_from, replay, workload

GB = 10**9
EXACT = {"nvlink": 1.0, "pcie": 1.0, "ib": 1.0, "memory": 1.0, "socket": 1.0}
NCCL_ONLY: dict[str, Any] = {"protocol_overhead_us": {}, "step_latency_scale": {}}


def _all_reduce(p: int, size: int = GB) -> Any:
    return workload([{"rank": r, "kind": "collective", "collective": "all_reduce",
                      "comm_bytes": size, "group": "g"} for r in range(p)],
                    {"g": list(range(p))})


def _servers(count: int = 2, gpus: int = 2, nic: float = 25.0, pcie: float = 100.0,
             fabric: dict[str, Any] | None = None, **network: Any):
    """``count`` servers of ``gpus`` NVLS-capable GPUs, one NIC per GPU, on ``fabric``."""
    spec: dict[str, Any] = {
        "name": "servers", "accelerator_models": {"T": {**TEST_ACCEL, "nvls": True}},
        "nodes": [{"name": "n", "count": count, "accelerator": "T", "accelerators": gpus,
                   "nvlink": {"bandwidth_GBps": 400.0}, "pcie": {"bandwidth_GBps": pcie},
                   "nics": {"count": gpus, "bandwidth_GBps": nic}}],
        "network": {"latency_scale": 0.0, "protocol": "Simple", "link_efficiency": EXACT,
                    "nvls_chunk_overhead_us": 0.0, **network},
    }
    if count > 1:
        spec["fabric"] = fabric or {"topology": "single-switch", "sharp": True}
    return cluster_from(spec)


def _run(cluster: Any, p: int = 4, size: int = GB) -> tuple[float, str]:
    run = replay(_all_reduce(p, size), cluster)
    return run.makespan_us, run.timeline["algorithm"][0].as_py()


# -- NVLS in one NVLink domain, whatever its size --------------------------------------------------

@pytest.mark.parametrize(("gpus", "ranks"), [(8, 8), (72, 72), (72, 16)])
def test_nvls_runs_in_an_nvlink_domain_of_any_size(gpus: int, ranks: int) -> None:
    # A GB200 NVL72 rack is one server of 72 GPUs on one NVSwitch: every rank (of all 72, or
    # of a part) sends S up and gets S back, at the NVLS efficiency: S / (0.9 x 400 GB/s),
    # after the pipeline fill: 2 stages x 16 channels x one head per rank x a 64 KiB chunk
    # (1 GB < 64 x 16 x ranks x 128 KiB), at the same rate.
    cluster = _servers(count=1, gpus=gpus, nvls_efficiency=0.9)
    t, algo = _run(cluster, ranks)
    fill = 2 * 16 * ranks * 65536
    assert algo == "nvls/Simple" and t == pytest.approx((GB + fill) / (0.9 * 400e3))


def test_nvls_below_8_mib_runs_16_kib_chunks_and_fills_its_pipeline() -> None:
    # 8 ranks, 4 MiB: NCCL's 16 KiB chunks on n = 16 channels x 8 heads; each chunk pays
    # c = 1 us. Plateau time per byte u = 1 / (0.9 x 400 GB/s); an op's raw time per byte
    # n u - c / 128 KiB. Time: S u + S c (1/16384 - 1/131072) / n, plus the fill of 2 chunks
    # per op: 2 (16384 (n u - c / 131072) + c).
    size, n, c = 4 << 20, 128, 1.0
    u = 1 / (0.9 * 400e3)
    cluster = _servers(count=1, gpus=8, nvls_efficiency=0.9, nvls_chunk_overhead_us=c,
                       algorithm="nvls")
    t, algo = _run(cluster, 8, size)
    expected = (size * u + size * c * (1 / 16384 - 1 / 131072) / n
                + 2 * (16384 * (n * u - c / 131072) + c))
    assert algo == "nvls/Simple" and t == pytest.approx(expected)
    # 1 GiB: 128 KiB chunks, the plateau rate, and a fill of 2 (131072 n u) = 2**25 u.
    t, _ = _run(cluster, 8, 1 << 30)
    assert t == pytest.approx(((1 << 30) + (1 << 25)) * u)


def test_nvls_below_one_round_of_chunks_takes_a_rounds_time() -> None:
    # 8 ranks: a round is 16 channels x 8 heads x 16 KiB = 2 MiB. 64 KiB and 1 MiB leave
    # channels idle (NCCL hands out whole chunks, channel by channel), so they take what
    # 2 MiB takes: S u + S c (1/16384 - 1/131072) / n + fill at S = 2 MiB.
    n, c = 128, 1.0
    u = 1 / (0.9 * 400e3)
    cluster = _servers(count=1, gpus=8, nvls_efficiency=0.9, nvls_chunk_overhead_us=c,
                       algorithm="nvls")
    size = 2 << 20
    expected = (size * u + size * c * (1 / 16384 - 1 / 131072) / n
                + 2 * (16384 * (n * u - c / 131072) + c))
    for s in (65536, 1 << 20, size):
        t, algo = _run(cluster, 8, s)
        assert algo == "nvls/Simple" and t == pytest.approx(expected)


def test_nvls_does_not_span_two_domains_nor_run_on_two_gpus() -> None:
    with pytest.raises(SimulationError, match=r"'nvls' cannot run all_reduce on 8 ranks over 2 "
                       r"server\(s\) \(it needs 3 or more ranks in one server whose NVSwitch"):
        _run(_servers(gpus=4, algorithm="nvls"), 8)
    # NCCL turns NVLS off for 2 GPUs in a node (and NVLS-tree with it).
    assert _run(_servers(count=1, gpus=2, nvls_efficiency=1.0), 2)[1] == "ring/Simple"
    with pytest.raises(SimulationError, match="'nvls-tree' cannot run"):
        _run(_servers(algorithm="nvls-tree"))


# -- NVLS-tree -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("nic", "expected"), [
    # Two servers of 4 GPUs, 4 rails: a tree per rail and its mirror, so each NIC direction
    # carries both halves of its rail's S/4, at NCCL's 0.70: S / (4 x 25 GB/s x 0.7).
    (25.0, GB / (4 * 25e3 * NVLS_TREE_NET_FACTOR)),
    # Fast NICs: each rank's NVLink carries S / nvls_efficiency each way: S / (0.5 x 400).
    (200.0, GB / (0.5 * 400e3)),
])
def test_nvls_tree_pipelines_the_switch_and_the_tree(nic: float, expected: float) -> None:
    cluster = _servers(gpus=4, nic=nic, pcie=400.0, nvls_efficiency=0.5, algorithm="nvls-tree")
    t, algo = _run(cluster, 8)
    assert algo == "nvls-tree/Simple" and t == pytest.approx(expected, rel=1e-9)


def test_nvls_tree_latency_is_its_base_and_two_steps_per_tree_level() -> None:
    # NVLS-tree base (a topology parameter) + 2 ceil(log2 N) network steps of NCCL's 19 us.
    cluster = _servers(gpus=4, nic=200.0, pcie=400.0, nvls_efficiency=0.5, algorithm="nvls-tree",
                       latency_scale=1.0, nvls_tree_base_latency_us=10.0, **NCCL_ONLY)
    step = STEP_LATENCY_US["nvls_tree"]["net"]["Simple"]
    assert _run(cluster, 8)[0] == pytest.approx(10.0 + 2 * step + GB / (0.5 * 400e3))


def test_nvls_tree_estimate_equals_simulation() -> None:
    # Its flows have different shares (NVLink S / 0.5, tree edges S / 5.6), yet move them at
    # one pace: the tuner's isolated estimate is what the flow network does.
    cluster = _servers(gpus=4, nvls_efficiency=0.5, latency_scale=1.0, algorithm="nvls-tree")
    run = simulate(bind(_all_reduce(8), cluster))
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {"g": tuple(range(8))})
    assert run.makespan_us == pytest.approx(model.collective("g", "all_reduce", GB).estimate_us,
                                            rel=1e-9)


# -- CollNet (SHARP) -------------------------------------------------------------------------------

def test_collnet_chain_sends_each_byte_once_up_and_once_down_each_nic() -> None:
    # Per rail (S/2): chain to the head inside each server, head -> switch -> head. Each
    # NIC direction carries S/2 at 25 GB/s = 20 ms (ring: 30 ms, tree: 22.2 ms).
    t, algo = _run(_servers(algorithm="collnet-chain"))
    assert algo == "collnet-chain/Simple" and t == pytest.approx(GB / 2 / 25e3)


def test_collnet_direct_pays_ncclS_hopper_factor() -> None:
    t, algo = _run(_servers(algorithm="collnet-direct"))
    assert algo == "collnet-direct/Simple" and t == pytest.approx(GB / 2 / (0.85 * 25e3))


def test_collnet_latencies_from_nccl_tables() -> None:
    # Chain: 2(g-1) NVLink steps of 4.75 us and one network step of 14 us; direct: 2 NVLink
    # steps of 8.0, one network step of 10.7 and 2(g-1) x 0.5 us of arity; base 0 (Simple).
    net = {"latency_scale": 1.0, **NCCL_ONLY}
    chain = _run(_servers(algorithm="collnet-chain", **net), size=0)[0]
    direct = _run(_servers(algorithm="collnet-direct", **net), size=0)[0]
    assert chain == pytest.approx(2 * 4.75 + 14.0)
    assert direct == pytest.approx(2 * 8.0 + 10.7 + 2 * 0.5)


def test_tuner_uses_collnet_only_where_enabled() -> None:
    assert _run(_servers())[1] == "tree/Simple"
    t, algo = _run(_servers(collnet=True))
    assert algo == "collnet-chain/Simple" and t == pytest.approx(GB / 2 / 25e3)


def test_collnet_needs_a_sharp_fabric() -> None:
    plain = _servers(fabric={"topology": "single-switch"}, collnet=True)
    assert _run(plain)[1] == "tree/Simple"
    with pytest.raises(SimulationError, match=r"'collnet-chain' cannot run .* \(it needs "
                       r"servers on a fabric with sharp: true\)"):
        _run(_servers(fabric={"topology": "single-switch"}, algorithm="collnet-chain"))


def _leaf_spine(**network: Any) -> Any:
    """4 one-GPU servers, 2 per leaf, one spine, every link 25 GB/s, SHARP switches."""
    return _servers(count=4, gpus=1, fabric={
        "topology": "leaf-spine", "nodes_per_leaf": 2, "spines": 1, "sharp": True,
        "spine_link": {"bandwidth_GBps": 25.0}}, **network)


def test_sharp_tree_reduces_in_each_switch_on_the_way_up() -> None:
    cluster = _leaf_spine(algorithm="collnet-chain")
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {"g": (0, 1, 2, 3)})
    (tree,) = model.layout("g").sharp
    assert tree.leaves == ("fabric/leaf0", "fabric/leaf0", "fabric/leaf1", "fabric/leaf1")
    assert tree.edges == (("fabric/leaf0", "fabric/spine0"), ("fabric/leaf1", "fabric/spine0"))
    # Every link carries S once each way (a leaf sends one reduced stream up, not two):
    # S / 25 GB/s = 40 ms; a ring would push 1.5 S through each NIC.
    run = replay(_all_reduce(4), cluster)
    assert run.makespan_us == pytest.approx(GB / 25e3)
    up = next(r for r in run.links.to_pylist()
              if (r["src"], r["dst"]) == ("fabric/leaf0", "fabric/spine0"))
    assert up["bytes"] == pytest.approx(GB)


def test_no_tree_where_a_switch_on_the_way_cannot_reduce() -> None:
    cluster = _servers(count=4, gpus=1, fabric={
        "topology": "leaf-spine", "nodes_per_leaf": 2, "spines": 1})
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {"g": (0, 1, 2, 3)})
    assert model.layout("g").sharp == ()
    layout = model.layout("g")
    with pytest.raises(ValueError, match="collnet-chain cannot run all_reduce"):
        plan("collnet-chain", "all_reduce", layout)


# -- the schema ------------------------------------------------------------------------------------

def test_sharp_is_for_switches_between_nics() -> None:
    with pytest.raises(ValidationError, match="sharp applies to fabrics of switches"):
        cluster_from({"name": "t", "accelerator_models": {"T": TEST_ACCEL},
                      "nodes": [{"accelerator": "T", "accelerators": 4, "fabric": "pcie"}],
                      "fabric": {"topology": "torus", "dims": [2, 2], "sharp": True,
                                 "link": {"bandwidth_GBps": 50.0}}})
    with pytest.raises(ValidationError, match="sharp applies to switches only"):
        cluster_from({"name": "t", "accelerator_models": {"T": TEST_ACCEL},
                      "devices": [{"name": "a", "kind": "accelerator", "model": "T",
                                   "sharp": True}]})
    explicit = cluster_from({"name": "t", "accelerator_models": {"T": TEST_ACCEL},
                             "devices": [{"name": "a", "kind": "accelerator", "model": "T"},
                                         {"name": "sw", "kind": "switch", "sharp": True}],
                             "links": [{"src": "a", "dst": "sw", "bandwidth_GBps": 1.0}]})
    assert explicit.graph.nodes["sw"]["sharp"] is True


def test_heads_per_server_are_capped_as_in_nccl() -> None:
    # 10 rails per server: CollNet Direct uses 8 heads (NCCL_MAX_DIRECT_ARITY + 1), chain
    # all 10 channels; each head's other 9 ranks send to it and get the result back.
    from simcluster.sim.collectives import AggregationTree, Layout

    g = 10
    layout = Layout(devices=tuple(f"{h}{i}" for h in "ab" for i in range(g)),
                    hosts=(tuple(range(g)), tuple(range(g, 2 * g))),
                    rails=tuple(f"nic{i}" for _ in "ab" for i in range(g)),
                    nvls_switch=("a/nvs", "b/nvs"),
                    sharp=(AggregationTree(("sw", "sw")),) * g)
    (direct,) = plan("collnet-direct", "all_reduce", layout)
    assert len(direct.paths) == 8 * (2 * 2 * (g - 1) + 2 * 2)
    assert direct.share.tolist() == [1 / 8] * len(direct.paths)
    (chain,) = plan("collnet-chain", "all_reduce", layout)
    assert len(chain.paths) == g * (2 * 2 * (g - 1) + 2 * 2)

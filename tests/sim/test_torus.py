"""Torus collectives: dimension-ordered bidirectional rings on a torus fabric, by hand.

The test tori run their ICI links at exactly their line rate (efficiency 1), 100 GB/s
(1e5 B/us) per link per direction, with a 500 ns hop latency and no per-call overhead, so
an all-reduce of S bytes costs the bytes per link of its phases over 1e5 B/us plus 0.5 us
per ring step.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from simcluster.errors import SimulationError
from simcluster.sim.algorithms import applicable, plan
from simcluster.sim.comm import CommModel
from simcluster.topology import Router
from simcluster.topology.cluster import Cluster
from tests.conftest import TEST_ACCEL, cluster_from, replay, workload

GB = 10**9
B_PER_US = 1e5  # 100 GB/s
HOP_US = 0.5


def _torus(dims: list[int], **network: Any) -> Cluster:
    chips = 1
    for d in dims:
        chips *= d
    return cluster_from({
        "name": "torus", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "h", "count": chips // 2, "accelerator": "T", "accelerators": 2,
                   "fabric": "pcie"}],
        "fabric": {"topology": "torus", "dims": dims,
                   "link": {"bandwidth_GBps": 100.0, "latency_ns": 500.0}},
        "network": {"collective_overhead_us": 0.0, "link_efficiency": {"ici": 1.0},
                    **network},
    })


def _model(cluster: Cluster, ranks: list[int]) -> CommModel:
    return CommModel(cluster, Router(cluster), cluster.accelerators, {"g": tuple(ranks)})


def _link_bytes(cluster: Cluster, ranks: list[int], collective: str) -> list[dict[str, float]]:
    """Per phase of the torus plan, bytes per byte of S on each router-to-router link."""
    layout = _model(cluster, ranks).layout("g")
    out = []
    for ph in plan("torus", collective, layout):
        load: Counter[str] = Counter()
        for (a, b), share in zip(ph.paths, ph.share.tolist()):
            u, v = cluster.graph.nodes[a]["nic"], cluster.graph.nodes[b]["nic"]
            load[f"{u}>{v}"] += share
        out.append(dict(load))
    return out


def _time(cluster: Cluster, ranks: list[int], collective: str, size: int) -> tuple[float, str]:
    wl = workload([{"rank": r, "kind": "collective", "collective": collective,
                    "comm_bytes": size, "group": "g"} for r in ranks], {"g": ranks})
    run = replay(wl, cluster)
    return run.makespan_us, run.timeline["algorithm"].to_pylist()[0]


def test_the_fabric_records_each_chips_coordinates() -> None:
    c = _torus([4, 4])
    assert c.graph.nodes[c.accelerators[6]]["torus"] == (2, 1)
    assert c.graph.nodes[c.accelerators[6]]["torus_dims"] == (4, 4)
    layout = _model(c, list(range(16))).layout("g")
    assert layout.torus is not None and layout.torus.hop_latency_us == HOP_US


def test_2x2x2_bytes_per_link_per_phase() -> None:
    # A ring of 2 is one link each way: both halves of a chip's data cross it, (n-1)/n of
    # what each chip holds: S/2, then S/4 on the shard, then S/8; all-gather mirrors it.
    c = _torus([2, 2, 2])
    phases = _link_bytes(c, list(range(8)), "all_reduce")
    assert [set(p.values()) for p in phases] == [{1 / 2}, {1 / 4}, {1 / 8}, {1 / 8}, {1 / 4},
                                                 {1 / 2}]
    assert [len(p) for p in phases] == [8] * 6  # 4 router pairs per dimension, both ways
    assert phases[0] == {f"fabric/ici{i}>fabric/ici{i ^ 1}": 1 / 2 for i in range(8)}


def test_2x2x2_all_reduce_time() -> None:
    # Forced: on a 2x2x2 the double binary tree, which loads every dimension's links at
    # once, is faster in the model (about 11,450 us), and the tuner takes it.
    t, algo = _time(_torus([2, 2, 2], algorithm="torus"), list(range(8)), "all_reduce", GB)
    assert algo == "torus/Simple"
    assert t == pytest.approx(2 * (1 / 2 + 1 / 4 + 1 / 8) * GB / B_PER_US + 6 * HOP_US,
                              rel=1e-9)  # 17,503 us


def test_4x4_bytes_per_link_per_phase() -> None:
    # Bidirectional rings of 4: each way (4-1)/4 of half the data, 3/8 S; then 3/32 S.
    c = _torus([4, 4])
    phases = _link_bytes(c, list(range(16)), "all_reduce")
    assert [set(p.values()) for p in phases] == [{3 / 8}, {3 / 32}, {3 / 32}, {3 / 8}]
    assert all(len(p) == 32 for p in phases)  # 16 chips x 2 directions along one dimension
    assert phases[0]["fabric/ici0>fabric/ici3"] == 3 / 8  # the wraparound link carries it
    assert phases[1]["fabric/ici0>fabric/ici12"] == 3 / 32


@pytest.mark.parametrize("collective, volume, steps", [
    ("all_reduce", 2 * (3 / 8 + 3 / 32), 12), ("all_gather", 3 / 8 + 3 / 32, 6),
    ("reduce_scatter", 3 / 8 + 3 / 32, 6)])
def test_4x4_times(collective: str, volume: float, steps: int) -> None:
    t, algo = _time(_torus([4, 4]), list(range(16)), collective, GB)
    assert algo == "torus/Simple"
    assert t == pytest.approx(volume * GB / B_PER_US + steps * HOP_US, rel=1e-9)


def test_all_gather_runs_the_dimensions_in_reverse() -> None:
    c = _torus([4, 2])
    gather = [set(p.values()) for p in _link_bytes(c, list(range(8)), "all_gather")]
    assert gather == [{1 / 4 * 1 / 2}, {3 / 8}]  # the ring of 2 first, on S/4 per chip


def test_one_ring_of_a_torus_is_a_sub_torus() -> None:
    # Chips 4..7 are the ring y=1 of a 4x4 torus: one bidirectional ring, 3/8 S each way.
    c = _torus([4, 4])
    assert [set(p.values()) for p in _link_bytes(c, [4, 5, 6, 7], "reduce_scatter")] == [
        {3 / 8}]
    t, algo = _time(c, [4, 5, 6, 7], "all_reduce", GB)
    assert algo == "torus/Simple"
    assert t == pytest.approx(2 * 3 / 8 * GB / B_PER_US + 6 * HOP_US, rel=1e-9)


@pytest.mark.parametrize("ranks", [[0, 1, 4, 5], [0, 1, 2], list(range(8)) + [8]])
def test_groups_that_are_no_sub_torus_do_not_get_it(ranks: list[int]) -> None:
    # A 2x2 block (no wraparound ring), part of a ring, a sub-torus plus one chip.
    c = _torus([4, 4])
    layout = _model(c, ranks).layout("g")
    assert not applicable("torus", "all_reduce", layout)
    t, algo = _time(c, ranks, "all_reduce", GB)
    assert not algo.startswith("torus")
    with pytest.raises(SimulationError):
        _time(_torus([4, 4], algorithm="torus"), ranks, "all_reduce", GB)


@pytest.mark.parametrize("size", [8, 64 * 1024, 16 * 2**20, GB])
def test_the_tuner_picks_it_over_the_ring_where_it_is_faster(size: int) -> None:
    c = _torus([4, 4])
    model = _model(c, list(range(16)))
    auto = model.collective("g", "all_reduce", size)
    ring = model.collective("g", "all_reduce", size, algorithm="ring")
    torus = model.collective("g", "all_reduce", size, algorithm="torus")
    assert torus.estimate_us < ring.estimate_us
    assert auto.algorithm == "torus" and auto.estimate_us == torus.estimate_us


def test_never_elsewhere() -> None:
    # The same 16 chips on one switch: no torus coordinates, so the tuner never considers it.
    c = cluster_from({"name": "switch", "accelerator_models": {"T": TEST_ACCEL},
                      "nodes": [{"name": "h", "count": 16, "accelerator": "T",
                                 "accelerators": 1, "fabric": "pcie", "nics": {"count": 1}}],
                      "fabric": {"topology": "single-switch"}})
    layout = _model(c, list(range(16))).layout("g")
    assert layout.torus is None and not applicable("torus", "all_reduce", layout)
    assert not _time(c, list(range(16)), "all_reduce", GB)[1].startswith("torus")


def test_the_bundled_v5p_slice_all_reduce() -> None:
    # 4x4x8: reduce-scatter moves 3/8 S, 3/32 S and 7/256 S per link each way (rings of 4,
    # 4 and 8); links run at 100 GB/s x 0.90 (ICI efficiency) = 9e4 B/us; 2 x (3+3+7) hops
    # of 1 us (at 8 bytes nearly all of it, above the 19.3 us launch floor).
    from simcluster import collective_perf
    from simcluster.topology import load_cluster
    from tests.conftest import ROOT

    cluster = load_cluster(ROOT / "topologies" / "tpu-v5p-4x4x8.yaml")
    small, large = collective_perf.run(cluster, "all_reduce", [8, 2**30], ranks=128)
    assert {small.algorithm, large.algorithm} == {"torus/Simple"}
    volume = 2 * (3 / 8 + 3 / 32 + 7 / 256)
    for row in (small, large):
        assert row.time_us == pytest.approx(volume * row.size / 9e4 + 26.0, rel=1e-9)
    assert large.time_us == pytest.approx(11_863.3, abs=0.1)

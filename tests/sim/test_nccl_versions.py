"""NCCL 2.27's ring LL rows (``sim/protocols.py``, ``NCCL_2_27``; the ``nccl-2.27`` library):
half the ring's bandwidth, capped at llMaxBw (141 GB/s on Hopper inside one server), and what
they do to one call on 8 H100."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simcluster.sim import algorithms as algs
from simcluster.sim import protocols as proto
from simcluster.sim.comm import CommModel
from simcluster.topology import Router, load_cluster
from tests.conftest import ROOT

MiB = 1 << 20


def _model(library: str) -> CommModel:
    cluster = load_cluster(ROOT / "topologies" / "dgx-h100.yaml")
    cluster = replace(cluster, network=cluster.network.model_copy(update={"library": library}))
    return CommModel(cluster, Router(cluster), cluster.accelerators, {"g": tuple(range(8))})


def test_the_2_27_rows_where_they_differ_from_2_18() -> None:
    old, new = proto.NCCL, proto.NCCL_2_27
    assert old.bandwidth_factor("ring", "LL", "all_reduce") == 0.25
    assert old.bandwidth_factor("ring", "LL", "all_gather") == pytest.approx(1 / 3)
    assert new.bandwidth_factor("ring", "LL", "all_reduce") == 0.5
    assert new.bandwidth_factor("ring", "LL", "all_gather") == 0.5  # no 1/3 case any more
    assert new.bandwidth_factor("ring", "LL128", "all_reduce") == 0.92  # unchanged
    assert new.base_latency_us("tree", "Simple") == 8.4 and old.base_latency_us(
        "tree", "Simple") == 0.0
    assert new.step_latency_us("tree", "pcie", "Simple") == 4.0
    assert new.step_latency_us("ring", "nvlink", "LL") == 0.6


def test_the_ll_cap_applies_to_ring_and_tree_ll() -> None:
    t = proto.NCCL_2_27
    assert t.ll_cap_GBps("ring", "LL", "hopper", 1) == 141.0
    assert t.ll_cap_GBps("tree", "LL", "ampere", 1) == 87.7
    assert t.ll_cap_GBps("ring", "LL", "blackwell", 1) == 282.0
    assert t.ll_cap_GBps("ring", "LL128", "hopper", 1) is None
    # Across servers: the non-AMD CPU row, 2 servers and 3 or more.
    assert t.ll_cap_GBps("ring", "LL", "hopper", 2) == 39.0
    assert t.ll_cap_GBps("tree", "LL", None, 8) == 20.4
    assert t.ll_cap_GBps("ring", "LL", None, 1) is None
    assert proto.NCCL.ll_cap_GBps("ring", "LL", "hopper", 1) is None  # 2.18: left out
    assert proto.NCCL.ll_cap_GBps("ring", "LL", "hopper", 2) is None


def test_architecture_is_the_oldest_family_and_unknown_gives_none() -> None:
    assert proto.nccl_arch(["h100"]) == "hopper"
    assert proto.nccl_arch(["h100", "a100"]) == "ampere"
    assert proto.nccl_arch(["b200"]) == "blackwell"
    assert proto.nccl_arch(["mi300x"]) is None
    assert proto.nccl_arch([]) is None


@pytest.mark.parametrize(("table", "collective", "ranks", "bus"), [
    ("ring", "all_reduce", 8, 1.75), ("ring", "all_gather", 8, 0.875),
    ("ring", "reduce_scatter", 4, 0.75), ("ring", "broadcast", 8, 1.0),
    ("tree", "all_reduce", 8, 2.0)])
def test_bus_bytes_per_byte_are_nccls_ratios(table: str, collective: str, ranks: int,
                                             bus: float) -> None:
    assert proto.nccl_bus_bytes(table, collective, ranks) == bus


def test_one_1_mib_ring_ll_all_reduce_on_8_h100_under_2_27() -> None:
    """Half of the ring's 348 GB/s of NVLink is over the cap, so the bytes move at exactly
    141 GB/s of busbw: base 6.6 + 14 steps x 0.6 us + 1 MiB x 1.75 / 141,000 B/us."""
    model = _model("nccl-2.27")
    layout = model.layout("g")
    phases = model.resolved(("g", "g", "ring", "all_reduce", 0), layout, "ring", "all_reduce")
    tuning = algs.get_algorithm("ring").tuning
    t = model.estimate_us(tuning, "LL", phases, "all_reduce", MiB, 1, 8)
    assert t == pytest.approx(6.6 + 14 * 0.6 + MiB * 1.75 / 141e3, rel=1e-12)
    # Under 2.18 the same call has a quarter of the ring, under the cap: slower.
    old = _model("nccl")
    assert old.estimate_us(tuning, "LL", old.resolved(
        ("g", "g", "ring", "all_reduce", 0), old.layout("g"), "ring", "all_reduce"),
        "all_reduce", MiB, 1, 8) > t + 4.0


@pytest.mark.parametrize(("size", "library", "label"), [
    (MiB, "nccl", "ring/LL"), (2 * MiB, "nccl", "nvls/Simple"),
    (2 * MiB, "nccl-2.27", "ring/LL"), (4 * MiB, "nccl-2.27", "nvls/Simple")])
def test_the_protocol_chosen_on_8_h100(size: int, library: str, label: str) -> None:
    assert _model(library).collective("g", "all_reduce", size).label == label

"""The fabric template registry: a toy fabric added through it alone builds, routes and
replays.

The toy (``tests/toys.py``) puts each server's NICs on its own switch and links the switches
in a line. Links run at exactly their bandwidth; the switch-to-switch links (10 GB/s) are
the narrowest, so a transfer's time is its bytes over its share of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from simcluster.errors import RegistryError, TopologyError
from simcluster.topology import Router, json_schema, load_cluster
from simcluster.topology.fabrics import (
    Fabric,
    fabric_names,
    get_fabric,
    register_fabric,
    registered_fabric,
)
from tests.conftest import TEST_ACCEL, replay, workload
from tests.toys import LINE

BUILT_IN = ("single-switch", "leaf-spine", "rail-optimized", "fat-tree", "torus")
EXACT = {"nvlink": 1.0, "pcie": 1.0, "ib": 1.0, "memory": 1.0, "socket": 1.0}


def _topology(fabric: dict[str, Any]) -> dict[str, Any]:
    """Three one-GPU servers (PCIe 100 GB/s, one 50 GB/s NIC) on ``fabric``."""
    return {
        "name": "line3",
        "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 3, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "pcie": {"bandwidth_GBps": 100.0},
                   "nics": {"count": 1, "bandwidth_GBps": 50.0}}],
        "fabric": fabric,
        "network": {"collective_overhead_us": 0.0, "latency_scale": 0.0,
                    "link_efficiency": EXACT},
    }


def _write(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


LINE_FABRIC = {"topology": "line", "spine_link": {"bandwidth_GBps": 10.0}}


def test_built_in_fabrics_in_registration_order() -> None:
    assert fabric_names() == BUILT_IN


def test_toy_fabric_builds_and_routes_along_the_line(tmp_path: Path) -> None:
    with registered_fabric(LINE):
        cluster = load_cluster(_write(tmp_path, _topology(LINE_FABRIC)))
    g = cluster.graph
    assert [n for n in g.nodes if n.startswith("fabric/")] == [
        "fabric/sw0", "fabric/sw1", "fabric/sw2"]
    assert g.has_edge("n0/nic0", "fabric/sw0") and g.has_edge("fabric/sw1", "fabric/sw2")
    assert not g.has_edge("fabric/sw0", "fabric/sw2")
    route = Router(cluster).route("n0/gpu0", "n2/gpu0")
    hops = [(cluster.link_src[i], cluster.link_dst[i]) for i in route.links.tolist()]
    assert [h for h in hops if h[0].startswith("fabric/")] == [
        ("fabric/sw0", "fabric/sw1"), ("fabric/sw1", "fabric/sw2"), ("fabric/sw2", "n2/nic0")]


def test_toy_fabric_replays_with_the_hand_computed_step_time(tmp_path: Path) -> None:
    # Rank 0 computes 100 us, then sends 1e8 B to rank 2; rank 1 sends 1e8 B to rank 2 at
    # once. Both cross sw1 -> sw2 (10 GB/s = 1e4 B/us): rank 1 alone for 100 us (1e6 B), then
    # both at 5e3 B/us until rank 1 is done at 100 + 9.9e7 / 5e3 = 19,900 us; rank 0, with
    # 1e6 B left, alone again: done at 20,000 us.
    wl = workload([
        {"rank": 0, "kind": "compute", "duration_us": 100.0},
        {"rank": 0, "kind": "send", "peer": 2, "comm_bytes": 10**8},
        {"rank": 1, "kind": "send", "peer": 2, "comm_bytes": 10**8},
        {"rank": 2, "kind": "recv", "peer": 0, "comm_bytes": 10**8, "stream": "from0"},
        {"rank": 2, "kind": "recv", "peer": 1, "comm_bytes": 10**8, "stream": "from1"},
    ])
    with registered_fabric(LINE):
        cluster = load_cluster(_write(tmp_path, _topology(LINE_FABRIC)))
    run = replay(wl, cluster)
    assert run.makespan_us == pytest.approx(20_000.0, rel=1e-9)
    t = run.timeline.to_pylist()
    end = {(r["rank"], r["kind"]): r["end_us"] for r in t}
    assert end[(1, "send")] == pytest.approx(19_900.0, rel=1e-9)
    assert end[(0, "send")] == pytest.approx(20_000.0, rel=1e-9)


def test_toy_fabric_check_reports_at_the_fabric_line(tmp_path: Path) -> None:
    with registered_fabric(LINE):
        with pytest.raises(TopologyError, match=r"line.yaml:\d+: fabric: a line fabric needs "
                           "spine_link.bandwidth_GBps"):
            load_cluster(_write(tmp_path, _topology({"topology": "line"})))


def test_schema_lists_the_toy_only_while_registered(tmp_path: Path) -> None:
    with registered_fabric(LINE):
        fabric = json.loads(json_schema())["$defs"]["FabricSpec"]
        assert fabric["properties"]["topology"]["enum"] == [*BUILT_IN, "line"]
        assert "- ``line``: toy: one switch per server" in fabric["description"]
    fabric = json.loads(json_schema())["$defs"]["FabricSpec"]
    assert fabric["properties"]["topology"]["enum"] == list(BUILT_IN)
    assert "line" not in fabric["description"]
    with pytest.raises(TopologyError, match="fabric.topology: input should be 'single-switch'"
                       ", 'leaf-spine', 'rail-optimized', 'fat-tree' or 'torus'"):
        load_cluster(_write(tmp_path, _topology(LINE_FABRIC)))


def test_a_taken_name_is_refused_unless_replaced() -> None:
    torus = get_fabric("torus")
    with pytest.raises(RegistryError, match="a fabric named 'torus' is already registered"):
        register_fabric(Fabric(name="torus", build=LINE.build))
    with registered_fabric(Fabric(name="torus", build=LINE.build), replace=True):
        assert fabric_names() == BUILT_IN  # replaced in place
        assert get_fabric("torus").build is LINE.build
    assert fabric_names() == BUILT_IN
    assert get_fabric("torus") is torus  # the built-in is back

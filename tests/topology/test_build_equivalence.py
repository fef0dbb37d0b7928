"""The fast topology build (issue 19) builds exactly the graph the per-node build did.

``build_digests.json`` holds, per case, a SHA-256 of everything a build makes: the graph's
nodes with their attributes (in order), every node's successors and predecessors with the
edge attributes (in adjacency order, which routing's tie-breaks follow), and the Cluster's
link arrays, accelerators, specs and template hosts. The digests were recorded with the
build as it was before it was made fast (commit d0a6bc2); regenerate them only for a
deliberate change of what a topology builds:

    python -m tests.topology.test_build_equivalence --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simcluster.topology import Cluster, build, load_cluster
from simcluster.topology.schema import TopologySpec
from tests.conftest import ROOT

DIGESTS = Path(__file__).parent / "data" / "build_digests.json"


def _spec(spec: dict[str, Any]) -> Cluster:
    return build(TopologySpec.model_validate(spec), source=spec["name"])


def _dgx(servers: int, fabric: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"dgx-h100-x{servers}",
            "nodes": [{"name": "node", "count": servers, "preset": "dgx-h100"}],
            "fabric": fabric}


GENERATED: dict[str, Callable[[], Cluster]] = {
    # bench_collectives.superpod at 2,048 GPUs: 32 servers per scalable unit, 32 spines
    "rail-optimized-2048": lambda: _spec(_dgx(256, {
        "topology": "rail-optimized", "nodes_per_leaf": 32, "spines": 32,
        "oversubscription": 1.0})),
    "fat-tree-k8": lambda: _spec(_dgx(16, {"topology": "fat-tree", "k": 8})),
    "leaf-spine-two-templates": lambda: _spec({
        "name": "ls",
        "nodes": [
            {"name": "h", "count": 3, "accelerator": "H100", "accelerators": 8,
             "fabric": "nvswitch", "nics": {"count": 4, "bandwidth_GBps": 50}},
            {"name": "a", "count": 3, "accelerator": "A100", "accelerators": 4,
             "fabric": "nvlink-mesh", "host": {"cpus": 2},
             "pcie": {"accelerators_per_switch": 2},
             "nics": {"count": 2, "bandwidth_GBps": 25}}],
        "fabric": {"topology": "leaf-spine", "nodes_per_leaf": 2, "spines": 3,
                   "oversubscription": 2.0}}),
    "single-switch-pcie": lambda: _spec({
        "name": "ss",
        "nodes": [{"name": "box", "count": 4, "accelerator": "A100", "accelerators": 4,
                   "fabric": "pcie", "nics": {"count": 2, "bandwidth_GBps": 25}}],
        "fabric": {"topology": "single-switch"}}),
    # a dimension of 2: both neighbours are one router (one link pair, not two)
    "torus-2x3x4": lambda: _spec({
        "name": "t",
        "nodes": [{"name": "tray", "count": 6, "accelerator": "H100", "accelerators": 4,
                   "fabric": "pcie", "nics": {"count": 0}}],
        "fabric": {"topology": "torus", "dims": [2, 3, 4],
                   "link": {"bandwidth_GBps": 45}}}),
    "explicit-devices-and-links": lambda: _spec({
        "name": "x",
        "nodes": [{"name": "n", "count": 3, "accelerator": "H100", "accelerators": 2,
                   "fabric": "nvswitch", "nics": {"count": 1, "bandwidth_GBps": 50}}],
        "fabric": {"topology": "single-switch"},
        "devices": [{"name": "extra/sw", "kind": "switch", "host": "extra"},
                    {"name": "extra/gpu0", "kind": "accelerator", "host": "extra",
                     "model": "H100", "nic": "n1/nic0"}],
        "links": [{"src": "extra/gpu0", "dst": "extra/sw", "bandwidth_GBps": 100,
                   "kind": "nvlink"},
                  {"src": "extra/sw", "dst": "n1/nic0", "bandwidth_GBps": 40,
                   "kind": "pcie"}]}),
}


def cases() -> dict[str, Callable[[], Cluster]]:
    """Every bundled topology and the generated fabrics above, by name."""
    bundled: dict[str, Callable[[], Cluster]] = {
        p.stem: (lambda p=p: load_cluster(p)) for p in sorted((ROOT / "topologies").glob("*.yaml"))}
    return {**bundled, **GENERATED}


def digest(cluster: Cluster) -> str:
    """SHA-256 of what a build makes (see the module docstring), order included."""
    g = cluster.graph
    doc = {
        "nodes": [[n, list(a.items())] for n, a in g.nodes(data=True)],
        "succ": [[n, [[v, list(d.items())] for v, d in g.succ[n].items()]] for n in g],
        "pred": [[n, [[u, list(d.items())] for u, d in g.pred[n].items()]] for n in g],
        "links": [cluster.link_src, cluster.link_dst, cluster.link_kind,
                  cluster.bandwidth_Bpus.tolist(), cluster.latency_us.tolist(),
                  cluster.route_cost.tolist(), cluster.capacity_Bpus.tolist()],
        "accelerators": cluster.accelerators,
        "specs": [[a, s.model] for a, s in cluster.specs.items()],
        "template_hosts": list(cluster.template_hosts.items()),
        "name": cluster.name, "compute": sorted(cluster.compute),
        "cost": cluster.cost_usd_per_hour,
    }
    text = json.dumps(doc, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(cases()))
def test_build_is_unchanged(name: str) -> None:
    recorded = json.loads(DIGESTS.read_text())
    assert digest(cases()[name]()) == recorded[name]


def test_every_case_has_a_recorded_digest() -> None:
    assert sorted(json.loads(DIGESTS.read_text())) == sorted(cases())


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    DIGESTS.write_text(json.dumps({k: digest(f()) for k, f in sorted(cases().items())},
                                  indent=1) + "\n")

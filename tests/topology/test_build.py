"""Template expansion: counts, names, bandwidths, and the catalog."""

from __future__ import annotations

import pytest

from simcluster.topology import catalog, load_cluster
from tests.conftest import ROOT, TEST_ACCEL, cluster_from


def _bw(c, src: str, dst: str) -> float:
    return float(c.bandwidth_Bpus[c.graph.edges[src, dst]["id"]] / 1e3)


def test_h100_2node_counts_by_hand() -> None:
    c = load_cluster(ROOT / "topologies" / "h100-2node.yaml")
    # Per host: 2 cpu, 2 mem, 8 pcie switches, 8 nics, 8 gpus, 1 nvswitch. Directed links per
    # host: mem-cpu 4, cpu-cpu 2, pcie-cpu 16, nic-pcie 16, gpu-pcie 16, gpu-nvswitch 16 = 70;
    # fabric: 16 nics x 2 = 32. Total 172.
    assert c.counts() == {"cpu": 4, "memory": 4, "switch": 19, "nic": 16, "accelerator": 16,
                          "links": 172, "hosts": 2}
    assert _bw(c, "node0/gpu3", "node0/nvswitch") == 450.0
    assert _bw(c, "node0/gpu3", "node0/pcie3") == 63.0
    assert _bw(c, "node1/nic5", "fabric/switch") == 50.0
    assert c.graph.nodes["node1/gpu5"]["nic"] == "node1/nic5"
    assert c.specs["node0/gpu0"].hbm_bytes == 80 * 2**30


def test_leaf_spine_default_is_non_blocking() -> None:
    c = cluster_from({
        "name": "ls", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 4, "accelerator": "T", "accelerators": 2,
                   "fabric": "pcie", "nics": {"count": 2, "bandwidth_GBps": 25}}],
        "fabric": {"topology": "leaf-spine", "nodes_per_leaf": 2, "spines": 2},
    })
    # 2 leaves of 2 servers x 2 NICs x 25 GB/s = 100 GB/s down; 2 spines -> 50 GB/s each.
    assert _bw(c, "fabric/leaf0", "fabric/spine1") == 50.0
    assert _bw(c, "n3/nic1", "fabric/leaf1") == 25.0
    assert sum(1 for n in c.graph if n.startswith("fabric/")) == 4


def test_nvlink_mesh_splits_bandwidth_over_peers() -> None:
    c = cluster_from({"name": "m", "nodes": [{"accelerator": "A100", "accelerators": 4,
                                              "fabric": "nvlink-mesh"}]})
    assert _bw(c, "node0/gpu0", "node0/gpu3") == pytest.approx(300.0 / 3)


def test_pcie_box_has_no_nvlink() -> None:
    c = load_cluster(ROOT / "topologies" / "pcie-8gpu.yaml")
    assert "nvlink" not in c.link_kind
    assert _bw(c, "box0/gpu0", "box0/pcie0") == catalog.PCIE_X16_GBPS[4]


def test_accelerator_without_nvlink_on_nvswitch_is_an_error() -> None:
    from simcluster.errors import TopologyError

    with pytest.raises(TopologyError, match="has no NVLink"):
        cluster_from({"name": "x", "accelerator_models": {"T": TEST_ACCEL},
                      "nodes": [{"accelerator": "T", "fabric": "nvswitch"}]})


def test_catalog_lookup_by_alias_and_sources() -> None:
    assert catalog.lookup("nvidia h100 80gb hbm3").model == "H100-SXM5-80GB"
    assert catalog.lookup("a100").model == "A100-SXM4-80GB"
    assert catalog.lookup("B900") is None
    for spec in catalog.ACCELERATORS.values():
        assert spec.source, spec.model
        assert spec.peak_flops_per_us("bf16") > 0


def test_catalog_peaks_bound_measured_numbers(shared_data) -> None:
    """Measured GEMM TFLOP/s and STREAM bandwidth on Azure nodes stay below the catalog's peaks,
    and the compute model's default efficiencies sit inside the measured range."""
    import re

    from simcluster.sim.compute import ComputeModel

    for fname, model, dtype in (("azure-nd-h100-v5.md", "H100-SXM5-80GB", "fp8"),
                                ("azure-nd-a100-v4.md", "A100-SXM4-80GB", "bf16")):
        text = (shared_data / "calibration" / fname).read_text()
        spec = catalog.ACCELERATORS[model]
        gemm = [float(x) for x in re.findall(r"\|\s*\d+\s*\|\s*\d+\s*\|\s*\d+\s*\|\s*([\d.]+)", text)]
        hbm = [float(x) for x in re.findall(r"\|\s*(?:Copy|Mul|Add|Triad|Dot)\s*\|\s*([\d.]+)", text)]
        assert gemm and hbm
        peak = spec.peak_tflops[dtype] if dtype in spec.peak_tflops else spec.peak_tflops["bf16"]
        assert max(gemm) < peak
        assert max(hbm) * 1e3 < spec.hbm_GBps
        best_mem_eff = max(hbm) * 1e3 / spec.hbm_GBps
        cal = ComputeModel().calibration(spec)
        assert cal.memory_efficiency <= best_mem_eff + 0.02
        assert cal.gemm_efficiency * peak <= max(gemm) * 1.02


def test_dgx_preset_fills_the_datasheet_and_keeps_overrides() -> None:
    c = cluster_from({"name": "p", "nodes": [{"preset": "dgx-a100", "count": 2,
                                               "nics": {"bandwidth_GBps": 50}}],
                      "fabric": {"topology": "single-switch"}})
    assert len(c.accelerators) == 16 and c.specs["node0/gpu0"].model == "A100-SXM4-80GB"
    assert _bw(c, "node0/nic3", "fabric/switch") == 50.0  # override kept
    # 2 GPUs and 2 NICs per PCIe Gen4 switch: gpu2 and nic2 share pcie1.
    assert c.graph.has_edge("node0/gpu2", "node0/pcie1") and c.graph.has_edge(
        "node0/nic2", "node0/pcie1")
    assert _bw(c, "node0/gpu0", "node0/pcie0") == catalog.PCIE_X16_GBPS[4]


def test_rail_optimized_puts_rail_i_of_a_unit_on_one_leaf() -> None:
    c = cluster_from({
        "name": "r", "nodes": [{"preset": "dgx-h100", "count": 4}],
        "fabric": {"topology": "rail-optimized", "nodes_per_leaf": 2, "spines": 4,
                   "oversubscription": 2.0},
    })
    leaves = [n for n in c.graph if n.startswith("fabric/su")]
    assert len(leaves) == 2 * 8  # 2 scalable units x 8 rails
    assert c.graph.has_edge("node3/nic5", "fabric/su1-rail5")
    # Leaf down: 2 servers x 50 GB/s; up: 100 / 2 (oversubscription) / 4 spines = 12.5.
    assert _bw(c, "fabric/su0-rail0", "fabric/spine3") == 12.5


def test_fat_tree_k4_counts_and_capacity() -> None:
    c = cluster_from({
        "name": "ft", "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 16, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "nics": {"count": 1, "bandwidth_GBps": 25}}],
        "fabric": {"topology": "fat-tree", "k": 4},
    })
    switches = [n for n in c.graph if n.startswith("fabric/")]
    assert len(switches) == 4 * 2 + 4 * 2 + 4  # edges, aggregations, cores
    assert c.graph.has_edge("n15/nic0", "fabric/pod3-edge1")
    assert _bw(c, "fabric/pod0-agg1", "fabric/core3") == 25.0
    from simcluster.errors import TopologyError

    with pytest.raises(TopologyError, match="at most 2 NICs"):
        cluster_from({"name": "ft", "accelerator_models": {"T": TEST_ACCEL},
                      "nodes": [{"count": 3, "accelerator": "T", "accelerators": 1,
                                 "fabric": "pcie", "nics": {"count": 1}}],
                      "fabric": {"topology": "fat-tree", "k": 2}})


def test_torus_links_neighbours_with_wraparound_and_routes_through_routers() -> None:
    from simcluster.topology import Router

    c = load_cluster(ROOT / "topologies" / "tpu-torus-4x4x4.yaml")
    # Chip 0 at (0,0,0): neighbours 1 (x), 4 (y), 16 (z), and by wraparound 3, 12, 48.
    nbrs = {v for v in c.graph.succ["fabric/ici0"] if v.startswith("fabric/ici")}
    assert nbrs == {f"fabric/ici{i}" for i in (1, 3, 4, 12, 16, 48)}
    path = Router(c).path("host0/gpu0", "host0/gpu3")  # chips 0 and 3: one wrap hop
    assert path == ["host0/gpu0", "fabric/ici0", "fabric/ici3", "host0/gpu3"]
    assert "nvlink" not in c.link_kind


def test_fabric_needs_its_shape(tmp_path) -> None:
    from simcluster.errors import TopologyError

    for fabric, msg in (({"topology": "fat-tree"}, "even k"),
                        ({"topology": "torus"}, "needs dims"),
                        ({"topology": "rail-optimized"}, "nodes_per_leaf")):
        p = tmp_path / "t.yaml"
        import yaml

        p.write_text(yaml.safe_dump({"name": "t", "nodes": [{"preset": "dgx-h100"}],
                                     "fabric": fabric}))
        with pytest.raises(TopologyError, match=msg):
            load_cluster(p)


def test_a_link_given_twice_names_where_the_first_came_from() -> None:
    from simcluster.errors import TopologyError

    spec = {"name": "dup", "nodes": [{"name": "n", "count": 2, "accelerator": "H100",
                                      "accelerators": 2, "fabric": "nvswitch",
                                      "nics": {"count": 1, "bandwidth_GBps": 50}}],
            "fabric": {"topology": "single-switch"},
            "links": [{"src": "n1/gpu0", "dst": "n1/nvswitch", "bandwidth_GBps": 10,
                       "kind": "nvlink"}]}
    with pytest.raises(TopologyError, match=r"a link from 'n1/gpu0' to 'n1/nvswitch' already "
                                            r"exists \(nodes\[0\]\)"):
        cluster_from(spec)


def test_servers_of_a_template_are_copies_of_the_first_renamed() -> None:
    c = cluster_from({"name": "t", "nodes": [
        {"name": "a", "count": 3, "accelerator": "H100", "accelerators": 4,
         "fabric": "nvswitch", "nics": {"count": 2, "bandwidth_GBps": 50}}],
        "fabric": {"topology": "single-switch"}})
    first = [n.removeprefix("a0/") for n in c.graph if n.startswith("a0/")]
    for host in ("a1", "a2"):
        assert [n.removeprefix(f"{host}/") for n in c.graph if n.startswith(f"{host}/")] == first
        assert c.graph.nodes[f"{host}/gpu3"] == {"kind": "accelerator", "model": "H100-SXM5-80GB",
                                                 "nic": f"{host}/nic1", "host": host,
                                                 "template": 0}
    # link ids of a copied server follow its first link id, as template_hosts says
    ti, base = c.template_hosts["a2"]
    assert (ti, c.link_src[base]) == (0, "a2/mem0")

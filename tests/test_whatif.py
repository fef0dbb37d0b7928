"""What-ifs: stragglers, faster links, other accelerators."""

from __future__ import annotations

import pytest

from simcluster.analysis import bottleneck_links, critical_path
from simcluster.errors import SimulationError, TopologyError
from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.topology import load_cluster
from simcluster.topology.transform import scale_links, with_device
from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel
from tests.conftest import ROOT, servers, workload


@pytest.mark.parametrize("rank", [0, 5])
def test_a_straggler_stretches_the_step_as_the_critical_path_predicts(rank: int) -> None:
    # One rank 1.5x slower: every compute op on the (compute-bound) critical path takes 50 %
    # longer, and the others wait for it at each all-reduce.
    cluster = servers(2, 4)
    wl = data_parallel(DataParallelConfig(ranks=8, dims=TransformerDims(layers=4)))
    base = simulate(bind(wl, cluster))
    path = critical_path(base)
    compute_on_path = sum(d for c, d in zip(path["category"].to_pylist(),
                                             path["duration_us"].to_pylist()) if c == "compute")
    slow = simulate(bind(wl, cluster), SimOptions(slowdown={rank: 1.5}))
    assert slow.makespan_us - base.makespan_us == pytest.approx(0.5 * compute_on_path, rel=1e-9)


def test_bad_slowdown_is_an_error() -> None:
    wl = workload([{"rank": 0, "kind": "compute", "duration_us": 1.0}])
    with pytest.raises(SimulationError, match="--slow-rank 3=2"):
        simulate(bind(wl, servers(1, 1)), SimOptions(slowdown={3: 2.0}))


def test_scaling_nic_links_speeds_a_nic_bound_all_reduce() -> None:
    # Ranks 0 and 8 sit on different servers: their all-reduce crosses the NICs only.
    c = load_cluster(ROOT / "topologies" / "h100-2node.yaml")
    rows = [{"rank": r, "kind": "collective" if r in (0, 8) else "host",
             "collective": "all_reduce" if r in (0, 8) else None,
             "comm_bytes": 2**30 if r in (0, 8) else None, "duration_us": None if r in (
                 0, 8) else 0.0, "group": "g" if r in (0, 8) else None} for r in range(16)]
    wl = workload(rows, {"g": [0, 8]})
    fast = scale_links(c, {"ib": 2.0})
    assert fast.capacity_Bpus.sum() > c.capacity_Bpus.sum()
    assert fast.capacity_Bpus[list(c.link_kind).index("nvlink")] == c.capacity_Bpus[
        list(c.link_kind).index("nvlink")]
    base, faster = simulate(bind(wl, c)), simulate(bind(wl, fast))
    # The NIC (50 GB/s x 0.95) limits at first; doubled, it leaves PCIe Gen5 (63 x 0.82 =
    # 51.66 GB/s) as the next bottleneck: the bandwidth part shrinks by 47.5 / 51.66.
    assert bottleneck_links(base, 1)[0]["role"] == "nic"
    assert bottleneck_links(faster, 1)[0]["role"] == "pcie"
    moving = [r["end_us"] - r["start_us"] for r in base.flows.to_pylist()]
    moving_fast = [r["end_us"] - r["start_us"] for r in faster.flows.to_pylist()]
    assert sum(moving_fast) == pytest.approx(sum(moving) * 47.5 / (63 * 0.82))
    assert simulate(bind(wl, scale_links(c, {"nvlink": 2.0}))).makespan_us == pytest.approx(
        base.makespan_us)
    with pytest.raises(TopologyError, match="use one of"):
        scale_links(c, {"infiniband": 2.0})
    with pytest.raises(TopologyError, match="must be positive"):
        scale_links(c, {"ib": 0.0})


def test_with_device_changes_every_accelerator() -> None:
    c = with_device(load_cluster(ROOT / "topologies" / "h100-2node.yaml"), "A100")
    assert {s.model for s in c.specs.values()} == {"A100-SXM4-80GB"}
    assert c.graph.nodes["node1/gpu3"]["model"] == "A100-SXM4-80GB"
    with pytest.raises(TopologyError, match="known models"):
        with_device(c, "Z9000")


def test_a100_to_h100_speedup_lies_between_hbm_and_gemm_ratios() -> None:
    # A generated step has no recorded durations: on another device every op is re-timed by
    # the calibrated roofline. Memory-bound ops speed up by the sustained HBM ratio, large
    # GEMMs by the sustained GEMM ratio; the step's compute lands between the two.
    import numpy as np

    from simcluster.sim.compute import ComputeModel
    from simcluster.topology.catalog import ACCELERATORS
    from simcluster.workload.generate.registry import generate

    wl = generate("transformer", {"preset": "llama2-7b", "layers": 2, "dp": 8,
                                  "global_batch": 8, "zero": 1})
    a100 = load_cluster(ROOT / "topologies" / "azure-nd-a100-v4.yaml")
    h100 = with_device(a100, "H100-SXM5-80GB")
    model = ComputeModel()
    a, h = ACCELERATORS["A100-SXM4-80GB"], ACCELERATORS["H100-SXM5-80GB"]
    hbm = (h.hbm_GBps * model.calibration(h).memory_efficiency) / (
        a.hbm_GBps * model.calibration(a).memory_efficiency)
    n = 8192.0
    gemm = (model.roofline_us(np.array([2 * n**3]), np.array([6 * n * n]), "bf16", a)[0]
            / model.roofline_us(np.array([2 * n**3]), np.array([6 * n * n]), "bf16", h)[0])

    def compute_us(cluster) -> float:
        t = simulate(bind(wl, cluster)).timeline
        keep = [k == "compute" and r == 0 for k, r in zip(t["kind"].to_pylist(),
                                                            t["rank"].to_pylist())]
        return float(sum(e - s for e, s, k in zip(t["end_us"].to_pylist(),
                                                  t["start_us"].to_pylist(), keep) if k))

    speedup = compute_us(a100) / compute_us(h100)
    assert 1.7 < hbm < speedup < gemm * 1.05

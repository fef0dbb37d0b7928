"""Collective algorithms: the plans, and their simulated time against the ring formulas."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.sim.collectives import plan
from tests.conftest import ends, replay, star, workload

GB = 10**9


def _collective_run(collective: str, p: int, size: int, *, latency_ns: float = 0.0,
                    overhead_us: float = 0.0, root: int | None = None) -> float:
    """Simulated time of one collective on a p-accelerator star of 100 GB/s links."""
    rows = [{"rank": r, "kind": "collective", "collective": collective, "comm_bytes": size,
             "group": "g", "root": root} for r in range(p)]
    run = replay(workload(rows, {"g": list(range(p))}), star(p, 100.0, latency_ns, overhead_us))
    return run.makespan_us


@pytest.mark.parametrize("p", [2, 3, 4, 8, 16])
def test_ring_all_reduce_matches_the_formula(p: int) -> None:
    # Each ring hop crosses two 500 ns links (up to the switch, down to the neighbour), so one
    # latency step is 1 us; 2(p-1) steps; 5 us fixed overhead; bandwidth 100 GB/s = 1e5 B/us.
    size = 1 * GB
    expected = 5.0 + 2 * (p - 1) / p * size / 1e5 + 2 * (p - 1) * 1.0
    got = _collective_run("all_reduce", p, size, latency_ns=500.0, overhead_us=5.0)
    assert got == pytest.approx(expected, rel=1e-3)
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("collective", ["all_gather", "reduce_scatter"])
def test_ring_all_gather_and_reduce_scatter(collective: str) -> None:
    p, size = 4, 1 * GB
    expected = (p - 1) / p * size / 1e5 + (p - 1) * 1.0
    assert _collective_run(collective, p, size, latency_ns=500.0) == pytest.approx(expected)


@pytest.mark.parametrize("collective", ["broadcast", "reduce"])
def test_pipelined_chain_broadcast_and_reduce(collective: str) -> None:
    p, size = 4, 1 * GB
    expected = size / 1e5 + (p - 1) * 1.0
    got = _collective_run(collective, p, size, latency_ns=500.0, root=2)
    assert got == pytest.approx(expected)


def test_all_to_all_direct() -> None:
    # Each rank sends S/p to each of the p-1 others: its uplink carries (p-1)/p * S at 100 GB/s.
    p, size = 4, 1 * GB
    assert _collective_run("all_to_all", p, size) == pytest.approx((p - 1) / p * size / 1e5)


def test_barrier_costs_only_latency() -> None:
    assert _collective_run("barrier", 4, 0, latency_ns=500.0, overhead_us=5.0) == (
        pytest.approx(5.0 + 6 * 1.0))


def test_single_rank_collective_costs_only_overhead() -> None:
    assert _collective_run("all_reduce", 1, GB, overhead_us=7.0) == pytest.approx(7.0)


def test_send_recv_one_flow_plus_route_latency() -> None:
    rows = [
        {"rank": 0, "kind": "send", "peer": 1, "comm_bytes": GB},
        {"rank": 1, "kind": "compute", "duration_us": 100.0},
        {"rank": 1, "kind": "recv", "peer": 0, "comm_bytes": GB},
    ]
    run = replay(workload(rows), star(2, 100.0, latency_ns=500.0, overhead_us=2.0))
    t = ends(run)
    # The send waits for the recv to be posted at 100 us; then 2 us + 10 ms + 1 us.
    assert t[(0, 0)] == pytest.approx((0.0, 100.0 + 2.0 + 10_000.0 + 1.0))
    assert t[(1, 1)] == pytest.approx((100.0, 10_103.0))
    assert run.timeline["wait_us"].to_pylist() == pytest.approx([100.0, 0.0, 0.0])


def test_plan_shapes() -> None:
    (ph,) = plan("all_reduce", 800, 4)
    assert ph.src.tolist() == [0, 1, 2, 3] and ph.dst.tolist() == [1, 2, 3, 0]
    assert ph.nbytes.tolist() == [1200.0] * 4 and ph.latency_steps == 6 and ph.coupled
    (ph,) = plan("broadcast", 100, 4, root=2)
    assert list(zip(ph.src.tolist(), ph.dst.tolist())) == [(2, 3), (3, 0), (0, 1)]
    (ph,) = plan("reduce", 100, 4, root=2)
    assert list(zip(ph.src.tolist(), ph.dst.tolist())) == [(3, 0), (0, 1), (1, 2)]
    (ph,) = plan("all_to_all", 400, 3)
    assert len(ph.src) == 6 and np.all(ph.nbytes == 400 / 3) and not ph.coupled
    assert plan("all_reduce", 800, 1) == []
    with pytest.raises(ValueError):
        plan("gossip", 1, 4)


def test_ring_order_goes_through_a_server_before_leaving_it() -> None:
    # Group listed in an interleaved order across two 2-GPU servers; the ring must still cross
    # the fabric only twice (once each way), so each NIC link carries one ring flow.
    from tests.conftest import cluster_from, TEST_ACCEL

    cluster = cluster_from({
        "name": "two-servers",
        "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 2, "accelerator": "T", "accelerators": 2,
                   "fabric": "nvswitch", "nvlink": {"bandwidth_GBps": 400.0},
                   "nics": {"count": 1, "bandwidth_GBps": 10.0}}],
        "fabric": {"topology": "single-switch"},
        "network": {"collective_overhead_us": 0.0},
    })
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce", "comm_bytes": GB,
             "group": "g"} for r in range(4)]
    run = replay(workload(rows, {"g": [0, 2, 1, 3]}), cluster)
    nic_up = [r for r in run.links.to_pylist() if r["src"].endswith("nic0") and r["kind"] == "ib"]
    assert [r["max_flows"] for r in nic_up] == [1, 1]
    # Bottleneck: one 10 GB/s NIC per crossing, 2*3/4 GB per flow = 150 ms (+ latencies).
    assert run.makespan_us == pytest.approx(150_000.0, rel=1e-3)

"""Replay semantics: stream order, dependencies, overlap, memory, deadlocks, mismatches."""

from __future__ import annotations

import pytest

from simcluster.errors import (
    CollectiveMismatchError,
    DeadlockError,
    OutOfMemoryError,
    SimulationError,
    TopologyError,
)
from tests.conftest import TEST_ACCEL, cluster_from, ends, replay, star, workload

GB = 10**9
GIB = 2**30


def test_stream_order() -> None:
    wl = workload([
        {"rank": 0, "kind": "compute", "duration_us": 10.0},
        {"rank": 0, "kind": "compute", "duration_us": 5.0},
        {"rank": 0, "kind": "host", "duration_us": 1.0},
    ])
    assert list(ends(replay(wl, star(1))).values()) == [(0.0, 10.0), (10.0, 15.0), (15.0, 16.0)]


def test_streams_run_concurrently_and_cross_stream_deps_wait() -> None:
    wl = workload([
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 10.0},
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 5.0},
        {"rank": 0, "stream": "b", "kind": "compute", "duration_us": 3.0},
        {"rank": 0, "stream": "b", "kind": "compute", "duration_us": 4.0, "deps": [1]},
    ])
    t = ends(replay(wl, star(1)))
    assert t[(0, 2)] == (0.0, 3.0)  # b runs alongside a
    assert t[(0, 3)] == (15.0, 19.0)  # waits for op 1 on stream a


def test_dep_on_an_earlier_op_of_the_same_stream_is_free() -> None:
    wl = workload([
        {"rank": 0, "kind": "compute", "duration_us": 10.0},
        {"rank": 0, "kind": "compute", "duration_us": 5.0, "deps": [0]},
    ])
    assert ends(replay(wl, star(1)))[(0, 1)] == (10.0, 15.0)


def test_compute_overlaps_communication() -> None:
    # Rank r: stream c computes 20 ms; stream m all-reduces 1 GB on 2 ranks (10 ms at
    # 100 GB/s) from t=0. Step = 20 ms, not 30.
    rows = []
    for r in range(2):
        rows.append({"rank": r, "stream": "c", "kind": "compute", "duration_us": 20_000.0})
        rows.append({"rank": r, "stream": "m", "kind": "collective", "collective": "all_reduce",
                     "comm_bytes": GB, "group": "dp"})
    run = replay(workload(rows, {"dp": [0, 1]}), star(2))
    t = ends(run)
    assert t[(0, 1)] == pytest.approx((0.0, 10_000.0))
    assert run.makespan_us == pytest.approx(20_000.0)


def test_collective_waits_for_the_slowest_rank_and_reports_the_wait() -> None:
    rows = [
        {"rank": 0, "kind": "compute", "duration_us": 100.0},
        {"rank": 0, "kind": "collective", "collective": "barrier", "group": "g"},
        {"rank": 1, "kind": "compute", "duration_us": 300.0},
        {"rank": 1, "kind": "collective", "collective": "barrier", "group": "g"},
    ]
    run = replay(workload(rows, {"g": [0, 1]}), star(2))
    t = ends(run)
    assert t[(0, 1)] == (100.0, 300.0) and t[(1, 1)] == (300.0, 300.0)
    assert run.timeline["wait_us"].to_pylist() == [0.0, 200.0, 0.0, 0.0]


def test_roofline_duration_when_none_is_recorded() -> None:
    # 100 TFLOP/s peak x 0.7 = 70 FLOP/ps -> 7e9 FLOP take 100 us; bytes side: 1e6 B at
    # 1000 GB/s x 0.87 = 1.149 us. Compute bound: 100 us (launch overhead 0 for T).
    wl = workload([{"rank": 0, "kind": "compute", "flops": 7e9, "bytes_accessed": 10**6,
                    "dtype": "bf16"}])
    assert ends(replay(wl, star(1)))[(0, 0)] == pytest.approx((0.0, 100.0))
    wl = workload([{"rank": 0, "kind": "compute", "flops": 1.0, "bytes_accessed": 87 * 10**6}])
    assert ends(replay(wl, star(1)))[(0, 0)] == pytest.approx((0.0, 100.0))


def _host_box(pcie_GBps: float = 50.0, memory_GBps: float = 1000.0,
              pcie_efficiency: float = 1.0) -> object:
    return cluster_from({
        "name": "box",
        "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "h", "accelerator": "T", "accelerators": 1, "fabric": "pcie",
                   "pcie": {"bandwidth_GBps": pcie_GBps, "latency_ns": 0},
                   "host": {"cpus": 1, "memory_GBps": memory_GBps}}],
        "network": {"link_efficiency": {"pcie": pcie_efficiency, "memory": 1.0}},
    })


def test_memcpy_is_a_flow_over_pcie() -> None:
    # mem -> cpu (1000 GB/s, 100 ns) -> pcie switch (50) -> gpu (50): 1 GB at 50 GB/s =
    # 20 ms plus the 0.1 us memory-link latency.
    wl = workload([{"rank": 0, "kind": "memcpy", "copy_kind": "H2D", "comm_bytes": GB}])
    run = replay(wl, _host_box())
    assert ends(run)[(0, 0)] == pytest.approx((0.0, 20_000.1))
    pcie = [r for r in run.links.to_pylist() if r["kind"] == "pcie" and r["bytes"]]
    assert {(r["src"], r["dst"]) for r in pcie} == {("h0/cpu0", "h0/pcie0"), ("h0/pcie0", "h0/gpu0")}


def test_links_run_at_their_kinds_efficiency() -> None:
    # PCIe at 82 % of 50 GB/s = 41 GB/s: 1 GB takes 1e9 / 41e3 us, plus 0.1 us.
    wl = workload([{"rank": 0, "kind": "memcpy", "copy_kind": "H2D", "comm_bytes": GB}])
    run = replay(wl, _host_box(pcie_efficiency=0.82))
    assert ends(run)[(0, 0)][1] == pytest.approx(1e9 / 41e3 + 0.1)
    pcie = [r for r in run.links.to_pylist() if r["src"] == "h0/pcie0"]
    assert pcie[0]["capacity_GBps"] == pytest.approx(41.0) and pcie[0]["bandwidth_GBps"] == 50.0


def test_copies_in_both_directions_do_not_contend_but_same_direction_does() -> None:
    rows = [
        {"rank": 0, "stream": "a", "kind": "memcpy", "copy_kind": "H2D", "comm_bytes": GB},
        {"rank": 0, "stream": "b", "kind": "memcpy", "copy_kind": "D2H", "comm_bytes": GB},
        {"rank": 0, "stream": "c", "kind": "memcpy", "copy_kind": "H2D", "comm_bytes": GB},
    ]
    t = ends(replay(workload(rows), _host_box()))
    assert t[(0, 1)][1] == pytest.approx(20_000.1)  # D2H alone in its direction
    assert t[(0, 0)][1] == pytest.approx(40_000.1)  # the two H2D share 50 GB/s
    assert t[(0, 2)][1] == pytest.approx(40_000.1)


def test_d2d_copy_uses_hbm_bandwidth() -> None:
    # 2 x 0.87e9 B read+write at 1000 GB/s x 0.87 = 2 ms.
    wl = workload([{"rank": 0, "kind": "memcpy", "copy_kind": "D2D", "comm_bytes": 870 * 10**6}])
    assert ends(replay(wl, star(1)))[(0, 0)] == pytest.approx((0.0, 2_000.0))


def test_memory_ledger_tracks_peak() -> None:
    wl = workload([
        {"rank": 0, "kind": "compute", "duration_us": 1.0, "alloc_bytes": GIB // 2},
        {"rank": 0, "kind": "compute", "duration_us": 1.0, "alloc_bytes": GIB // 4,
         "free_bytes": GIB // 2},
        {"rank": 0, "kind": "compute", "duration_us": 1.0, "alloc_bytes": GIB // 8},
    ])
    run = replay(wl, star(1))
    assert run.memory["peak_bytes"].to_pylist() == [GIB // 2 + GIB // 4]


def test_out_of_memory_names_rank_op_and_bytes() -> None:
    wl = workload([
        {"rank": 0, "kind": "compute", "duration_us": 1.0, "alloc_bytes": GIB // 2,
         "name": "weights"},
        {"rank": 0, "kind": "compute", "duration_us": 1.0, "alloc_bytes": GIB, "name": "fwd.big"},
    ])
    with pytest.raises(OutOfMemoryError) as err:
        replay(wl, star(1))
    msg = str(err.value)
    assert "out of memory" in msg and "rank 0" in msg and "'fwd.big'" in msg
    assert "0.50 GiB are live" in msg and "capacity 1.00 GiB" in msg
    e = err.value
    assert (e.rank, e.requested_bytes, e.live_bytes, e.capacity_bytes) == (0, GIB, GIB // 2, GIB)
    assert e.op == "rank 0 op 1 'fwd.big'" and e.breakdown == {}


def test_deadlock_when_a_rank_skips_a_collective() -> None:
    rows = [
        {"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8,
         "group": "g", "name": "grads"},
        {"rank": 1, "kind": "compute", "duration_us": 5.0},
    ]
    with pytest.raises(DeadlockError) as err:
        replay(workload(rows, {"g": [0, 1]}), star(2))
    msg = str(err.value)
    assert (err.value.unfinished, err.value.total, err.value.ranks) == (1, 2, [0])
    assert len(err.value.stuck) == 1 and err.value.stuck[0] in msg
    assert msg.startswith("deadlock")
    assert "rank 0" in msg and "'grads'" in msg and "group 'g'" in msg and "rank(s) 1" in msg


def test_deadlock_from_a_send_without_recv() -> None:
    rows = [{"rank": 0, "kind": "send", "peer": 1, "comm_bytes": 8},
            {"rank": 1, "kind": "compute", "duration_us": 1.0}]
    with pytest.raises(SimulationError, match="waits for rank 1 to post the matching recv"):
        replay(workload(rows), star(2))


def test_deadlock_from_a_dependency_cycle_across_streams() -> None:
    rows = [
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 1.0, "deps": [1]},
        {"rank": 0, "stream": "b", "kind": "compute", "duration_us": 1.0, "deps": [0]},
    ]
    with pytest.raises(SimulationError, match="deadlock.*waits for op"):
        replay(workload(rows), star(1))


def test_collectives_issued_in_a_different_order_are_reported() -> None:
    # Rank 0 issues (g1, g2), rank 1 (g2, g1): each waits in a different group forever.
    rows = [
        {"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8, "group": "g1"},
        {"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8, "group": "g2"},
        {"rank": 1, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8, "group": "g2"},
        {"rank": 1, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8, "group": "g1"},
    ]
    with pytest.raises(DeadlockError, match="deadlock") as err:
        replay(workload(rows, {"g1": [0, 1], "g2": [0, 1]}), star(2))
    assert err.value.ranks == [0, 1] and err.value.unfinished == 4


def test_mismatched_collective_sizes_are_an_error() -> None:
    rows = [
        {"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8, "group": "g"},
        {"rank": 1, "kind": "collective", "collective": "all_gather", "comm_bytes": 16, "group": "g"},
    ]
    with pytest.raises(CollectiveMismatchError, match="mismatched collective.*all_reduce of 8 "
                                                      "B.*all_gather of 16 B") as err:
        replay(workload(rows, {"g": [0, 1]}), star(2))
    assert (err.value.group, err.value.seq) == ("g", 0)
    assert err.value.ops == ("rank 0 op 0 'op0'", "rank 1 op 0 'op0'")


def test_copy_without_host_memory_is_a_topology_error() -> None:
    wl = workload([{"rank": 0, "kind": "memcpy", "copy_kind": "H2D", "comm_bytes": 8}])
    with pytest.raises(TopologyError, match="no memory node is reachable"):
        replay(wl, star(1))


def test_same_inputs_same_timeline() -> None:
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce", "comm_bytes": GB,
             "group": "g"} for r in range(4)]
    a = replay(workload(rows, {"g": [0, 1, 2, 3]}), star(4, latency_ns=300.0))
    b = replay(workload(rows, {"g": [0, 1, 2, 3]}), star(4, latency_ns=300.0))
    assert a.timeline.equals(b.timeline) and a.links.equals(b.links)


def test_simulations_in_threads_leave_the_garbage_collector_as_they_found_it() -> None:
    """The collector is one per process: overlapping simulations in threads (a Dask worker
    runs tasks in threads) share its freeze and pause, and the last to end restores it;
    their results are those of the main thread's."""
    import gc
    from concurrent.futures import ThreadPoolExecutor
    wl = workload([{"rank": 0, "kind": "compute", "duration_us": 10.0}])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ends(replay(wl, star(1))), range(8)))
    assert results == [ends(replay(wl, star(1)))] * 8
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_simulate_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    """The collector is paused while the engine compiles and the live objects are frozen
    while it runs; afterwards both are as the caller had them."""
    import gc
    wl = workload([{"rank": 0, "kind": "compute", "duration_us": 10.0}])
    (gc.enable if enabled else gc.disable)()
    try:
        assert list(ends(replay(wl, star(1))).values()) == [(0.0, 10.0)]
        assert gc.isenabled() is enabled
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()

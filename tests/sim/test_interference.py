"""Compute slowed by communication on its GPU (``sim/interference.py``): exact end times.

The accelerator has 100 SMs and computes 70 TFLOP/s (100 TFLOP/s at the uncalibrated 0.70),
so 7e10 FLOP take 1,000 us alone. With ``comm_sms`` 20, compute runs at 0.8 while a
collective runs on its GPU. A 2-rank ring all-reduce of 4e7 B over 100 GB/s links takes
400 us (each rank sends S bytes).
"""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.errors import SimulationError, TopologyError
from simcluster.placement import bind
from simcluster.scenario import Scenario, WhatIf
from simcluster.sim import SimOptions, simulate
from simcluster.sim.interference import compute_rate
from simcluster.topology.catalog import lookup
from tests.conftest import TEST_ACCEL, cluster_from, ends, replay, workload

MS_OF_WORK = 7e10  # FLOP: 1,000 us at 70 TFLOP/s
COLL_BYTES = 4 * 10**7  # 400 us on two ranks


def sms_topology(comm_sms: float | None, n: int = 2, units: int | None = 100
                 ) -> dict[str, Any]:
    """The topology dict of ``n`` accelerators with ``units`` SMs on one switch; ring, no
    latencies."""
    network: dict[str, Any] = {"collective_overhead_us": 0.0, "latency_scale": 0.0,
                               "algorithm": "ring"}
    if comm_sms is not None:
        network["comm_sms"] = comm_sms
    return {
        "name": "sms", "accelerator_models": {"T": {**TEST_ACCEL, "compute_units": units}},
        "devices": [{"name": f"a{i}", "kind": "accelerator", "model": "T"} for i in range(n)]
        + [{"name": "sw", "kind": "switch"}],
        "links": [{"src": f"a{i}", "dst": "sw", "bandwidth_GBps": 100.0, "latency_ns": 0.0}
                  for i in range(n)],
        "network": network}


def sms_cluster(comm_sms: float | None, n: int = 2, units: int | None = 100) -> Any:
    """The cluster of :func:`sms_topology`."""
    return cluster_from(sms_topology(comm_sms, n, units))


def overlapped() -> Any:
    """Two ranks each computing 1,000 us with a 400 us all-reduce from t=200."""
    return workload([compute(0), *comm_at(0, 200.0), compute(1), *comm_at(1, 200.0)],
                    {"dp": [0, 1]})


def compute(rank: int, flops: float = MS_OF_WORK, **extra: Any) -> dict[str, Any]:
    return {"rank": rank, "stream": "c", "kind": "compute", "flops": flops, "dtype": "bf16",
            **extra}


def comm_at(rank: int, start_us: float, stream: str = "m", group: str = "dp"
            ) -> list[dict[str, Any]]:
    """A host op of ``start_us`` then a 400 us all-reduce on ``group``."""
    return [{"rank": rank, "stream": stream, "kind": "host", "duration_us": start_us},
            {"rank": rank, "stream": stream, "kind": "collective", "collective": "all_reduce",
             "comm_bytes": COLL_BYTES, "group": group}]


def test_a_collective_slows_the_compute_it_overlaps_exactly() -> None:
    # 200 us of work alone, 400 us at 0.8 (320 us of work), then 480 us alone: ends at
    # 200 + 400 + 480 = 1,080 = 1,000 + 400 x (1 - 0.8). The collective keeps its 400 us.
    t = ends(replay(overlapped(), sms_cluster(20)))
    assert t[(0, 0)] == pytest.approx((0.0, 1080.0), abs=1e-9)
    assert t[(0, 2)] == pytest.approx((200.0, 600.0), abs=1e-9)


def test_compute_that_the_collective_outlasts_stretches_by_one_over_the_rate() -> None:
    # 100 us of work from t=250 (inside the 200-600 collective): 125 us at 0.8.
    rows = [{"rank": r, "stream": "c", "kind": "host", "duration_us": 250.0} for r in (0, 1)]
    rows += [compute(r, flops=7e9) for r in (0, 1)] + comm_at(0, 200.0) + comm_at(1, 200.0)
    t = ends(replay(workload(rows, {"dp": [0, 1]}), sms_cluster(20)))
    assert t[(0, 1)] == pytest.approx((250.0, 375.0), abs=1e-9)


def test_no_overlap_no_change() -> None:
    # The collective starts when the compute has ended.
    rows = [compute(0), *comm_at(0, 1000.0), compute(1), *comm_at(1, 1000.0)]
    wl = workload(rows, {"dp": [0, 1]})
    t = ends(replay(wl, sms_cluster(20)))
    assert t[(0, 0)] == (0.0, 1000.0) and t[(0, 2)] == pytest.approx((1000.0, 1400.0))
    assert t == ends(replay(wl, sms_cluster(0)))


def test_a_collective_on_another_gpu_does_not_slow_this_one() -> None:
    rows = [compute(0), *comm_at(1, 200.0), *comm_at(2, 200.0)]
    t = ends(replay(workload(rows, {"dp": [1, 2]}), sms_cluster(20, n=3)))
    assert t[(0, 0)] == (0.0, 1000.0)


def test_two_collectives_at_once_count_once() -> None:
    rows = [compute(0), *comm_at(0, 200.0, "m"), *comm_at(0, 200.0, "n", "tp"),
            compute(1), *comm_at(1, 200.0, "m"), *comm_at(1, 200.0, "n", "tp")]
    t = ends(replay(workload(rows, {"dp": [0, 1], "tp": [0, 1]}), sms_cluster(20)))
    # Both all-reduces share the links (800 us together), so compute runs at 0.8 from 200
    # to 1,000: 200 + 640 work by 1,000, then 160 alone.
    assert t[(0, 2)] == pytest.approx((200.0, 1000.0), abs=1e-9)
    assert t[(0, 0)] == pytest.approx((0.0, 1160.0), abs=1e-9)


def test_send_and_recv_slow_both_gpus() -> None:
    # 4e7 B over one 100 GB/s path: 400 us from t=200.
    rows = [compute(0), compute(1)]
    rows += [{"rank": r, "stream": "m", "kind": "host", "duration_us": 200.0} for r in (0, 1)]
    rows += [{"rank": 0, "stream": "m", "kind": "send", "peer": 1, "comm_bytes": COLL_BYTES},
             {"rank": 1, "stream": "m", "kind": "recv", "peer": 0, "comm_bytes": COLL_BYTES}]
    t = ends(replay(workload(rows, world=2), sms_cluster(20)))
    assert t[(0, 0)] == pytest.approx((0.0, 1080.0)) and t[(1, 0)] == pytest.approx(
        (0.0, 1080.0))


def test_ops_of_a_batch_and_a_waiting_stream_see_the_slowed_ends() -> None:
    # Two 500 us ops back to back: the first reaches 500 us of work at 200 + 300 / 0.8 =
    # 575, the second gets 25 x 0.8 = 20 by 600 and 480 alone after: 1,080. An op on another
    # stream that waits for the first starts at 575. Fused or not: the same.
    rows = [compute(0, flops=3.5e10), compute(0, flops=3.5e10),
            {"rank": 0, "stream": "x", "kind": "host", "duration_us": 1.0, "deps": [0]},
            *comm_at(0, 200.0), *comm_at(1, 200.0)]
    wl = workload(rows, {"dp": [0, 1]})
    for fuse in (True, False):
        run = simulate(bind(wl, sms_cluster(20)), SimOptions(fuse_timed_ops=fuse))
        t = ends(run)
        assert t[(0, 0)] == pytest.approx((0.0, 575.0), abs=1e-9)
        assert t[(0, 1)] == pytest.approx((575.0, 1080.0), abs=1e-9)
        assert t[(0, 2)] == pytest.approx((575.0, 576.0), abs=1e-9)


def test_a_fused_batch_spanning_the_collective_has_exact_op_boundaries() -> None:
    # Four 250 us ops in one batch; 200 us of work alone, then 0.8 from 200 to 600 (520 of
    # work by 600): op 0 reaches 250 at 200 + 50 / 0.8 = 262.5, op 1 500 at 200 + 300 / 0.8
    # = 575, op 2 750 at 600 + (750 - 520) = 830, op 3 1,000 at 1,080.
    rows = [compute(0, flops=1.75e10) for _ in range(4)] + comm_at(0, 200.0) + comm_at(1, 200.0)
    t = ends(replay(workload(rows, {"dp": [0, 1]}), sms_cluster(20)))
    got = [t[(0, k)] for k in range(4)]
    want = [(0.0, 262.5), (262.5, 575.0), (575.0, 830.0), (830.0, 1080.0)]
    assert got == [pytest.approx(w, abs=1e-9) for w in want]


def test_recorded_durations_are_not_slowed() -> None:
    # A recorded duration already holds the recording's overlap.
    rows = [{"rank": r, "stream": "c", "kind": "compute", "duration_us": 1000.0} for r in (0, 1)]
    rows += comm_at(0, 200.0) + comm_at(1, 200.0)
    t = ends(replay(workload(rows, {"dp": [0, 1]}), sms_cluster(20)))
    assert t[(0, 0)] == (0.0, 1000.0)


def test_a_part_without_an_sm_count_is_not_slowed() -> None:
    t = ends(replay(overlapped(), sms_cluster(20, units=None)))
    assert t[(0, 0)] == (0.0, 1000.0)


def test_the_what_if_sets_and_turns_off_the_sms() -> None:
    wl = overlapped()

    def end(comm_sms: float | None) -> float:
        run = Scenario(wl, sms_cluster(20), whatif=WhatIf(comm_sms=comm_sms)).run().run
        return ends(run)[(0, 0)][1]

    # 50 of 100 SMs: 0.5; 200 + 400 x 0.5 = 400 of work by 600, 600 after: 1,200.
    assert end(None) == pytest.approx(1080.0)
    assert end(50) == pytest.approx(1200.0)
    assert end(0) == 1000.0
    with pytest.raises(TopologyError, match="comm-sms"):
        end(-1)


def test_defaults_per_part_from_their_sm_counts() -> None:
    # 16 SMs for NCCL on DGX-class parts (NVIDIA/nccl#689): 1 - 16/108 and 1 - 16/132.
    assert compute_rate(lookup("A100"), None) == pytest.approx(1 - 16 / 108)
    assert compute_rate(lookup("H100"), None) == pytest.approx(1 - 16 / 132)
    assert compute_rate(lookup("H100"), 32) == pytest.approx(1 - 32 / 132)
    assert compute_rate(lookup("MI300X"), None) == 1.0  # no default
    assert compute_rate(lookup("MI300X"), 38) == pytest.approx(1 - 38 / 304)


def test_communication_that_takes_every_sm_is_refused() -> None:
    with pytest.raises(SimulationError, match="comm_sms"):
        compute_rate(lookup("H100"), 132)

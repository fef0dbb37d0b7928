"""fixed_duration: communication and copies replayed at their recorded duration."""

from __future__ import annotations

import pytest

from simcluster.analysis import rank_breakdown
from tests.conftest import ends, replay, servers, star, workload


def test_fixed_collective_needs_no_peers_and_counts_as_communication() -> None:
    # Rank 0 of a 16-rank job traced alone: its all-reduce lasts the recorded 40 us even
    # though the group's other members are absent, and the op after it starts at 50.
    wl = workload([
        {"rank": 0, "kind": "compute", "duration_us": 10.0},
        {"rank": 0, "kind": "collective", "collective": "all_reduce", "group": "dp",
         "duration_us": 40.0, "fixed_duration": True},
        {"rank": 0, "kind": "compute", "duration_us": 5.0},
    ], {"dp": [0]})
    run = replay(wl, star(1, overhead_us=5.0))
    assert ends(run) == {(0, 0): (0.0, 10.0), (0, 1): (10.0, 50.0), (0, 2): (50.0, 55.0)}
    row = rank_breakdown(run).to_pylist()[0]
    assert row["communication_us"] == 40.0 and row["compute_us"] == 15.0


def test_fixed_ops_do_not_rendezvous_but_modelled_ones_still_do() -> None:
    # Ranks 0 and 1 share group g. Rank 0's first all-reduce is fixed (20 us), so only the
    # second one, modelled, meets rank 1's: 1e6 B on 2 ranks at 100 GB/s = 2(1)/2 * 1e6 B /
    # 1e5 B/us = 10 us, starting when rank 0 arrives at 20.
    coll = {"kind": "collective", "collective": "all_reduce", "group": "g", "comm_bytes": 10**6}
    wl = workload([
        {"rank": 0, **coll, "duration_us": 20.0, "fixed_duration": True, "seq": 7},
        {"rank": 0, **coll, "seq": 0},
        {"rank": 1, **coll, "seq": 0},
    ], {"g": [0, 1]})
    t = ends(replay(wl, star(2)))
    assert t[(0, 0)] == (0.0, 20.0)
    assert t[(0, 1)] == pytest.approx((20.0, 30.0))
    assert t[(1, 0)] == pytest.approx((0.0, 30.0))


def test_fixed_copy_takes_its_recorded_time_not_a_flow() -> None:
    copy = {"rank": 0, "kind": "memcpy", "copy_kind": "H2D", "comm_bytes": 10**9}
    wl = workload([{**copy, "duration_us": 7.0, "fixed_duration": True},
                   {**copy, "duration_us": 7.0}])
    t = ends(replay(wl, servers(1, 1)))
    assert t[(0, 0)] == (0.0, 7.0)
    assert t[(0, 1)][1] - t[(0, 1)][0] > 1000.0  # 1 GB over PCIe: a flow, not 7 us

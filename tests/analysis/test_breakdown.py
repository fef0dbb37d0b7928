"""Per-rank breakdown and step times on hand-computable timelines."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.analysis import busiest_links, by_kind, rank_breakdown, step_times, summarize
from simcluster.analysis.breakdown import union_by_group
from tests.conftest import replay, star, workload

GB = 10**9


def test_union_by_group_by_hand() -> None:
    g = np.array([0, 0, 0, 1, 1, 2])
    s = np.array([0.0, 5.0, 20.0, 3.0, 3.0, 7.0])
    e = np.array([10.0, 12.0, 25.0, 4.0, 6.0, 7.0])
    assert union_by_group(g, s, e, 4).tolist() == [17.0, 3.0, 0.0, 0.0]


@pytest.fixture
def run():
    # Rank r: compute 0-100 on "c"; all-reduce of 1 GB (2 ranks, 100 GB/s -> 10 ms) on "m"
    # after rank r's compute of length 100 (rank 0) or 300 (rank 1); then compute 50 on "c".
    rows = []
    for r, first in ((0, 100.0), (1, 300.0)):
        rows += [
            {"rank": r, "stream": "c", "kind": "compute", "duration_us": first, "step": 0},
            {"rank": r, "stream": "m", "kind": "collective", "collective": "all_reduce",
             "comm_bytes": GB, "group": "dp", "deps": [0], "step": 0},
            {"rank": r, "stream": "c", "kind": "compute", "duration_us": 50.0, "step": 1},
            {"rank": r, "stream": "h", "kind": "host", "duration_us": 20.0, "step": 1},
        ]
    return replay(workload(rows, {"dp": [0, 1]}), star(2))


def test_breakdown_by_hand(run) -> None:
    b = {row["rank"]: row for row in rank_breakdown(run).to_pylist()}
    # The all-reduce runs 300 .. 10,300 on both ranks; rank 0 waited 200 for rank 1.
    # Compute: rank 0: 0-100 and 100-150; rank 1: 0-300 and 300-350.
    assert b[0]["compute_us"] == pytest.approx(150.0)
    assert b[1]["compute_us"] == pytest.approx(350.0)
    assert b[0]["communication_us"] == pytest.approx(10_000.0)
    assert b[0]["sync_wait_us"] == pytest.approx(200.0)
    assert b[1]["sync_wait_us"] == pytest.approx(0.0)
    # Rank 1's second compute (300-350) overlaps the all-reduce: 50 us of it is hidden.
    assert b[0]["exposed_comm_us"] == pytest.approx(10_000.0)
    assert b[1]["exposed_comm_us"] == pytest.approx(9_950.0)
    assert b[0]["host_us"] == pytest.approx(20.0)
    # Busy: rank 0: 0-150 (compute, host), 300-10,300 (comm) -> idle 150 of 10,300.
    assert run.makespan_us == pytest.approx(10_300.0)
    assert b[0]["idle_us"] == pytest.approx(150.0)
    assert b[1]["idle_us"] == pytest.approx(0.0)


def test_step_times_add_up_to_the_makespan(run) -> None:
    st = step_times(run).to_pylist()
    # Step 0 ends when the all-reduce ends (10,300); step 1's ops all ended by 350.
    assert [r["step"] for r in st] == [0, 1]
    assert st[0]["time_us"] == pytest.approx(10_300.0)
    assert st[1]["time_us"] == pytest.approx(0.0)
    assert sum(r["time_us"] for r in st) == pytest.approx(run.makespan_us)


def test_links_and_summary(run) -> None:
    top = busiest_links(run, 2).to_pylist()
    # Each uplink and downlink carries one ring flow of 1 GB for 10 ms of the 10.3 ms run.
    assert top[0]["bytes"] == GB and top[0]["utilization"] == pytest.approx(1e4 / 10_300)
    kinds = by_kind(run).to_pylist()
    assert kinds == [{"kind": "custom", "links": 4, "bytes": 4 * GB,
                      "mean_utilization": pytest.approx(1e4 / 10_300),
                      "max_utilization": pytest.approx(1e4 / 10_300),
                      "saturated_us": pytest.approx(40_000.0)}]
    s = summarize(run)
    assert s["step_time_us"] == pytest.approx(10_300.0 / 2)
    assert s["ranks"] == 2 and len(s["busiest_links"]) == 4

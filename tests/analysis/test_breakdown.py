"""Per-rank breakdown and step times on hand-computable timelines."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.analysis import busiest_links, by_kind, rank_breakdown, step_times, summarize
from simcluster.analysis.breakdown import union_by_group
from simcluster.analysis.links import load_over_time
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
    # The all-reduce runs 300 .. 10,300 on both ranks; rank 0 arrived at 100 and waited.
    # Rank 0: compute 0-100 and 100-150; host 0-20 (under compute); waits 100-300, of which
    # 150-300 is not under compute; moves data 300-10,300.
    assert b[0]["compute_us"] == pytest.approx(150.0)
    assert b[0]["host_us"] == pytest.approx(0.0)
    assert b[0]["sync_wait_us"] == pytest.approx(150.0)
    assert b[0]["exposed_comm_us"] == pytest.approx(10_000.0)
    assert b[0]["idle_us"] == pytest.approx(0.0)
    assert b[0]["communication_us"] == pytest.approx(10_000.0)
    # Rank 1: compute 0-300 and 300-350 (overlapping the all-reduce by 50 us).
    assert b[1]["compute_us"] == pytest.approx(350.0)
    assert b[1]["exposed_comm_us"] == pytest.approx(9_950.0)
    assert b[1]["overlapped_comm_us"] == pytest.approx(50.0)
    assert b[1]["sync_wait_us"] == pytest.approx(0.0)
    assert run.makespan_us == pytest.approx(10_300.0)
    # Rank 1 arrived last and made rank 0 wait 200 us: under 5 % of 10,300 us, so it is
    # counted but not flagged.
    assert (b[1]["last_arrivals"], b[1]["caused_wait_us"], b[1]["straggler"]) == (
        1, pytest.approx(200.0), False)
    assert (b[0]["last_arrivals"], b[0]["straggler"]) == (0, False)


def test_a_slow_rank_is_flagged_as_straggler() -> None:
    # Ranks 0-3 compute 1 ms then all-reduce 1 MB (10 us at 100 GB/s on 4 ranks: 15 us);
    # rank 2 computes 3 ms: the others wait 2 ms for it, over 5 % of the ~3 ms step.
    rows = []
    for r in range(4):
        rows.append({"rank": r, "kind": "compute", "duration_us": 3000.0 if r == 2 else 1000.0})
        rows.append({"rank": r, "kind": "collective", "collective": "all_reduce",
                     "comm_bytes": 10**6, "group": "g"})
    run = replay(workload(rows, {"g": [0, 1, 2, 3]}), star(4))
    b = rank_breakdown(run).to_pylist()
    assert [r["straggler"] for r in b] == [False, False, True, False]
    assert b[2]["caused_wait_us"] == pytest.approx(2000.0)
    assert b[0]["sync_wait_us"] == pytest.approx(2000.0)


def test_partition_sums_to_the_window_for_every_rank_and_step(run) -> None:
    from simcluster.analysis.breakdown import PARTITION, step_breakdown

    for table in (rank_breakdown(run), step_breakdown(run)):
        for row in table.to_pylist():
            assert sum(row[c] for c in PARTITION) == pytest.approx(row["window_us"], rel=1e-12)
    steps = step_breakdown(run).to_pylist()
    assert {(r["step"], r["window_us"]) for r in steps} == {(0, 10_300.0), (1, 0.0)}


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
    assert s["stragglers"] == []
    assert sum(s["limits"].values()) == pytest.approx(1.0)


def test_busiest_by_bytes_and_load_over_time(run) -> None:
    top = busiest_links(run, 4, by="bytes").to_pylist()
    assert [r["bytes"] for r in top] == [GB] * 4
    assert [r["link_id"] for r in top] == sorted(r["link_id"] for r in top)  # ties: by id
    load = load_over_time(run, [top[0]["link_id"], 10**6])
    # The ring flow crosses the link at 100 GB/s from 300 to 10,300 us, alone: one segment.
    start, end, rate = load[top[0]["link_id"]]
    assert start.tolist() == pytest.approx([300.0]) and end.tolist() == pytest.approx([10_300.0])
    assert rate.tolist() == pytest.approx([100.0])
    assert [len(a) for a in load[10**6]] == [0, 0, 0]  # a link that carried nothing


def test_symmetric_bottleneck_links_are_one_class() -> None:
    from simcluster.analysis.links import bottleneck_classes, bottleneck_links

    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce", "comm_bytes": 10**9,
             "group": "g"} for r in range(4)]
    run = replay(workload(rows, {"g": [0, 1, 2, 3]}), star(4))
    links = bottleneck_links(run, 100)
    classes = bottleneck_classes(run)
    # A ring on a star: every link that limited did so alike (same capacity, utilization,
    # limiting time), so one row stands for all of them.
    assert len(links) == 4 and len({r["limiting_us"] for r in links}) == 1
    assert len(classes) == 1 and classes[0]["alike"] == 3
    assert classes[0]["link_id"] == links[0]["link_id"]

"""Communication by kind of parallelism, per rank and per link, with hand-computed values.

Two test accelerators on a star of 100 GB/s links (1e5 B/us), no latencies: 1e7 B take
100 us on one link.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from simcluster.analysis.links import bottleneck_links
from simcluster.analysis.parallelism import comm_breakdown, link_parallelism
from simcluster.sim.result import Run
from tests.conftest import replay, star, workload

MB10 = 10**7


def _run() -> Run:
    """0-100 us: both ranks compute and all-reduce 1e7 B over ``tp.0`` (2 ranks: 1e7 B each
    way, 100 us). 100-200: rank 0 sends 1e7 B to rank 1 on ``cp_send``/``cp_recv`` (ring
    attention), while rank 1 computes 30 us. 200-250: 5e6 B on ``pp`` streams."""
    rows = []
    for r in range(2):
        rows.append({"rank": r, "kind": "compute", "stream": "compute", "duration_us": 100.0})
        rows.append({"rank": r, "kind": "collective", "collective": "all_reduce",
                     "comm_bytes": MB10, "group": "tp.0", "stream": "comm"})
    send, recv = ("send", 1), ("recv", 0)
    for (kind, peer), r in ((send, 0), (recv, 1)):
        rows.append({"rank": r, "op_id": 2, "kind": kind, "peer": peer, "comm_bytes": MB10,
                     "stream": f"cp_{kind}", "deps": [1]})
        rows.append({"rank": r, "op_id": 3, "kind": kind, "peer": peer,
                     "comm_bytes": MB10 // 2, "stream": "pp", "deps": [2]})
    rows.append({"rank": 1, "op_id": 4, "kind": "compute", "stream": "compute",
                 "duration_us": 30.0, "deps": [1]})
    return replay(workload(rows, {"tp.0": [0, 1]}), star(2))


def test_each_rank_time_by_kind_of_parallelism() -> None:
    run = _run()
    assert run.makespan_us == pytest.approx(250.0)
    got = {(r, p): (c, e) for r, p, c, e in zip(*comm_breakdown(run).to_pydict().values())}
    want = {(0, "cp"): (100, 100), (0, "pp"): (50, 50), (0, "tp"): (100, 0),
            (1, "cp"): (100, 70), (1, "pp"): (50, 50), (1, "tp"): (100, 0)}
    assert list(got) == list(want)
    for key, (comm, exposed) in want.items():
        assert got[key] == pytest.approx((comm, exposed), abs=1e-9), key


def test_a_window_clips_the_time() -> None:
    t = comm_breakdown(_run(), 150.0, 225.0).to_pylist()
    assert [(r["rank"], r["parallelism"], r["comm_us"], r["exposed_comm_us"]) for r in t] == [
        (0, "cp", pytest.approx(50.0), pytest.approx(50.0)),
        (0, "pp", pytest.approx(25.0), pytest.approx(25.0)),
        (1, "cp", pytest.approx(50.0), pytest.approx(50.0)),
        (1, "pp", pytest.approx(25.0), pytest.approx(25.0))]


def _attributed(streams: list[str]) -> Run:
    timeline = pa.table({"kind": ["send"] * len(streams), "group": [None] * len(streams),
                         "stream": streams})
    attr = pa.table({"link_id": pa.array([0, 0, 0, 1], pa.int32()),
                     "label": ["all_to_all ep.p0.b0.t0", "all_reduce dp.p0.t0", "send/recv",
                               "all_reduce edp.p0.t0.e1"],
                     "flow_us": [30.0, 10.0, 60.0, 5.0]})
    return Run(timeline, pa.table({}), pa.table({}), 1.0, attribution=attr)


@pytest.mark.parametrize(("streams", "p2p"), [(["cp_send"], "cp"), (["p2p"], "pp"),
                                              (["cp_send", "p2p"], "pp+cp")])
def test_link_limiting_time_by_kind(streams: list[str], p2p: str) -> None:
    rows = link_parallelism(_attributed(streams)).to_pylist()
    assert rows == [
        {"link_id": 0, "parallelism": p2p, "limiting_us": 60.0, "share": pytest.approx(0.6)},
        {"link_id": 0, "parallelism": "ep", "limiting_us": 30.0, "share": pytest.approx(0.3)},
        {"link_id": 0, "parallelism": "dp", "limiting_us": 10.0, "share": pytest.approx(0.1)},
        {"link_id": 1, "parallelism": "edp", "limiting_us": 5.0, "share": 1.0}]


def test_bottleneck_links_name_the_parallelism_of_their_traffic() -> None:
    run = _run()
    rows = bottleneck_links(run)
    assert rows
    for r in rows:
        kinds = r["parallelism"]
        assert sum(k["share"] for k in kinds) == pytest.approx(1.0)
        assert sum(k["limiting_us"] for k in kinds) == pytest.approx(r["limiting_us"])
        assert {k["parallelism"] for k in kinds} <= {"tp", "pp+cp"}

"""Chakra ET import: handmade traces with exact graphs and times, and the real traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.errors import WorkloadError
from simcluster.workload.chakra import import_chakra
from simcluster.workload.chakra.etfile import (
    COMM_COLL_NODE,
    COMM_RECV_NODE,
    COMM_SEND_NODE,
    COMP_NODE,
    decode_node,
)
from tests.conftest import ends, replay, star, workload
from tests.workload.etwriter import et_file, node

MB = 1 << 20


def _rows(wl, rank: int = 0) -> list[dict]:
    return [r for r in wl.ops.to_pylist() if r["rank"] == rank]


def test_node_fields_packed_or_not() -> None:
    for packed in (True, False):
        n = decode_node(node(7, "k", COMP_NODE, data_deps=(1, 2), ctrl_deps=(3,), duration=12,
                             attrs={"is_cpu_op": False, "tid": 7, "seq_id": -1, "x": 0.5,
                                    "pg_name": "dp", "dims": [1, 2]}, packed=packed))
        assert (n.id, n.name, n.type, n.data_deps, n.ctrl_deps, n.duration_us) == (
            7, "k", COMP_NODE, (1, 2), (3,), 12.0)
        assert n.attrs == {"is_cpu_op": False, "tid": 7, "seq_id": -1, "x": 0.5,
                           "pg_name": "dp", "dims": [1, 2]}


def _two_rank_dir(tmp_path: Path) -> Path:
    for r in range(2):
        et_file(tmp_path / f"job.{r}.et", [
            node(0, "gemm", COMP_NODE, duration=10, attrs={"is_cpu_op": False, "tid": 7}),
            node(1, "ar", COMM_COLL_NODE, data_deps=(0,),
                 attrs={"comm_type": 0, "comm_size": 1_000_000, "tid": 9}),
            node(2, "opt", COMP_NODE, data_deps=(1,), duration=4 + r,
                 attrs={"is_cpu_op": False, "tid": 7}),
        ])
    return tmp_path


def test_two_ranks_exact_graph_and_times(tmp_path: Path) -> None:
    wl = import_chakra(_two_rank_dir(tmp_path))
    assert wl.groups == {"world": (0, 1)}
    rows = _rows(wl)
    assert [(r["name"], r["kind"], r["stream"], r["deps"]) for r in rows] == [
        ("gemm", "compute", "cuda:7", None), ("ar", "collective", "cuda:9", [0]),
        ("opt", "compute", "cuda:7", [1])]
    assert (rows[1]["collective"], rows[1]["comm_bytes"], rows[1]["fixed_duration"]) == (
        "all_reduce", 1_000_000, None)
    # All-reduce of 1 MB on 2 ranks at 100 GB/s: 2 (1/2) 1e6 B / 1e5 B/us = 10 us.
    t = ends(replay(wl, star(2)))
    assert t[(0, 1)] == pytest.approx((10.0, 20.0))
    assert t[(1, 2)] == pytest.approx((20.0, 25.0))


def test_send_recv_pair(tmp_path: Path) -> None:
    et_file(tmp_path / "p.0.et", [node(0, "s", COMM_SEND_NODE,
                                       attrs={"comm_dst": 1, "comm_size": 200_000})])
    et_file(tmp_path / "p.1.et", [node(0, "r", COMM_RECV_NODE,
                                       attrs={"comm_src": 0, "comm_size": 200_000})])
    wl = import_chakra(tmp_path)
    assert [(r["kind"], r["peer"]) for r in wl.ops.to_pylist()] == [("send", 1), ("recv", 0)]
    # 200 kB over two 100 GB/s hops: 2 us.
    assert ends(replay(wl, star(2)))[(1, 0)] == pytest.approx((0.0, 2.0))


def test_dependencies_dropped_and_counted(tmp_path: Path) -> None:
    # Node 2 depends on itself and on absent node 9; node 1 control-depends on node 2, which
    # data-depends on node 1: the control dependency goes against the order and is dropped.
    et_file(tmp_path / "d.0.et", [
        node(1, "a", COMP_NODE, duration=3, ctrl_deps=(2,)),
        node(2, "b", COMP_NODE, duration=4, data_deps=(1, 2, 9)),
    ])
    wl = import_chakra(tmp_path)
    assert [(r["name"], r["deps"]) for r in _rows(wl)] == [("a", None), ("b", [0])]
    skipped = wl.meta.extra["import"]["skipped"]
    assert skipped == {"control dependencies against the data-dependency order": 1,
                       "dependency of a node on itself": 1,
                       "dependency on a node not in the trace": 1}


def test_order_is_topological_not_by_id(tmp_path: Path) -> None:
    et_file(tmp_path / "o.0.et", [
        node(1, "late", COMP_NODE, duration=1, data_deps=(5,)),
        node(5, "early", COMP_NODE, duration=2),
    ])
    wl = import_chakra(tmp_path)
    assert [(r["name"], r["deps"]) for r in _rows(wl)] == [("early", None), ("late", [0])]
    assert ends(replay(wl, star(1)))[(0, 1)] == (2.0, 3.0)


def test_data_dependency_cycle_is_an_error(tmp_path: Path) -> None:
    et_file(tmp_path / "c.0.et", [node(1, "a", COMP_NODE, duration=1, data_deps=(2,)),
                                  node(2, "b", COMP_NODE, duration=1, data_deps=(1,))])
    with pytest.raises(WorkloadError, match="node\\(s\\) 1, 2 form a cycle"):
        import_chakra(tmp_path)


def test_one_rank_collectives_replay_at_recorded_time(tmp_path: Path) -> None:
    et_file(tmp_path / "s.0.et", [
        node(0, "ar", COMM_COLL_NODE, duration=70, attrs={"comm_type": 0, "comm_size": 64}),
        node(1, "gather", COMM_COLL_NODE, attrs={"comm_type": 3, "comm_size": 64}),
    ])
    wl = import_chakra(tmp_path)
    assert [(r["name"], r["fixed_duration"]) for r in _rows(wl)] == [("ar", True)]
    rep = wl.meta.extra["import"]
    assert "cannot be retargeted" in rep["warnings"][0]
    assert rep["skipped"] == {"gather without a duration that cannot be modelled": 1}
    assert ends(replay(wl, star(1)))[(0, 0)] == (0.0, 70.0)


def test_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no .et files"):
        import_chakra(tmp_path)
    good = node(0, "a", COMP_NODE, duration=1)
    et_file(tmp_path / "x.0.et", [good])
    et_file(tmp_path / "x.2.et", [good])
    with pytest.raises(WorkloadError, match="ranks 0, 2 are not 0..1"):
        import_chakra(tmp_path)
    et_file(tmp_path / "y.2.et", [good])
    with pytest.raises(WorkloadError, match="x.2.et and y.2.et are both rank 2"):
        import_chakra(tmp_path)


def test_truncated_file(tmp_path: Path) -> None:
    p = et_file(tmp_path / "t.0.et", [node(0, "a", COMP_NODE, duration=1)])
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(WorkloadError, match="t.0.et: not a readable Chakra ET.*truncated"):
        import_chakra(tmp_path)


# -- real traces --------------------------------------------------------------------------------

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")


@pytest.mark.parametrize("coll", COLLECTIVES)
@pytest.mark.parametrize("npus", (4, 8, 16))
def test_microbenchmarks_match_the_network_model(shared_data: Path, coll: str,
                                                 npus: int) -> None:
    wl = import_chakra(shared_data / "chakra" / "microbenchmarks" / coll / f"{npus}npus_1MB")
    assert wl.num_ranks == npus and wl.groups == {"world": tuple(range(npus))}
    assert set(wl.ops.column("comm_bytes").to_pylist()) == {MB}
    cluster = star(npus, bandwidth_GBps=100.0, latency_ns=500.0, overhead_us=5.0)
    run = replay(wl, cluster)
    # The same collective written directly as a workload: the network model's time.
    direct = workload([{"rank": r, "kind": "collective", "collective": coll, "comm_bytes": MB,
                        "group": "g"} for r in range(npus)], {"g": list(range(npus))})
    assert run.makespan_us == replay(direct, cluster).makespan_us
    if coll == "all_reduce":
        # star() runs a ring with latency terms off: overhead + 2(p-1)/p * S/B.
        p = npus
        assert run.makespan_us == pytest.approx(5.0 + 2 * (p - 1) / p * MB / 1e5)


def test_feeder_trace(shared_data: Path, tmp_path: Path) -> None:
    import tarfile

    with tarfile.open(shared_data / "chakra" / "feeder_tests_trace.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    wl = import_chakra(next(tmp_path.rglob("*.et")))
    kinds = wl.ops.column("kind").to_pylist()
    assert (kinds.count("collective"), kinds.count("compute"), kinds.count("host")) == (
        7, 1209, 2448)
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    assert all(r["fixed_duration"] for r in coll)
    assert sorted(r["collective"] for r in coll) == ["all_reduce"] * 5 + ["broadcast"] * 2
    run = replay(wl, star(1))
    assert run.makespan_us > 0
    rep = wl.meta.extra["import"]
    assert rep["skipped"]["dependency on a node not in the trace"] == 1277

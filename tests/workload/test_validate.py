"""The workload contract: each invariant gives an error with its row, rank, op and a fix."""

from __future__ import annotations

import pytest

from simcluster.errors import WorkloadError
from tests.conftest import workload

C = {"kind": "compute", "duration_us": 1.0}


def _err(rows, groups=None, world=0) -> str:
    with pytest.raises(WorkloadError) as err:
        workload(rows, groups, world)
    return str(err.value)


def test_rows_are_sorted_and_seq_is_numbered_per_group() -> None:
    rows = [
        {"rank": 1, "op_id": 5, **C},
        {"rank": 0, "op_id": 2, "kind": "collective", "collective": "all_reduce",
         "comm_bytes": 8, "group": "a"},
        {"rank": 0, "op_id": 1, "kind": "collective", "collective": "all_reduce",
         "comm_bytes": 8, "group": "b"},
        {"rank": 0, "op_id": 3, "kind": "collective", "collective": "all_reduce",
         "comm_bytes": 8, "group": "a"},
    ]
    wl = workload(rows, {"a": [0], "b": [0]})
    assert wl.ops["op_id"].to_pylist() == [1, 2, 3, 5]
    assert wl.ops["seq"].to_pylist() == [0, 0, 1, None]
    assert wl.num_ranks == 2


def test_send_recv_seq_pairs_per_direction() -> None:
    rows = [
        {"rank": 0, "kind": "send", "peer": 1, "comm_bytes": 8},
        {"rank": 0, "kind": "recv", "peer": 1, "comm_bytes": 8},
        {"rank": 0, "kind": "send", "peer": 1, "comm_bytes": 8},
        {"rank": 1, "kind": "recv", "peer": 0, "comm_bytes": 8},
        {"rank": 1, "kind": "send", "peer": 0, "comm_bytes": 8},
        {"rank": 1, "kind": "recv", "peer": 0, "comm_bytes": 8},
    ]
    assert workload(rows).ops["seq"].to_pylist() == [0, 0, 1, 0, 0, 1]


def test_duplicate_op_id() -> None:
    msg = _err([{"rank": 0, "op_id": 3, **C}, {"rank": 0, "op_id": 3, **C}])
    assert "row 1 (rank 0, op_id 3, 'op3'): op_id: is used twice" in msg


def test_unknown_kind_lists_the_known_ones() -> None:
    assert "kind: is not a known kind; use one of compute, memcpy" in _err(
        [{"rank": 0, "kind": "kernel"}])


def test_negative_values() -> None:
    assert "duration_us: is negative" in _err([{"rank": 0, "kind": "compute", "duration_us": -1}])
    assert "alloc_bytes: is negative" in _err([{"rank": 0, **C, "alloc_bytes": -4}])
    assert "rank: is negative" in _err([{"rank": -1, **C}])


def test_compute_needs_a_duration_or_work_and_host_a_duration() -> None:
    assert "neither a duration nor flops" in _err([{"rank": 0, "kind": "compute"}])
    assert "a host op has no duration" in _err([{"rank": 0, "kind": "host", "flops": 5.0}])


def test_collective_checks() -> None:
    coll = {"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8}
    assert "group: names no known group" in _err([{**coll, "group": "dp"}])
    assert "not a member of this group" in _err([{**coll, "group": "dp"}], {"dp": [1]}, world=2)
    assert "a collective op without a known collective" in _err(
        [{**coll, "collective": "allreduce", "group": "dp"}], {"dp": [0]})
    assert "a communication op has no size" in _err(
        [{**coll, "comm_bytes": None, "group": "dp"}], {"dp": [0]})
    assert "broadcast/reduce needs a root" in _err(
        [{**coll, "collective": "broadcast", "group": "dp", "root": 3}], {"dp": [0]})
    # a root beyond every rank of the groups, whose (group, root) code would land on another
    # group's member (a: 0*4 + 6 = 6 = b's 1*4 + 2) if the root were not bounded
    assert "broadcast/reduce needs a root" in _err(
        [{**coll, "collective": "broadcast", "group": "a", "root": 6}],
        {"a": [0, 1], "b": [2, 3]}, world=8)


def test_p2p_checks() -> None:
    assert "a send/recv without a valid peer" in _err([{"rank": 0, "kind": "send",
                                                        "comm_bytes": 1}])
    assert "a rank sends to itself" in _err([{"rank": 0, "kind": "send", "peer": 0,
                                               "comm_bytes": 1}])


def test_deps_must_exist_on_the_same_rank() -> None:
    assert "deps: names an op_id that this rank does not have" in _err([
        {"rank": 0, **C}, {"rank": 1, **C, "deps": [7]}])
    assert "the op depends on itself" in _err([{"rank": 0, **C, "deps": [0]}])


def test_groups_and_world_size() -> None:
    assert "group 'g' lists a rank twice" in _err([{"rank": 0, **C}], {"g": [0, 0]})
    assert "is not below the world size 1" in _err([{"rank": 3, **C}], world=1)


def test_partly_given_seq_is_an_error() -> None:
    coll = {"kind": "collective", "collective": "barrier", "group": "g"}
    assert "some communication ops have a seq and this one not" in _err(
        [{"rank": 0, **coll, "seq": 0}, {"rank": 0, **coll}], {"g": [0]})


def test_empty_workload() -> None:
    import pyarrow as pa

    from simcluster.workload.model import OPS_SCHEMA, WorkloadMeta
    from simcluster.workload.validate import make_workload

    with pytest.raises(WorkloadError, match="no ops"):
        make_workload(OPS_SCHEMA.empty_table(), {}, WorkloadMeta())
    with pytest.raises(WorkloadError, match="column 'rank' has type string"):
        make_workload(pa.table({"rank": ["x"], "op_id": [0], "name": ["a"], "kind": ["host"],
                                "stream": ["s"]}), {}, WorkloadMeta())


def test_fixed_duration_ops() -> None:
    coll = {"rank": 0, "kind": "collective", "collective": "all_reduce", "group": "dp",
            "fixed_duration": True}
    assert "a fixed_duration op has no duration" in _err([coll], {"dp": [0]})
    # With its duration it needs no size, and a send/recv needs no peer in the workload.
    workload([{**coll, "duration_us": 5.0},
              {"rank": 0, "kind": "send", "fixed_duration": True, "duration_us": 3.0}],
             {"dp": [0]})
    # A send/recv whose peer is given must still name a rank of the workload.
    assert "a send/recv without a valid peer" in _err(
        [{"rank": 0, "kind": "send", "fixed_duration": True, "duration_us": 3.0, "peer": 4}])


def test_ops_out_of_order_within_a_rank_are_sorted() -> None:
    """Ranks in order but op ids not: the fast path (an already sorted table is kept as it
    is) must not take it for sorted."""
    rows = [{"rank": 0, "op_id": 4, **C}, {"rank": 0, "op_id": 2, **C},
            {"rank": 1, "op_id": 0, **C}, {"rank": 1, "op_id": 7, **C}]
    wl = workload(rows)
    assert wl.ops["rank"].to_pylist() == [0, 0, 1, 1]
    assert wl.ops["op_id"].to_pylist() == [2, 4, 0, 7]

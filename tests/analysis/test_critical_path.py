"""Critical path and bottleneck attribution on hand-built scenarios with known answers."""

from __future__ import annotations

import pytest

from simcluster.analysis import bottleneck_links, critical_path, limits
import pyarrow.compute as pc

from tests.conftest import TEST_ACCEL, cluster_from, replay, star, workload

GB = 10**9


def test_shared_uplink_ranks_first_with_both_groups_attributed() -> None:
    # a0, b0 under leaf L0; a1, b1 under L1; one spine S. Only L0 -> S is narrow (25 GB/s);
    # every other link carries 100 GB/s. Group A = (a0, a1), group B = (b0, b1): both rings
    # send a0 -> a1 and b0 -> b1 up L0 -> S, so it holds both back (12.5 GB/s each).
    dev = [{"name": n, "kind": "accelerator", "model": "T"} for n in ("a0", "b0", "a1", "b1")]
    dev += [{"name": n, "kind": "switch"} for n in ("L0", "L1", "S")]
    links = [{"src": a, "dst": leaf, "bandwidth_GBps": 100.0}
             for a, leaf in (("a0", "L0"), ("b0", "L0"), ("a1", "L1"), ("b1", "L1"))]
    links += [{"src": "L0", "dst": "S", "bandwidth_GBps": 25.0, "duplex": False},
              {"src": "S", "dst": "L0", "bandwidth_GBps": 100.0, "duplex": False},
              {"src": "L1", "dst": "S", "bandwidth_GBps": 100.0}]
    cluster = cluster_from({"name": "shared", "accelerator_models": {"T": TEST_ACCEL},
                            "devices": dev, "links": links,
                            "network": {"latency_scale": 0.0, "algorithm": "ring"}})
    rows = []
    for group, members in (("A", (0, 2)), ("B", (1, 3))):
        for r in members:
            rows.append({"rank": r, "kind": "collective", "collective": "all_reduce",
                         "comm_bytes": GB, "group": group})
    run = replay(workload(rows, {"A": [0, 2], "B": [1, 3]}), cluster)
    # Each ring moves 1 GB per hop at 12.5 GB/s: 80 ms.
    assert run.makespan_us == pytest.approx(80_000.0)
    top = bottleneck_links(run, top=3)
    assert (top[0]["src"], top[0]["dst"]) == ("L0", "S")
    labels = {a["label"]: a["share"] for a in top[0]["limited"]}
    assert labels == {"all_reduce A": pytest.approx(0.5), "all_reduce B": pytest.approx(0.5)}
    # Four flows (two per coupled ring) held back for 80 ms.
    assert top[0]["limiting_us"] == pytest.approx(320_000.0)
    assert len(top) == 1


def _pipeline(slow_stage: int, stages: int = 4, micro: int = 3):
    """A forward pipeline: each stage computes a micro-batch, then sends it on."""
    rows = []
    for m in range(micro):
        for s in range(stages):
            if s > 0:
                rows.append({"rank": s, "kind": "recv", "peer": s - 1, "comm_bytes": 10**8,
                             "stream": "comm", "name": f"recv{m}"})
            rows.append({"rank": s, "kind": "compute", "name": f"fwd{m}",
                         "duration_us": 3000.0 if s == slow_stage else 1000.0})
            if s < stages - 1:
                rows.append({"rank": s, "kind": "send", "peer": s + 1, "comm_bytes": 10**8,
                             "stream": "comm", "name": f"send{m}"})
    # Stream order: compute waits for the recv of the same micro-batch, the send for the compute.
    by_rank: dict[int, list[dict]] = {}
    for row in rows:
        by_rank.setdefault(row["rank"], []).append(row)
    out = []
    for rank, ops in by_rank.items():
        last_recv = last_fwd = None
        for k, op in enumerate(ops):
            op = {**op, "op_id": k}
            if op["kind"] == "compute" and last_recv is not None:
                op["deps"] = [last_recv]
            if op["kind"] == "send":
                op["deps"] = [last_fwd]
            if op["kind"] == "recv":
                last_recv = k
            if op["kind"] == "compute":
                last_fwd = k
            out.append(op)
    return workload(out)


def test_a_slow_pipeline_stage_is_on_the_critical_path() -> None:
    run = replay(_pipeline(slow_stage=2), star(4, 100.0))
    path = critical_path(run)
    compute = path.filter(pc.equal(path["category"], "compute"))
    by_rank = {}
    for r, d in zip(compute["rank"].to_pylist(), compute["duration_us"].to_pylist()):
        by_rank[r] = by_rank.get(r, 0.0) + d
    # The slow stage computes all three micro-batches on the path (3 x 3 ms); the path
    # covers the whole run.
    assert by_rank[2] == pytest.approx(9000.0)
    assert max(by_rank, key=by_rank.get) == 2
    assert sum(path["duration_us"].to_pylist()) == pytest.approx(run.makespan_us)
    assert path["end_us"][path.num_rows - 1].as_py() == pytest.approx(run.makespan_us)


def test_a_compute_bound_rank_has_no_link_on_its_critical_path() -> None:
    rows = [{"rank": 0, "kind": "compute", "duration_us": 100.0},
            {"rank": 0, "kind": "host", "duration_us": 20.0},
            {"rank": 0, "kind": "compute", "duration_us": 50.0}]
    path = critical_path(replay(workload(rows), star(1)))
    assert path["category"].to_pylist() == ["compute", "host", "compute"]
    assert path["link"].null_count == path.num_rows
    assert limits(path) == pytest.approx({"compute": 150 / 170, "host": 20 / 170})


def test_gaps_on_the_path_are_idle_and_a_collective_jumps_to_the_last_arrival() -> None:
    # Rank 1 computes 400 us; rank 0 computes 100 us then waits. The all-reduce (2 ranks,
    # 1 GB at 100 GB/s: 10 ms) is released by rank 1, so the path is rank 1's compute, then
    # the transfer.
    rows = [{"rank": 0, "kind": "compute", "duration_us": 100.0},
            {"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": GB,
             "group": "g"},
            {"rank": 1, "kind": "compute", "duration_us": 400.0},
            {"rank": 1, "kind": "collective", "collective": "all_reduce", "comm_bytes": GB,
             "group": "g"}]
    path = critical_path(replay(workload(rows, {"g": [0, 1]}), star(2, 100.0)))
    assert list(zip(path["rank"].to_pylist(), path["category"].to_pylist())) == [
        (1, "compute"), (0, "comm:custom")]
    assert path["duration_us"].to_pylist() == pytest.approx([400.0, 10_000.0])

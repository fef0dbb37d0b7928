"""Fusing runs of timed ops into one wake-up must not change any result."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcluster.errors import SimulationError
from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.sim.engine import Engine
from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel
from tests.conftest import servers, star, workload

GIB = 2**30


def _both(wl, cluster):
    out = []
    for fuse in (True, False):
        try:
            out.append(simulate(bind(wl, cluster), SimOptions(fuse_timed_ops=fuse)))
        except SimulationError as exc:
            out.append(str(exc))
    return out


def test_data_parallel_step_is_bit_identical_and_uses_fewer_events() -> None:
    wl = data_parallel(DataParallelConfig(ranks=4, dims=TransformerDims(layers=6), steps=2))
    cluster = servers(2, 2)
    fused, plain = _both(wl, cluster)
    assert fused.timeline.equals(plain.timeline)
    assert fused.links.equals(plain.links) and fused.memory.equals(plain.memory)
    events = []
    for fuse in (True, False):
        e = Engine(bind(wl, cluster), SimOptions(fuse_timed_ops=fuse))
        e.run()
        events.append(next(e.env._eid))
    assert events[0] < 0.75 * events[1]  # 212 vs 332 here


def test_waiter_on_a_fused_op_wakes_at_its_exact_end() -> None:
    # Stream a: three timed ops (fused); stream b waits for the middle one, registered before
    # stream a even started (b's first op is free of deps, a's first op waits for b's).
    wl = workload([
        {"rank": 0, "stream": "b", "kind": "host", "duration_us": 0.1},
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 0.3, "deps": [0]},
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 0.7},
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 1.1},
        {"rank": 0, "stream": "b", "kind": "host", "duration_us": 0.2, "deps": [2]},
    ])
    run = simulate(bind(wl, star(1)))
    starts = dict(zip(run.timeline["op_id"].to_pylist(), run.timeline["start_us"].to_pylist()))
    ends = dict(zip(run.timeline["op_id"].to_pylist(), run.timeline["end_us"].to_pylist()))
    assert starts[4] == ends[2] == 0.1 + 0.3 + 0.7


def test_memory_on_two_streams_is_not_fused_and_peaks_correctly() -> None:
    # Stream a allocates then frees 0.5 GiB around a long op; stream b allocates 0.6 GiB at
    # t=2, while a's allocation is live (a frees at t=3). Capacity 1 GiB: OOM at t=2, in
    # both modes.
    rows = [
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 1.0, "alloc_bytes": GIB // 2},
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 2.0},
        {"rank": 0, "stream": "a", "kind": "compute", "duration_us": 1.0, "free_bytes": GIB // 2},
        {"rank": 0, "stream": "b", "kind": "compute", "duration_us": 2.0},
        {"rank": 0, "stream": "b", "kind": "compute", "duration_us": 1.0,
         "alloc_bytes": GIB * 6 // 10},
    ]
    fused, plain = _both(workload(rows), star(1))
    assert isinstance(fused, str) and fused == plain and "out of memory" in fused


_op = st.fixed_dictionaries({
    "stream": st.sampled_from(["a", "b", "c"]),
    "kind": st.sampled_from(["compute", "compute", "host", "collective"]),
    "duration_us": st.sampled_from([0.0, 0.1, 0.3, 1.0, 2.5, 7.0]),
    "alloc": st.sampled_from([0, 0, GIB // 16]),
    "free": st.sampled_from([0, 0, GIB // 32]),
    "dep": st.one_of(st.none(), st.integers(0, 30)),
})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranks=st.integers(1, 3), ops=st.lists(_op, min_size=1, max_size=24), data=st.data())
def test_random_workloads_fused_equals_unfused(ranks: int, ops: list, data) -> None:
    rows = []
    for r in range(ranks):
        for k, op in enumerate(ops):
            row = {"rank": r, "op_id": k, "stream": op["stream"], "kind": op["kind"],
                   "alloc_bytes": op["alloc"], "free_bytes": op["free"]}
            if op["kind"] == "collective":
                row.update(collective="all_reduce", comm_bytes=10**6, group="g")
            else:
                row["duration_us"] = op["duration_us"]
            if op["dep"] is not None and op["dep"] < k:
                row["deps"] = [op["dep"]]
            rows.append(row)
    wl = workload(rows, {"g": list(range(ranks))})
    fused, plain = _both(wl, star(ranks, 100.0, 250.0, 1.0))
    if isinstance(fused, str) or isinstance(plain, str):
        assert fused == plain
    else:
        assert fused.timeline.equals(plain.timeline)
        assert fused.memory.equals(plain.memory)


def test_progress_is_reported_up_to_the_total() -> None:
    wl = data_parallel(DataParallelConfig(ranks=2, dims=TransformerDims(layers=2)))
    seen: list[tuple[int, int]] = []
    simulate(bind(wl, servers(1, 2)), SimOptions(progress=lambda d, t: seen.append((d, t)),
                                          progress_every=5))
    assert len(seen) > 2 and seen[-1] == (wl.num_ops, wl.num_ops)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

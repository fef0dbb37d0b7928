"""Splitting a joint run back by job: job columns, each job's step time, and the links the
jobs share, on hand-made tables."""

from __future__ import annotations

import pyarrow as pa
import pytest

from simcluster.analysis.jobs import (
    JobSpan,
    contended_links,
    group_job,
    job_step_time_us,
    rank_jobs,
    shared_links,
)
from simcluster.workload.merge import DELAY_NAME

JOBS = rank_jobs([JobSpan("a", 0, 2), JobSpan("b", 2, 2, start_us=50.0)])


def test_each_flows_group_belongs_to_one_job() -> None:
    assert [group_job(g, JOBS) for g in ("a/dp", "b/tp.d0", "3->2", "rank 1", "rank 9",
                                          "other")] == ["a", "b", "b", "a", None, None]


def test_a_jobs_step_time_runs_from_its_start_and_leaves_the_offset_out() -> None:
    # Job b starts at 50 us and its last op ends at 250 us over two steps: 100 us a step.
    timeline = pa.table({
        "rank": [0, 2, 2, 3, 3], "name": ["x", DELAY_NAME, "y", "y", "z"],
        "step": [0, 0, 0, 0, 1], "end_us": [400.0, 50.0, 120.0, 180.0, 250.0]})
    assert job_step_time_us(timeline, JobSpan("b", 2, 2, start_us=50.0)) == 100.0
    assert job_step_time_us(timeline, JobSpan("a", 0, 2)) == 400.0


def _links(bytes_: list[int]) -> pa.Table:
    n = len(bytes_)
    return pa.table({"link_id": pa.array(range(n), pa.int32()),
                     "src": [f"s{i}" for i in range(n)], "dst": [f"d{i}" for i in range(n)],
                     "kind": ["ib"] * n, "role": ["spine"] * n, "bytes": bytes_})


def test_shared_links_are_those_with_more_than_one_jobs_bytes() -> None:
    # Link 1 carries both jobs; b's send 3->2 was limited there 30 us, a's all-reduce (two
    # flows) 10 us (20 us of flow-time) there and 5 us on link 0 (a's alone).
    flows = pa.table({"group": ["a/dp", "a/dp", "3->2", "rank 0"],
                      "bottleneck_link": [1, 0, 1, -1], "flows": [2.0, 2.0, 1.0, 1.0],
                      "bottleneck_us": [20.0, 10.0, 30.0, 0.0]})
    t = shared_links([_links([7, 100, 0]), _links([0, 40, 9])], ["a", "b"], flows, JOBS)
    assert t.select(["link_id", "job", "bytes", "limited_us"]).to_pylist() == [
        {"link_id": 1, "job": "a", "bytes": 100, "limited_us": 10.0},
        {"link_id": 1, "job": "b", "bytes": 40, "limited_us": 30.0}]


def test_contended_links_come_longest_held_back_first() -> None:
    t = pa.table({"link_id": [1, 1, 4, 4, 6, 6], "src": ["x"] * 6, "dst": ["y"] * 6,
                  "role": ["spine"] * 6, "job": ["a", "b"] * 3,
                  "bytes": [1, 1, 5, 5, 9, 9], "limited_us": [0.0, 0.0, 2.0, 1.0, 0.0, 0.0]})
    assert [r["link_id"] for r in contended_links(t, 3)] == [4, 6, 1]
    assert len(contended_links(t, 1)) == 1
    assert contended_links(t, 1)[0]["jobs"]["b"] == {"bytes": 5, "limited_us": pytest.approx(1.0)}

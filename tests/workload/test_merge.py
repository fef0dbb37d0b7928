"""Workloads for a job mix: repeated steps, a delayed start, and jobs side by side, with
exact timings on a one-switch test cluster."""

from __future__ import annotations

import dataclasses

import pytest

import simcluster as sc
from simcluster.errors import WorkloadError
from simcluster.workload.merge import (
    DELAY_NAME,
    delay_start,
    merge_workloads,
    repeat_steps,
)
from tests.conftest import ends, replay, star, workload


def two_streams() -> sc.Workload:
    """One rank: 10 us on stream a, 4 us on stream b."""
    return workload([{"rank": 0, "kind": "compute", "stream": "a", "duration_us": 10.0},
                     {"rank": 0, "kind": "compute", "stream": "b", "duration_us": 4.0}])


def test_a_repeat_starts_on_a_rank_when_all_its_streams_finished_the_previous_one() -> None:
    # Copy 0: a 0-10, b 0-4. Copy 1 waits for both: a 10-20, b 10-14.
    twice = repeat_steps(two_streams(), 2)
    assert twice.column("op_id").tolist() == [0, 1, 2, 3]
    assert twice.column("step").tolist() == [0, 0, 1, 1]
    assert ends(replay(twice, star(1))) == {(0, 0): (0.0, 10.0), (0, 1): (0.0, 4.0),
                                            (0, 2): (10.0, 20.0), (0, 3): (10.0, 14.0)}


def test_repeated_collectives_match_among_their_own_copy() -> None:
    wl = workload([{"rank": r, "kind": "collective", "collective": "all_reduce",
                    "group": "g", "comm_bytes": 100} for r in (0, 1)], {"g": [0, 1]})
    thrice = repeat_steps(wl, 3)
    assert thrice.column("seq").tolist() == [0, 1, 2, 0, 1, 2]
    assert repeat_steps(wl, 1) is wl
    with pytest.raises(WorkloadError, match="at least once"):
        repeat_steps(wl, 0)


def test_a_delayed_start_holds_every_stream_back() -> None:
    late = delay_start(two_streams(), 7.5)
    names = late.ops.column("name").to_pylist()
    assert names[:2] == [DELAY_NAME, DELAY_NAME] and late.num_ops == 4
    timed = ends(replay(late, star(1)))
    assert timed[(0, 2)] == (7.5, 17.5) and timed[(0, 3)] == (7.5, 11.5)
    assert delay_start(two_streams(), 0.0).num_ops == 2
    with pytest.raises(WorkloadError, match="0 or more"):
        delay_start(two_streams(), -1.0)


def test_a_slowed_rank_still_starts_at_its_offset() -> None:
    # --slow-rank 0=2 doubles host and compute ops: the delay is halved first, so it still
    # ends at 7.5 us, and the 10 us op takes 20 us.
    late = delay_start(two_streams(), 7.5, {0: 2.0})
    result = sc.Scenario(late, star(1), whatif=sc.WhatIf(slow_ranks={0: 2.0})).run()
    assert ends(result.run)[(0, 2)] == (7.5, 27.5)


def test_jobs_side_by_side_get_rank_ranges_and_groups_of_their_own() -> None:
    send = workload([{"rank": 0, "kind": "send", "peer": 1, "comm_bytes": 8},
                     {"rank": 1, "kind": "recv", "peer": 0, "comm_bytes": 8}], world=2)
    ring = workload([{"rank": r, "kind": "collective", "collective": "all_reduce",
                      "group": "dp", "comm_bytes": 8} for r in (0, 1)], {"dp": [0, 1]})
    both = merge_workloads([send, ring, ring], ["s", "r1", "r2"])
    assert both.num_ranks == 6
    assert both.groups == {"r1/dp": (2, 3), "r2/dp": (4, 5)}
    assert both.ops.column("peer").to_pylist()[:2] == [1, 0]
    assert both.ops.column("group").to_pylist() == [None, None, "r1/dp", "r1/dp", "r2/dp",
                                                    "r2/dp"]
    assert [j["first_rank"] for j in both.meta.extra["jobs"]] == [0, 2, 4]


def test_jobs_recorded_on_different_accelerators_or_named_alike_are_refused() -> None:
    a = two_streams()
    v100 = dataclasses.replace(a, meta=dataclasses.replace(a.meta, recorded_device="V100"))
    h100 = dataclasses.replace(a, meta=dataclasses.replace(a.meta, recorded_device="H100"))
    with pytest.raises(WorkloadError, match="different accelerators"):
        merge_workloads([v100, h100], ["a", "b"])
    assert merge_workloads([v100, a], ["a", "b"]).meta.recorded_device == "V100"
    with pytest.raises(WorkloadError, match="repeat"):
        merge_workloads([a, a], ["x", "x"])


def test_a_mix_keeps_its_jobs_framework_profiles() -> None:
    """Each job's framework profile is in the mix's metadata; the mix names one only when
    every job has it (``framework_of``), so its replay applies that profile's stack."""
    from dataclasses import replace

    from simcluster.workload.generate.presets import ModelSpec
    from simcluster.workload.generate.transformer import TransformerConfig, transformer
    from simcluster.workload.merge import framework_of, merge_workloads

    m = ModelSpec("toy", layers=1, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
                  seq_len=32)
    cfg = TransformerConfig(model=m, dp=2, global_batch=4, framework="llm-foundry-2023")
    a, b = transformer(cfg), transformer(replace(cfg, framework="nemo"))
    same = merge_workloads([a, a], ["x", "y"])
    assert [j["framework"] for j in same.meta.extra["jobs"]] == ["llm-foundry-2023"] * 2
    assert framework_of(same.meta.extra) == "llm-foundry-2023"
    assert framework_of(merge_workloads([a, b], ["x", "y"]).meta.extra) is None

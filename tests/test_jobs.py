"""Several jobs on one cluster: exact interference on a shared link, placement of jobs,
the run folder's job column, and bad input."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import simcluster as sc
from simcluster.errors import PlacementError, WorkloadError
from tests.conftest import ROOT, cluster_from, dumbbell_spec, one_send

GB = 10**9


def dumbbell() -> sc.Cluster:
    """a0, a1 | a2, a3 across one 100 GB/s link (``dumbbell_spec``)."""
    return cluster_from(dumbbell_spec())


def across(*devices: str) -> sc.Placement:
    return sc.Placement(devices=devices, strategy="file")


def test_two_jobs_on_one_bottleneck_each_get_half_of_it_while_they_overlap() -> None:
    # Alone, 1 GB over 100 GB/s takes 10,000 us. Job B starts at 5,000 us: A has moved
    # 0.5 GB alone; then both run at 50 GB/s, and A's last 0.5 GB ends at 15,000 us. B has
    # then moved 0.5 GB and finishes its last 0.5 GB alone at 100 GB/s by 20,000 us, i.e.
    # 15,000 us after its start. Both are 1.5x slower.
    mix = sc.JobMix([sc.Job(one_send(), across("a0", "a2"), name="A"),
                     sc.Job(one_send(), across("a1", "a3"), start_us=5000.0, name="B")],
                    dumbbell())
    jobs = mix.run().jobs.to_pydict()
    assert jobs["alone_step_us"] == pytest.approx([10_000.0, 10_000.0], rel=1e-12)
    assert jobs["together_step_us"] == pytest.approx([15_000.0, 15_000.0], rel=1e-12)
    assert jobs["slowdown"] == pytest.approx([1.5, 1.5], rel=1e-12)


def test_the_shared_link_is_named_with_each_jobs_bytes_and_how_long_it_held_it_back() -> None:
    # Both jobs cross s0->s1 only: it carries 1 GB of each and limits each job's flow for its
    # whole duration together (15,000 us each, as above). The access links carry one job each.
    result = sc.JobMix([sc.Job(one_send(), across("a0", "a2")),
                        sc.Job(one_send(), across("a1", "a3"), start_us=5000.0)],
                       dumbbell()).run()
    rows = result.shared_links.to_pylist()
    assert [(r["src"], r["dst"], r["job"], r["bytes"]) for r in rows] == [
        ("s0", "s1", "job0", GB), ("s0", "s1", "job1", GB)]
    assert [r["limited_us"] for r in rows] == pytest.approx([15_000.0, 15_000.0], rel=1e-12)


def test_jobs_on_disjoint_paths_do_not_slow_each_other() -> None:
    # packed: job0 on a0, a1 (through s0 only), job1 on a2, a3 (through s1 only); 1 GB over
    # two 1,000 GB/s access links takes 1,000 us, alone or together.
    result = sc.JobMix([sc.Job(one_send()), sc.Job(one_send())], dumbbell()).run()
    assert [p.devices for p in result.placements] == [("a0", "a1"), ("a2", "a3")]
    assert result.jobs.column("together_step_us").to_pylist() == pytest.approx(
        [1000.0, 1000.0], rel=1e-12)
    assert result.shared_links.num_rows == 0


def test_repeated_steps_run_one_after_the_other() -> None:
    # Three sends in a row, alone on the bottleneck: 3 steps of 10,000 us; the mean step
    # stays 10,000 us and the job ends at 30,000 us.
    result = sc.JobMix([sc.Job(one_send(), across("a0", "a2"), repeat=3)], dumbbell()).run()
    assert result.jobs.column("alone_step_us").to_pylist() == pytest.approx([10_000.0])
    assert result.together.run.makespan_us == pytest.approx(30_000.0, rel=1e-12)


def test_a_start_offset_delays_the_job_and_is_not_counted_in_its_step() -> None:
    result = sc.JobMix([sc.Job(one_send(), across("a0", "a2"), start_us=250.0)],
                       dumbbell()).run()
    assert result.together.run.makespan_us == pytest.approx(10_250.0, rel=1e-12)
    assert result.jobs.column("together_step_us").to_pylist() == pytest.approx([10_000.0])


def test_strategies_place_later_jobs_on_the_accelerators_left_free() -> None:
    result = sc.JobMix([sc.Job(one_send(), "spread"), sc.Job(one_send(), across("a0", "a1"))],
                       dumbbell()).run()
    # The explicit placement takes a0, a1 first; spread then gets what is left.
    assert [p.devices for p in result.placements] == [("a2", "a3"), ("a0", "a1")]


def test_overlapping_placements_are_an_error_naming_the_device_and_both_jobs() -> None:
    mix = sc.JobMix([sc.Job(one_send(), across("a0", "a2")),
                     sc.Job(one_send(), across("a1", "a2"))], dumbbell())
    with pytest.raises(PlacementError, match="job job1: device 'a2' is also placed to job job0"):
        mix.run()


def test_jobs_that_do_not_fit_together_are_an_error_counting_what_they_need() -> None:
    mix = sc.JobMix([sc.Job(one_send()), sc.Job(one_send()), sc.Job(one_send())], dumbbell())
    with pytest.raises(PlacementError, match="need 6 accelerators in all; 'dumbbell' has 4"):
        mix.placements()


def test_job_names_must_differ() -> None:
    with pytest.raises(WorkloadError, match="repeat"):
        sc.JobMix([sc.Job(one_send(), name="x"), sc.Job(one_send(), name="x")],
                  dumbbell()).run()


def test_the_run_folder_carries_a_job_column_and_the_job_tables(tmp_path: Path) -> None:
    result = sc.JobMix([sc.Job(one_send(), across("a0", "a2")),
                        sc.Job(one_send(), across("a1", "a3"), start_us=5000.0)],
                       dumbbell()).run()
    out = result.write(tmp_path / "mix")
    for name in ("timeline", "memory", "flows", "ranks", "steps"):
        assert "job" in pq.read_table(out / f"{name}.parquet").column_names, name
    timeline = pq.read_table(out / "timeline.parquet")
    assert sorted(set(zip(timeline["rank"].to_pylist(), timeline["job"].to_pylist()))) == [
        (0, "job0"), (1, "job0"), (2, "job1"), (3, "job1")]
    assert set(pq.read_table(out / "flows.parquet")["job"].to_pylist()) == {"job0", "job1"}
    assert pq.read_table(out / "jobs.parquet")["slowdown"].to_pylist() == pytest.approx(
        [1.5, 1.5])
    assert sorted(p.name for p in out.iterdir()) == sorted(result.output_files)


@pytest.fixture(scope="module")
def superpod_mix() -> tuple[sc.Workload, sc.Cluster]:
    """The docs/whatif.md example: Llama-3 8B (2 layers, TP 8, DP 4) on the bundled SuperPOD."""
    wl = sc.generate("transformer", preset="llama3-8b", layers=2, tp=8, dp=4)
    return wl, sc.load_cluster(ROOT / "topologies" / "dgx-h100-superpod.yaml")


@pytest.mark.parametrize("spine", [1.0, 0.5])
def test_two_llama_jobs_placed_across_units_share_spine_links_and_packed_share_none(
        superpod_mix: tuple[sc.Workload, sc.Cluster], spine: float) -> None:
    # docs/whatif.md: across scalable units 0 and 1 the two jobs' rings meet on the links
    # between the rail leaves and spine0 (8 leaves of each unit, both directions: 32 links).
    # On the non-blocking fabric one ring flow of each fits a spine link (95 GB/s, a NIC's
    # 47.5 twice): no slowdown. At half the spine bandwidth they halve each other's rate
    # there, while each alone still fits. Packed, the jobs share no link.
    wl, cluster = superpod_mix
    place = ROOT / "bench" / "placements"
    whatif = sc.WhatIf(scale_links={"spine": spine})
    shared = sc.JobMix([sc.Job(wl, place / "superpod-job0-spine.yaml"),
                        sc.Job(wl, place / "superpod-job1-spine.yaml")], cluster, whatif).run()
    apart = sc.JobMix([sc.Job(wl), sc.Job(wl)], cluster, whatif).run()
    links = shared.shared_links
    assert set(links.column("role").to_pylist()) == {"spine"}
    assert len(set(links.column("link_id").to_pylist())) == 32
    assert all("fabric/spine0" in (a, b) for a, b in zip(links.column("src").to_pylist(),
                                                          links.column("dst").to_pylist()))
    assert apart.shared_links.num_rows == 0
    assert apart.jobs.column("slowdown").to_pylist() == [1.0, 1.0]
    alone = apart.jobs.column("alone_step_us").to_pylist()
    assert shared.jobs.column("alone_step_us").to_pylist() == alone
    slow = shared.jobs.column("slowdown").to_pylist()
    assert slow == [1.0, 1.0] if spine == 1.0 else all(s > 1.5 for s in slow)

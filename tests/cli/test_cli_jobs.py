"""``simcluster replay TRACE TRACE ...``: a job mix from the command line, the same as from
Python, and bad input that exits 2 without output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import simcluster as sc
from tests.cli.test_cli import _run
from tests.conftest import ROOT

TOPO = str(ROOT / "topologies" / "h100-2node.yaml")  # 2 servers of 8 H100


@pytest.fixture(scope="module")
def dp4(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("jobs") / "dp4.parquet"
    sc.write_workload(sc.generate("data-parallel", ranks=4, layers=1, hidden=64, seq_len=16,
                                  vocab=128), path)
    return str(path)


def _placement(tmp_path: Path, name: str, devices: list[str]) -> str:
    path = tmp_path / name
    path.write_text("ranks:\n" + "".join(f"  - {d}\n" for d in devices), encoding="utf-8")
    return str(path)


def test_cli_and_python_write_the_same_mix_folder(capsys, tmp_path: Path, dp4: str) -> None:
    code, out, _ = _run(capsys, "replay", dp4, dp4, "-t", TOPO, "--start-us", "0",
                        "--start-us", "100", "--placement", "spread", "--out",
                        str(tmp_path / "A"))
    assert code == 0 and "slowdown" in out and "job1" in out
    wl = sc.load_workload(dp4)
    result = sc.JobMix([sc.Job(wl, "spread"), sc.Job(wl, "spread", start_us=100.0)],
                       sc.load_cluster(TOPO)).run()
    result.write(tmp_path / "B")
    names = sorted(p.name for p in (tmp_path / "A").iterdir())
    assert names == sorted(result.output_files)
    for name in names:
        assert (tmp_path / "A" / name).read_bytes() == (tmp_path / "B" / name).read_bytes(), name


def test_quiet_prints_each_jobs_step_time_together(capsys, dp4: str) -> None:
    code, out, _ = _run(capsys, "replay", dp4, dp4, dp4, "-t", TOPO, "--quiet")
    wl = sc.load_workload(dp4)
    result = sc.JobMix([sc.Job(wl)] * 3, sc.load_cluster(TOPO)).run()
    assert code == 0
    assert out.split() == [f"{t:.3f}" for t in result.jobs.column("together_step_us").to_pylist()]


def test_json_carries_the_jobs_and_their_shared_links(capsys, dp4: str) -> None:
    code, out, _ = _run(capsys, "replay", dp4, dp4, "-t", TOPO, "--json", "--repeat", "2")
    doc = json.loads(out)
    assert code == 0
    assert [j["job"] for j in doc["summary"]["jobs"]] == ["job0", "job1"]
    assert [j["repeat"] for j in doc["summary"]["jobs"]] == [2, 2]
    assert doc["summary"]["shared_links"] == len(doc["summary"]["contended_links"]) == 0


@pytest.mark.parametrize("extra, message", [
    (("--placement", "packed", "--placement", "spread", "--placement", "packed"),
     "--placement is given 3 times for 2 job(s)"),
    (("--start-us", "1", "--start-us", "2", "--start-us", "3"),
     "--start-us is given 3 times for 2 job(s)"),
])
def test_per_job_options_given_neither_once_nor_per_job_exit_2(capsys, tmp_path: Path,
                                                               dp4: str, extra: tuple[str, ...],
                                                               message: str) -> None:
    code, _, err = _run(capsys, "replay", dp4, dp4, "-t", TOPO, *extra, "--out",
                          str(tmp_path / "run"))
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_overlapping_placements_exit_2_without_output(capsys, tmp_path: Path, dp4: str) -> None:
    a = _placement(tmp_path, "a.yaml", [f"node0/gpu{i}" for i in range(4)])
    b = _placement(tmp_path, "b.yaml", [f"node0/gpu{i}" for i in range(3, 7)])
    code, _, err = _run(capsys, "replay", dp4, dp4, "-t", TOPO, "--placement", a,
                        "--placement", b, "--out", str(tmp_path / "run"))
    assert code == 2 and "Traceback" not in err
    assert "job job1: device 'node0/gpu3' is also placed to job job0" in err
    assert not (tmp_path / "run").exists()


def test_jobs_that_do_not_fit_together_exit_2(capsys, tmp_path: Path, dp4: str) -> None:
    code, _, err = _run(capsys, "replay", *[dp4] * 5, "-t", TOPO, "--out", str(tmp_path / "r"))
    assert code == 2 and "The 5 jobs need 20 accelerators in all" in err
    assert "has 16" in err and not (tmp_path / "r").exists()


def test_several_traces_need_a_topology(capsys, dp4: str) -> None:
    code, _, err = _run(capsys, "replay", dp4, dp4)
    assert code == 2 and "give --topology FILE" in err and "Traceback" not in err


def test_one_trace_takes_one_placement(capsys, dp4: str) -> None:
    code, _, err = _run(capsys, "replay", dp4, "-t", TOPO, "--placement", "packed",
                        "--placement", "spread")
    assert code == 2 and "--placement is given 2 times for one TRACE" in err


def test_restart_is_not_combined_with_a_job_mix(tmp_path, capsys) -> None:
    from tests.conftest import ROOT, cli_exit_2

    sample = str(ROOT / "traces" / "dp-transformer-16.parquet")
    topo = str(ROOT / "topologies" / "dgx-h100-superpod.yaml")
    out = tmp_path / "run"
    assert "--restart runs one job" in cli_exit_2(
        ["replay", sample, sample, "-t", topo, "--fail", "node0/gpu1", "--restart",
         "best", "--out", str(out)], out, capsys)

"""`simcluster sweep` and `sweep-report` as a user meets them."""

from __future__ import annotations

import json

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.cli.test_cli import TOPO, _run

pytest.importorskip("distributed")


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


BASE = {"topology": TOPO, "workload": {"generate": "data-parallel", "ranks": 16, "layers": 2},
        "price": 3.0}


@pytest.mark.parametrize(("axes", "constraints", "message"), [
    ({"layerz": [1]}, [], "axes.layerz: unknown axis"),
    ({"layers": []}, [], "axes.layers: the axis has no values"),
    ({"layers": [1, 2]}, ["layers > 10"], "no point satisfies the constraints"),
    ({"layers": [1, 2]}, ["open('x')"], "only arithmetic"),
])
def test_bad_spec_fails_before_any_work(capsys, tmp_path: Path, axes: dict,
                                        constraints: list[str], message: str) -> None:
    spec = _write(tmp_path, {"base": BASE, "axes": axes, "constraints": constraints})
    out = tmp_path / "out"
    code, _, err = _run(capsys, "sweep", str(spec), "--out", str(out))
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_sweep_then_report(capsys, tmp_path: Path) -> None:
    spec = _write(tmp_path, {"name": "demo", "base": BASE,
                             "axes": {"micro_batch": [1, 2], "scale_link.ib": [0.5, 1.0]},
                             "constraints": ["micro_batch * ranks <= gpus * 2"]})
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, "sweep", str(spec), "--out", str(out), "--workers", "1")
    assert code == 0 and "4 computed, 0 already done" in stdout and "fastest" in stdout
    assert pq.read_table(out / "results.parquet").num_rows == 4
    assert (out / "spec.yaml").read_text() == spec.read_text()
    code, stdout, _ = _run(capsys, "sweep", str(spec), "--out", str(out), "--workers", "1",
                           "--json")
    doc = json.loads(stdout)
    assert code == 0 and (doc["computed"], doc["skipped"], doc["points"]) == (0, 4, 4)
    assert len(doc["fastest"]) == 4 and doc["fastest"][0]["step_time_us"] > 0
    code, stdout, _ = _run(capsys, "sweep-report", str(out))
    assert code == 0 and "Pareto front" in stdout
    page = (out / "report.html").read_text()
    assert "simcluster sweep: demo" in page and '"pareto"' in page and "Pareto front (" in page
    code, _, err = _run(capsys, "sweep-report", str(tmp_path))
    assert code == 2 and "no results.parquet" in err


def test_search_prints_the_best_and_fails_cleanly(capsys, tmp_path: Path) -> None:
    dgx = str(Path(TOPO).parent / "dgx-h100.yaml")
    out = tmp_path / "s"
    args = ["search", "-t", dgx, "--preset", "llama2-7b", "--layers", "4", "--seq-len", "512",
            "--global-batch", "16", "--tp", "1,2", "--pp", "1,2", "--micro-batch", "1,2",
            "--out", str(out), "--workers", "1", "--top", "2"]
    code, stdout, _ = _run(capsys, *args)
    assert code == 0 and "best by time" in stdout and "fit in memory" in stdout
    assert (out / "search.json").is_file() and (out / "candidates.parquet").is_file()
    code, stdout, _ = _run(capsys, *args, "--json")  # a rerun: nothing new is simulated
    doc = json.loads(stdout)
    assert code == 0 and doc == json.loads((out / "search.json").read_text())
    assert len(doc["best"]) == 2 and doc["objective"] == "time"
    for bad, message in ((["--tp", "two"], "--tp 'two'"),
                         (["--objective", "speed"], "use time or cost"),
                         (["--placement", "random"], "--placement 'random'"),
                         (["--cp", "0"], "--cp '0': every value must be at least 1"),
                         (["--ep", "2"], "--ep 2: model 'llama2-7b' is dense")):
        code, _, err = _run(capsys, *args, *bad)
        assert code == 2 and message in err and "Traceback" not in err
    code, _, err = _run(capsys, "search", "-t", dgx, "--preset", "llama3-405b", "--out",
                        str(tmp_path / "big"))
    assert code == 2 and "fits in memory" in err and not (tmp_path / "big").exists()


@pytest.mark.parametrize(("axes", "where", "problem"), [
    ({"layers": [2, "four"]}, "axes.layers[1]", "'four' is not a whole number"),
    ({"topology": [TOPO, "gone.yaml"]}, "axes.topology[1]", "gone.yaml: file not found"),
    ({"placement": ["nowhere.yaml"]}, "axes.placement[0]", "not a placement strategy"),
])
def test_values_and_files_are_checked_before_any_work(capsys, tmp_path: Path, axes: dict,
                                                      where: str, problem: str) -> None:
    spec = _write(tmp_path, {"base": BASE, "axes": axes})
    out = tmp_path / "out"
    code, _, err = _run(capsys, "sweep", str(spec), "--out", str(out))
    assert code == 2 and "Traceback" not in err
    assert f"{spec}:" in err and f": {where}: " in err and problem in err
    assert not out.exists()


def test_a_missing_topology_is_refused_not_a_sweep_of_errors(capsys, tmp_path: Path) -> None:
    spec = _write(tmp_path, {"base": {**BASE, "topology": "missing.yaml"},
                             "axes": {"layers": [1, 2]}})
    code, _, err = _run(capsys, "sweep", str(spec), "--out", str(tmp_path / "out"))
    assert code == 2 and f"{spec}:2: base.topology: " in err and "file not found" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("axes", "constraints", "message"), [
    ({"layers": [1, 2]}, ["9 ** 9 ** 9 > 0"], "9 ** 387420489 exceeds 1e+100"),
    ({"micro_batch": {"range": [1, 1_000_000_000]}}, [],
     ("axes.micro_batch.range: the range has 1,000,000,000 values, over the limit of 100,000 "
      "points per sweep")),
    ({"micro_batch": {"range": [1, 1000]}, "layers": {"range": [1, 1000]}}, [],
     "has 1,000,000 points, over the limit of 100,000 points per sweep"),
])
def test_hostile_specs_end_with_exit_2_within_10_s(tmp_path: Path, axes: dict,
                                                   constraints: list[str], message: str) -> None:
    spec = _write(tmp_path, {"base": BASE, "axes": axes, "constraints": constraints})
    done = subprocess.run([sys.executable, "-m", "simcluster", "sweep", str(spec), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=10,
                          check=False)
    err = " ".join(done.stderr.split())  # rich wraps long lines
    assert done.returncode == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_max_points_option(capsys, tmp_path: Path) -> None:
    spec = _write(tmp_path, {"base": BASE, "axes": {"layers": [1, 2, 3]}})
    code, _, err = _run(capsys, "sweep", str(spec), "--out", str(tmp_path / "o"),
                        "--max-points", "2")
    assert code == 2 and "over the limit of 2 points" in err and "--max-points N" in err


def test_an_unreadable_point_is_recomputed_with_a_warning(capsys, tmp_path: Path) -> None:
    spec = _write(tmp_path, {"base": BASE, "axes": {"layers": [1, 2]}})
    out = tmp_path / "out"
    code, _, _ = _run(capsys, "sweep", str(spec), "--out", str(out), "--workers", "1")
    assert code == 0
    results = (out / "results.parquet").read_bytes()
    victim = min((out / "points").glob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:64])
    code, stdout, err = _run(capsys, "sweep", str(spec), "--out", str(out), "--workers", "1")
    assert code == 0 and "1 computed, 1 already done" in stdout
    assert "warning: 1 point file(s) could not be read" in " ".join(err.split())
    assert victim.name in err.replace("\n", "")
    assert (out / "results.parquet").read_bytes() == results


def test_search_with_hardware_prints_the_front_and_fails_cleanly(capsys,
                                                                 tmp_path: Path) -> None:
    dgx = str(Path(TOPO).parent / "dgx-h100.yaml")
    hw = tmp_path / "hw.yaml"
    hw.write_text("space: {peak_tflops: [989.5, 1979]}\n"
                  "cost: {base: 1.0, per_unit: {peak_tflops: 0.002}}\n")
    out = tmp_path / "s"
    args = ["search", "-t", dgx, "--preset", "llama2-7b", "--layers", "4", "--seq-len", "512",
            "--global-batch", "16", "--tp", "1,2", "--pp", "1", "--micro-batch", "1,2",
            "--out", str(out), "--workers", "1", "--top", "2"]
    code, stdout, _ = _run(capsys, *args, "--hardware", str(hw))
    assert code == 0 and "Pareto front" in stdout and "limited by" in stdout
    doc = json.loads((out / "search.json").read_text())
    assert doc["hardware"]["variants"] == 2 and doc["front"]
    assert {p["price"] for p in doc["front"]} <= {2.979, 4.958}
    hw.write_text("space: {peak_tflops: [989.5]}\ncost: {base: 1.0}\nbudget: {usd_per_hour: 0}\n")
    for bad, message in (([], f"{hw}:3: budget.usd_per_hour"),
                         (["--price", "2"], "--price with --hardware")):
        code, _, err = _run(capsys, *args[:-6], "--out", str(tmp_path / "bad"),
                            "--hardware", str(hw), *bad)
        assert code == 2 and message in err and "Traceback" not in err
        assert not (tmp_path / "bad").exists()
        hw.write_text("space: {peak_tflops: [989.5]}\ncost: {base: 1.0}\n")
    # A scale-up domain of 3 GPUs does not divide the DGX's 8.
    hw.write_text("space: {scale_up_size: [3, 8]}\ncost: {base: 1.0}\n")
    code, _, err = _run(capsys, *args[:-6], "--out", str(tmp_path / "bad"), "--hardware",
                        str(hw))
    assert code == 2 and "Traceback" not in err and not (tmp_path / "bad").exists()
    assert "scale_up_size = 3: " in err
    assert "use a size that divides them whole: 1, 2, 4, 8." in " ".join(err.split())

"""`simcluster sweep` and `sweep-report` as a user meets them."""

from __future__ import annotations

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
    code, stdout, _ = _run(capsys, "sweep-report", str(out))
    assert code == 0 and "Pareto front" in stdout
    page = (out / "report.html").read_text()
    assert "simcluster sweep: demo" in page and "data:image/png;base64," in page
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
    for bad, message in ((["--tp", "two"], "--tp 'two'"),
                         (["--objective", "speed"], "use time or cost"),
                         (["--placement", "random"], "--placement 'random'")):
        code, _, err = _run(capsys, *args, *bad)
        assert code == 2 and message in err and "Traceback" not in err
    code, _, err = _run(capsys, "search", "-t", dgx, "--preset", "llama3-405b", "--out",
                        str(tmp_path / "big"))
    assert code == 2 and "fits in memory" in err and not (tmp_path / "big").exists()

"""trace import and replay of recorded traces from the command line; bad traces exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.workload import read_workload
from tests.cli.test_cli import _run
from tests.workload.etwriter import et_file, node
from tests.workload.test_kineto import _ranked



def _trace_dir(tmp_path: Path) -> Path:
    d = tmp_path / "traces"
    d.mkdir()
    _ranked(0, 10, 38).write(d / "rank-0.json")
    _ranked(1, 30, 18).write(d / "rank-1.json.gz", gz=True)
    return d


def test_import_kineto_then_replay(capsys, tmp_path: Path) -> None:
    d = _trace_dir(tmp_path)
    out = tmp_path / "w.parquet"
    code, text, _ = _run(capsys, "trace", "import", "kineto", str(d), "-o", str(out),
                         "--step", "1")
    assert code == 0
    assert "2 rank(s)" in text and "recorded on A100-SXM4-80GB" in text
    assert "skipped:" in text or "note:" in text
    assert read_workload(out).num_ranks == 2
    # Replay the folder directly, without a topology: the recorded GPU, one per rank.
    code, text, _ = _run(capsys, "replay", str(d))
    assert code == 0
    assert "no --topology: replaying on recorded-A100-SXM4-80GB-x2" in text
    assert "ProfilerStep: simulated vs recorded" in text
    code, q1, _ = _run(capsys, "replay", str(d), "-q")
    code, q2, _ = _run(capsys, "replay", str(out), "-q")
    assert code == 0 and q1 == q2  # the folder and its import replay the same


def test_import_chakra_and_replay_with_a_device(capsys, tmp_path: Path) -> None:
    d = tmp_path / "et"
    d.mkdir()
    for r in range(2):
        et_file(d / f"ar.{r}.et", [node(0, "ar", 7, attrs={"comm_type": 0, "comm_size": 1 << 20})])
    code, text, _ = _run(capsys, "trace", "import", "chakra", str(d), "-o",
                         str(tmp_path / "c.parquet"))
    assert code == 0 and "2 rank(s), 2 ops (collective 2)" in text
    code, _, err = _run(capsys, "replay", str(d))
    assert code == 2 and "give --topology FILE, or --device MODEL" in err
    code, text, _ = _run(capsys, "replay", str(d), "--device", "H100", "-q")
    assert code == 0 and float(text) > 0


def _bad(tmp_path: Path, what: str) -> Path:
    d = tmp_path / what
    d.mkdir()
    if what == "truncated":
        p = _ranked(0, 10, 38).write(d / "rank-0.json")
        p.write_text(p.read_text()[:200])
    elif what == "not-a-trace":
        (d / "rank-0.json").write_text('{"loss": [0.5, 0.4]}')
    elif what == "runs":
        _ranked(0, 10, 38).write(d / "rank-0.json")
        t = _ranked(1, 30, 18)
        t.world = 8
        t.write(d / "rank-1.json")
    elif what == "partial-collective":
        _ranked(0, 10, 38, n=2).write(d / "rank-0.json")
        _ranked(1, 30, 18, n=1).write(d / "rank-1.json")
    return d


@pytest.mark.parametrize("what,message", [
    ("truncated", "not valid JSON at character"),
    ("not-a-trace", "JSON without traceEvents"),
    ("runs", "disagree on the world size"),
    ("partial-collective", "a collective appears on only some ranks"),
])
def test_bad_traces_exit_2_and_write_nothing(capsys, tmp_path: Path, what: str,
                                             message: str) -> None:
    d = _bad(tmp_path, what)
    out = tmp_path / "out.parquet"
    code, text, err = _run(capsys, "trace", "import", "kineto", str(d), "-o", str(out))
    assert code == 2 and message in err and "Traceback" not in err and text == ""
    assert not out.exists()
    code, _, err = _run(capsys, "replay", str(d), "--out", str(tmp_path / "run"))
    assert code == 2 and message in err
    assert not (tmp_path / "run").exists()


def test_bad_step_is_a_usage_error(capsys, tmp_path: Path) -> None:
    d = _trace_dir(tmp_path)
    code, _, err = _run(capsys, "replay", str(d), "--step", "last")
    assert code == 2 and "neither 'all' nor a step number" in err
    code, _, err = _run(capsys, "replay", str(d), "--step", "4")
    assert code == 2 and "no ProfilerStep#4" in err




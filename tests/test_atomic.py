"""Output folders appear whole or not at all: killed writers, replaced folders, two writers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import simcluster as sc
from simcluster.atomic import staged_dir
from simcluster.cli import main
from simcluster.errors import OutputError
from tests.conftest import ROOT

SAMPLE = ROOT / "traces" / "dp-transformer-16.parquet"
TOPO = ROOT / "topologies" / "h100-2node.yaml"

# A child process that writes a run folder and SIGKILLs itself at the k-th call of one step.
CHILD = textwrap.dedent("""
    import os, shutil, signal, sys
    import simcluster as sc
    import simcluster.atomic as at
    import simcluster.export.run_dir as rd

    where, k, out, scale = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    calls = [0]

    def bomb(fn):
        def wrapped(*args, **kwargs):
            calls[0] += 1
            if calls[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return wrapped

    if where == "staging":          # while the tables are written
        rd.write_parquet = bomb(rd.write_parquet)
    elif where == "exchange":       # just before the swap
        at._exchange = bomb(at._exchange)
    elif where == "cleanup":        # after the swap, before the old folder is removed
        at.shutil.rmtree = bomb(shutil.rmtree)
    elif where == "rename":         # systems without an atomic swap: two renames
        at._exchange = lambda a, b: False
        at.os.rename = bomb(os.rename)
    sc.replay(sys.argv[5], sys.argv[6], scale_links={"ib": scale}).write(out)
""")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The old (ib at line rate) and new (ib at half) run folders' files."""
    base = tmp_path_factory.mktemp("versions")
    old = sc.replay(SAMPLE, TOPO, scale_links={"ib": 1.0}).write(base / "old")
    new = sc.replay(SAMPLE, TOPO, scale_links={"ib": 0.5}).write(base / "new")
    assert _files(old) != _files(new)
    return _files(old), _files(new)


@pytest.mark.parametrize("where,k", [("staging", 1), ("staging", 5), ("staging", 9),
                                     ("exchange", 1), ("cleanup", 1), ("rename", 1),
                                     ("rename", 2)])
def test_a_killed_writer_leaves_the_old_folder_the_new_one_or_none(
        tmp_path: Path, versions: tuple[dict[str, bytes], dict[str, bytes]], where: str,
        k: int) -> None:
    old, new = versions
    out = tmp_path / "run"
    sc.replay(SAMPLE, TOPO, scale_links={"ib": 1.0}).write(out)
    (out / "report.html").write_text("a report of the old run")
    old_with_report = {**old, "report.html": b"a report of the old run"}
    proc = subprocess.run([sys.executable, "-c", CHILD, where, str(k), str(out), "0.5",
                           str(SAMPLE), str(TOPO)], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    state = _files(out) if out.exists() else None
    assert state in (None, old_with_report, new), f"{where} {k}: a mix"
    # The next writer cleans up whatever the killed one left, and publishes whole.
    sc.replay(SAMPLE, TOPO, scale_links={"ib": 0.5}).write(out)
    assert _files(out) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]


def test_replacing_a_folder_drops_files_of_the_old_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    sc.replay(SAMPLE, TOPO).write(out)
    (out / "report.html").write_text("stale")
    result = sc.replay(SAMPLE, TOPO)
    result.write(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(result.output_files)


def test_a_second_writer_fails_at_once(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    with staged_dir(out) as stage:
        (stage / "x").write_text("first writer")
        with pytest.raises(SystemExit) as exit_:
            main(["replay", str(SAMPLE), "-t", str(TOPO), "--out", str(out)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "another simcluster process is writing this folder" in err
        assert "Traceback" not in err
    assert _files(out) == {"x": b"first writer"}


def test_out_naming_a_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    target = tmp_path / "run"
    target.write_text("not a folder")
    with pytest.raises(OutputError, match="a file is there, not a folder"):
        sc.replay(SAMPLE, TOPO).write(target)
    with pytest.raises(SystemExit) as exit_:
        main(["replay", str(SAMPLE), "-t", str(TOPO), "--out", str(target)])
    assert exit_.value.code == 2 and target.read_text() == "not a folder"

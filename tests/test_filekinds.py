"""A file given in the wrong place is named for what it is, with where it goes."""

from __future__ import annotations

from pathlib import Path

import pytest

import simcluster as sc
from simcluster.cli import main
from simcluster.filekinds import identify
from tests.conftest import ROOT

TOPO = ROOT / "topologies" / "h100-2node.yaml"
TRACE = ROOT / "traces" / "dp-transformer-16.parquet"


def _exit(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
        raise SystemExit(0)
    return int(exit_.value.code or 0), capsys.readouterr().err


def test_kinds(tmp_path: Path) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: {topology: t.yaml}\naxes: {tp: [1, 2]}\n")
    placement = tmp_path / "p.yaml"
    placement.write_text("strategy: spread\n")
    kineto = tmp_path / "trace.txt"
    kineto.write_text('{"schemaVersion": 1, "traceEvents": []}')
    run = sc.replay(TRACE, TOPO).write(tmp_path / "run")
    assert [identify(p) for p in (TOPO, TRACE, sweep, placement, kineto, run)] == [
        "topology", "workload", "sweep", "placement", "kineto", "run-folder"]
    other = tmp_path / "notes.yaml"
    other.write_text("hello: world\n")
    assert identify(other) is None and identify(tmp_path / "absent") is None


def test_a_topology_as_the_trace_and_a_trace_as_the_topology(capsys, tmp_path: Path) -> None:
    code, err = _exit(capsys, "replay", str(TOPO))
    assert code == 2 and "is a topology file, not a workload or trace; give it with" in err
    code, err = _exit(capsys, "topology", "check", str(TRACE))
    assert code == 2 and "is a native workload (Parquet), not a topology file" in err
    run = sc.replay(TRACE, TOPO).write(tmp_path / "run")
    code, err = _exit(capsys, "replay", str(run))
    assert code == 2 and "is a run folder" in err and "simcluster report" in err

"""What the command line imports: ``--help`` and ``simcluster collectives`` load only what
they need (issue 19: start-up). Behavioural, never timed: each check runs a fresh
interpreter and looks at ``sys.modules``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

# Loaded by no command that does not use them: sweeps, search, calibration, run folders,
# analyses, Dask, pandas.
NOT_AT_START = ("pandas", "dask", "simcluster.calibrate", "simcluster.analysis",
                "simcluster.sweep.spec", "simcluster.sweep.runner", "simcluster.search",
                "simcluster.export", "simcluster.validation", "simcluster.scenario",
                "simcluster.workload.generate.transformer.assemble", "rich.progress")
# ``collectives`` simulates (scenario, analyses of the result) but reads no log, fits
# nothing, writes no run folder and runs no sweep.
NOT_IN_COLLECTIVES = ("pandas", "dask", "simcluster.calibrate", "simcluster.validation",
                      "simcluster.sweep.spec", "simcluster.sweep.runner", "simcluster.search",
                      "simcluster.export", "simcluster.workload.generate.transformer.assemble",
                      "rich.progress")


def _loaded(code: str, names: tuple[str, ...]) -> tuple[list[str], str]:
    """Run ``code`` in a fresh interpreter at the repository root; the names of ``names``
    it has loaded at the end, and what it printed on stdout."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        sys.stderr.write("LOADED " + json.dumps([m for m in {names!r} if m in sys.modules])
                         + "\\n")
    """)
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    return json.loads(line.removeprefix("LOADED ")), done.stdout


def test_importing_the_command_line_loads_no_command_body() -> None:
    loaded, _ = _loaded("import simcluster.cli", NOT_AT_START)
    assert loaded == []


def test_help_loads_no_command_body() -> None:
    loaded, out = _loaded("""
        from simcluster.cli.app import main
        try:
            main(["--help"])
        except SystemExit:
            pass
    """, NOT_AT_START)
    assert loaded == []
    assert "collectives" in out and "replay" in out and "sweep" in out


def test_collectives_loads_only_what_it_uses() -> None:
    loaded, out = _loaded("""
        from simcluster.cli.app import arrow_without_pandas, main
        arrow_without_pandas()
        try:
            main(["collectives", "-t", "topologies/dgx-h100.yaml", "--ranks", "8",
                  "--min", "1K", "--max", "4K"])
        except SystemExit:
            pass
    """, NOT_IN_COLLECTIVES)
    assert loaded == []
    rows = [line.split() for line in out.splitlines() if not line.startswith("#")]
    assert [int(r[0]) for r in rows] == [1024, 2048, 4096]


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="needs pandas")
def test_arrow_without_pandas_keeps_conversions_to_pandas() -> None:
    loaded, out = _loaded("""
        import sys
        import pyarrow as pa
        from simcluster.cli.app import arrow_without_pandas
        arrow_without_pandas()
        pa.array([1, 2, None], pa.int64())
        quiet = "pandas" not in sys.modules
        frame = pa.table({"a": [1, 2]}).to_pandas()  # asks for pandas: imports it
        print(quiet, type(frame).__name__, frame["a"].tolist())
    """, ("pandas",))
    assert out.split() == ["True", "DataFrame", "[1,", "2]"]
    assert loaded == ["pandas"]


def test_arrow_without_pandas_leaves_a_loaded_pandas_alone() -> None:
    _, out = _loaded("""
        import sys
        try:
            import pandas
        except ImportError:
            pandas = None
        from simcluster.cli.app import arrow_without_pandas
        arrow_without_pandas()
        print(pandas is None or sys.modules["pandas"] is pandas)
    """, ())
    assert out.split() == ["True"]

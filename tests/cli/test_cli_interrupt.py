"""Ctrl-C at any moment after start-up: ``interrupted`` on stderr, exit 130, no traceback.

The console script runs ``simcluster_entry:main``, a module outside the package, so that an
interrupt while ``simcluster`` is still being imported is caught too. The first tests make
the interrupt arrive at exact places (an import hook, in the test's own process start-up
code, sends SIGINT to the process when a chosen module starts to import), then run the very
lines of the console script. The last one sends a real SIGINT from outside to the installed
script once it is inside the package's imports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

# What the test process runs: a hook that interrupts the process itself when ``target``
# starts to import, then exactly what the generated console script runs.
_INTERRUPT_AT = """
import os, signal, sys

class InterruptAt:
    def find_spec(self, name, path=None, target=None):
        if name == {target!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptAt())
sys.argv[1:] = {argv!r}
from simcluster_entry import main
sys.exit(main())
"""


def _interrupted_at(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    code = _INTERRUPT_AT.format(target=module, argv=list(argv))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=False)


@pytest.mark.parametrize(("module", "argv", "where"), [
    ("numpy", ["--help"], "importing simcluster/__init__.py (numpy)"),
    ("pyarrow", ["topology", "check", "x.yaml"], "importing simcluster/__init__.py (pyarrow)"),
    ("simcluster.cli.app", ["--help"], "importing the CLI"),
    ("typer", ["--help"], "importing the CLI's dependencies"),
    ("simcluster.analysis.sweep", ["sweep", "s.yaml", "--out", "o"], "inside a command"),
])
def test_interrupt_prints_interrupted_and_exits_130(module: str, argv: list[str],
                                                   where: str) -> None:
    done = _interrupted_at(module, *argv)
    assert done.returncode == 130, (where, done.stderr)
    assert done.stderr.strip().endswith("interrupted"), (where, done.stderr)
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr


def test_the_console_script_is_the_light_entry_module() -> None:
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["simcluster"] == "simcluster_entry:main"
    # Loading the entry module imports nothing of the package (so nothing slow) before its
    # main is inside its try.
    code = ("import sys, simcluster_entry; "
            "print(sorted(m for m in sys.modules if m.startswith('simcluster')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "['simcluster_entry']"


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_sigint_from_outside_during_imports() -> None:
    script = Path(sys.executable).parent / "simcluster"
    if not script.is_file() or "simcluster_entry" not in script.read_text(errors="replace"):
        pytest.skip("the installed console script is not this version's (pip install -e .)")
    for _ in range(5):  # retried if the process ended before the signal could be sent
        proc = subprocess.Popen([str(script), "--help"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        # Wait until numpy's extension is mapped: the process is inside the package's
        # imports (interpreter start-up, before any of our code runs, is over).
        while proc.poll() is None and not _loaded(proc.pid, "numpy") \
                and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            continue  # it finished first: try again
        assert proc.returncode == 130, err
        assert err.strip() == "interrupted" and "Traceback" not in err
        return
    pytest.skip("the command always finished before the signal was sent")

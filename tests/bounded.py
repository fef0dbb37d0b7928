"""Run the command line in a child process and measure it: exit code, stderr, peak memory.

For the reliability tests: a bad input must end with exit 2 and a one-paragraph message,
within a time bound (a hang guard, not a benchmark) and a memory bound.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

# The child runs the CLI's main() and reports its own peak RSS (KiB) on stderr: VmHWM of its
# own address space (ru_maxrss would include the parent's size before exec).
_CHILD = """\
import sys
from simcluster.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
with open("/proc/self/status") as fh:
    peak = next((line.split()[1] for line in fh if line.startswith("VmHWM:")), "0")
sys.stderr.write(f"\\nPEAK_KIB {peak}\\n")
sys.exit(code)
"""


@dataclass(frozen=True)
class Measured:
    """How a child process ended: exit code, its stderr (the message), its peak RSS (bytes)."""

    code: int
    stderr: str
    peak_bytes: int


def run_cli(*args: str, timeout_s: float = 10.0) -> Measured:
    """``simcluster ARGS`` in a child process, killed after ``timeout_s``.

    Raises:
        subprocess.TimeoutExpired: it ran longer than ``timeout_s``.
    """
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True,
                          text=True, timeout=timeout_s)
    message, _, peak = proc.stderr.rpartition("PEAK_KIB ")
    return Measured(proc.returncode, message.strip(), int(peak.strip() or 0) * 1024)

"""The ``simcluster`` console script: a Ctrl-C at any moment, even while the package is
still being imported, ends it with ``interrupted`` on stderr and exit code 130, without a
traceback.

It lives outside the ``simcluster`` package on purpose. Importing anything under
``simcluster`` first runs ``simcluster/__init__.py``, which imports the public API (numpy,
pyarrow, SimPy, networkx, pydantic: most of a second of start-up), and an interrupt during
that import comes before any code of the package could catch it. This module imports
nothing at load time, so ``main`` is in its ``try`` within a millisecond of the script's
start. (An interrupt while the interpreter itself starts, before this module is loaded, is
Python's to report.)
"""

from __future__ import annotations

import sys  # built in: already loaded

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report it


def interrupted() -> None:
    """Say ``interrupted`` on stderr and exit with 130 (never returns); a second Ctrl-C
    meanwhile is ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the exit code still tells
        pass
    sys.exit(INTERRUPTED_EXIT)


def main() -> None:
    """Import the CLI and run it (``simcluster.cli.app.main``), mapping Ctrl-C to exit 130."""
    try:
        from simcluster.cli.app import main as run

        run()
    except KeyboardInterrupt:
        interrupted()

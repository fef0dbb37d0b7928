"""The ``simcluster`` console script: a Ctrl-C at any moment, even while the package is
still being imported, ends it with ``interrupted`` on stderr and exit code 130, without a
traceback.

It lives outside the ``simcluster`` package on purpose. Importing the command line
(``simcluster.cli``) loads numpy, pyarrow, SimPy, networkx and pydantic (about half a second
of start-up), and an interrupt during that import comes before any code of the package could
catch it. This module imports
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
    """Import the CLI and run it (``simcluster.cli.app.main``, after
    ``arrow_without_pandas``: this process never hands pyarrow pandas objects), mapping Ctrl-C
    to exit 130."""
    try:
        from simcluster.cli.app import arrow_without_pandas, main as run

        arrow_without_pandas()
        run()
    except KeyboardInterrupt:
        interrupted()

"""The ``simcluster`` command line: parses arguments, calls the API, renders with rich.

Bad input ends with a one-paragraph message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

# Importing the command modules registers their commands on the apps, in this order.
from simcluster.cli import calibrations, inputs, records, runs, searches  # noqa: F401
from simcluster.cli.apps import app
from simcluster.errors import SimclusterError

__all__ = ["app", "main"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT


# -- entry point ----------------------------------------------------------------------------------

def _interrupted(err: Console) -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second ^C while we leave changes nothing
    err.print("interrupted")
    sys.exit(INTERRUPTED_EXIT)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to exit codes (2: bad input, 1: internal error, 130: ^C).

    The console script starts in ``simcluster_entry``, which also catches a ^C during the
    imports that precede this function.
    """
    err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)
    try:
        # Standalone mode: Typer itself reports usage errors (exit 2) and exits.
        app(args=argv, prog_name="simcluster")
    except KeyboardInterrupt:
        _interrupted(err)
    except SystemExit as exc:
        if exc.code == INTERRUPTED_EXIT:  # Typer ends a command interrupted by ^C with 130
            _interrupted(err)
        raise
    except SimclusterError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for those who ask
        if os.environ.get("SIMCLUSTER_DEBUG"):
            traceback.print_exc()
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}. "
                  "This is a bug in simcluster; please report it with the command you ran (set "
                  "SIMCLUSTER_DEBUG=1 to see the traceback).", soft_wrap=True)
        sys.exit(1)

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

__all__ = ["app", "arrow_without_pandas", "main"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT


# -- entry point ----------------------------------------------------------------------------------

def _interrupted(err: Console) -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second ^C while we leave changes nothing
    err.print("interrupted")
    sys.exit(INTERRUPTED_EXIT)


class _NoPandas:
    """A meta-path finder under which ``import pandas`` fails (see ``arrow_without_pandas``)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not needed here", name="pandas")


def arrow_without_pandas() -> None:
    """Let pyarrow find pandas absent, so that a command does not import it (0.4-0.6 s).

    ``pyarrow.array`` of a list asks whether it is a pandas object, and the first such
    question imports pandas when it is installed. The command line never hands pyarrow pandas
    objects, so it has pyarrow try the import once while ``import pandas`` fails; pyarrow
    then treats pandas as absent for these questions (it imports it again where a
    conversion to pandas asks for it). Where pandas is already loaded, nothing changes.

    For the processes the command line owns (the console script, ``python -m simcluster``),
    not for a caller of :func:`main` in its own process, which may hand pyarrow pandas
    objects.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)  # type: ignore[arg-type]
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)  # type: ignore[arg-type]


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

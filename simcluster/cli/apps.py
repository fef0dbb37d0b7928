"""The Typer apps of the ``simcluster`` command line, the console it prints on, and the option
parsers and help texts that several commands share. Commands live in ``inputs.py``
(topology, trace, generate), ``runs.py`` (collectives, replay and what to do with a run
folder) and ``searches.py`` (sweeps and search); ``app.py`` puts them together."""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from simcluster.errors import SimclusterError

app = typer.Typer(
    help="Simulate ML training clusters: replay workloads on a model of accelerators and links.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topology_app = typer.Typer(help="Check, show and describe cluster topologies.",
                           no_args_is_help=True)
trace_app = typer.Typer(help="Inspect and import workload traces.", no_args_is_help=True)
trace_import_app = typer.Typer(help="Import recorded traces into a native workload file.",
                               no_args_is_help=True)
trace_app.add_typer(trace_import_app, name="import")
generate_app = typer.Typer(help="Generate synthetic workloads.", no_args_is_help=True)
app.add_typer(topology_app, name="topology")
app.add_typer(trace_app, name="trace")
app.add_typer(generate_app, name="generate")



def _print_version(value: bool) -> None:
    if value:
        from simcluster import __version__

        sys.stdout.write(f"simcluster {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print the version and exit")] = False) -> None:
    """Simulate ML training clusters: replay workloads on a model of accelerators and links."""


JSON_HELP = "print one JSON document on stdout (no tables; see docs/formats.md#json-output)"


def _plain(value: Any) -> Any:
    """``value`` with NaN and infinities as null, so that the document is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Write ``data`` as one JSON document (sorted keys; NaN as null) on stdout."""
    sys.stdout.write(json.dumps(_plain(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


# Progress bars appear only on runs with at least this many ops (and on a terminal).
PROGRESS_MIN_OPS = 100_000


def terminal() -> Console:
    """The console commands print on (140 columns when not a terminal)."""
    return Console(width=None if sys.stdout.isatty() else 140, highlight=False)



# -- option parsers and help texts ------------------------------------------------------------

TRACE_HELP = ("workload file (native Parquet), or recorded traces: a folder (or file) of "
               "PyTorch profiler JSON (.json, .json.gz, one per rank) or of Chakra .et files")
STEP_HELP = "ProfilerStep to import: a step number, or 'all' (Kineto traces)"
ET_HELP = ("PyTorch execution traces (folder of JSON or .tar.gz) that supply collective sizes "
            "a Kineto trace lacks")
ALIGN_HELP = ("how ranks' traces line up: 'clock' keeps their recorded start times (one host, or "
               "synchronised clocks); 'start' starts every rank at 0")
WAITS_HELP = ("keep the GPU waits a Kineto trace records but does not explain (no launch, "
              "stream or cross-stream wait accounts for them) as 'unexplained GPU wait' ops "
              "(default); --no-unexplained-waits starts those GPU ops as early as the "
              "recorded causes allow")
COPIES_HELP = ("replay host<->device copies as flows on the topology instead of their recorded "
                "durations (Kineto traces)")


def align_option(value: str) -> str:
    """``clock`` or ``start`` (``--align``)."""
    if value not in ("clock", "start"):
        raise typer.BadParameter(f"{value!r} is neither 'clock' nor 'start'")
    return value


def step_option(value: str) -> str | int:
    """``all`` or a step number."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither 'all' nor a step number") from None


def pairs(option: str, items: list[str]) -> list[tuple[str, str]]:
    """``["ib=2", "nvlink=0.5"]`` -> pairs; a malformed item is a usage error."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        try:
            float(value)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise SimclusterError(f"{option} {item!r}: write NAME=NUMBER, e.g. {option} ib=2.0.")
        out.append((key.strip(), value.strip()))
    return out


def int_list(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SimclusterError(f"{option} {text!r}: give whole numbers separated by commas, "
                              "e.g. 1,2,4,8.") from None
    if not values or min(values) < 1:
        raise SimclusterError(f"{option} {text!r}: every value must be at least 1.")
    return values



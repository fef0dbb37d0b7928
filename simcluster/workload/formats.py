"""The trace format registry: how :func:`~simcluster.workload.load_workload` reads a path.

A :class:`TraceFormat` is one record: a name, ``sniff(path)`` (does this path hold this
format? cheap: names and magic bytes, not a parse) and ``load(path, **options)`` (the
Workload). ``load_workload`` asks the formats in registration order and loads with the first
that recognises the path; a file that none recognises goes to the native reader, whose error
says what the file is not. The list in the "folder without traces" message derives from the
records' descriptions.

Adding a format is one call::

    register_trace_format(TraceFormat(name="mine", sniff=is_mine, load=load_mine))

``load`` receives the options of ``load_workload`` (``step``, ``et``, ``model_copies``,
``align``) as keywords and may ignore those that do not apply to it. Tests use
:func:`registered_trace_format`, which takes it out again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.filekinds import exists, hint, identify
from simcluster.registry import Registry
from simcluster.workload.model import Workload
from simcluster.workload.native import read_workload

NATIVE = "native"  # the format a file goes to when no format recognises it


@dataclass(frozen=True)
class TraceFormat:
    """One trace format.

    Attributes:
        name: what the format is called (``load_workload(..., format=name)`` forces it).
        sniff: whether a path (a file or a folder) holds this format.
        load: ``load(path, **options)`` -> Workload; raises ``WorkloadError`` for bad input.
        description: what it reads, as a phrase for messages: ``"Chakra traces
            (<prefix>.<rank>.et)"``.
    """

    name: str
    sniff: Callable[[Path], bool]
    load: Callable[..., Workload]
    description: str = ""


REGISTRY: Registry[TraceFormat] = Registry("trace format", WorkloadError)


# The extension point's API is the registry's own (``registry.Registry``): register (after
# those already there; ``replace=True`` to swap one), unregister, a ``with`` block that
# registers for its duration, look-up by name (an unknown name lists the known ones),
# and the names in registration order.
register_trace_format = REGISTRY.register
unregister_trace_format = REGISTRY.unregister
registered_trace_format = REGISTRY.registered
get_trace_format = REGISTRY.get
trace_format_names = REGISTRY.names


def detect(path: Path) -> TraceFormat | None:
    """The first registered format that recognises ``path``, or None."""
    return next((f for f in REGISTRY.records() if f.sniff(path)), None)


def open_workload(path: str | Path, format: str | None = None, **options: Any) -> Workload:
    """Load ``path`` with ``format`` (a registered name), or the format it is detected as.

    Raises:
        WorkloadError: no such path, an unknown format, a folder that no format recognises,
            or whatever the format's loader finds wrong.
    """
    p = Path(path)
    if not exists(p):
        raise WorkloadError(f"{p}: file not found; check the path.")
    if format is None and p.is_dir() and identify(p) == "run-folder":
        raise WorkloadError(hint(p, "a workload or trace"))
    fmt = get_trace_format(format) if format is not None else detect(p)
    if fmt is None:
        other = hint(p, "a workload or trace")
        if other:
            raise WorkloadError(other)
        if p.is_dir():
            raise WorkloadError(
                f"{p}: a folder without traces; simcluster reads {_readable()}.")
        fmt = get_trace_format(NATIVE)  # its reader says what the file is not
    return fmt.load(p, **options)


def _readable() -> str:
    """``A, B and C``: what the registered formats read."""
    items = [f.description or f"{f.name} traces" for f in REGISTRY.records()]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


# -- the built-in formats (registration order is detection order) ------------------------------

def _is_chakra(path: Path) -> bool:
    from simcluster.workload.chakra import is_chakra_dir

    return is_chakra_dir(path)


def _load_chakra(path: Path, **options: Any) -> Workload:
    from simcluster.workload.chakra import import_chakra

    return import_chakra(path)


def _is_kineto(path: Path) -> bool:
    from simcluster.workload.kineto import is_kineto_path

    return is_kineto_path(path)


def _load_kineto(path: Path, *, step: str | int = "all", et: str | Path | None = None,
                 model_copies: bool = False, align: str = "clock",
                 unexplained_waits: bool = True, **options: Any) -> Workload:
    from simcluster.workload.kineto import KinetoOptions, import_kineto

    return import_kineto(path, KinetoOptions(step=step, et=et, model_copies=model_copies,
                                             align=align, unexplained_waits=unexplained_waits))


_PARQUET_MAGIC = b"PAR1"


def _is_native(path: Path) -> bool:
    """A Parquet file: by suffix, or by its magic bytes."""
    if not path.is_file():
        return False
    if path.suffix == ".parquet":
        return True
    with path.open("rb") as f:
        return f.read(4) == _PARQUET_MAGIC


def _load_native(path: Path, **options: Any) -> Workload:
    return read_workload(path)


# Chakra first: a folder of .et files may also hold the Kineto and PyTorch ET JSON files
# they were converted from.
register_trace_format(TraceFormat(
    "chakra", _is_chakra, _load_chakra, description="Chakra traces (<prefix>.<rank>.et)"))
register_trace_format(TraceFormat(
    "kineto", _is_kineto, _load_kineto,
    description="PyTorch profiler traces (*.json, *.json.gz, one per rank)"))
register_trace_format(TraceFormat(
    NATIVE, _is_native, _load_native, description="native workloads (*.parquet)"))

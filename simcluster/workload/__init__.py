"""WHAT runs: the workload data model, its native format, importers and generators."""

from __future__ import annotations

from pathlib import Path

from simcluster.workload.model import (
    COLLECTIVES,
    COPY_KINDS,
    KINDS,
    OPS_SCHEMA,
    OpsBuilder,
    Workload,
    WorkloadMeta,
)
from simcluster.workload.formats import (
    TraceFormat,
    open_workload,
    register_trace_format,
    registered_trace_format,
    unregister_trace_format,
)
from simcluster.workload.native import read_workload, write_workload
from simcluster.workload.validate import make_workload

__all__ = [
    "COLLECTIVES",
    "COPY_KINDS",
    "KINDS",
    "OPS_SCHEMA",
    "OpsBuilder",
    "TraceFormat",
    "Workload",
    "WorkloadMeta",
    "load_workload",
    "make_workload",
    "read_workload",
    "register_trace_format",
    "registered_trace_format",
    "unregister_trace_format",
    "write_workload",
]


def load_workload(path: str | Path, *, step: str | int = "all", et: str | Path | None = None,
                  model_copies: bool = False, align: str = "clock",
                  unexplained_waits: bool = True, format: str | None = None) -> Workload:
    """Load a workload: a native Parquet file, or recorded traces, detected by content.

    The formats are the records of :mod:`.formats`, tried in order; built in:

    - a folder of ``*.et`` files, or one: Chakra execution traces (:mod:`.chakra`);
    - a folder of ``*.json``/``*.json.gz`` files, or one: PyTorch profiler (Kineto) traces,
      one per rank (:mod:`.kineto`); ``step``, ``et``, ``model_copies``, ``align`` and
      ``unexplained_waits`` apply to these (see :class:`~simcluster.workload.kineto.KinetoOptions`);
    - a ``.parquet`` file (or any file no format recognises): the native format.

    ``format`` names the format instead of detecting it.

    Raises:
        WorkloadError: no such path, nothing recognisable in it, or unreadable, truncated,
            foreign or inconsistent input.
    """
    return open_workload(path, format, step=step, et=et, model_copies=model_copies,
                         align=align, unexplained_waits=unexplained_waits)

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
from simcluster.workload.native import read_workload, write_workload
from simcluster.workload.validate import make_workload

__all__ = [
    "COLLECTIVES",
    "COPY_KINDS",
    "KINDS",
    "OPS_SCHEMA",
    "OpsBuilder",
    "Workload",
    "WorkloadMeta",
    "load_workload",
    "make_workload",
    "read_workload",
    "write_workload",
]


def load_workload(path: str | Path) -> Workload:
    """Load a workload file (native Parquet).

    Raises:
        WorkloadError: unreadable, truncated, foreign or inconsistent input.
    """
    return read_workload(path)

"""WHAT runs: the workload data model, its native format, importers and generators."""

from __future__ import annotations

from pathlib import Path

from simcluster.errors import WorkloadError

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


def load_workload(path: str | Path, *, step: str | int = "all", et: str | Path | None = None,
                  model_copies: bool = False, align: str = "clock") -> Workload:
    """Load a workload: a native Parquet file, or recorded traces, detected by content.

    - a ``.parquet`` file: the native format;
    - a folder of ``*.et`` files, or one: Chakra execution traces (:mod:`.chakra`);
    - a folder of ``*.json``/``*.json.gz`` files, or one: PyTorch profiler (Kineto) traces,
      one per rank (:mod:`.kineto`); ``step``, ``et``, ``model_copies`` and ``align`` apply to
      these (see :class:`~simcluster.workload.kineto.KinetoOptions`).

    Raises:
        WorkloadError: no such path, nothing recognisable in it, or unreadable, truncated,
            foreign or inconsistent input.
    """
    from simcluster.workload.chakra import import_chakra, is_chakra_dir
    from simcluster.workload.kineto import KinetoOptions, import_kineto, is_kineto_path

    p = Path(path)
    if not p.exists():
        raise WorkloadError(f"{p}: file not found; check the path.")
    if is_chakra_dir(p):
        return import_chakra(p)
    if is_kineto_path(p):
        return import_kineto(p, KinetoOptions(step=step, et=et, model_copies=model_copies,
                                              align=align))
    if p.is_dir():
        raise WorkloadError(
            f"{p}: a folder without traces; simcluster reads PyTorch profiler traces "
            "(*.json, *.json.gz, one per rank), Chakra traces (<prefix>.<rank>.et) and "
            "native workloads (*.parquet)."
        )
    return read_workload(p)

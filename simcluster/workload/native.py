"""The native workload format: one Parquet file, versioned.

The ops table is stored as Parquet columns (``OPS_SCHEMA``). The file's key-value metadata
holds:

- ``simcluster.format``: ``simcluster-workload``;
- ``simcluster.version``: the format version: ``1``, or ``2`` when some op has
  ``fixed_duration`` set (a version-1 reader would drop that column and then misreplay the
  file, so it must refuse it); readers refuse versions newer than they know;
- ``simcluster.groups``: JSON object, group name -> list of ranks;
- ``simcluster.meta``: JSON object of :class:`WorkloadMeta`.

Writes are atomic (temporary file, then rename) and deterministic (same workload, same bytes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simcluster.errors import WorkloadError
from simcluster.atomic import atomic_path
from simcluster.workload.model import Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

FORMAT = "simcluster-workload"
VERSION = 2  # the newest version this code reads and writes
_VERSIONS = (1, 2)
_K_FORMAT = b"simcluster.format"
_K_VERSION = b"simcluster.version"
_K_GROUPS = b"simcluster.groups"
_K_META = b"simcluster.meta"


def write_workload(workload: Workload, path: str | Path) -> Path:
    """Write ``workload`` as a native Parquet file (atomically); returns the path."""
    path = Path(path)
    meta = {
        _K_FORMAT: FORMAT.encode(),
        _K_VERSION: str(_version_needed(workload)).encode(),
        _K_GROUPS: json.dumps({g: list(r) for g, r in workload.groups.items()},
                              sort_keys=True).encode(),
        _K_META: json.dumps(workload.meta.to_json(), sort_keys=True).encode(),
    }
    table = workload.ops.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    return path


def read_workload(path: str | Path) -> Workload:
    """Read and validate a native workload file.

    Raises:
        WorkloadError: the file is missing, truncated, not Parquet, not a simcluster
            workload, of a newer format version, or inconsistent (see ``make_workload``).
    """
    path = Path(path)
    if not path.is_file():
        raise WorkloadError(f"{path}: file not found; check the path.")
    try:
        pf = pq.ParquetFile(path)
        table = pf.read()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise WorkloadError(
            f"{path}: not a readable Parquet file ({_first_line(exc)}); it may be truncated or "
            "of another format. Write workloads with simcluster (generate, trace import)."
        ) from None
    kv = table.schema.metadata or {}
    if kv.get(_K_FORMAT) != FORMAT.encode():
        raise WorkloadError(
            f"{path}: a Parquet file but not a simcluster workload (no simcluster.format "
            f"metadata; columns: {', '.join(table.column_names[:8])}). Convert traces with "
            "`simcluster trace import`, or write them with simcluster.workload.write_workload."
        )
    try:
        version = int(kv.get(_K_VERSION, b"0"))
    except ValueError:
        version = -1
    if version not in _VERSIONS:
        raise WorkloadError(
            f"{path}: workload format version {kv.get(_K_VERSION, b'?').decode(errors='replace')}"
            f" but this simcluster reads versions {', '.join(map(str, _VERSIONS))}; "
            + ("upgrade simcluster." if version > VERSION else "re-export the workload.")
        )
    try:
        groups = json.loads(kv.get(_K_GROUPS, b"{}"))
        meta = WorkloadMeta.from_json(json.loads(kv.get(_K_META, b"{}")))
        if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
            raise ValueError("groups must map names to lists of ranks")
    except (ValueError, TypeError) as exc:
        raise WorkloadError(
            f"{path}: metadata simcluster.groups/meta is not valid ({exc}); re-export the file."
        ) from None
    return make_workload(table.replace_schema_metadata(None), groups, meta, source=str(path))


def _version_needed(workload: Workload) -> int:
    """The oldest format version that carries ``workload`` faithfully."""
    fixed = workload.ops.column("fixed_duration")
    return 2 if pc.any(fixed.fill_null(False)).as_py() else 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

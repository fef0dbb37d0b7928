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

Reading trusts nothing in the file: a truncated or foreign file, a column name that is not
UTF-8, metadata that is not the JSON object it should be (``null``, a list, a number, a
``world_size`` that is not a whole number) are each a WorkloadError that says what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        table.validate(full=True)  # string data that is not UTF-8, offsets out of range
    except UnicodeDecodeError as exc:
        raise WorkloadError(
            f"{path}: a column name or other text of the Parquet schema is not valid UTF-8 "
            f"(byte {exc.object[exc.start:exc.start + 1]!r} at {exc.start} of "
            f"{bytes(exc.object[:40])!r}); the file is corrupt or was not written by simcluster."
        ) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        # ArrowInvalid/ArrowIOError: truncated or not Parquet; ArrowNotImplementedError:
        # types this Arrow cannot read.
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
    groups = _groups_from_json(_json_value(kv, _K_GROUPS, path), path)
    meta = _meta_from_json(_json_value(kv, _K_META, path), path)
    return make_workload(table.replace_schema_metadata(None), groups, meta, source=str(path))


def _json_value(kv: dict[bytes, bytes], key: bytes, path: Path) -> Any:
    """The JSON value of metadata ``key`` (``{}`` when absent).

    Raises:
        WorkloadError: not UTF-8, not JSON, or nested past the interpreter's recursion.
    """
    try:
        return json.loads(kv.get(key, b"{}"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WorkloadError(
            f"{path}: metadata {key.decode()} is not valid JSON ({_first_line(exc)}); "
            "re-export the file."
        ) from None


def _bad_meta(path: Path, key: str, value: Any, want: str) -> WorkloadError:
    shown = json.dumps(value, default=repr)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return WorkloadError(f"{path}: metadata {key} is {shown}; it must be {want}. The file was "
                         "not written by simcluster or was edited; re-export the workload.")


def _groups_from_json(data: Any, path: Path) -> dict[str, list[int]]:
    """``simcluster.groups``: an object of group name -> list of whole-number ranks.

    Raises:
        WorkloadError: anything else.
    """
    if not isinstance(data, dict):
        raise _bad_meta(path, "simcluster.groups", data, "an object of group -> ranks")
    for name, ranks in data.items():
        if not isinstance(ranks, list) or not all(
                isinstance(r, int) and not isinstance(r, bool) and 0 <= r < 2**31 for r in ranks):
            raise _bad_meta(path, f"simcluster.groups.{name}", ranks,
                            "a list of ranks (whole numbers from 0)")
    return data


_META_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "source": (str,), "recorded_device": (str, type(None)),
    "recorded_topology": (str, type(None)), "extra": (dict, type(None))}


def _meta_from_json(data: Any, path: Path) -> WorkloadMeta:
    """``simcluster.meta``: a :class:`WorkloadMeta` as a JSON object.

    Raises:
        WorkloadError: not an object, a field of the wrong type, or a world size that is not a
            whole number from 0 to 2**31-1.
    """
    if not isinstance(data, dict):
        raise _bad_meta(path, "simcluster.meta", data, "a JSON object (the workload's "
                        "name, source, world_size, ...)")
    for key, types in _META_TYPES.items():
        if key in data and not isinstance(data[key], types):
            want = " or ".join("null" if t is type(None) else {"str": "a string", "dict":
                               "an object"}[t.__name__] for t in types)
            raise _bad_meta(path, f"simcluster.meta.{key}", data[key], want)
    ws = data.get("world_size", 0)
    if isinstance(ws, bool) or not isinstance(ws, int) or not 0 <= ws < 2**31:
        raise _bad_meta(path, "simcluster.meta.world_size", ws, "a whole number of ranks")
    return WorkloadMeta.from_json(data)


def _version_needed(workload: Workload) -> int:
    """The oldest format version that carries ``workload`` faithfully."""
    fixed = workload.ops.column("fixed_duration")
    return 2 if pc.any(fixed.fill_null(False)).as_py() else 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

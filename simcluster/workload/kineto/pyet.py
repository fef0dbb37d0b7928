"""Collective sizes from PyTorch execution traces (``--et``), for Kineto traces that lack them.

A PyTorch execution trace (``torch.profiler.ExecutionTraceObserver``, schema 1.0.x) is JSON:
``{"schema": ..., "nodes": [...]}``. Each ``record_param_comms`` node lists, among its
``inputs``, the collective's name (``allreduce``, ``all_to_allv``; ``wait`` for waits, which
are not collectives) and tensors as ``[tensor id, storage id, offset, numel, element bytes,
device]``; its ``outputs`` hold the output tensors. The input tensor gives the size of an
all-reduce, all-to-all or reduce-scatter, the output tensor that of an all-gather. After an
all-to-all(v)'s name come its input and output split sizes (empty for an even one).

Matching. ``rf_id`` numbers record functions, and newer Kineto traces carry the same number
as ``Record function id``; the traces of ``../shared/data`` (2023) do not, and their
``External id`` is offset from ``rf_id`` by a per-thread amount. So collectives are matched in
issue order: the k-th communication kernel of a rank's Kineto trace with the k-th collective
of its execution trace, checking that the collective kinds agree where both are known.

Files: a folder of ``*.json`` (optionally ``.gz``) or a ``.tar.gz`` of them; the rank is the
last number of the file name (``dlrm_eg_3.json`` -> 3).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.workload.importing import rank_from_name
from simcluster.workload.kineto.comms import normalize_collective, split_sizes


@dataclass(frozen=True)
class EtCollective:
    """One collective of an execution trace: its kind and size (nccl-tests convention), and
    an all-to-all(v)'s input split sizes (the list after its name; None when empty)."""

    collective: str
    nbytes: int | None
    node_id: int
    splits: tuple[int, ...] | None = None


def _tensors(value: Any) -> list[list[Any]]:
    """Tensor descriptors inside an input/output value (a tensor or a list of them)."""
    if (isinstance(value, list) and len(value) == 6 and all(isinstance(x, int)
                                                            for x in value[:5])):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _tensors(v)]
    return []


def _nbytes(values: list[Any]) -> int | None:
    tensors = [t for v in values for t in _tensors(v)]
    if not tensors:
        return None
    return sum(int(t[3]) * int(t[4]) for t in tensors)


def _node_id(n: dict[str, Any]) -> int:
    """A node's id; 0 when it is missing or not a whole number (a corrupt trace)."""
    i = n.get("id", 0)
    return i if isinstance(i, int) and not isinstance(i, bool) else 0


def collectives_of(nodes: list[Any]) -> list[EtCollective]:
    """The collectives of one execution trace, in node-id (issue) order; entries that are
    not objects are ignored."""
    out = []
    for n in sorted((n for n in nodes if isinstance(n, dict)), key=_node_id):
        if n.get("name") != "record_param_comms":
            continue
        inputs = n.get("inputs") or []
        names = [normalize_collective(x) for x in inputs if isinstance(x, str)]
        coll = next((c for c in names if c), None)
        if coll is None or coll == "barrier":
            continue  # "wait" and barriers move no data
        size = _nbytes(n.get("outputs") or []) if coll == "all_gather" else _nbytes(inputs)
        splits = None
        if coll == "all_to_all":  # [tensor, ..., "all_to_allv", in splits, out splits]
            at = next(k for k, x in enumerate(inputs) if isinstance(x, str)
                      and normalize_collective(x))
            splits = split_sizes(inputs[at + 1]) if at + 1 < len(inputs) else None
        out.append(EtCollective(coll, size, _node_id(n), splits))
    return out


_MAX_GZIP_RATIO = 200  # as for Kineto traces: real JSON expands 10-30 times


def _gunzip(name: str, raw: bytes) -> bytes:
    """Decompress a ``.json.gz``, refusing one that expands more than 200 times (64 MiB at
    least): a compression bomb would otherwise fill memory.

    Raises:
        WorkloadError: corrupt gzip, or over the expansion limit.
    """
    cap = max(64 << 20, _MAX_GZIP_RATIO * len(raw))
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            out = gz.read(cap + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise WorkloadError(f"{name}: cannot decompress ({exc}); the file may be truncated or "
                            "not gzip.") from None
    if len(out) > cap:
        raise WorkloadError(f"{name}: expands to more than {cap:,} bytes ({_MAX_GZIP_RATIO} "
                            "times its size); real execution traces expand 10-30 times, so "
                            "the file is corrupt or a compression bomb.")
    return out


def _load(name: str, raw: bytes) -> list[Any]:
    if name.endswith(".gz"):
        raw = _gunzip(name, raw)
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WorkloadError(f"{name}: not valid JSON ({exc}); not an execution trace.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise WorkloadError(f"{name}: no 'nodes' list, so not a PyTorch execution trace.")
    return doc["nodes"]


def read_execution_traces(path: str | Path) -> dict[int, list[EtCollective]]:
    """Rank -> collectives, from a folder of ET JSON files or a ``.tar.gz`` of them.

    Raises:
        WorkloadError: no such path, no ET files, a file without a rank in its name, or a
            file that is not an execution trace.
    """
    path = Path(path)
    found: dict[int, list[EtCollective]] = {}

    def add(name: str, raw: bytes) -> None:
        rank = rank_from_name(Path(name))
        if rank is None:
            raise WorkloadError(f"{name}: no rank in the execution trace's file name.")
        found[rank] = collectives_of(_load(name, raw))

    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path) as tar:
                for member in sorted(tar.getmembers(), key=lambda m: m.name):
                    if member.isfile() and member.name.endswith((".json", ".json.gz")):
                        fh = tar.extractfile(member)
                        if fh is not None:
                            add(f"{path}:{member.name}", fh.read())
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise WorkloadError(f"{path}: cannot read the archive ({exc}).") from None
    elif path.is_dir():
        for f in sorted(p for p in path.glob("*.json*") if p.is_file()):
            add(str(f), f.read_bytes())
    elif path.is_file():
        add(str(path), path.read_bytes())
    else:
        raise WorkloadError(f"{path}: no such execution-trace file or folder (--et).")
    if not found:
        raise WorkloadError(f"{path}: no execution traces (*.json) found (--et).")
    return found

"""Chakra execution traces (ASTRA-sim's input) -> Workload.

A Chakra ET (``et_def.proto``) is one file per rank, ``<prefix>.<rank>.et``: a stream of
varint-length-prefixed protobuf messages, one ``GlobalMetadata`` then ``Node`` messages. It
is decoded here with :mod:`simcluster.workload.protowire` (no protobuf dependency).

Node -> op:

=====================  ========================================================================
node type              op
=====================  ========================================================================
COMP_NODE              ``compute`` (``host`` when ``is_cpu_op``), its recorded duration or,
                       without one, ``num_ops`` FLOPs and ``tensor_size`` bytes
COMM_COLL_NODE         ``collective``: ``comm_type`` -> the collective, ``comm_size`` -> bytes;
                       a CPU-side one (``is_cpu_op`` true, no size) is ``host`` time
COMM_SEND/RECV_NODE    ``send``/``recv`` with ``comm_dst``/``comm_src`` and ``comm_size``
MEM_LOAD/STORE_NODE    ``memcpy`` H2D/D2H of ``tensor_size`` bytes
METADATA, INVALID      skipped (counted)
=====================  ========================================================================

Dependencies are ``data_deps`` and ``ctrl_deps``; ones that name absent nodes or the node
itself are dropped and counted. Ops are numbered in a topological order of the data
dependencies (ties by start time, then node id), so stream order never contradicts one; a
data-dependency cycle is an error. Control dependencies that go against that order are
dropped and counted: converted PyTorch traces link an op and its kernel both ways.
Streams: ``tid`` (a CPU thread for CPU ops, a device stream otherwise) when given,
else ``compute``/``comm``/``cpu``.

Sizes (``comm_size``) are read as nccl-tests sizes (``docs/formats.md``): the per-rank buffer
of an all-reduce, the whole gathered output of an all-gather, the whole input of a
reduce-scatter, the total a rank sends in an all-to-all. ASTRA-sim's ring and direct
algorithms use it the same way (a ring all-gather moves ``(p-1)/p`` of it per rank).

Collectives are modelled (network model) when at least two ranks are present and every
member of their group is; otherwise they are fixed-duration at their recorded
``duration_micros`` (the feeder trace holds rank 0 only). Groups come from ``pg_name`` when
nodes carry it, else every rank is in one group, ``world``.
"""

from __future__ import annotations

from pathlib import Path

from simcluster.errors import WorkloadError
from simcluster.workload.chakra.etfile import (
    COMM_COLL_NODE,
    COMM_RECV_NODE,
    COMM_SEND_NODE,
    COMM_TYPES,
    COMP_NODE,
    INVALID_NODE,
    MEM_LOAD_NODE,
    MEM_STORE_NODE,
    METADATA_NODE,
    EtFile,
    EtNode,
    decode_attr,
    decode_node,
    find_et_files,
    read_et,
)
from simcluster.workload.chakra.ops import _add_rank, _RankContext
from simcluster.workload.importing import ImportReport, finish, rank_from_name
from simcluster.workload.model import OPS_SCHEMA, OpsBuilder, Workload, WorkloadMeta

# The decoding (``etfile.py``) was part of this module; its names stay importable from here.
__all__ = [
    "COMM_COLL_NODE", "COMM_RECV_NODE", "COMM_SEND_NODE", "COMM_TYPES", "COMP_NODE",
    "INVALID_NODE", "MEM_LOAD_NODE", "MEM_STORE_NODE", "METADATA_NODE", "EtFile", "EtNode",
    "decode_attr", "decode_node", "find_et_files", "import_chakra", "is_chakra_dir", "read_et",
]


def _groups(files: list[EtFile]) -> dict[str, tuple[int, ...]]:
    """``world`` (every rank present) and each ``pg_name`` with the ranks that use it."""
    groups: dict[str, set[int]] = {"world": {f.rank for f in files}}
    for f in files:
        for n in f.nodes:
            pg = n.attrs.get("pg_name")
            if n.type == COMM_COLL_NODE and pg not in (None, ""):
                groups.setdefault(str(pg), set()).add(f.rank)
    return {g: tuple(sorted(r)) for g, r in groups.items()}


def import_chakra(path: str | Path) -> Workload:
    """Import a directory of Chakra ET files (``<prefix>.<rank>.et``), or one file.

    Ranks are numbered by the file names; they must be 0 .. N-1.

    Returns:
        The Workload; ``meta.extra['import']`` holds the import report (skipped nodes,
        unknown attributes, warnings).

    Raises:
        WorkloadError: no traces, truncated or foreign files, ranks with gaps, dependency
            cycles, or communication that does not match across ranks.
    """
    path = Path(path)
    if path.is_file():
        rank = rank_from_name(path) or 0
        pairs = [(rank, path)]
    elif path.is_dir():
        pairs = find_et_files(path)
    else:
        raise WorkloadError(f"{path}: no such file or directory.")
    ranks = [r for r, _ in pairs]
    if ranks != list(range(len(ranks))) and len(ranks) > 1:
        raise WorkloadError(
            f"{path}: ranks {', '.join(map(str, ranks[:8]))} are not 0..{len(ranks) - 1}; "
            "every rank of the job needs its trace."
        )
    report = ImportReport(source=str(path), files=[str(p) for _, p in pairs])
    files = [read_et(p, i) for i, (_, p) in enumerate(pairs)]
    groups = _groups(files)
    modelled = len(files) > 1
    if not modelled and any(n.type in (COMM_COLL_NODE, COMM_SEND_NODE, COMM_RECV_NODE)
                            for n in files[0].nodes):
        report.warnings.append(
            "one rank only: its communication replays at the recorded durations (the peers "
            "are not in the trace), so it cannot be retargeted to another cluster."
        )
    b = OpsBuilder()
    present = {f.rank for f in files}
    for f in files:
        _add_rank(b, f, _RankContext(f.rank, modelled, groups, present, f.path), report)
    table = b.table()
    if table.num_rows == 0:
        raise WorkloadError(f"{path}: the trace has no nodes that replay ({report.lines()}).")
    report.notes = list(dict.fromkeys(report.notes))
    meta = WorkloadMeta(
        name=_prefix(pairs[0][1]), source="chakra", world_size=len(files),
        extra={"chakra": {"version": files[0].version,
                          "metadata": {k: v for k, v in files[0].metadata.items()
                                       if isinstance(v, (int, float, str, bool))}}},
    )
    return finish(table.cast(OPS_SCHEMA), groups, meta, report, str(path))


def _prefix(path: Path) -> str:
    name = path.name.removesuffix(".et")
    head, _, tail = name.rpartition(".")
    return head if tail.isdigit() and head else name


def is_chakra_dir(path: Path) -> bool:
    """Whether ``path`` is a ``.et`` file or a directory holding some."""
    return path.suffix == ".et" if path.is_file() else path.is_dir() and any(path.glob("*.et"))

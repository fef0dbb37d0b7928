"""What the trace importers (Kineto, Chakra) share: the import report, and the last step that
turns per-rank ops into a checked Workload.

The last step numbers communication (``seq``) and checks it across ranks before
:func:`~simcluster.workload.validate.make_workload` does the rest:

- modelled collectives of a group must be the same on every member, in the same order
  (otherwise the replay would deadlock): a difference is an error that names the ranks and
  the first differing collective;
- all-to-all(v) sizes that differ between ranks (uneven splits) become the largest one (with
  every rank's split sizes, the largest send or receive total: each pair then replays its
  own bytes; without them the collective replays evenly); a note says so;
- a modelled send must meet a recv of the same size on its peer.

Fixed-duration ops (``fixed_duration``) never meet peers; they are numbered apart.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.errors import WorkloadError
from simcluster.workload.model import Workload, WorkloadMeta
from simcluster.workload.validate import make_workload


@dataclass
class ImportReport:
    """What an importer read, used, skipped and assumed; printed by the CLI.

    Attributes:
        source: the directory or file imported.
        files: the files read, in rank order.
        skipped: reason -> number of events (or nodes) not turned into ops.
        unknown: unknown categories, fields or attributes -> count (never fatal).
        warnings: things a user should know (ops that cannot be retargeted, ...).
        notes: assumptions taken (device inferred, sizes reconciled, ...).
        unidentified: the accelerator name the trace gave that no catalog model matched
            (None when the device was identified, or the trace names none).
    """

    source: str
    files: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unidentified: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (stored in the workload's ``meta.extra['import']``)."""
        return {
            "source": self.source,
            "files": list(self.files),
            "skipped": dict(sorted(self.skipped.items())),
            "unknown": dict(sorted(self.unknown.items())),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            **({"unidentified_device": self.unidentified} if self.unidentified else {}),
        }

    def lines(self, limit: int = 12) -> list[str]:
        """Human-readable summary: what was skipped, unknown, warned and assumed."""
        out = []
        if self.skipped:
            out.append("skipped: " + _counts(self.skipped, limit))
        if self.unknown:
            out.append("unknown (ignored): " + _counts(self.unknown, limit))
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"note: {n}" for n in self.notes]
        return out


def _counts(c: Counter[str], limit: int) -> str:
    items = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} ({v:,})" for k, v in items[:limit])
    return text + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def rank_from_name(path: Path) -> int | None:
    """The rank encoded in a trace file name: the last integer of the name without its
    suffixes (``rank-3.json.gz`` -> 3, ``all_reduce.12.et`` -> 12); None if there is none."""
    stem = path.name
    for suffix in (".gz", ".json", ".et"):
        stem = stem.removesuffix(suffix)
    found = re.findall(r"\d+", stem)
    return int(found[-1]) if found else None


def _seq_channels(kind: list[str], rank: list[int], group: list[str | None],
                  peer: list[int | None]) -> list[tuple[Any, ...]]:
    """The matching channel of each op (None for non-communication ops)."""
    out: list[tuple[Any, ...]] = []
    for k, r, g, p in zip(kind, rank, group, peer):
        if k == "collective":
            out.append(("coll", r, g))
        elif k == "send":
            out.append(("p2p", r, p, "send"))
        elif k == "recv":
            out.append(("p2p", p, r, "recv"))
        else:
            out.append(())
    return out


def _comm_rows(table: pa.Table) -> np.ndarray:
    """Row numbers of the communication ops."""
    mask = pc.is_in(table.column("kind"), value_set=pa.array(["collective", "send", "recv"]))
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def number_comm(table: pa.Table) -> pa.Table:
    """Fill ``seq``: k-th modelled collective of a rank on a group, k-th modelled send (recv)
    between a pair; fixed-duration ones counted apart, from 0 as well.

    Rows must be in (rank, op_id) order.
    """
    rows = _comm_rows(table)
    comm = table.take(rows)
    fixed = [bool(x) for x in comm.column("fixed_duration").fill_null(False).to_pylist()]
    chans = _seq_channels(comm.column("kind").to_pylist(), comm.column("rank").to_pylist(),
                          comm.column("group").to_pylist(), comm.column("peer").to_pylist())
    counters: Counter[tuple[Any, ...]] = Counter()
    seq = np.zeros(table.num_rows, dtype=np.int64)
    for row, ch, fx in zip(rows.tolist(), chans, fixed):
        key = (fx, *ch)
        seq[row] = counters[key]
        counters[key] += 1
    is_comm = np.zeros(table.num_rows, dtype=bool)
    is_comm[rows] = True
    return table.set_column(table.schema.get_field_index("seq"), "seq",
                            pa.array(seq, pa.int64(), mask=~is_comm))


def _rank_list(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks[:8])) + (", ..." if len(ranks) > 8 else "")


def reconcile_collectives(table: pa.Table, groups: dict[str, tuple[int, ...]],
                          report: ImportReport, source: str) -> pa.Table:
    """Check that every member of a group issues the same modelled collectives in the same
    order; make all-to-all sizes agree (largest). Rows in (rank, op_id) order, seq filled.

    Raises:
        WorkloadError: a collective that only some ranks of its group issue, or one that
            ranks issue with different kinds or sizes.
    """
    comm_rows = _comm_rows(table)
    comm = table.take(comm_rows)
    kind = comm.column("kind").to_pylist()
    fixed = comm.column("fixed_duration").fill_null(False).to_pylist()
    rank = comm.column("rank").to_pylist()
    group = comm.column("group").to_pylist()
    coll = comm.column("collective").to_pylist()
    size = comm.column("comm_bytes").to_pylist()
    splits = comm.column("splits").to_pylist()
    name = comm.column("name").to_pylist()
    per: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (k, fx) in enumerate(zip(kind, fixed)):
        if k == "collective" and not fx:
            per[group[i]][rank[i]].append(i)
    new_size = list(size)
    widened = paired = 0
    for g, by_rank in sorted(per.items()):
        members = groups[g]
        counts = {r: len(by_rank.get(r, [])) for r in members}
        if len(set(counts.values())) > 1:
            most = max(counts.values())
            short = sorted(r for r, c in counts.items() if c < most)
            full = sorted(r for r, c in counts.items() if c == most)
            raise WorkloadError(
                f"{source}: group {g!r}: rank(s) {_rank_list(short)} issue "
                f"{min(counts.values())} collective(s) but rank(s) {_rank_list(full)} issue "
                f"{most}: a collective appears on only some ranks, so the replay would "
                "deadlock. The traces may cover different steps, or one rank's trace is cut "
                "short; import one step (--step N) or traces recorded together."
            )
        for k in range(max(counts.values(), default=0)):
            rows = [by_rank[r][k] for r in members]
            names = {coll[i] for i in rows}
            if len(names) > 1:
                a, b = rows[0], next(i for i in rows if coll[i] != coll[rows[0]])
                raise WorkloadError(
                    f"{source}: group {g!r}, collective #{k}: rank {rank[a]} issues "
                    f"{coll[a]} ({name[a]!r}) but rank {rank[b]} issues {coll[b]} "
                    f"({name[b]!r}); the ranks of a group must issue the same collectives "
                    "in the same order."
                )
            sizes = {size[i] for i in rows}
            if all(splits[i] is not None for i in rows):  # per-pair: the largest receive too
                sizes |= {sum(col) for col in zip(*(splits[i] for i in rows))}
                paired += len(sizes) > 1
            if len(sizes) > 1:
                if coll[rows[0]] != "all_to_all":
                    a = min(rows, key=lambda i: size[i])
                    b = max(rows, key=lambda i: size[i])
                    raise WorkloadError(
                        f"{source}: group {g!r}, collective #{k} ({coll[a]}): rank {rank[a]} "
                        f"moves {size[a]} B but rank {rank[b]} moves {size[b]} B; the ranks "
                        "of a collective must agree on its size."
                    )
                top = max(sizes)
                for i in rows:
                    new_size[i] = top
                widened += 1
    if not widened:
        return table
    report.notes.append(
        f"{widened} all-to-all(v) collective(s) send different amounts on different "
        f"ranks (uneven splits); {paired} of them replay each pair's own bytes (the trace "
        "gives every rank's split sizes) and take the largest send or receive total as "
        "their size; the others replay evenly with the largest per-rank size."
    )
    sizes = table.column("comm_bytes").to_numpy(zero_copy_only=False).astype(np.float64)
    sizes[comm_rows] = [np.nan if x is None else x for x in new_size]
    return table.set_column(table.schema.get_field_index("comm_bytes"), "comm_bytes",
                            pa.array(np.nan_to_num(sizes).astype(np.int64), pa.int64(),
                                     mask=np.isnan(sizes)))


def check_p2p(table: pa.Table, source: str) -> None:
    """Every modelled send must meet a recv of the same size (same pair, same seq).

    Raises:
        WorkloadError: an unmatched send or recv, or sizes that differ.
    """
    comm = table.take(_comm_rows(table))
    kind = comm.column("kind").to_pylist()
    fixed = comm.column("fixed_duration").fill_null(False).to_pylist()
    sends: dict[tuple[int, int, int], int | None] = {}
    recvs: dict[tuple[int, int, int], int | None] = {}
    for r, k, p, s, b, fx in zip(comm.column("rank").to_pylist(), kind,
                                 comm.column("peer").to_pylist(),
                                 comm.column("seq").to_pylist(),
                                 comm.column("comm_bytes").to_pylist(), fixed):
        if fx or k not in ("send", "recv"):
            continue
        if k == "send":
            sends[(r, p, s)] = b
        else:
            recvs[(p, r, s)] = b
    for key in sorted(set(sends) ^ set(recvs)):
        src, dst, seq = key
        what = "send" if key in sends else "recv"
        raise WorkloadError(
            f"{source}: rank {src if what == 'send' else dst} posts a {what} "
            f"{'to' if what == 'send' else 'from'} rank {dst if what == 'send' else src} "
            f"(#{seq} between them) that the other rank never matches; the traces may cover "
            "different steps."
        )
    for key, b in sorted(sends.items()):
        if recvs[key] != b:
            raise WorkloadError(
                f"{source}: send #{key[2]} from rank {key[0]} to rank {key[1]} moves {b} B but "
                f"the recv expects {recvs[key]} B; a send and its recv must agree on the size."
            )


def finish(table: pa.Table, groups: dict[str, tuple[int, ...]], meta: WorkloadMeta,
           report: ImportReport, source: str) -> Workload:
    """Number and check communication across ranks, validate, attach the report.

    Parameters:
        table: ops in ``OPS_SCHEMA`` (``seq`` is ignored and refilled).
        groups: group -> ranks (of this workload).
        meta: provenance; the report goes into ``meta.extra['import']``.
        report: the importer's report (notes may be added).
        source: name for error messages.

    Raises:
        WorkloadError: communication that does not match across ranks, or any problem
            :func:`make_workload` finds.
    """
    rank = table.column("rank").to_numpy(zero_copy_only=False).astype(np.int64)
    op_id = table.column("op_id").to_numpy(zero_copy_only=False).astype(np.int64)
    if len(rank) > 1 and not np.all((rank[1:] > rank[:-1]) | (rank[1:] == rank[:-1])
                                    & (op_id[1:] > op_id[:-1])):
        table = table.sort_by([("rank", "ascending"), ("op_id", "ascending")])
    table = number_comm(table)
    table = reconcile_collectives(table, groups, report, source)
    check_p2p(table, source)
    extra = {**meta.extra, "import": report.to_json()}
    meta = WorkloadMeta(name=meta.name, source=meta.source, world_size=meta.world_size,
                        recorded_device=meta.recorded_device,
                        recorded_topology=meta.recorded_topology, extra=extra)
    return make_workload(table, groups, meta, source)


"""A Run on disk: Parquet tables and a JSON summary in one folder, and back.

Files (documented in ``docs/formats.md``):

- ``timeline.parquet``: one row per op;
- ``links.parquet``: one row per directed link;
- ``flows.parquet``: one row per batch of flows (collective phase, send/recv, copy);
- ``ranks.parquet``: the per-rank breakdown of the whole run;
- ``steps.parquet``: the per-(step, rank) breakdown;
- ``critical_path.parquet``: the critical path, segment by segment;
- ``attribution.parquet``: flow-time each link limited, per collective/group;
- ``link_load.parquet``: load over time of every link that carried traffic;
- ``memory.parquet``: per rank, device, capacity and peak memory;
- ``comm.parquet``: per (rank, kind of parallelism), time moving its data and exposed;
- ``link_parallelism.parquet``: per (link, kind of parallelism), the limiting flow-time;
- ``summary.json``: the summary;
- ``fidelity.parquet``: an imported trace's ProfilerStep durations, simulated vs recorded
  (only for traces that recorded them);
- ``import.json``: what the importer used, skipped and assumed (only for imported traces).

All files are staged in a temporary folder and moved into place only once every one of them
is written, so a failure leaves no partial output. Parquet is written with fixed options
and JSON with sorted keys, so the same Run gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from simcluster.analysis import critical_path, rank_breakdown, step_breakdown, summarize
from simcluster.analysis.parallelism import comm_breakdown, link_parallelism
from simcluster.atomic import staged_dir
from simcluster.errors import SimclusterError
from simcluster.sim.result import Run

# Table files written by write_run, and the Run attribute each holds (None: analysis output).
TABLES: dict[str, str | None] = {
    "timeline.parquet": "timeline",
    "links.parquet": "links",
    "flows.parquet": "flows",
    "memory.parquet": "memory",
    "attribution.parquet": "attribution",
    "link_load.parquet": "link_load",
    "ranks.parquet": None,
    "steps.parquet": None,
    "critical_path.parquet": None,
}
# Analysis tables written beside them, not needed to read a run folder back (older folders
# lack them): communication per (rank, kind of parallelism), limiting time per (link, kind).
PARALLELISM_FILES = ("comm.parquet", "link_parallelism.parquet")
OUTPUT_FILES = (*TABLES, *PARALLELISM_FILES, "summary.json")
FIDELITY_FILE = "fidelity.parquet"
IMPORT_FILE = "import.json"


def output_files(fidelity: bool = False, imported: bool = False) -> tuple[str, ...]:
    """The files of a run folder: always :data:`OUTPUT_FILES`, then the fidelity table and
    the import report when there are any."""
    return (*OUTPUT_FILES, *((FIDELITY_FILE,) if fidelity else ()),
            *((IMPORT_FILE,) if imported else ()))


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with the project's fixed options (zstd, statistics, no pandas metadata)."""
    pq.write_table(table.replace_schema_metadata(None), path, compression="zstd")


def write_json(data: Any, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_run(run: Run, out: str | Path, summary: dict[str, Any] | None = None,
              ranks: pa.Table | None = None, path: pa.Table | None = None, *,
              steps: pa.Table | None = None, fidelity: pa.Table | None = None,
              import_report: dict[str, Any] | None = None,
              extra: Mapping[str, pa.Table] | None = None, comm: pa.Table | None = None,
              link_kinds: pa.Table | None = None) -> Path:
    """Write ``run`` into folder ``out`` (created if needed); returns the folder.

    ``summary``, ``ranks``, ``path`` and ``steps`` are reused when already computed (the
    facade passes the ones of the ranks that stand for a folded workload);
    ``fidelity`` (with rows) and ``import_report`` add their files, and ``extra`` Parquet
    files by name (a job mix's ``jobs.parquet`` and ``shared_links.parquet``). ``comm`` and
    ``link_kinds`` (communication per rank and per link by kind of parallelism) are reused
    too, else computed.
    """
    ranks = rank_breakdown(run) if ranks is None else ranks
    path = critical_path(run) if path is None else path
    summary = summarize(run, ranks, path=path) if summary is None else summary
    derived = {"ranks.parquet": ranks,
               "steps.parquet": step_breakdown(run) if steps is None else steps,
               "critical_path.parquet": path}
    with staged_dir(out) as stage:
        for name, attr in TABLES.items():
            write_parquet(getattr(run, attr) if attr else derived[name], stage / name)
        write_parquet(comm_breakdown(run) if comm is None else comm, stage / "comm.parquet")
        write_parquet(link_parallelism(run) if link_kinds is None else link_kinds,
                      stage / "link_parallelism.parquet")
        write_json(summary, stage / "summary.json")
        if fidelity is not None and fidelity.num_rows:
            write_parquet(fidelity, stage / FIDELITY_FILE)
        if import_report is not None:
            write_json(import_report, stage / IMPORT_FILE)
        for name, table in (extra or {}).items():
            write_parquet(table, stage / name)
    return Path(out)


@dataclass(frozen=True)
class RunFolder:
    """A run read back from disk: the Run, its summary, and the analysis tables (the
    fidelity table and import report None when the folder has none)."""

    run: Run
    summary: dict[str, Any]
    ranks: pa.Table
    steps: pa.Table
    critical_path: pa.Table
    fidelity: pa.Table | None = None
    import_report: dict[str, Any] | None = None


def load_run(folder: str | Path) -> RunFolder:
    """Read a folder written by :func:`write_run` back.

    Raises:
        SimclusterError: the folder or a file is missing or unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SimclusterError(f"{folder}: not a folder; give the --out folder of a replay.")
    tables: dict[str, pa.Table] = {}
    for name, attr in TABLES.items():
        p = folder / name
        if not p.is_file():
            raise SimclusterError(
                f"{p}: missing; {folder} is not a complete run folder (re-run `simcluster "
                f"replay ... --out {folder}`)."
            )
        tables[name] = _read_parquet(p)
    summary = _read_json(folder / "summary.json")
    fidelity = folder / FIDELITY_FILE
    imported = folder / IMPORT_FILE
    info_keys = ("workload", "cluster", "ranks", "ops", "streams", "flows",
                 "rate_recomputations", "placement")
    run = Run(makespan_us=float(summary.get("makespan_us", 0.0)),
              info={k: summary.get(k) for k in info_keys},
              **{attr: tables[name] for name, attr in TABLES.items() if attr})
    return RunFolder(run=run, summary=summary, ranks=tables["ranks.parquet"],
                     steps=tables["steps.parquet"], critical_path=tables["critical_path.parquet"],
                     fidelity=_read_parquet(fidelity) if fidelity.is_file() else None,
                     import_report=_read_json(imported) if imported.is_file() else None)


def _read_parquet(p: Path) -> pa.Table:
    try:
        return pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SimclusterError(f"{p}: unreadable ({exc}); re-run the replay.") from None


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SimclusterError(f"{p}: unreadable ({exc}); re-run the replay.") from None

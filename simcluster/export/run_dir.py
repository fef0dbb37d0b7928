"""Write a Run to a folder: timeline.parquet, links.parquet, ranks.parquet, summary.json.

All files are staged in a temporary folder and moved into place only once every one of them
is written, so a failure leaves no partial output. Parquet is written with fixed options
and JSON with sorted keys, so the same Run gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from simcluster.analysis import rank_breakdown, summarize
from simcluster.atomic import staged_dir
from simcluster.sim.result import Run

OUTPUT_FILES = ("timeline.parquet", "links.parquet", "ranks.parquet", "summary.json")


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with the project's fixed options (zstd, statistics, no pandas metadata)."""
    pq.write_table(table.replace_schema_metadata(None), path, compression="zstd")


def write_json(data: Any, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_run(run: Run, out: str | Path, summary: dict[str, Any] | None = None) -> Path:
    """Write ``run`` into folder ``out`` (created if needed); returns the folder.

    ``summary`` is ``summarize(run)`` if already computed.
    """
    ranks = rank_breakdown(run)
    summary = summarize(run, ranks) if summary is None else summary
    with staged_dir(out) as stage:
        write_parquet(run.timeline, stage / "timeline.parquet")
        write_parquet(run.links, stage / "links.parquet")
        write_parquet(ranks, stage / "ranks.parquet")
        write_json(summary, stage / "summary.json")
    return Path(out)

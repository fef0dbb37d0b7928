"""Run a sweep on Dask: a LocalCluster sized to this machine, or an existing scheduler.

Every point's row is written by the worker that computed it (``points/<id>.parquet``),
atomically, before the task returns. A rerun skips points whose row exists, and a worker that
dies mid-sweep loses only the point it was computing, which Dask reschedules elsewhere. The
merged dataset ``results.parquet`` (rows sorted by point id) is rewritten at the end of each
run. A point file that cannot be read (truncated, corrupt) is removed before dispatch and its
point computed again; the result lists those files so that callers can warn.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from simcluster.atomic import atomic_path
from simcluster.sweep.point import evaluate_point, read_point, read_row, result_path
from simcluster.sweep.spec import Point, Sweep, SweepError


@dataclass(frozen=True)
class SweepResult:
    """What a run did: points in the spec, computed now, already there, failed, and the
    unreadable point files that were removed and computed again (counted in ``computed``)."""

    total: int
    computed: int
    skipped: int
    failed: int
    results: Path
    recomputed: tuple[Path, ...] = ()


@dataclass(frozen=True)
class PointRows:
    """Rows of points, one per point in the given order, and how they were obtained.

    Attributes:
        rows: the rows.
        skipped: points (with repeats) whose readable row was there already.
        recomputed: unreadable point files that were removed and computed again.
    """

    rows: list[dict[str, Any]]
    skipped: int
    recomputed: tuple[Path, ...]


def make_client(scheduler: str | None, workers: int | None) -> Any:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError(
            "sweeps run on Dask: pip install 'simcluster[sweep]' (dask[distributed])."
        ) from None
    if scheduler:
        try:
            return Client(scheduler, timeout=30)
        except OSError as exc:
            raise SweepError(f"--scheduler {scheduler}: cannot connect ({exc}).") from None
    n = workers or max(1, os.cpu_count() or 1)
    # ":0": a free port, so that a second sweep (or anything on 8787) causes no warning.
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":0", worker_dashboard_address=None)
    return Client(cluster)


def dashboard_link(client: Any) -> str | None:
    """The address of Dask's dashboard for ``client``, or None when it cannot show one
    (the dashboard needs the ``bokeh`` package)."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    link = getattr(client, "dashboard_link", None)
    return str(link) if link else None


def published_rows(points: list[Point], out: Path) -> tuple[dict[str, dict[str, Any]],
                                                           list[Path]]:
    """Rows of ``points`` already in ``out`` by point id, and the point files that cannot be
    read (truncated or corrupt), which are removed so that their points run again."""
    rows: dict[str, dict[str, Any]] = {}
    corrupt: list[Path] = []
    for p in points:
        path = result_path(out, p.id)
        if p.id in rows or path in corrupt or not path.is_file():
            continue
        row = read_row(path, p.id)
        if row is None:
            corrupt.append(path)
            path.unlink(missing_ok=True)
        else:
            rows[p.id] = row
    return rows, corrupt


def run_points(points: list[Point], base: dict[str, Any], folder: str | Path, out: str | Path,
               client: Any = None, scheduler: str | None = None, workers: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> PointRows:
    """Rows of ``points`` (evaluated on Dask where not yet in ``out``), in the given order.

    ``client``: a ``distributed.Client`` to use; otherwise one is made (``scheduler``, or a
    local cluster of ``workers`` processes) and closed at the end.
    """
    out = Path(out).resolve()
    (out / "points").mkdir(parents=True, exist_ok=True)
    rows, corrupt = published_rows(points, out)
    skipped = sum(p.id in rows for p in points)
    todo = list({p.id: p for p in points if p.id not in rows}.values())
    if todo:
        own = client is None
        client = client or make_client(scheduler, workers)
        try:
            from distributed import as_completed

            futures = [client.submit(evaluate_point, p.id, p.values, base, str(folder),
                                     str(out), key=f"point-{p.id}", pure=False, retries=2)
                       for p in todo]
            for done, fut in enumerate(as_completed(futures), start=1):
                row = fut.result()
                rows[row["point_id"]] = row
                if progress:
                    progress(done, len(todo))
        finally:
            if own:
                close_client(client)
    return PointRows(rows=[rows[p.id] for p in points], skipped=skipped,
                     recomputed=tuple(corrupt))


def run_sweep(sweep: Sweep, out: str | Path, scheduler: str | None = None,
              workers: int | None = None,
              progress: Callable[[int, int], None] | None = None,
              client: Any = None) -> SweepResult:
    """Compute every point not yet in ``out`` (or whose file cannot be read) and write
    ``out/results.parquet``."""
    out = Path(out).resolve()
    done = run_points(sweep.points, sweep.spec.base.document(), sweep.folder, out, client,
                      scheduler, workers, progress)
    failed = sum(r["status"] != "ok" for r in done.rows)
    merged = merge(out, [p.id for p in sweep.points])
    return SweepResult(total=len(sweep.points), computed=len(sweep.points) - done.skipped,
                       skipped=done.skipped, failed=failed, results=merged,
                       recomputed=done.recomputed)


def close_client(client: Any) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def merge(out: Path, ids: list[str]) -> Path:
    """Concatenate the rows of points ``ids`` that exist into ``results.parquet`` (sorted by
    point id; rows of other specs in the same folder are left out).

    Raises:
        SweepError: a point file that cannot be read (rerun the sweep to recompute it).
    """
    tables = []
    for i in sorted(set(ids)):
        part = result_path(out, i)
        if not part.is_file():
            continue
        table = read_point(part, i)
        if table is None:
            raise SweepError(f"{part}: cannot read this point's row (truncated or corrupt); "
                             "rerun the sweep to compute it again.")
        tables.append(table)
    table = pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})
    if table.num_rows:
        table = table.sort_by("point_id")
    target = out / "results.parquet"
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return target


def copy_spec(src: str | Path, out: str | Path) -> None:
    """Keep the spec beside its results."""
    Path(out).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, Path(out) / "spec.yaml")


def read_results(out: str | Path) -> tuple[pa.Table, str]:
    """``results.parquet`` of a sweep folder and the sweep's name.

    Raises:
        SweepError: the folder holds no sweep results.
    """
    out = Path(out)
    target = out / "results.parquet"
    if not target.is_file():
        raise SweepError(f"{out}: no results.parquet; run `simcluster sweep SPEC --out {out}` "
                         "first.")
    name = out.name
    spec = out / "spec.yaml"
    if spec.is_file():
        import yaml

        doc = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
        name = str(doc.get("name", name)) if isinstance(doc, dict) else name
    return pq.read_table(target), name

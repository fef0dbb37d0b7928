"""PyTorch profiler (Kineto) traces -> Workload.

A directory of per-rank Chrome-trace JSON files (``rank-*.json``, ``*.pt.trace.json``, each
optionally gzipped), as ``torch.profiler`` writes them, or a single file. Each file is one
rank: its rank and world size come from ``distributedInfo`` (else the file name), its GPU
from ``deviceProperties`` (the entry of the device its kernels ran on).

Steps: ``ProfilerStep#N`` spans. ``step="all"`` imports from the first span's start to the
last one's end; ``step=N`` imports that step only. Without spans, the whole trace is one
step (0). Every rank must have the steps asked for.

Time: every rank's ops are placed on one clock, whose origin is the earliest window start
of all ranks; a rank whose window starts later begins with an ``untraced`` wait. This
assumes the ranks' clocks agree, as they do on one host (the traces' timestamps are the host
clock). ``align="start"`` starts every rank at 0 instead, for hosts whose clocks disagree.

The dependency graph is described in :mod:`.graph`, communication sizes in :mod:`.comms`,
kernels' FLOPs and bytes (from the shapes of the aten ops that launched them) in :mod:`.work`.
Ranks are numbered 0..N-1 in the workload in the order of their recorded ranks; when not
every rank of the job is imported, ``meta.extra['kineto']`` keeps the recorded numbers, and
communication with ranks that are absent replays at its recorded duration
(``fixed_duration``).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from simcluster.errors import WorkloadError
from simcluster.topology.catalog import identify
from simcluster.topology.identification import unknown_message
from simcluster.workload.importing import ImportReport, finish, rank_from_name
from simcluster.workload.kineto.context import BuildStats, RankContext, Window
from simcluster.workload.kineto.events import (
    NEGATIVE_DURATION,
    KinetoLimits,
    RankTrace,
    read_rank_trace,
)
from simcluster.workload.kineto.graph import build_rank
from simcluster.workload.kineto.pyet import read_execution_traces
from simcluster.workload.kineto.work import summary
from simcluster.workload.model import Workload, WorkloadMeta

__all__ = ["KinetoLimits", "KinetoOptions", "find_trace_files", "import_kineto",
           "is_kineto_path"]

_SUFFIXES = (".json", ".json.gz")
# Parse files in parallel processes only when there is enough to parse.
_PARALLEL_MIN_BYTES = 32 << 20
# The largest world size (ranks of the recorded job) believed: the largest jobs run on about
# 10^5 GPUs; a larger number is a corrupt trace or file name.
MAX_RANKS = 1 << 20


@dataclass(frozen=True)
class KinetoOptions:
    """How to import.

    Attributes:
        step: ``"all"`` or a ProfilerStep number.
        et: PyTorch execution traces (folder or ``.tar.gz``) to supply collective sizes.
        model_copies: replay host<->device copies as flows on the topology (default: their
            recorded durations).
        unexplained_waits: keep, before each GPU op that started later than everything
            the trace records explains (its launch, its stream, its cross-stream waits), an
            ``unexplained GPU wait`` op as long as that delay, on stream ``idle:cuda:<id>``
            (default). The delay follows what the op waited for, so it moves with a faster or
            slower replay. False: such ops start as soon as the recorded causes allow.
        workers: processes for parsing files in parallel (0: one per CPU, at most 8).
        align: ``"clock"``: ranks keep their recorded start times on the shared clock (one
            host, or synchronised clocks); ``"start"``: every rank starts at 0 (for traces
            from hosts whose clocks disagree).
        limits: bounds on reading each file (default: :meth:`KinetoLimits.from_env`).
    """

    step: str | int = "all"
    et: str | Path | None = None
    model_copies: bool = False
    unexplained_waits: bool = True
    workers: int = 0
    align: str = "clock"
    limits: KinetoLimits | None = None


def is_kineto_path(path: Path) -> bool:
    """Whether ``path`` is a trace JSON file or a folder holding some."""
    if path.is_file():
        return path.name.endswith(_SUFFIXES)
    return path.is_dir() and any(p.name.endswith(_SUFFIXES) for p in path.iterdir())


def find_trace_files(path: Path) -> list[Path]:
    """The trace files of a folder (``*.json``, ``*.json.gz``), sorted; or the file itself.

    Raises:
        WorkloadError: no such path, or no trace files in the folder.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise WorkloadError(f"{path}: no such file or directory.")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))
    if not files:
        raise WorkloadError(f"{path}: no .json or .json.gz trace files; torch.profiler writes "
                            "one per rank (e.g. rank-0.json, host_1234.pt.trace.json.gz).")
    return files


def _read_all(files: list[Path], workers: int, limits: KinetoLimits) -> list[RankTrace]:
    size = sum(f.stat().st_size for f in files)
    n = workers or min(os.cpu_count() or 1, 8)
    read = partial(read_rank_trace, limits=limits)
    if len(files) < 2 or n < 2 or size < _PARALLEL_MIN_BYTES:
        return [read(f) for f in files]
    with ProcessPoolExecutor(max_workers=min(n, len(files))) as pool:
        return list(pool.map(read, files))


@dataclass(frozen=True)
class _RankFile:
    trace: RankTrace
    rank: int
    world: int | None


def _ranks(traces: list[RankTrace], source: str) -> list[_RankFile]:
    """Recorded rank and world size of each file; checks that they belong to one job."""
    out = []
    for tr in traces:
        info = tr.meta.get("distributedInfo")
        info = info if isinstance(info, dict) else {}
        rank = info.get("rank")
        if not isinstance(rank, int):
            rank = rank_from_name(tr.path) if len(traces) > 1 else 0
            if rank is None:
                raise WorkloadError(f"{tr.path}: no distributedInfo.rank and no rank in the "
                                    "file name; name the files rank-<N>.json.")
        world = info.get("world_size")
        out.append(_RankFile(tr, rank, world if isinstance(world, int) else None))
    worlds = {f.world for f in out if f.world is not None}
    if len(worlds) > 1:
        listing = ", ".join(f"{f.trace.path.name} (rank {f.rank} of {f.world})" for f in out[:6])
        raise WorkloadError(
            f"{source}: the traces disagree on the world size ({listing}); they come from "
            "different runs. Import the traces of one run together."
        )
    seen: dict[int, Path] = {}
    for f in out:
        if f.rank in seen:
            raise WorkloadError(
                f"{source}: {seen[f.rank].name} and {f.trace.path.name} are both rank {f.rank}; "
                "they come from different runs or one rank was profiled twice."
            )
        seen[f.rank] = f.trace.path
    world = worlds.pop() if worlds else max(f.rank for f in out) + 1
    if world > MAX_RANKS:
        raise WorkloadError(
            f"{source}: a world size of {world:,} ranks (from distributedInfo or the file "
            f"names) is over the limit of {MAX_RANKS:,}; the trace is corrupt, or name the "
            "files rank-<N>.json with the ranks of the job."
        )
    bad = [f for f in out if f.rank >= world or f.rank < 0]
    if bad:
        raise WorkloadError(f"{bad[0].trace.path}: rank {bad[0].rank} is outside the world "
                            f"size {world}.")
    return sorted(out, key=lambda f: f.rank)


def _main_thread(tr: RankTrace) -> int | None:
    """The thread holding the ProfilerStep spans (else the one making most runtime calls)."""
    if tr.steps:
        return Counter(s.thread for _, s in tr.steps).most_common(1)[0][0]
    if len(tr.r_thread):
        return Counter(tr.r_thread).most_common(1)[0][0]
    return None


def _window(tr: RankTrace, step: str | int) -> Window:
    """The part of the trace to import, and its steps.

    Raises:
        WorkloadError: the asked step is not in the trace, or the trace has no events.
    """
    main = _main_thread(tr)
    spans = [(n, s.ts, s.end) for n, s in tr.steps if s.thread == main]
    if step != "all":
        chosen = [sp for sp in spans if sp[0] == int(step)]
        if not chosen:
            have = ", ".join(str(n) for n, _, _ in spans) or "none"
            raise WorkloadError(f"{tr.path}: no ProfilerStep#{step} (steps in the trace: "
                                f"{have}); pick one of them with --step.")
        n, a, b = chosen[0]
        return Window(a, b, ((n, a, b),), main)
    if spans:
        return Window(spans[0][1], max(e for _, _, e in spans), tuple(spans), main)
    starts = [min(tr.g_ts, default=float("inf")), min(tr.r_ts, default=float("inf")),
              min(tr.thread_first.values(), default=float("inf"))]
    ends = [max((a + b for a, b in zip(tr.g_ts, tr.g_dur)), default=float("-inf")),
            max(tr.thread_last.values(), default=float("-inf"))]
    a, b = min(starts), max(ends)
    if not a < b:
        raise WorkloadError(f"{tr.path}: the trace has no CPU or GPU activity to replay.")
    return Window(a, b, ((0, a, b),), main)


def _device(traces: list[_RankFile], report: ImportReport) -> str | None:
    """The recorded accelerator model (catalog name), from deviceProperties or kernel
    names."""
    found: dict[str, str] = {}
    unknown: list[str] = []
    for f in traces:
        tr = f.trace
        props = tr.meta.get("deviceProperties")
        if isinstance(props, list) and props:
            used = max(set(tr.g_device), key=list(tr.g_device).count) if len(tr.g_device) else 0
            entry = next((p for p in props if isinstance(p, dict) and p.get("id") == used),
                         props[0])
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                ident = identify(entry["name"], _count(entry.get("totalGlobalMem")),
                                 _count(entry.get("numSms")))
                if ident is not None:
                    found[ident.spec.model] = ident.how
                else:
                    unknown.append(entry["name"])
                    report.warnings.append(f"{tr.path.name}: " + unknown_message(
                        entry["name"], _count(entry.get("totalGlobalMem")), list_known=False))
    if not found:
        names = " ".join(traces[0].trace.names[:5000]).lower() if traces else ""
        for token, family in (("sm90", "H100"), ("hopper", "H100"), ("sm80", "A100"),
                              ("ampere", "A100"), ("sm70", "V100"), ("volta", "V100")):
            if token in names:
                ident = identify(family)
                if ident is not None:
                    report.notes.append(
                        f"the trace does not name its GPU; kernel names ({token!r}) point to "
                        f"the {family} family: {ident.spec.model} is assumed.")
                    return ident.spec.model
        if unknown:
            report.unidentified = unknown[0]
        return None
    if len(found) > 1:
        report.warnings.append(f"ranks ran on different GPUs ({', '.join(sorted(found))}); "
                               f"{sorted(found)[0]} is recorded.")
    model = sorted(found)[0]
    report.notes.append(f"recorded GPU: {model} ({found[model]}).")
    return model


def _count(x: object) -> int | None:
    """A whole number >= 0 from deviceProperties (memory bytes, SM count); None otherwise."""
    return x if isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 63 else None


def import_kineto(path: str | Path, options: KinetoOptions | None = None) -> Workload:
    """Import PyTorch profiler traces: a folder of per-rank files, or one file.

    Parameters:
        path: the folder (or file).
        options: step selection, execution traces, copies.

    Returns:
        The Workload. ``meta.extra['import']`` is the import report (what was skipped,
        unknown, assumed); ``meta.extra['kineto']`` the recorded ranks, world size, step
        durations and the host stream that holds the steps.

    Raises:
        WorkloadError: no traces; truncated, malformed or foreign JSON; ranks from different
            runs; a step that some rank lacks; communication that does not match across
            ranks.
    """
    opts = options or KinetoOptions()
    path = Path(path)
    files = find_trace_files(path)
    report = ImportReport(source=str(path), files=[str(f) for f in files])
    limits = opts.limits or KinetoLimits.from_env()
    ranks = _ranks(_read_all(files, opts.workers, limits), str(path))
    world = ranks[0].world or max(f.rank for f in ranks) + 1
    et = read_execution_traces(opts.et) if opts.et is not None else None
    windows = [_window(f.trace, opts.step) for f in ranks]
    _check_steps(ranks, windows, str(path))
    if opts.align not in ("clock", "start"):
        raise WorkloadError(f"align must be 'clock' or 'start', not {opts.align!r}.")
    t0 = min(w.start for w in windows)
    present = {f.rank: k for k, f in enumerate(ranks)}
    stats = BuildStats()
    tables = []
    per_rank: dict[str, Any] = {}
    for k, (f, win) in enumerate(zip(ranks, windows)):
        et_rank = None
        if et is not None:
            if f.rank not in et:
                raise WorkloadError(f"{opts.et}: no execution trace for rank {f.rank}.")
            et_rank = tuple(et[f.rank])
        origin = t0 if opts.align == "clock" else win.start
        ctx = RankContext(rank=k, global_rank=f.rank, world_size=world, present=present,
                          t0=origin, model_copies=opts.model_copies,
                          unexplained_waits=opts.unexplained_waits, et=et_rank)
        tables.append(build_rank(f.trace, win, ctx, stats))
        per_rank[str(k)] = {
            "file": f.trace.path.name,
            "recorded_rank": f.rank,
            "step_stream": (f"cpu:{f.trace.threads[win.main_thread]}"
                            if win.main_thread is not None else None),
            "window_start_us": win.start - origin,
            "steps": {str(n): b - a for n, a, b in win.steps},
        }
        report.skipped.update(f.trace.skipped)
        report.unknown.update(f.trace.unknown)
    _report_stats(stats, report, len(ranks), world)
    if report.skipped[NEGATIVE_DURATION]:
        report.warnings.append(
            f"{report.skipped[NEGATIVE_DURATION]:,} event(s) have a negative duration and were "
            "skipped: the trace is corrupt (an edited or badly merged file?); what they "
            "covered is missing from the replay.")
    device = _device(ranks, report)
    groups = {g: tuple(sorted(r)) for g, r in stats.groups.items()}
    groups.setdefault("world", tuple(range(len(ranks))))
    meta = WorkloadMeta(
        name=path.name.removesuffix(".gz").removesuffix(".json") or "kineto",
        source="kineto", world_size=len(ranks), recorded_device=device,
        extra={"kineto": {"recorded_world_size": world, "step": str(opts.step),
                          "ranks": per_rank, "kernel_work": {
                              "kernels": stats.kernels, "with_work": stats.kernels_with_work,
                              "kernel_us": stats.kernel_us,
                              "with_work_us": stats.kernel_with_work_us}}},
    )
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise WorkloadError(f"{path}: nothing to replay: no CPU thread or GPU activity in the "
                            f"imported window ({', '.join(report.lines()[:2]) or 'no events'}).")
    return finish(table, groups, meta, report, str(path))


def _check_steps(ranks: list[_RankFile], windows: list[Window], source: str) -> None:
    """With several ranks, all must have recorded the same steps."""
    if len(ranks) < 2:
        return
    steps = [tuple(n for n, _, _ in w.steps) for w in windows]
    if len(set(steps)) > 1:
        listing = "; ".join(f"rank {f.rank}: {', '.join(map(str, s)) or 'none'}"
                            for f, s in zip(ranks[:4], steps[:4]))
        raise WorkloadError(
            f"{source}: the ranks recorded different ProfilerSteps ({listing}); they come "
            "from different runs or profiler schedules. Pick a step all have with --step."
        )


def _report_stats(stats: BuildStats, report: ImportReport, n: int, world: int) -> None:
    report.notes.append(
        f"{n} of {world} rank(s) imported" + ("" if n == world else
                                              "; communication with absent ranks replays at "
                                              "its recorded duration") + ".")
    for what, count in sorted(stats.counts.items()):
        report.notes.append(f"{what}: {count:,}")
    if stats.kernels:
        share = stats.kernel_with_work_us / stats.kernel_us if stats.kernel_us > 0 else 0.0
        largest = summary(stats.without_work_us, stats.kernel_us)
        report.notes.append(
            f"{stats.kernels_with_work:,} of {stats.kernels:,} GPU compute kernels ({share:.1%} "
            "of their GPU time) have FLOPs/bytes from their aten op; the rest keep their "
            "recorded durations when retargeted to another GPU"
            + (f" (largest without: {largest})" if largest else ""))
    if stats.late_us > 0:
        report.notes.append(
            f"GPU idle time no recorded dependency explains: {stats.late_us:,.0f} us in total "
            "(those ops may start earlier in the replay than they did)")
    if stats.comm_sources:
        report.notes.append("collective sizes from: " + ", ".join(
            f"{k} ({v})" for k, v in sorted(stats.comm_sources.items())))
    if stats.unsized:
        total = sum(stats.unsized.values())
        kinds = ", ".join(f"{k} ({v})" for k, v in sorted(stats.unsized.items()))
        report.warnings.append(
            f"{total} communication kernel(s) have no size in the trace ({kinds}): they replay "
            "at their recorded duration and cannot be retargeted to another cluster. A "
            "matching PyTorch execution trace (--et) can supply the sizes.")

"""Several workloads as one: repeated steps, a delayed start, and jobs side by side.

A job mix (:mod:`simcluster.jobs`) runs several jobs in one simulation, so that their flows
share the fabric's links max-min fairly. This module builds that simulation's workload from
the jobs' own, and nothing else: each job keeps its ops, in its own rank range (job ``j``'s
rank ``r`` becomes ``offset_j + r``) and with its groups named ``JOB/GROUP``, so no
collective of one job can match another's.

- :func:`repeat_steps` runs a workload's steps ``times`` times in a row (step numbers,
  ``op_id``, ``seq`` and ``deps`` continue); each repetition starts on a rank once the
  rank finished the previous one (every stream), as a training loop does.
- :func:`delay_start` holds every stream of every rank back by ``start_us`` microseconds
  with one op per stream (:data:`DELAY_NAME`, a ``host`` op of fixed duration) before its
  first op.
- :func:`merge_workloads` puts workloads side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.errors import WorkloadError
from simcluster.workload.model import OPS_SCHEMA, Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

DELAY_NAME = "job start offset"
SEP = "/"


def _shift_lists(col: pa.ChunkedArray | pa.Array, by: int) -> pa.Array:
    """A list<int64> column with ``by`` added to every value (nulls stay null)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    values = pc.add(arr.values, pa.scalar(by, pa.int64()))
    return pa.ListArray.from_arrays(arr.offsets, values, mask=arr.is_null())


def _shift(t: pa.Table, column: str, by: int) -> pa.Table:
    """``t`` with ``by`` added to ``column`` (nulls stay null), in the column's type."""
    i = t.schema.get_field_index(column)
    field = t.schema.field(column)
    if pa.types.is_list(field.type):
        return t.set_column(i, field, _shift_lists(t.column(column), by))
    return t.set_column(i, field, pc.add(t.column(column), pa.scalar(by, field.type))
                        .cast(field.type))


def _first_ops(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the first and of the last op of each (rank, stream), for ``t`` sorted by
    (rank, op_id)."""
    key = pa.table({"rank": t.column("rank"), "stream": t.column("stream"),
                    "i": pa.array(np.arange(t.num_rows))})
    g = key.group_by(["rank", "stream"], use_threads=False).aggregate([("i", "min"),
                                                                      ("i", "max")])
    return np.sort(g.column("i_min").to_numpy()), np.sort(g.column("i_max").to_numpy())


def repeat_steps(workload: Workload, times: int) -> Workload:
    """``workload`` with its steps run ``times`` times in a row (``times`` >= 1).

    Copy ``c`` has ``op_id`` and ``deps`` shifted by ``c`` x (largest op_id + 1), ``step`` by
    ``c`` x (largest step + 1) and ``seq`` by ``c`` x (largest seq + 1), so its collectives
    and send/recv pairs match among themselves. The first op of each (rank, stream) of copy
    ``c`` also waits for the last op of every stream of that rank in copy ``c - 1``.

    Raises:
        WorkloadError: ``times`` below 1.

    Example:
        >>> import simcluster as sc
        >>> wl = sc.generate("data-parallel", ranks=2, layers=1, hidden=64, seq_len=16,
        ...                  vocab=128)
        >>> twice = repeat_steps(wl, 2)
        >>> twice.num_ops == 2 * wl.num_ops, sorted(set(twice.column("step").tolist()))
        (True, [0, 1])
    """
    if times < 1:
        raise WorkloadError(f"repeat {times}: a job runs its steps at least once; give 1 or "
                            "more.")
    if times == 1 or workload.num_ops == 0:
        return workload
    t = workload.ops
    span = int(pc.max(t.column("op_id")).as_py()) + 1
    steps = int(pc.max(t.column("step")).as_py() or 0) + 1
    seqs = int(pc.max(t.column("seq")).as_py() or 0) + 1
    first, last = _first_ops(t)
    rank = t.column("rank").to_numpy()
    op_id = t.column("op_id").to_numpy()
    ends: dict[int, list[int]] = {}
    for i in last.tolist():
        ends.setdefault(int(rank[i]), []).append(int(op_id[i]))
    copies = []
    for c in range(times):
        ct = t
        for col, k in (("op_id", span), ("deps", span), ("step", steps), ("seq", seqs)):
            ct = _shift(ct, col, c * k)
        if c:
            deps = ct.column("deps").to_pylist()
            for i in first.tolist():
                prev = [e + (c - 1) * span for e in ends[int(rank[i])]]
                deps[i] = sorted(set(deps[i] or []) | set(prev))
            ct = ct.set_column(ct.schema.get_field_index("deps"), ct.schema.field("deps"),
                               pa.array(deps, pa.list_(pa.int64())))
        copies.append(ct)
    meta = workload.meta
    return make_workload(pa.concat_tables(copies).sort_by([("rank", "ascending"),
                                                            ("op_id", "ascending")]),
                         workload.groups, meta, source=meta.name)


def delay_start(workload: Workload, start_us: float,
                slowdown: dict[int, float] | None = None) -> Workload:
    """``workload`` with every (rank, stream) held back ``start_us`` microseconds.

    Each (rank, stream) gets one op named :data:`DELAY_NAME` (kind ``host``, fixed duration
    ``start_us``, the step of the stream's first op) before its first; ``op_id`` and
    ``deps`` shift by the number of streams. ``slowdown`` (rank -> factor, the what-if that
    multiplies host ops' durations) divides a rank's delay by its factor, so the delay
    stays ``start_us``.

    Raises:
        WorkloadError: ``start_us`` negative.
    """
    if not start_us >= 0:
        raise WorkloadError(f"start offset {start_us} us: give 0 or more microseconds.")
    if start_us == 0 or workload.num_ops == 0:
        return workload
    t = workload.ops
    k = len(pc.unique(t.column("stream")))
    first, _ = _first_ops(t)
    rank = t.column("rank").to_numpy()[first]
    stream = t.column("stream").take(pa.array(first))
    step = t.column("step").take(pa.array(first))
    # The n-th stream of a rank gets op_id n (rows of ``first`` are in (rank, row) order).
    starts = np.r_[0, np.flatnonzero(np.diff(rank)) + 1]
    nth = np.arange(len(rank)) - np.repeat(starts, np.diff(np.r_[starts, len(rank)]))
    factor = np.array([(slowdown or {}).get(int(r), 1.0) for r in rank])
    cols = {f.name: pa.nulls(len(first), f.type) for f in OPS_SCHEMA}
    cols.update({
        "rank": pa.array(rank, pa.int32()), "op_id": pa.array(nth, pa.int64()),
        "name": pa.array([DELAY_NAME] * len(first)), "kind": pa.array(["host"] * len(first)),
        "stream": stream, "duration_us": pa.array(start_us / factor), "step": step,
        "fixed_duration": pa.array([True] * len(first)),
    })
    delays = pa.table(cols, schema=OPS_SCHEMA)
    body = _shift(_shift(t.select(OPS_SCHEMA.names), "op_id", k), "deps", k)
    merged = pa.concat_tables([delays, body]).sort_by([("rank", "ascending"),
                                                        ("op_id", "ascending")])
    return make_workload(merged, workload.groups, workload.meta, source=workload.meta.name)


def job_group(job: str, group: str) -> str:
    """The name of ``job``'s group ``group`` in a merged workload.

    Example:
        >>> job_group("job1", "tp.d0")
        'job1/tp.d0'
    """
    return f"{job}{SEP}{group}"


def framework_of(extra: object) -> str | None:
    """The framework profile a workload's metadata ``extra`` names (a generated
    transformer's ``config.framework``; a job mix's, when all its jobs name the same one),
    else None; metadata of any other shape names none.

    Example:
        >>> framework_of({"config": {"framework": "nemo"}}), framework_of({"config": "x"})
        ('nemo', None)
        >>> framework_of({"jobs": [{"framework": "nemo"}, {"framework": "nemo"}]})
        'nemo'
    """
    if not isinstance(extra, dict):
        return None
    cfg = extra.get("config")
    if isinstance(cfg, dict):
        name = cfg.get("framework")
        return name if isinstance(name, str) and name else None
    jobs = extra.get("jobs")
    if isinstance(jobs, list) and jobs:
        names = {job.get("framework") if isinstance(job, dict) else None for job in jobs}
        if len(names) == 1:
            name = names.pop()
            return name if isinstance(name, str) and name else None
    return None


def merge_workloads(workloads: Sequence[Workload], names: Sequence[str]) -> Workload:
    """The workloads side by side in one: job ``j``'s ranks from ``offset_j`` (the ranks of
    the jobs before it), its groups named :func:`job_group`, its ``peer`` and ``root``
    shifted with its ranks. ``meta.extra["jobs"]`` lists each job's name, first rank, rank
    count, workload name and framework profile (:func:`framework_of`, None if none).

    Raises:
        WorkloadError: names that repeat, or jobs recorded on different accelerators (their
            recorded durations would need two retargetings).
    """
    if len(set(names)) != len(names):
        raise WorkloadError(f"job names {list(names)} repeat; give each job its own name.")
    recorded = {w.meta.recorded_device for w in workloads} - {None}
    if len(recorded) > 1:
        raise WorkloadError(
            f"the jobs were recorded on different accelerators ({', '.join(sorted(recorded))});"
            " a job mix replays traces of one recorded accelerator: give generated workloads "
            "or traces of one accelerator.")
    tables, groups, jobs = [], {}, []
    offset = 0
    for wl, name in zip(workloads, names):
        t = wl.ops.select(OPS_SCHEMA.names)
        for col in ("rank", "peer", "root"):
            t = _shift(t, col, offset)
        g = t.schema.get_field_index("group")
        t = t.set_column(g, t.schema.field(g), pc.binary_join_element_wise(
            pa.scalar(name + SEP), t.column("group"), ""))
        tables.append(t)
        groups.update({job_group(name, k): tuple(r + offset for r in v)
                       for k, v in wl.groups.items()})
        jobs.append({"name": name, "first_rank": offset, "ranks": wl.num_ranks,
                     "workload": wl.meta.name, "framework": framework_of(wl.meta.extra)})
        offset += wl.num_ranks
    meta = WorkloadMeta(name=" + ".join(names), source="job mix", world_size=offset,
                        recorded_device=next(iter(recorded), None), extra={"jobs": jobs})
    return make_workload(pa.concat_tables(tables), groups, meta, source="job mix")

"""The critical path: the chain of ops and waits that decided when the run ended.

Walk backwards from the op that ended last. For an op, the part that ran is on the path;
what held its start back is next:

- a collective (or send/recv) started moving data when the last of its ranks arrived, so the
  path jumps to that rank's op and continues from what held *its* arrival back (collectives
  join ranks, send/recv join pipeline stages);
- any other op started when the latest of its stream predecessor and its deps ended; a gap
  between that end and the op's start is ``idle`` on the path (nothing explains it: host
  launch gaps in a recorded trace, for example).

Communication segments split into ``comm latency`` (fixed costs and latency steps) and the
time its flows spent moving data, charged to the role of the link that limited them
(``comm:nic``, ``comm:nvlink``, ...). ``limits`` sums the path by category: what limits this
step.
"""

from __future__ import annotations

import re

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.result import Run

_EPS = 1e-6
_CATEGORY = {"compute": "compute", "host": "host", "memcpy": "copies"}


class _Graph:
    """Per-op arrays the walk needs, built from the timeline once."""

    def __init__(self, run: Run) -> None:
        t = run.timeline
        self.n = t.num_rows
        self.rank = t.column("rank").to_numpy().astype(np.int64)
        self.op_id = t.column("op_id").to_numpy().astype(np.int64)
        self.kind = t.column("kind").to_numpy(zero_copy_only=False)
        self.start = t.column("start_us").to_numpy()
        self.end = t.column("end_us").to_numpy()
        self.wait = t.column("wait_us").to_numpy()
        stream = t.column("stream").to_numpy(zero_copy_only=False)
        # Stream predecessor: previous op of the same (rank, stream) in op_id order.
        _, scode = np.unique(stream, return_inverse=True)
        order = np.lexsort((self.op_id, scode, self.rank))
        same = np.r_[False, (self.rank[order][1:] == self.rank[order][:-1])
                     & (scode[order][1:] == scode[order][:-1])]
        self.prev = np.full(self.n, -1, dtype=np.int64)
        self.prev[order[same]] = order[np.flatnonzero(same) - 1]
        # Deps as row indices (rows are in (rank, op_id) order).
        deps = t.column("deps").combine_chunks()
        self.dep_offsets = deps.offsets.to_numpy() if self.n else np.zeros(1, dtype=np.int64)
        flat = deps.values.to_numpy(zero_copy_only=False).astype(np.int64)
        owner = np.repeat(np.arange(self.n), np.diff(self.dep_offsets))
        keys = self.rank * (1 << 40) + self.op_id
        self.dep_rows = np.searchsorted(keys, self.rank[owner] * (1 << 40) + flat) if len(flat) \
            else flat
        self.released_by = self._last_arrivals(t)

    def deps(self, i: int) -> np.ndarray:
        return self.dep_rows[self.dep_offsets[i]:self.dep_offsets[i + 1]]

    def _last_arrivals(self, t: pa.Table) -> np.ndarray:
        """For a communication op, the row of the member that arrived last (itself if it
        did); -1 for other ops."""
        out = np.full(self.n, -1, dtype=np.int64)
        comm = np.flatnonzero(np.isin(self.kind, ("collective", "send", "recv")))
        if comm.size == 0:
            return out
        group = t.column("group").to_numpy(zero_copy_only=False)
        seq = t.column("seq").fill_null(-1).to_numpy(zero_copy_only=False)
        peer = t.column("peer").fill_null(-1).to_numpy(zero_copy_only=False)
        instances: dict[Any, list[int]] = {}
        for i in comm.tolist():
            if self.kind[i] == "collective":
                key: Any = ("c", group[i], int(seq[i]))
            else:
                a, b = int(self.rank[i]), int(peer[i])
                src, dst = (a, b) if self.kind[i] == "send" else (b, a)
                key = ("p", src, dst, int(seq[i]))
            instances.setdefault(key, []).append(i)
        for members in instances.values():
            last = max(members, key=lambda j: (self.start[j], -self.rank[j]))
            out[members] = last
        return out


def _comm_roles(run: Run) -> dict[tuple[str, int], tuple[float, str | None, str | None]]:
    """(group, seq) -> (time its flows moved data, role and name of the link that limited it
    longest)."""
    f = run.flows
    if f.num_rows == 0:
        return {}
    f = f.filter(pc.is_in(f.column("kind"), pa.array(["collective", "send"])))
    roles = run.links.column("role").to_pylist()
    names = [f"{s} -> {d}" for s, d in zip(run.links.column("src").to_pylist(),
                                             run.links.column("dst").to_pylist())]
    out: dict[tuple[str, int], tuple[float, str | None, str | None]] = {}
    best: dict[tuple[str, int], float] = {}
    for r in f.to_pylist():
        key = (r["group"], r["seq"])
        moved, role, link = out.get(key, (0.0, None, None))
        moved += r["end_us"] - r["start_us"]
        if r["bottleneck_link"] >= 0 and r["bottleneck_us"] > best.get(key, -1.0):
            best[key] = r["bottleneck_us"]
            role, link = roles[r["bottleneck_link"]], names[r["bottleneck_link"]]
        out[key] = (moved, role, link)
    return out


def critical_path(run: Run) -> pa.Table:
    """The critical path, from the start of the run to its end.

    Columns: rank, stream, op_id, name, kind, category (compute, host, copies, comm latency,
    comm:<link role>, sync, idle), start_us, end_us, duration_us, share (of the makespan),
    link (the limiting link of a communication segment).
    """
    g = _Graph(run)
    cols: dict[str, list[Any]] = {c: [] for c in (
        "row", "category", "start_us", "end_us", "link")}
    if g.n == 0:
        return _table(run, cols)
    roles = _comm_roles(run)
    group = run.timeline.column("group").to_numpy(zero_copy_only=False)
    seq = run.timeline.column("seq").fill_null(-1).to_numpy(zero_copy_only=False)

    def add(row: int, category: str, a: float, b: float, link: str | None = None) -> None:
        if b - a > _EPS:
            for c, v in zip(cols, (row, category, a, b, link)):
                cols[c].append(v)

    i = int(np.lexsort((g.rank, -g.end))[0])
    t = float(g.end[i])
    while True:
        if g.released_by[i] >= 0:
            active = g.start[i] + g.wait[i]
            key = (group[i], int(seq[i])) if g.kind[i] == "collective" else (
                _p2p_group(run, g, i), int(seq[i]))
            moved, role, link = roles.get(key, (0.0, None, None))
            moved = min(moved, t - active)
            # Segments are collected backwards in time: the data movement ends the op.
            add(i, f"comm:{role}" if role else "comm latency", t - moved, t, link)
            add(i, "comm latency", active, t - moved)
            i = int(g.released_by[i])
            t = float(g.start[i])
        else:
            add(i, _CATEGORY.get(g.kind[i], g.kind[i]), float(g.start[i]), t)
            t = float(g.start[i])
        if t <= _EPS:
            break
        cands = [int(p) for p in (g.prev[i], *g.deps(i)) if p >= 0]
        if not cands:
            add(i, "idle", 0.0, t)
            break
        p = max(cands, key=lambda c: (g.end[c], -c))
        if g.end[p] < t - _EPS:
            add(i, "idle", float(g.end[p]), t)
        i, t = p, float(min(g.end[p], t))
    return _table(run, cols)


def _p2p_group(run: Run, g: _Graph, i: int) -> str:
    peer = int(run.timeline.column("peer")[i].as_py())
    a = int(g.rank[i])
    src, dst = (a, peer) if g.kind[i] == "send" else (peer, a)
    return f"{src}->{dst}"


def _table(run: Run, cols: dict[str, list[Any]]) -> pa.Table:
    rows = np.asarray(cols["row"][::-1], dtype=np.int64)
    t = run.timeline.take(pa.array(rows, pa.int64())) if len(rows) else run.timeline.slice(0, 0)
    start = np.asarray(cols["start_us"][::-1], dtype=np.float64)
    end = np.asarray(cols["end_us"][::-1], dtype=np.float64)
    span = run.makespan_us or 1.0
    return pa.table({
        "rank": t.column("rank"),
        "stream": t.column("stream"),
        "op_id": t.column("op_id"),
        "name": t.column("name"),
        "kind": t.column("kind"),
        "category": pa.array(cols["category"][::-1], pa.string()),
        "start_us": pa.array(start),
        "end_us": pa.array(end),
        "duration_us": pa.array(end - start),
        "share": pa.array((end - start) / span),
        "link": pa.array(cols["link"][::-1], pa.string()),
    })


def limits(path: pa.Table) -> dict[str, float]:
    """Share of the critical path per category (they add up to 1 when the path covers the
    run), largest first."""
    if path.num_rows == 0:
        return {}
    agg = path.group_by("category").aggregate([("share", "sum")])
    pairs = sorted(zip(agg.column("category").to_pylist(), agg.column("share_sum").to_pylist()),
                   key=lambda kv: (-kv[1], kv[0]))
    return {k: float(v) for k, v in pairs}


def dominant_limit(lim: dict[str, float]) -> str | None:
    """The largest share of :func:`limits`: its category (``compute``, ``host``, ...), or for
    communication held back by a link, the link role (the ``comm:`` prefix dropped); ties go
    to the larger name; None when empty.

    Example:
        >>> dominant_limit({"compute": 0.3, "comm:nvlink": 0.7})
        'nvlink'
    """
    if not lim:
        return None
    top = max(lim.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return top.split(":", 1)[1] if top.startswith("comm:") else top


# A layer index in a generated op name: ``L19.fwd.ln1`` (transformer) or ``bwd.layer3``
# (data-parallel), as a dotted component.
_LAYER = re.compile(r"(?:^|(?<=\.))(L|layer)(\d+)(?=\.|$)")


def path_by_class(path: pa.Table) -> pa.Table:
    """The critical path grouped by category and op class: ``category, op_class, segments,
    duration_us, share``, largest share first. The op class is the op name with a generated
    layer index starred (``L19.fwd.ln1`` -> ``L*.fwd.ln1``), so that 80 layers' identical
    ops are one row, not 80 rows of 1 %; ``bwd.layer3`` -> ``bwd.layer*``.

    Example:
        >>> p = pa.table({"category": ["compute"] * 3, "name": ["L0.fwd", "L1.fwd", "head"],
        ...               "duration_us": [2.0, 2.0, 1.0], "share": [0.4, 0.4, 0.2]})
        >>> path_by_class(p).to_pylist()[0]
        {'category': 'compute', 'op_class': 'L*.fwd', 'segments': 2, 'duration_us': 4.0, 'share': 0.8}
    """
    names = path.column("name").to_pylist()
    t = pa.table({"category": path.column("category"),
                  "op_class": pa.array([_LAYER.sub(r"\1*", n or "") for n in names],
                                       pa.string()),
                  "duration_us": path.column("duration_us"), "share": path.column("share")})
    agg = t.group_by(["category", "op_class"]).aggregate(
        [("duration_us", "count"), ("duration_us", "sum"), ("share", "sum")])
    out = pa.table({"category": agg.column("category"), "op_class": agg.column("op_class"),
                    "segments": agg.column("duration_us_count"),
                    "duration_us": agg.column("duration_us_sum"),
                    "share": agg.column("share_sum")})
    return out.sort_by([("share", "descending"), ("category", "ascending"),
                        ("op_class", "ascending")])


def path_by_layer(path: pa.Table) -> dict[int, float]:
    """Share of the critical path per generated layer (ops named ``L<n>.`` or ``.layer<n>``),
    by layer.

    Example:
        >>> p = pa.table({"name": ["L1.fwd", "bwd.layer1", "head"], "share": [0.2, 0.3, 0.5]})
        >>> path_by_layer(p)
        {1: 0.5}
    """
    out: dict[int, float] = {}
    for name, share in zip(path.column("name").to_pylist(), path.column("share").to_pylist()):
        m = _LAYER.search(name or "")
        if m:
            out[int(m.group(2))] = out.get(int(m.group(2)), 0.0) + float(share)
    return dict(sorted(out.items()))

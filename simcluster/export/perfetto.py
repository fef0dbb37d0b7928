"""Run -> Chrome Trace Event Format JSON, which ui.perfetto.dev and chrome://tracing open.

- a process per rank (``rank 3 (node0/gpu3)``), a thread per stream;
- a complete event (``ph: X``) per op, and inside a collective a ``wait for peers`` slice for
  the time the rank waited;
- flow arrows (``ph: s`` / ``f``) from the rank that arrived last at a collective (the one that
  released it) to every other rank of it;
- a ``links`` process with a counter track (``ph: C``) of utilization for each of the busiest
  links.

Times are microseconds, as the format wants. Large runs are cut to their first
``max_ranks`` ranks (flows and counters follow); the file says so in its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from simcluster.analysis.links import busiest_links, load_over_time
from simcluster.atomic import atomic_path
from simcluster.sim.result import Run

LINKS_PID = 1_000_000


def _r(x: float) -> float:
    return round(float(x), 3)


def trace_events(run: Run, max_ranks: int = 64, max_links: int = 16) -> dict[str, Any]:
    """The trace as a JSON-ready dict (deterministic order)."""
    n = run.memory.num_rows
    keep = min(n, max_ranks)
    t = run.timeline.filter(pc.less(run.timeline.column("rank"), keep))
    events: list[dict[str, Any]] = []
    devices = run.memory.column("device").to_pylist()
    streams = sorted(set(t.column("stream").to_pylist()))
    tid = {s: k + 1 for k, s in enumerate(streams)}
    for r in range(keep):
        events.append({"ph": "M", "pid": r, "name": "process_name",
                       "args": {"name": f"rank {r} ({devices[r]})"}})
        events.append({"ph": "M", "pid": r, "name": "process_sort_index", "args": {"sort_index": r}})
    for r, s in sorted(set(zip(t.column("rank").to_pylist(), t.column("stream").to_pylist()))):
        events.append({"ph": "M", "pid": r, "tid": tid[s], "name": "thread_name",
                       "args": {"name": s}})
    rows = t.select(["rank", "stream", "op_id", "name", "kind", "start_us", "end_us", "wait_us",
                     "collective", "group", "seq", "algorithm", "comm_bytes", "flops"]).to_pylist()
    instances: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for op in rows:
        args = {"op_id": op["op_id"]}
        for key in ("collective", "group", "algorithm", "comm_bytes", "flops"):
            if op[key] not in (None, 0, 0.0):
                args[key] = op[key]
        base = {"pid": op["rank"], "tid": tid[op["stream"]]}
        events.append({**base, "ph": "X", "name": op["name"], "cat": op["kind"],
                       "ts": _r(op["start_us"]), "dur": _r(op["end_us"] - op["start_us"]),
                       "args": args})
        if op["wait_us"] > 0:
            events.append({**base, "ph": "X", "name": "wait for peers", "cat": "wait",
                           "ts": _r(op["start_us"]), "dur": _r(op["wait_us"])})
        if op["kind"] == "collective" and op["group"] is not None:
            instances.setdefault((op["group"], op["seq"]), []).append(op)
    for flow_id, (_, members) in enumerate(sorted(instances.items(), key=lambda kv: (
            min(m["start_us"] + m["wait_us"] for m in kv[1]), kv[0]))):
        if len(members) < 2:
            continue
        last = max(members, key=lambda m: (m["start_us"], -m["rank"]))
        ts = _r(last["start_us"] + last["wait_us"])
        events.append({"ph": "s", "id": flow_id, "pid": last["rank"], "tid": tid[last["stream"]],
                       "ts": ts, "name": "released", "cat": "collective"})
        for m in sorted(members, key=lambda m: m["rank"]):
            if m is not last:
                events.append({"ph": "f", "bp": "e", "id": flow_id, "pid": m["rank"],
                               "tid": tid[m["stream"]], "ts": ts, "name": "released",
                               "cat": "collective"})
    events += _link_counters(run, max_links)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "metadata": {"simcluster": {"ranks": n, "ranks_shown": keep,
                                        "makespan_us": run.makespan_us,
                                        "workload": run.info.get("workload"),
                                        "cluster": run.info.get("cluster")}}}


def _link_counters(run: Run, max_links: int) -> list[dict[str, Any]]:
    links = busiest_links(run, max_links, by="bytes")
    if links.num_rows == 0 or run.link_load.num_rows == 0:
        return []
    out: list[dict[str, Any]] = [{"ph": "M", "pid": LINKS_PID, "name": "process_name",
                                  "args": {"name": "links (utilization)"}}]
    load = load_over_time(run, links.column("link_id").to_pylist())
    for link in links.to_pylist():
        name = f"{link['src']} -> {link['dst']}"
        start, end, rate = load[link["link_id"]]
        prev_end = None
        for a, b, r in zip(start.tolist(), end.tolist(), rate.tolist()):
            if prev_end is not None and a > prev_end:
                out.append({"ph": "C", "pid": LINKS_PID, "name": name, "ts": _r(prev_end),
                            "args": {"utilization": 0.0}})
            out.append({"ph": "C", "pid": LINKS_PID, "name": name, "ts": _r(a),
                        "args": {"utilization": round(r / link["capacity_GBps"], 4)}})
            prev_end = b
        if prev_end is not None:
            out.append({"ph": "C", "pid": LINKS_PID, "name": name, "ts": _r(prev_end),
                        "args": {"utilization": 0.0}})
    return out


def write_perfetto(run: Run, path: str | Path, max_ranks: int = 64,
                   max_links: int = 16) -> Path:
    """Write the trace JSON to ``path`` (atomically); returns the path."""
    path = Path(path)
    data = trace_events(run, max_ranks, max_links)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")), encoding="utf-8")
    return path

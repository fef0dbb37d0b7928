"""HolisticTraceAnalysis's definitions on small timelines with hand-computed values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from simcluster.analysis import hta
from simcluster.sim.result import Run


def _run(rows: list[dict]) -> Run:
    """A Run whose timeline holds ``rows`` (rank, kind, start_us, end_us, and optionally
    name, stream, op_id, deps)."""
    cols = {k: [r.get(k) for r in rows] for k in ("rank", "kind", "start_us", "end_us")}
    cols["name"] = [r.get("name", r["kind"]) for r in rows]
    cols["stream"] = [r.get("stream", "s") for r in rows]
    cols["op_id"] = [r.get("op_id", i) for i, r in enumerate(rows)]
    cols["deps"] = [r.get("deps") for r in rows]
    t = pa.table({**cols, "rank": pa.array(cols["rank"], pa.int32()),
                  "deps": pa.array(cols["deps"], pa.list_(pa.int64()))})
    ranks = max(cols["rank"]) + 1
    memory = pa.table({"rank": pa.array(range(ranks), pa.int32())})
    return Run(t, pa.table({}), memory, max(cols["end_us"]))


# Rank 0: compute 0-4, a collective 2-7 (overlapping compute 2-4), idle 7-8, a copy 8-10,
# and a host op that is not a kernel. Rank 1: one compute op 0-10.
RUN = _run([
    {"rank": 0, "kind": "compute", "start_us": 0.0, "end_us": 4.0, "name": "gemm"},
    {"rank": 0, "kind": "collective", "start_us": 2.0, "end_us": 7.0, "stream": "comm",
     "name": "nccl"},
    {"rank": 0, "kind": "memcpy", "start_us": 8.0, "end_us": 10.0, "stream": "copy"},
    {"rank": 0, "kind": "host", "start_us": 0.0, "end_us": 10.0, "stream": "cpu"},
    {"rank": 1, "kind": "compute", "start_us": 0.0, "end_us": 10.0, "name": "gemm"},
])


def test_temporal_breakdown_follows_hta() -> None:
    t = hta.temporal_breakdown(RUN).to_pylist()
    # rank 0: span 10, kernels cover 0-7 and 8-10 (9 us): idle 1; compute 4; non-compute 5.
    assert (t[0]["idle_us"], t[0]["compute_us"], t[0]["non_compute_us"], t[0]["kernel_us"]) == (
        1.0, 4.0, 5.0, 10.0)
    assert (t[0]["idle_pct"], t[0]["compute_pct"], t[0]["non_compute_pct"]) == (10.0, 40.0, 50.0)
    assert (t[1]["idle_us"], t[1]["compute_us"], t[1]["non_compute_us"]) == (0.0, 10.0, 0.0)


def test_kernel_type_overlap_sums_over_ranks() -> None:
    rows = {r["kernel_type"]: r["time_us"] for r in hta.kernel_type_overlap(RUN).to_pylist()}
    # compute alone: rank 0 0-2 and rank 1 0-10; both: 2-4; communication alone: 4-7.
    assert rows == {"COMPUTATION": 12.0, "COMPUTATION overlapping COMMUNICATION": 2.0,
                    "COMMUNICATION": 3.0, "MEMORY": 2.0}
    assert sum(r["pct"] for r in hta.kernel_type_overlap(RUN).to_pylist()) == pytest.approx(
        100.0, abs=0.2)


def test_comm_comp_overlap_per_rank() -> None:
    o = hta.comm_comp_overlap(RUN).to_pylist()
    assert (o[0]["comm_us"], o[0]["overlapped_us"], o[0]["overlap_pct"]) == (5.0, 2.0, 40.0)
    assert o[1]["comm_us"] == 0.0 and o[1]["overlap_pct"] == 0.0
    assert hta.overall(hta.temporal_breakdown(RUN), hta.comm_comp_overlap(RUN)) == {
        "idle_pct": 5.0, "compute_pct": 70.0, "non_compute_pct": 25.0, "comm_overlap_pct": 40.0}


def test_kernel_breakdown_keeps_the_top_kernels_and_groups_the_rest() -> None:
    rows = [{"rank": 0, "kind": "compute", "start_us": float(i), "end_us": float(i) + d,
             "name": n} for i, (n, d) in enumerate([("a", 50.0), ("b", 30.0), ("c", 15.0),
                                                     ("d", 5.0)])]
    out = hta.kernel_breakdown(_run(rows), share=0.8).to_pylist()
    # "a" and "b" make up 80 % of the time; "c" and "d" become "others".
    assert [(r["name"], r["sum_us"], r["pct"]) for r in out] == [
        ("a", 50.0, 50.0), ("b", 30.0, 30.0), ("others", 20.0, 20.0)]
    assert out[2]["count"] == 2 and out[2]["max_us"] == 15.0 and out[2]["min_us"] == 5.0


def test_idle_time_breakdown_names_the_cause() -> None:
    rows = [
        {"rank": 0, "kind": "compute", "start_us": 0.0, "end_us": 10.0, "op_id": 0},
        # 2 us gap, no host dep: kernel wait (below the 5 us threshold)
        {"rank": 0, "kind": "compute", "start_us": 12.0, "end_us": 20.0, "op_id": 1},
        # 10 us gap, launched by host op 9 that ended at 30: host wait
        {"rank": 0, "kind": "host", "start_us": 20.0, "end_us": 30.0, "op_id": 9,
         "stream": "cpu"},
        {"rank": 0, "kind": "compute", "start_us": 30.0, "end_us": 35.0, "op_id": 2,
         "deps": [9]},
        # 15 us gap, no host dep: other (e.g. a peer or another stream)
        {"rank": 0, "kind": "compute", "start_us": 50.0, "end_us": 51.0, "op_id": 3},
    ]
    out = {r["idle_category"]: (r["idle_us"], round(r["ratio"], 4))
           for r in hta.idle_time_breakdown(_run(rows), kernel_wait_us=5.0).to_pylist()}
    assert out == {"kernel_wait": (2.0, round(2 / 27, 4)), "host_wait": (10.0, round(10 / 27, 4)),
                   "other": (15.0, round(15 / 27, 4))}


def test_the_recording_as_a_run_gives_htas_numbers_on_what_was_measured() -> None:
    """A workload with recorded start times: the recorded timeline's temporal breakdown is
    computed from them (the same synthetic rank 0 as RUN above)."""
    import dataclasses

    from simcluster.analysis.fidelity import recorded_run
    from tests.conftest import workload

    rows = [
        {"rank": 0, "kind": "compute", "duration_us": 4.0, "stream": "s"},
        {"rank": 0, "kind": "collective", "collective": "all_reduce", "comm_bytes": 8,
         "group": "g", "duration_us": 5.0, "stream": "comm"},
        {"rank": 0, "kind": "memcpy", "copy_kind": "D2D", "duration_us": 2.0,
         "stream": "copy"},
        {"rank": 0, "kind": "host", "duration_us": 10.0, "stream": "cpu"},
    ]
    wl = workload(rows, {"g": [0]})
    starts = pa.array([0.0, 2.0, 8.0, 0.0])
    ops = wl.ops.set_column(wl.ops.schema.get_field_index("recorded_start_us"),
                            "recorded_start_us", starts)
    rec = recorded_run(dataclasses.replace(wl, ops=ops))
    assert rec is not None and rec.makespan_us == 10.0
    t = hta.temporal_breakdown(rec).to_pylist()[0]
    assert (t["idle_us"], t["compute_us"], t["non_compute_us"], t["kernel_us"]) == (
        1.0, 4.0, 5.0, 10.0)
    assert recorded_run(wl) is None  # no recorded starts: nothing to analyse

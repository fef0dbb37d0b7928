"""The Chrome trace JSON: checked against the trace event format's rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simcluster.export.perfetto import LINKS_PID, write_perfetto
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def sample_trace(tmp_path_factory) -> dict:
    import simcluster as sc

    run = sc.simulate(sc.bind(sc.load_workload(ROOT / "traces" / "dp-transformer-16.parquet"),
                              sc.load_cluster(ROOT / "topologies" / "h100-2node.yaml")))
    path = write_perfetto(run, tmp_path_factory.mktemp("pf") / "trace.json")
    return json.loads(path.read_text())


REQUIRED = {"X": {"name", "ph", "ts", "dur", "pid", "tid"}, "M": {"name", "ph", "pid", "args"},
            "C": {"name", "ph", "ts", "pid", "args"}, "s": {"name", "ph", "ts", "pid", "tid", "id"},
            "f": {"name", "ph", "ts", "pid", "tid", "id", "bp"}}


def test_every_event_follows_the_format(sample_trace: dict) -> None:
    events = sample_trace["traceEvents"]
    assert sample_trace["displayTimeUnit"] in ("ms", "ns")
    for ev in events:
        assert ev["ph"] in REQUIRED, ev
        assert REQUIRED[ev["ph"]] <= set(ev), ev
        for key in ("ts", "dur"):
            if key in ev:
                assert isinstance(ev[key], (int, float)) and ev[key] >= 0, ev
        assert isinstance(ev["pid"], int)
        if ev["ph"] == "C":
            assert all(isinstance(v, (int, float)) for v in ev["args"].values())


def test_slices_threads_flows_and_counters(sample_trace: dict) -> None:
    events = sample_trace["traceEvents"]
    slices = [e for e in events if e["ph"] == "X" and e["cat"] != "wait"]
    assert len(slices) == 688  # every op of the 16-rank sample
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert "rank 0 (node0/gpu0)" in names and "links (utilization)" in names
    threads = {(e["pid"], e["args"]["name"]) for e in events if e["name"] == "thread_name"}
    assert (0, "compute") in threads and (15, "comm") in threads
    # Each of the 13 all-reduces: one flow start, 15 flow ends with the same id.
    starts = [e for e in events if e["ph"] == "s"]
    ends = [e for e in events if e["ph"] == "f"]
    assert len(starts) == 13 and len(ends) == 13 * 15
    assert {e["id"] for e in ends} == {e["id"] for e in starts}
    counters = [e for e in events if e["ph"] == "C"]
    assert counters and all(e["pid"] == LINKS_PID for e in counters)
    assert max(v for e in counters for v in e["args"].values()) <= 1.0 + 1e-9


def test_a_flow_end_binds_to_an_enclosing_slice(sample_trace: dict) -> None:
    events = sample_trace["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    for f in (e for e in events if e["ph"] == "f"):
        assert any(s["pid"] == f["pid"] and s["tid"] == f["tid"] and s["ts"] <= f["ts"]
                   <= s["ts"] + s["dur"] + 1e-3 for s in slices)


def test_trace_processor_loads_it_when_available(tmp_path: Path, sample_trace: dict) -> None:
    tp_mod = pytest.importorskip("perfetto.trace_processor")
    if shutil.which("trace_processor_shell") is None:
        pytest.skip("perfetto's trace_processor_shell binary is not installed (offline)")
    p = tmp_path / "t.json"
    p.write_text(json.dumps(sample_trace))
    tp = tp_mod.TraceProcessor(trace=str(p), config=tp_mod.TraceProcessorConfig(
        bin_path=shutil.which("trace_processor_shell")))
    n = tp.query("select count(*) as n from slice").as_pandas_dataframe()["n"][0]
    tp.close()
    assert n >= 688

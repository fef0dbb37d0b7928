"""Kineto traces that are hostile or corrupt: every one ends as a WorkloadError naming the
file and the limit, or as a counted, reported skip; never another exception, a hang or
unbounded memory. Real traces are within every limit."""

from __future__ import annotations

import gzip
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcluster.errors import WorkloadError
from simcluster.workload.kineto import KinetoOptions, import_kineto
from simcluster.workload.kineto.events import (
    BAD_NUMBER,
    NEGATIVE_DURATION,
    KinetoLimits,
    RankTrace,
    read_rank_trace,
)
from simcluster.workload.kineto.jsonstream import (
    JsonLimits,
    TraceJSONError,
    TraceLimitError,
    iter_trace,
)
from tests.bounded import run_cli

KERNEL = {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 100, "dur": 10, "pid": 0, "tid": 7,
          "args": {"stream": 7, "correlation": 1, "device": 0}}
LAUNCH = {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 95, "dur": 3,
          "pid": 0, "tid": 1, "args": {"correlation": 1}}
STEP = {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "ts": 90, "dur": 30,
        "pid": 0, "tid": 1}


def _write(tmp_path: Path, text: str, name: str = "rank-0.json") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _events(*events: dict[str, Any]) -> str:
    return json.dumps({"traceEvents": list(events)})


def _small(**json_limits: int) -> KinetoOptions:
    return KinetoOptions(workers=1, limits=KinetoLimits(json=JsonLimits(**json_limits)))


# -- numbers ---------------------------------------------------------------------------------

def test_nan_and_infinity_are_counted_skips(tmp_path: Path) -> None:
    p = _write(tmp_path, '{"traceEvents": [%s, %s, %s, %s]}' % (
        json.dumps(STEP), json.dumps(LAUNCH),
        '{"ph": "X", "cat": "kernel", "name": "k", "ts": NaN, "dur": 5, "args": {}}',
        '{"ph": "X", "cat": "kernel", "name": "k", "ts": 100, "dur": 4, "args": '
        '{"stream": Infinity, "correlation": NaN, "device": -Infinity}}'))
    wl = import_kineto(p, KinetoOptions(workers=1))
    skipped = wl.meta.extra["import"]["skipped"]
    assert skipped["complete events without a valid ts/dur"] == 1
    assert skipped[BAD_NUMBER] == 3
    assert wl.num_ops > 0


@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1, 10**30, 1e300])
def test_numbers_outside_int64_are_counted_skips(tmp_path: Path, value: Any) -> None:
    kernel = {**KERNEL, "args": {"stream": value, "correlation": value, "bytes": value,
                                 "device": value}}
    cpu = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 91, "dur": 2, "tid": 1,
           "pid": 0, "args": {"Sequence number": value, "Input Dims": [[value, 2], [2, value]],
                              "Input type": ["float", "float"]}}
    trace = read_rank_trace(_write(tmp_path, _events(STEP, cpu, kernel)))
    assert trace.skipped[BAD_NUMBER] == 4  # the kernel's stream, correlation, bytes, device
    assert list(trace.g_stream) == [0] and list(trace.cpu.seq) == [-1]


def test_number_of_5000_digits_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path, '{"traceEvents": [{"ph": "X", "ts": 1, "dur": %s}]}' % ("9" * 5000))
    with pytest.raises(WorkloadError) as exc:
        import_kineto(p, KinetoOptions(workers=1))
    assert str(p) in str(exc.value) and "more than 4,300 digits" in str(exc.value)


def test_negative_durations_are_reported(tmp_path: Path) -> None:
    p = _write(tmp_path, _events(STEP, LAUNCH, KERNEL, {**KERNEL, "ts": 112, "dur": -5},
                                 {**STEP, "name": "ProfilerStep#2", "ts": 125, "dur": -30}))
    wl = import_kineto(p, KinetoOptions(workers=1))
    report = wl.meta.extra["import"]
    assert report["skipped"][NEGATIVE_DURATION] == 2
    assert any("2 event(s) have a negative duration" in w for w in report["warnings"])
    assert wl.meta.extra["kineto"]["ranks"]["0"]["steps"] == {"1": 30.0}


# -- nesting and sizes -----------------------------------------------------------------------

@pytest.mark.parametrize("depth", [65, 5000, 100_000])
def test_deep_nesting_is_an_error(tmp_path: Path, depth: int) -> None:
    p = _write(tmp_path, '{"traceEvents": [%s]}' % ("[" * depth + "]" * depth))
    with pytest.raises(WorkloadError) as exc:
        import_kineto(p, KinetoOptions(workers=1))
    assert str(p) in str(exc.value) and "deeper than the limit of 64 levels" in str(exc.value)


def test_nesting_at_the_limit_reads() -> None:
    text = '{"traceEvents": [%s]}' % ("[" * 64 + "]" * 64)
    items = list(iter_trace(io.StringIO(text), chunk=7))
    assert len(items) == 2


def _gzip_members(path: Path, head: bytes, filler: bytes, total: int, tail: bytes) -> Path:
    """A .json.gz of ``total`` bytes of ``filler`` between head and tail, written as repeated
    gzip members of 1 MiB (a few KB on disk per GB)."""
    member = gzip.compress(filler * ((1 << 20) // len(filler)), compresslevel=9, mtime=0)
    with path.open("wb") as fh:
        fh.write(gzip.compress(head, mtime=0))
        for _ in range(total >> 20):
            fh.write(member)
        fh.write(gzip.compress(tail, mtime=0))
    return path


def test_whitespace_gzip_default_limit_cli(tmp_path: Path) -> None:
    """10 GiB of whitespace, 10 MB on disk: refused by the default expansion limit after
    64 MiB, exit 2, bounded memory (the child is killed after 10 s)."""
    p = _gzip_members(tmp_path / "ws.json.gz", b'{"traceEvents": [', b" ", 10 << 30, b"]}")
    m = run_cli("trace", "import", "kineto", str(p), "-o", str(tmp_path / "w.parquet"),
                timeout_s=10)
    assert m.code == 2 and m.stderr.startswith(f"error: {p}:")
    assert "expands more than the limit of 200 times" in m.stderr
    assert "SIMCLUSTER_KINETO_MAX_GZIP_RATIO" in m.stderr and "Traceback" not in m.stderr
    assert m.peak_bytes < 500e6
    assert not (tmp_path / "w.parquet").exists()


def test_whitespace_small_limits(tmp_path: Path) -> None:
    p = _gzip_members(tmp_path / "ws.json.gz", b'{"traceEvents": [', b" ", 8 << 20, b"]}")
    opts = KinetoOptions(workers=1, limits=KinetoLimits(gzip_ratio_after=1 << 20))
    with pytest.raises(WorkloadError, match="expands more than the limit of 200 times"):
        import_kineto(p, opts)
    with pytest.raises(WorkloadError, match="longer than the limit of 2,000,000 characters.*"
                                            "SIMCLUSTER_KINETO_MAX_BYTES"):
        import_kineto(p, _small(max_chars=2_000_000))


def test_long_string_is_refused_early(tmp_path: Path) -> None:
    """One string of 64 MiB with a 1 MiB value limit."""
    p = _gzip_members(tmp_path / "s.json.gz", b'{"traceEvents": [{"name": "', b"a", 64 << 20,
                      b'"}]}')
    with pytest.raises(WorkloadError) as exc:
        import_kineto(p, _small(max_value_chars=1 << 20))
    assert str(p) in str(exc.value)
    assert "single value (an event or a top-level value) is longer than the limit of " \
           "1,048,576 characters" in str(exc.value)


def test_two_gb_string_default_limit_cli(tmp_path: Path) -> None:
    """One 2 GiB string (2 MB on disk): refused by the default value limit once 8 MiB of it
    are buffered; exit 2, bounded memory (the child is killed after 10 s)."""
    p = _gzip_members(tmp_path / "s.json.gz", b'{"traceEvents": [{"name": "', b"a", 2 << 30,
                      b'"}]}')
    m = run_cli("trace", "import", "kineto", str(p), "-o", str(tmp_path / "w.parquet"),
                timeout_s=10)
    assert m.code == 2 and m.stderr.startswith(f"error: {p}: refused at character 17: ")
    assert "longer than the limit of 8,388,608 characters" in m.stderr
    assert m.peak_bytes < 500e6 and "Traceback" not in m.stderr


def test_long_value_costs_linear_time() -> None:
    """A value longer than the read size is read on with doubling reads, not rescanned per
    chunk: a 2 MB string with 1 KB reads takes a dozen reads."""
    reads = []

    class Counting(io.StringIO):
        def read(self, n: int = -1) -> str:  # type: ignore[override]
            reads.append(n)
            return super().read(n)

    text = '{"traceEvents": [{"name": "%s"}]}' % ("a" * 2_000_000)
    items = list(iter_trace(Counting(text), chunk=1024))
    assert len(items[1].value["name"]) == 2_000_000
    assert len(reads) < 20


def test_malformed_value_is_reported_without_reading_on() -> None:
    """A syntax error far from the buffer's end is final: the rest of the file is not read."""
    reads = []

    class Counting(io.StringIO):
        def read(self, n: int = -1) -> str:  # type: ignore[override]
            reads.append(n)
            return super().read(n)

    text = '{"traceEvents": [{"a": }, ' + '{"b": 1}, ' * 100_000 + "{}]}"
    with pytest.raises(TraceJSONError, match="Expecting value"):
        list(iter_trace(Counting(text), chunk=256))
    assert len(reads) == 1


# -- real traces -----------------------------------------------------------------------------

def test_real_traces_are_within_the_limits(shared_data: Path) -> None:
    files = sorted((shared_data / "kineto").rglob("*.json.gz"))
    assert files
    for f in files:
        trace = read_rank_trace(f)
        assert trace.events > 0
        assert not trace.skipped[NEGATIVE_DURATION] and not trace.skipped[BAD_NUMBER]


# -- fuzzing ---------------------------------------------------------------------------------

EXTREMES = [math.nan, math.inf, -math.inf, 2**63, 2**64, -(2**63) - 1, 10**40, -1, 0, 1e308,
            -1e308, "", "x", "1e999", "0x7fffffffffffffffff", None, True, [], {}, [[1, 2]],
            [[2**62, 2**62, 2**62]], ["9" * 100], [[-1]], {"a": [1]}, "Float", 10**9, 2**62]
extreme = st.sampled_from(EXTREMES)
ARG_KEYS = ["stream", "correlation", "bytes", "device", "Sequence number", "flops",
            "Input Dims", "Input type", "Concrete Inputs", "In msg nelems", "Out msg nelems",
            "Group size", "dtype", "Process Group Ranks", "Collective name", "wait_on_stream",
            "wait_on_cuda_event_record_corr_id", "External id", "Record function id",
            "Global rank start", "Global rank stride", "Process Group Name"]
NAMES = ["aten::mm", "aten::addmm", "aten::conv2d", "aten::convolution", "aten::add",
         "aten::matmul", "aten::linear", "ConvolutionBackward0", "record_param_comms",
         "nccl:all_reduce", "ncclKernel_AllReduce_RING_LL_Sum_float", "cudaLaunchKernel",
         "cudaStreamWaitEvent", "ProfilerStep#1", "gemm"]
CATS = ["cpu_op", "user_annotation", "cuda_runtime", "kernel", "gpu_memcpy", "cuda_sync", "x"]
fuzz_event = st.fixed_dictionaries(
    {"ph": st.sampled_from(["X", "X", "X", "i"]), "cat": st.sampled_from(CATS),
     "name": st.sampled_from(NAMES), "ts": st.one_of(st.integers(0, 200), extreme),
     "dur": st.one_of(st.integers(0, 50), extreme), "tid": st.one_of(st.integers(0, 2), extreme),
     "pid": st.just(0)},
    optional={"args": st.dictionaries(st.sampled_from(ARG_KEYS), extreme, max_size=6)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fuzz_event, max_size=20),
       st.one_of(st.none(), st.fixed_dictionaries({"rank": extreme, "world_size": extreme})))
def test_extreme_values_import_or_fail_cleanly(events: list[dict], info: Any) -> None:
    """Any event field (and distributedInfo) holding NaN, 2**64, a list...: a Workload or a
    WorkloadError."""
    doc: dict[str, Any] = {"traceEvents": events}
    if info is not None:
        doc["distributedInfo"] = info
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "rank-0.json"
        p.write_text(json.dumps(doc))
        try:
            wl = import_kineto(p, KinetoOptions(workers=1))
        except WorkloadError as exc:
            assert str(p) in str(exc) or tmp in str(exc)
            return
        assert wl.num_ops > 0


_SEED = _events(STEP, LAUNCH, KERNEL)
_TOKENS = ["NaN", "Infinity", "-", "9" * 30, "[", "]", "{", "}", '"', ",", ":", "1e999", " ",
           "\\u", "\\", "null", "tr", "0.", "e5"]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(_SEED)), st.integers(0, 8),
       st.lists(st.sampled_from(_TOKENS), max_size=4).map("".join), st.integers(1, 64))
def test_mutated_text_reads_or_is_a_trace_error(pos: int, cut: int, insert: str,
                                                chunk: int) -> None:
    """The streaming reader on mutated text, with small limits: values, or TraceJSONError."""
    text = _SEED[:pos] + insert + _SEED[pos + cut:]
    limits = JsonLimits(max_chars=10_000, max_value_chars=200, max_depth=3)
    try:
        for item in iter_trace(io.StringIO(text), chunk=chunk, limits=limits):
            if item.key is None:
                RankTrace(path=Path("x.json")).add(item.value)
    except TraceLimitError as exc:
        assert exc.limit in ("chars", "value", "depth", "digits")
    except TraceJSONError:
        pass


# -- execution traces (--et) -----------------------------------------------------------------

@pytest.mark.parametrize("name,data,says", [
    ("et_0.json", b"[" * 100_000, "not valid JSON"),
    ("et_0.json.gz", b"\x1f\x8bnot gzip", "cannot decompress"),
    ("et_0.json.gz", gzip.compress(b" " * (80 << 20)), "expands to more than 67,108,864 bytes"),
])
def test_bad_execution_traces(tmp_path: Path, name: str, data: bytes, says: str) -> None:
    from simcluster.workload.kineto.pyet import read_execution_traces
    (tmp_path / name).write_bytes(data)
    with pytest.raises(WorkloadError) as exc:
        read_execution_traces(tmp_path)
    assert str(tmp_path / name) in str(exc.value) and says in str(exc.value)


def test_execution_trace_nodes_of_any_type(tmp_path: Path) -> None:
    from simcluster.workload.kineto.pyet import read_execution_traces
    nodes = [1, "x", None, {"id": "a", "name": "record_param_comms", "inputs": ["allreduce"]},
             {"id": 2**70}, {"id": 3, "name": "record_param_comms",
                             "inputs": ["allreduce", [1, 2, 3, 4, 4, "cuda:0"]]}]
    (tmp_path / "et_0.json").write_text(json.dumps({"nodes": nodes}))
    got = read_execution_traces(tmp_path)[0]
    assert [(c.collective, c.nbytes, c.node_id) for c in got] == [
        ("all_reduce", None, 0), ("all_reduce", 16, 3)]


# -- numbers that would amplify: world sizes, group sizes, message sizes ---------------------

NCCL = {"ph": "X", "cat": "kernel", "name": "ncclKernel_AllReduce_RING_LL_Sum_float",
        "ts": 100, "dur": 10, "pid": 0, "tid": 7,
        "args": {"stream": 7, "correlation": 1, "device": 0}}
COMM = {"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "ts": 94, "dur": 5, "pid": 0,
        "tid": 1, "args": {"Collective name": "allreduce", "dtype": "Float",
                           "In msg nelems": 1024, "Out msg nelems": 1024}}


@pytest.mark.parametrize("world", [2**64, 10**9, (1 << 20) + 1])
def test_world_size_over_the_limit(tmp_path: Path, world: int) -> None:
    p = _write(tmp_path, json.dumps({"distributedInfo": {"rank": 0, "world_size": world},
                                     "traceEvents": [STEP, COMM, LAUNCH, NCCL]}))
    with pytest.raises(WorkloadError) as exc:
        import_kineto(p, KinetoOptions(workers=1))
    assert f"a world size of {world:,} ranks" in str(exc.value)
    assert "over the limit of 1,048,576" in str(exc.value)


def test_large_world_costs_nothing_per_op(tmp_path: Path) -> None:
    """Rank 0 of a 1,048,576-rank job: each collective looks at the ranks imported, not at
    every rank of the job."""
    p = _write(tmp_path, json.dumps({"distributedInfo": {"rank": 0, "world_size": 1 << 20},
                                     "traceEvents": [STEP, COMM, LAUNCH, NCCL]}))
    wl = import_kineto(p, KinetoOptions(workers=1))
    assert wl.meta.extra["kineto"]["recorded_world_size"] == 1 << 20
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    assert len(coll) == 1 and coll[0]["comm_bytes"] == 4096 and coll[0]["fixed_duration"]


@pytest.mark.parametrize("args", [
    {"Group size": 10**9, "Global rank start": 0, "Global rank stride": 1},
    {"Group size": 2**64, "Global rank start": 0, "Global rank stride": 1},
    {"Process Group Ranks": [0, -1]}, {"Process Group Ranks": "[0, 99999999999]"},
    {"In msg nelems": 2**62, "Out msg nelems": 2**62},
    {"In msg nelems": -5, "Out msg nelems": -5},
])
def test_group_and_message_sizes_that_cannot_be(tmp_path: Path, args: dict) -> None:
    """Sizes no job has are not believed: the group is the world, the size unknown."""
    comm = {**COMM, "args": {**COMM["args"], **args}}
    p = _write(tmp_path, json.dumps({"distributedInfo": {"rank": 0, "world_size": 2},
                                     "traceEvents": [STEP, comm, LAUNCH, NCCL]}))
    wl = import_kineto(p, KinetoOptions(workers=1))
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    assert len(coll) == 1 and coll[0]["group"] == "world"
    sized = "In msg nelems" not in args
    assert coll[0]["comm_bytes"] == (4096 if sized else None)


def test_device_properties_of_any_type(tmp_path: Path) -> None:
    props = [{"id": 0, "name": "NVIDIA A100-SXM4-80GB", "totalGlobalMem": [1],
              "numSms": {"a": 1}}]
    p = _write(tmp_path, json.dumps({"deviceProperties": props,
                                     "traceEvents": [STEP, LAUNCH, KERNEL]}))
    assert import_kineto(p, KinetoOptions(workers=1)).meta.recorded_device is not None

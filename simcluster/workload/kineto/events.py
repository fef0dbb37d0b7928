"""Read one Kineto trace file into compact columns (bounded memory).

Events are sorted into what the replay needs, each kept as a few numbers in ``array``
columns rather than as dicts:

- GPU activity (``kernel``, ``gpu_memcpy``, ``gpu_memset``; the older ``Kernel``, ``Memcpy``,
  ``Memset``): start, duration, stream, correlation, bytes;
- runtime calls (``cuda_runtime``, ``cuda_driver``; ``Runtime``): start, duration, thread,
  name, correlation: launches, synchronizations, event records and waits;
- ``cuda_sync`` events (newer Kineto): which stream or recorded event a wait or
  synchronization was on;
- CPU ops and annotations (``cpu_op``, ``user_annotation``; ``Operator``): each
  thread's first and last time, the ``ProfilerStep#N`` spans, and
  the few communication annotations (``record_param_comms``, ``nccl:*``, ``c10d::*``) with
  their arguments; and every CPU op (not annotation) as a few numbers: its span, name,
  ``Sequence number``, ``flops`` argument and what its shapes say of its work
  (:mod:`.work`, which turns them into kernels' FLOPs and bytes).

Everything else is counted: known kinds the replay does not need (flow arrows, memory
instant events, GPU-side annotations) under ``skipped``, anything not recognised under
``unknown``. Neither is fatal.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import sys
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.workload.kineto.aten_work import conv_node_dims, is_conv_node
from simcluster.workload.kineto.conv_work import ConvContext
from simcluster.workload.kineto.cpuops import CpuOps
from simcluster.workload.kineto.jsonstream import EVENTS, TraceJSONError, iter_trace

KERNEL, MEMCPY, MEMSET = 0, 1, 2
_GPU_CATS = {"kernel": KERNEL, "gpu_memcpy": MEMCPY, "memcpy": MEMCPY, "gpu_memset": MEMSET,
             "memset": MEMSET}
_RUNTIME_CATS = {"cuda_runtime", "runtime", "cuda_driver"}
_CPU_CATS = {"cpu_op", "operator", "user_annotation"}
_OP_CATS = {"cpu_op", "operator"}
_SKIP_CATS = {
    "gpu_user_annotation": "GPU-side annotations",
    "trace": "profiler spans",
    "overhead": "profiler overhead spans",
    "cpu_instant_event": "CPU instant events",
    "python_function": "Python function spans",
}
_KNOWN_TOP = {"schemaVersion", "deviceProperties", "distributedInfo", "record_shapes",
              "traceEvents", "traceName", "displayTimeUnit", "baseTimeNanoseconds", "INFO",
              "with_flops", "with_stack", "profile_memory", "cuda_runtime_version",
              "cuda_driver_version", "trace_id", "cupti_version", "hip_runtime_version",
              "roctracer_version", "with_modules"}
_STEP = re.compile(r"ProfilerStep#(\d+)")
_COMM_ANNOTATION = re.compile(r"^(record_param_comms|nccl:|c10d::|gloo:)")
_COMM_KERNEL = re.compile(r"(?:nccl|rccl)\w*?kernel", re.IGNORECASE)
# Arguments of communication annotations and kernels that say what was communicated (the
# rest is dropped as it is read, to keep memory small).
_COMM_ARGS = (
    "Collective name", "In msg nelems", "Out msg nelems", "dtype", "Group size",
    "Process Group Name", "Process Group Ranks", "Global rank start", "Global rank stride",
    "Input Dims", "Input type", "Record function id", "External id")


def _comm_args(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments that say what was communicated; keys and string values shared between
    events (JSON decoding makes new string objects for every event)."""
    return {k: sys.intern(v) if isinstance(v, str) else v
            for k in _COMM_ARGS if (v := args.get(k)) is not None}


@dataclass(frozen=True)
class Span:
    """A CPU event kept whole: a step span or a communication annotation (times in us)."""

    thread: int
    ts: float
    end: float
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncInfo:
    """A ``cuda_sync`` event: the kind, and the stream or event it was about (-1: unknown)."""

    kind: str
    stream: int
    wait_on_stream: int
    wait_on_record_corr: int


def _f(x: Any) -> float | None:
    """A finite float from a number or a numeric string; None otherwise."""
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _i(x: Any, default: int = -1) -> int:
    """An int from a number or a numeric string (``'0x0'`` too); ``default`` otherwise."""
    if isinstance(x, bool) or x is None:
        return default
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return int(x)
    try:
        return int(str(x), 0)
    except ValueError:
        return default


@dataclass
class RankTrace:
    """One trace file, in columns. Times in us as recorded (absolute)."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    # GPU activity
    g_ts: array = field(default_factory=lambda: array("d"))
    g_dur: array = field(default_factory=lambda: array("d"))
    g_stream: array = field(default_factory=lambda: array("q"))
    g_kind: array = field(default_factory=lambda: array("b"))
    g_name: array = field(default_factory=lambda: array("i"))
    g_corr: array = field(default_factory=lambda: array("q"))
    g_bytes: array = field(default_factory=lambda: array("q"))
    g_device: array = field(default_factory=lambda: array("q"))
    comm_kernel_args: dict[int, dict[str, Any]] = field(default_factory=dict)
    # runtime calls
    r_ts: array = field(default_factory=lambda: array("d"))
    r_dur: array = field(default_factory=lambda: array("d"))
    r_thread: array = field(default_factory=lambda: array("i"))
    r_name: array = field(default_factory=lambda: array("i"))
    r_corr: array = field(default_factory=lambda: array("q"))
    syncs: dict[int, SyncInfo] = field(default_factory=dict)
    # CPU side
    thread_first: dict[int, float] = field(default_factory=dict)
    thread_last: dict[int, float] = field(default_factory=dict)
    steps: list[tuple[int, Span]] = field(default_factory=list)
    annotations: list[Span] = field(default_factory=list)
    cpu: CpuOps = field(default_factory=CpuOps)
    conv_ctx: ConvContext = field(default_factory=ConvContext)
    # what was seen
    skipped: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    events: int = 0

    def __post_init__(self) -> None:
        self._name_ids: dict[str, int] = {}
        self._thread_ids: dict[str, int] = {}

    def name_id(self, name: str) -> int:
        i = self._name_ids.get(name)
        if i is None:
            i = self._name_ids[name] = len(self.names)
            self.names.append(name)
        return i

    def thread_id(self, tid: Any) -> int:
        key = str(tid)
        i = self._thread_ids.get(key)
        if i is None:
            i = self._thread_ids[key] = len(self.threads)
            self.threads.append(key)
        return i

    def __getstate__(self) -> dict[str, Any]:  # picklable for parallel parsing
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _touch(self, thread: int, ts: float, end: float) -> None:
        first = self.thread_first.get(thread)
        if first is None or ts < first:
            self.thread_first[thread] = ts
        last = self.thread_last.get(thread)
        if last is None or end > last:
            self.thread_last[thread] = end

    def add(self, e: Any) -> None:
        """Sort one event into the columns (or the counters)."""
        self.events += 1
        if not isinstance(e, dict):
            self.unknown["events that are not JSON objects"] += 1
            return
        ph = e.get("ph")
        cat = str(e.get("cat", "")).lower()
        if ph != "X":
            self._add_other(ph, cat, e)
            return
        args = e.get("args")
        if not isinstance(args, dict):
            args = {}
        ts, dur = _f(e.get("ts")), _f(e.get("dur", 0.0))
        if ts is None or dur is None:
            self.skipped["complete events without a valid ts/dur"] += 1
            return
        dur = max(dur, 0.0)
        name = str(e.get("name", ""))
        if cat in _GPU_CATS:
            self._add_gpu(_GPU_CATS[cat], name, ts, dur, args)
        elif cat in _RUNTIME_CATS:
            th = self.thread_id(e.get("tid"))
            self.r_ts.append(ts)
            self.r_dur.append(dur)
            self.r_thread.append(th)
            self.r_name.append(self.name_id(name))
            self.r_corr.append(_i(args.get("correlation")))
            self._touch(th, ts, ts + dur)
        elif cat in _CPU_CATS:
            th = self.thread_id(e.get("tid"))
            self._touch(th, ts, ts + dur)
            m = _STEP.fullmatch(name)
            if m:
                self.steps.append((int(m.group(1)), Span(th, ts, ts + dur, name)))
            elif _COMM_ANNOTATION.match(name):
                self.annotations.append(Span(th, ts, ts + dur, sys.intern(name),
                                             _comm_args(args)))
            if cat in _OP_CATS and not m:
                self.cpu.add(th, name, ts, ts + dur, args)
                if is_conv_node(name):
                    seq = args.get("Sequence number")
                    if isinstance(seq, int):
                        self.conv_ctx.add_node(seq, conv_node_dims(args))
        elif cat == "cuda_sync":
            self.syncs[_i(args.get("correlation"))] = SyncInfo(
                kind=str(args.get("cuda_sync_kind", e.get("name", ""))),
                stream=_i(args.get("stream")),
                wait_on_stream=_i(args.get("wait_on_stream")),
                wait_on_record_corr=_i(args.get("wait_on_cuda_event_record_corr_id")),
            )
        elif cat in _SKIP_CATS:
            self.skipped[_SKIP_CATS[cat]] += 1
        else:
            self.unknown[f"category {e.get('cat')!r}"] += 1

    def _add_gpu(self, kind: int, name: str, ts: float, dur: float, args: dict[str, Any]) -> None:
        i = len(self.g_ts)
        self.g_ts.append(ts)
        self.g_dur.append(dur)
        self.g_stream.append(_i(args.get("stream"), 0))
        self.g_kind.append(kind)
        self.g_name.append(self.name_id(name))
        self.g_corr.append(_i(args.get("correlation")))
        self.g_bytes.append(_i(args.get("bytes"), 0))
        self.g_device.append(_i(args.get("device"), 0))
        if kind == KERNEL and _COMM_KERNEL.search(name):
            self.comm_kernel_args[i] = _comm_args(args)

    def _add_other(self, ph: Any, cat: str, e: dict[str, Any]) -> None:
        if ph in ("s", "f", "t"):
            self.skipped["flow arrows (links are rebuilt from correlation ids)"] += 1
        elif ph == "M":
            self.skipped["metadata (process and thread names)"] += 1
        elif ph in ("i", "I"):
            what = ("memory allocation events (not modelled)" if e.get("name") == "[memory]"
                    else "instant events")
            self.skipped[what] += 1
        else:
            self.unknown[f"phase {ph!r}"] += 1


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_rank_trace(path: Path) -> RankTrace:
    """Read one Kineto trace file (``.json`` or ``.json.gz``).

    Raises:
        WorkloadError: unreadable, truncated or malformed JSON, or JSON that is not a Kineto
            trace (no ``traceEvents``; a PyTorch execution trace is named as such).
    """
    trace = RankTrace(path=path)
    seen_events = False
    try:
        with _open_text(path) as fh:
            for item in iter_trace(fh):
                if item.key is None:
                    seen_events = True
                    trace.add(item.value)
                elif item.key == "traceEvents":
                    if item.value is not EVENTS:
                        raise WorkloadError(f"{path}: traceEvents is not a list; not a Kineto "
                                            "trace.")
                    seen_events = True
                else:
                    if item.key not in _KNOWN_TOP:
                        trace.unknown[f"top-level key {item.key!r}"] += 1
                    if item.key in ("distributedInfo", "deviceProperties", "schemaVersion",
                                    "traceName", "nodes", "schema"):
                        trace.meta[item.key] = item.value if item.key != "nodes" else True
    except TraceJSONError as exc:
        raise WorkloadError(
            f"{path}: not valid JSON at character {exc.offset:,}: {exc}. The file may be "
            "truncated (an interrupted profiler write) or not a trace."
        ) from None
    except (EOFError, OSError, zlib.error) as exc:
        raise WorkloadError(f"{path}: cannot read ({exc}); the file may be truncated or not "
                            "gzip.") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{path}: not text ({exc.reason}); not a JSON trace.") from None
    if not seen_events:
        if "nodes" in trace.meta:
            raise WorkloadError(
                f"{path}: a PyTorch execution trace (it has nodes, no traceEvents), not a "
                "Kineto trace; pass its folder with --et to supply collective sizes."
            )
        raise WorkloadError(
            f"{path}: JSON without traceEvents, so not a PyTorch profiler (Kineto) trace; "
            "export one with torch.profiler (on_trace_ready=tensorboard_trace_handler or "
            "export_chrome_trace)."
        )
    trace.steps.sort(key=lambda s: s[1].ts)
    trace.cpu.parsed()
    trace.annotations.sort(key=lambda s: (s.thread, s.ts))
    return trace

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
``unknown``. Neither is fatal. Complete events whose ``ts``/``dur`` are not finite numbers, or
whose duration is negative, are skipped and counted; a number in another field that is not
finite or not a 64-bit integer is read as absent and counted.

Reading is bounded (:class:`KinetoLimits`): the text of the file (decompressed), one value's
size and nesting (:class:`~.jsonstream.JsonLimits`), and how much a ``.json.gz`` expands
(real traces expand 10-30 times; a file of compressed whitespace or filler 1,000 times).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import re
import sys
import zlib
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from simcluster.errors import WorkloadError
from simcluster.workload.kineto.aten_work import conv_node_dims, is_conv_node
from simcluster.workload.kineto.conv_work import ConvContext
from simcluster.workload.kineto.cpuops import CpuOps
from simcluster.workload.kineto.jsonstream import (
    EVENTS,
    JsonLimits,
    TraceJSONError,
    TraceLimitError,
    iter_trace,
)

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
    "Input Dims", "Input type", "Record function id", "External id", "In split size")


_I64 = 1 << 63
NEGATIVE_DURATION = "complete events with a negative duration"
BAD_NUMBER = ("event fields holding a number that is not finite or not a 64-bit integer "
              "(read as absent)")
_ENV_MAX_BYTES = "SIMCLUSTER_KINETO_MAX_BYTES"
_ENV_MAX_RATIO = "SIMCLUSTER_KINETO_MAX_GZIP_RATIO"


@dataclass(frozen=True)
class KinetoLimits:
    """Bounds on reading one trace file.

    Attributes:
        json: the text read in all (characters, after decompression), one value's size and
            its nesting depth. The text limit is raised with ``SIMCLUSTER_KINETO_MAX_BYTES``.
        max_gzip_ratio: the most a ``.json.gz`` may expand (characters out per compressed
            byte in); raised with ``SIMCLUSTER_KINETO_MAX_GZIP_RATIO``.
        gzip_ratio_after: characters read before the ratio is checked (64 Mi), so that a
            small file's ratio, dominated by its header, never counts.
    """

    json: JsonLimits = field(default_factory=JsonLimits)
    max_gzip_ratio: float = 200.0
    gzip_ratio_after: int = 64 << 20

    @classmethod
    def from_env(cls) -> KinetoLimits:
        """The defaults, with ``SIMCLUSTER_KINETO_MAX_BYTES`` and
        ``SIMCLUSTER_KINETO_MAX_GZIP_RATIO`` where set to positive whole numbers."""
        base = cls()
        chars = _env_int(_ENV_MAX_BYTES, base.json.max_chars)
        ratio = _env_int(_ENV_MAX_RATIO, int(base.max_gzip_ratio))
        return cls(json=JsonLimits(max_chars=chars, max_value_chars=base.json.max_value_chars,
                                   max_depth=base.json.max_depth),
                   max_gzip_ratio=float(ratio), gzip_ratio_after=base.gzip_ratio_after)


def _env_int(name: str, default: int) -> int:
    """A positive whole number from the environment variable ``name``, else ``default``."""
    text = os.environ.get(name, "").strip().replace("_", "")
    return int(text) if text.isdigit() and 0 < len(text) < 19 and int(text) > 0 else default


def _bad_number(x: Any) -> bool:
    """Whether ``x`` is a number that no int64 column can hold (NaN, inf, >= 2**63)."""
    if isinstance(x, float):
        return not -_I64 <= x < _I64  # NaN compares false
    return isinstance(x, int) and not isinstance(x, bool) and not -_I64 <= x < _I64


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
    """An int64 from a number or a numeric string (``'0x0'`` too); ``default`` otherwise, and
    for NaN, infinities and values outside the int64 range."""
    if isinstance(x, bool) or x is None:
        return default
    if isinstance(x, float):
        if not math.isfinite(x):
            return default
        x = int(x)
    if not isinstance(x, int):
        try:
            x = int(str(x), 0)
        except ValueError:  # not a number, or one of more than 4,300 digits
            return default
    return x if -_I64 <= x < _I64 else default


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

    def _int(self, x: Any, default: int = -1) -> int:
        """:func:`_i`, counting a number that had to be read as absent."""
        v = _i(x, default)
        if v == default and _bad_number(x):
            self.skipped[BAD_NUMBER] += 1
        return v

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
        if ts is None or dur is None or not math.isfinite(ts + dur):
            self.skipped["complete events without a valid ts/dur"] += 1
            return
        if dur < 0:
            self.skipped[NEGATIVE_DURATION] += 1
            return
        name = str(e.get("name", ""))
        if cat in _GPU_CATS:
            self._add_gpu(_GPU_CATS[cat], name, ts, dur, args)
        elif cat in _RUNTIME_CATS:
            th = self.thread_id(e.get("tid"))
            self.r_ts.append(ts)
            self.r_dur.append(dur)
            self.r_thread.append(th)
            self.r_name.append(self.name_id(name))
            self.r_corr.append(self._int(args.get("correlation")))
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
                    if isinstance(seq, int) and not _bad_number(seq):
                        self.conv_ctx.add_node(seq, conv_node_dims(args))
        elif cat == "cuda_sync":
            self.syncs[self._int(args.get("correlation"))] = SyncInfo(
                kind=str(args.get("cuda_sync_kind", e.get("name", ""))),
                stream=self._int(args.get("stream")),
                wait_on_stream=self._int(args.get("wait_on_stream")),
                wait_on_record_corr=self._int(args.get("wait_on_cuda_event_record_corr_id")),
            )
        elif cat in _SKIP_CATS:
            self.skipped[_SKIP_CATS[cat]] += 1
        else:
            self.unknown[f"category {e.get('cat')!r}"] += 1

    def _add_gpu(self, kind: int, name: str, ts: float, dur: float, args: dict[str, Any]) -> None:
        i = len(self.g_ts)
        self.g_ts.append(ts)
        self.g_dur.append(dur)
        self.g_stream.append(self._int(args.get("stream"), 0))
        self.g_kind.append(kind)
        self.g_name.append(self.name_id(name))
        self.g_corr.append(self._int(args.get("correlation")))
        self.g_bytes.append(self._int(args.get("bytes"), 0))
        self.g_device.append(self._int(args.get("device"), 0))
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


class _GuardedText:
    """A text stream that refuses to expand a ``.json.gz`` more than ``max_gzip_ratio``
    times: characters handed out per compressed byte consumed, checked once
    ``gzip_ratio_after`` characters are out."""

    def __init__(self, text: IO[str], raw: IO[bytes] | None, limits: KinetoLimits) -> None:
        self.text = text
        self.raw = raw
        self.limits = limits
        self.chars = 0

    def read(self, n: int) -> str:
        data = self.text.read(n)
        self.chars += len(data)
        if self.raw is not None and self.chars >= self.limits.gzip_ratio_after:
            ratio = self.chars / max(self.raw.tell(), 1)
            if ratio > self.limits.max_gzip_ratio:
                raise TraceLimitError(
                    f"the .json.gz expands more than the limit of "
                    f"{self.limits.max_gzip_ratio:g} times ({ratio:,.0f} characters per "
                    f"compressed byte after {self.chars:,})", self.chars, "gzip_ratio")
        return data


@contextlib.contextmanager
def _open_text(path: Path, limits: KinetoLimits) -> Iterator[_GuardedText]:
    """The file's text (decompressed if ``.gz``), guarded against compression bombs."""
    with contextlib.ExitStack() as stack:
        raw: IO[bytes] = stack.enter_context(open(path, "rb"))
        if path.name.endswith(".gz"):
            gz = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            text = stack.enter_context(io.TextIOWrapper(gz, encoding="utf-8", errors="replace"))
            yield _GuardedText(text, raw, limits)
        else:
            text = stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))
            yield _GuardedText(text, None, limits)


def read_rank_trace(path: Path, limits: KinetoLimits | None = None) -> RankTrace:
    """Read one Kineto trace file (``.json`` or ``.json.gz``).

    Parameters:
        path: the file.
        limits: the bounds (default: :meth:`KinetoLimits.from_env`).

    Raises:
        WorkloadError: unreadable, truncated or malformed JSON, JSON over a limit (size,
            expansion, one value's size or nesting, a number's length), or JSON that is not a
            Kineto trace (no ``traceEvents``; a PyTorch execution trace is named as such).
    """
    limits = limits or KinetoLimits.from_env()
    trace = RankTrace(path=path)
    seen_events = False
    try:
        with _open_text(path, limits) as fh:
            for item in iter_trace(fh, limits=limits.json):
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
    except TraceLimitError as exc:
        raise WorkloadError(f"{path}: refused at character {exc.offset:,}: {exc}; "
                            f"{_LIMIT_ADVICE.get(exc.limit, _CORRUPT)}.") from None
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



_CORRUPT = ("nothing in a real profiler trace comes near this, so the file is corrupt or not a "
            "trace")
_LIMIT_ADVICE = {
    "chars": "if the trace is genuine, raise the limit with "
             f"{_ENV_MAX_BYTES}=<characters>",
    "gzip_ratio": "real traces expand 10-30 times, so this file is mostly filler (a "
                  "compression bomb?); if it is genuine, raise the limit with "
                  f"{_ENV_MAX_RATIO}=<ratio>",
}

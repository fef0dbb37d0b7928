"""Build small Kineto (PyTorch profiler) traces in code, event by event, for tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


class KTrace:
    """One rank's trace. Times in us; the CPU thread is ``tid`` (default 1)."""

    def __init__(self, rank: int | None = 0, world: int | None = 1,
                 device: str | None = "NVIDIA A100-SXM4-80GB") -> None:
        self.events: list[dict[str, Any]] = []
        self.rank, self.world, self.device = rank, world, device
        self._corr = 100

    def _next(self) -> int:
        self._corr += 1
        return self._corr

    def step(self, n: int, ts: float, dur: float, tid: int = 1) -> None:
        self.cpu(f"ProfilerStep#{n}", ts, dur, tid=tid, cat="user_annotation")

    def cpu(self, name: str, ts: float, dur: float, tid: int = 1, cat: str = "cpu_op",
            **args: Any) -> None:
        self.events.append({"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid,
                            "ts": ts, "dur": dur, "args": {"External id": len(self.events),
                                                           **args}})

    def aten(self, name: str, ts: float, dur: float, dims: list[Any], types: list[str],
             concrete: list[str] | None = None, tid: int = 1, **args: Any) -> None:
        """A ``cpu_op`` with shapes, as ``record_shapes=True`` records it."""
        extra: dict[str, Any] = {"Input Dims": dims, "Input type": types}
        if concrete is not None:
            extra["Concrete Inputs"] = concrete
        self.cpu(name, ts, dur, tid=tid, **extra, **args)

    def runtime(self, name: str, ts: float, dur: float, tid: int = 1,
                corr: int | None = None) -> int:
        corr = self._next() if corr is None else corr
        self.events.append({"ph": "X", "cat": "cuda_runtime", "name": name, "pid": 1,
                            "tid": tid, "ts": ts, "dur": dur,
                            "args": {"correlation": corr, "cbid": 0}})
        return corr

    def gpu(self, name: str, ts: float, dur: float, corr: int, stream: int = 7,
            cat: str = "kernel", **args: Any) -> None:
        self.events.append({"ph": "X", "cat": cat, "name": name, "pid": 0, "tid": stream,
                            "ts": ts, "dur": dur,
                            "args": {"device": 0, "stream": stream, "correlation": corr,
                                     **args}})

    def launch(self, ts: float, dur: float, kernel_ts: float, kernel_dur: float,
               name: str = "gemm", stream: int = 7, tid: int = 1,
               api: str = "cudaLaunchKernel", cat: str = "kernel", **args: Any) -> int:
        corr = self.runtime(api, ts, dur, tid=tid)
        self.gpu(name, kernel_ts, kernel_dur, corr, stream=stream, cat=cat, **args)
        return corr

    def cuda_sync(self, kind: str, corr: int, ts: float, **args: Any) -> None:
        self.events.append({"ph": "X", "cat": "cuda_sync", "name": kind, "pid": 0, "tid": -1,
                            "ts": ts, "dur": 1, "args": {"cuda_sync_kind": kind,
                                                          "correlation": corr, **args}})

    def doc(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schemaVersion": 1}
        if self.rank is not None:
            d["distributedInfo"] = {"backend": "nccl", "rank": self.rank,
                                    "world_size": self.world}
        if self.device is not None:
            d["deviceProperties"] = [{"id": 0, "name": self.device,
                                      "totalGlobalMem": 85899345920, "numSms": 108}]
        d["traceEvents"] = self.events
        return d

    def write(self, path: Path, gz: bool = False) -> Path:
        text = json.dumps(self.doc())
        if gz:
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path

"""The CPU ops of a rank's trace, in columns, with the work each one's arguments give
(:func:`~simcluster.workload.kineto.aten_work.describe`); filled while parsing
(:mod:`.events`) and read when kernels are attributed to ops (:mod:`.work`)."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

from simcluster.workload.kineto.aten_work import ConvArgs, Work, describe

_MEMO_MAX = 1 << 16
_I64 = 1 << 63


@dataclass
class CpuOps:
    """The CPU ops of a trace, in columns (times in us as recorded), with what each says of
    its work: ``w_*`` for ops whose arguments suffice (NaN: nothing), ``conv`` for
    convolutions (resolved later, with their context)."""

    ts: array = field(default_factory=lambda: array("d"))
    end: array = field(default_factory=lambda: array("d"))
    thread: array = field(default_factory=lambda: array("i"))
    name: array = field(default_factory=lambda: array("i"))
    flops: array = field(default_factory=lambda: array("d"))   # the ``flops`` argument
    seq: array = field(default_factory=lambda: array("q"))     # Sequence number (-1: none)
    w_flops: array = field(default_factory=lambda: array("d"))
    w_bytes: array = field(default_factory=lambda: array("d"))
    w_dtype: array = field(default_factory=lambda: array("b"))
    shapes: array = field(default_factory=lambda: array("b"))  # 1: it has Input Dims
    w_shape: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # GEMMs
    conv: dict[int, ConvArgs] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    name_ids: dict[str, int] = field(default_factory=dict)
    _memo: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    def add(self, thread: int, name: str, ts: float, end: float, args: dict[str, Any]) -> None:
        i = len(self.ts)
        k = self.name_ids.get(name)
        if k is None:
            k = self.name_ids[name] = len(self.names)
            self.names.append(name)
        self.ts.append(ts)
        self.end.append(end)
        self.thread.append(thread)
        self.name.append(k)
        f = args.get("flops")
        try:
            fv = float(f) if f is not None and not isinstance(f, bool) else math.nan
        except (TypeError, ValueError):
            fv = math.nan
        self.flops.append(fv if math.isfinite(fv) and fv >= 0 else math.nan)
        s = args.get("Sequence number")
        ok = isinstance(s, int) and not isinstance(s, bool) and -_I64 <= s < _I64
        self.seq.append(s if ok else -1)
        d = self._describe(name, args) if name.startswith("aten::") else None
        if isinstance(d, ConvArgs):
            self.conv[i] = d
        w = d if isinstance(d, Work) else Work(math.nan, math.nan, -1)
        self.w_flops.append(w.flops)
        self.w_bytes.append(w.nbytes)
        self.w_dtype.append(w.dtype)
        if w.shape is not None:
            self.w_shape[i] = w.shape
        self.shapes.append("Input Dims" in args)

    def _describe(self, name: str, args: dict[str, Any]) -> Work | ConvArgs | None:
        """:func:`describe`, memoised: training repeats the same ops with the same shapes."""
        key = (name, repr(args.get("Input Dims")), repr(args.get("Input type")),
               repr(args.get("Concrete Inputs")))
        d = self._memo.get(key, self)
        if d is self:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            d = self._memo[key] = describe(name, args)
        return d  # type: ignore[return-value]

    def parsed(self) -> None:
        """Parsing is over: drop the memo (it would only be pickled along)."""
        self._memo = {}

    def work_of(self, i: int) -> Work | None:
        if math.isnan(self.w_bytes[i]):
            return None
        return Work(self.w_flops[i], self.w_bytes[i], self.w_dtype[i], self.w_shape.get(i))

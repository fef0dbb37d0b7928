"""Convolutions' work, resolved with their context: the output's spatial size from
``Concrete Inputs`` or from the gradient its backward node received, and backward ops from
their enclosing op (rules in :mod:`.work`'s docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from simcluster.workload.kineto.aten_work import (
    _CONV_BWD,
    _CONV_FWD,
    _CONV_TRANSPOSED,
    ConvArgs,
    Work,
    _Args,
    _args,
    _dtype,
    _numel,
    _tensors,
)


_MAX_PARAM = 1 << 31  # strides, paddings and dilations are int32 in PyTorch


def _ints(v: Any, n: int, low: int = 0) -> tuple[int, ...] | None:
    """``n`` conv parameters from one int or a tuple, each from ``low`` to 2**31-1; None
    otherwise (a stride of 0 or a corrupt huge one gives no spatial size)."""
    def ok(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and low <= x < _MAX_PARAM

    if ok(v):
        return (v,) * n
    if isinstance(v, tuple) and v and all(ok(x) for x in v):
        return v if len(v) == n else (v * n if len(v) == 1 else None)
    return None


def _at(seq: Sequence[Any] | None, i: int | None) -> Any:
    return seq[i] if seq is not None and i is not None and i < len(seq) else None


def _out_spatial(c: ConvArgs, x: tuple[int, ...], w: tuple[int, ...]) -> tuple[int, ...] | None:
    """Output spatial size from stride, padding and dilation in Concrete Inputs."""
    si, pi, di, _ = _CONV_FWD[c.name]  # signatures of PyTorch >= 2.1 (Concrete Inputs)
    n = len(x) - 2
    stride = _ints(_at(c.concrete, si), n, low=1)
    dilation = _ints(_at(c.concrete, di), n, low=1)
    pad_v = _at(c.concrete, pi)
    if stride is None or dilation is None:
        return None
    if pad_v == "same":
        return x[2:]
    padding = (0,) * n if pad_v == "valid" else _ints(pad_v, n)
    if padding is None:
        return None
    out = tuple((x[2 + k] + 2 * padding[k] - dilation[k] * (w[2 + k] - 1) - 1) // stride[k] + 1
                for k in range(n))
    return out if all(o >= 1 for o in out) else None


@dataclass
class ConvContext:
    """What convolution ops need from the rest of the trace."""

    grads: dict[int, tuple[int, ...] | None] = field(default_factory=dict)  # seq -> dims

    def add_node(self, seq: int, dims: tuple[int, ...] | None) -> None:
        """A backward node received gradient ``dims``; two that disagree make it unknown."""
        if seq < 0 or dims is None:
            return
        if seq in self.grads and self.grads[seq] != dims:
            self.grads[seq] = None
        else:
            self.grads[seq] = dims


def conv_work(c: ConvArgs, stack: list[ConvArgs | None], seqs: list[int],
              ctx: ConvContext) -> Work | None:
    """A convolution op's work; ``stack``/``seqs``: the op and its enclosing convolution ops
    (innermost first; None where their arguments were not kept) and their sequence numbers
    (-1: none)."""
    a = _args(list(c.dims), list(c.types))
    if a is None:
        return None
    if c.name in _CONV_BWD:
        return _conv_bwd(c, a, stack[1:])
    ts = _tensors(a)
    x, w = (a.dims[0], a.dims[1]) if len(a.dims) >= 2 else (None, None)
    if x is None or w is None or len(x) < 3 or len(w) != len(x):
        return None
    es = a.size[0]
    transposed = c.name in _CONV_TRANSPOSED or _at(c.concrete, _CONV_FWD.get(
        c.name, (None,) * 4)[3]) is True
    if transposed:
        flops = 2 * _numel(x) * _numel(w[1:])
        out = None
    else:
        sp = _out_spatial(c, x, w) if c.concrete is not None else None
        if sp is None:
            sp = _grad_spatial(x, w, seqs, ctx)
        if sp is None:
            return None
        out = x[0] * w[0] * _numel(sp)
        flops = 2 * out * _numel(w[1:])
    nbytes = sum(_numel(d) * s for d, s, _ in ts) + (out or 0) * es
    return Work(float(flops), float(nbytes), _dtype(ts, tf32=True))


def _grad_spatial(x: tuple[int, ...], w: tuple[int, ...], seqs: list[int],
                  ctx: ConvContext) -> tuple[int, ...] | None:
    for s in seqs:
        g = ctx.grads.get(s)
        if g is not None and len(g) == len(x) and g[0] == x[0] and g[1] == w[0]:
            return g[2:]
    return None


def _conv_bwd(c: ConvArgs, a: _Args, parents: list[ConvArgs | None]) -> Work | None:
    gi, xi, wi, tri, mi = _CONV_BWD[c.name]
    go, x, w = (_at(a.dims, i) for i in (gi, xi, wi))
    parent = next((p for p in parents if p is not None), None)
    if parent is not None and parent.name in _CONV_BWD and (w is None or x is None):
        # cudnn_convolution_backward_input/_weight take the input's or weight's size as a
        # list of ints: the enclosing cudnn_convolution_backward has the tensor.
        pa_ = _args(list(parent.dims), list(parent.types))
        pg, px, pw, _, _ = _CONV_BWD[parent.name]
        if pa_ is not None and _at(pa_.dims, pg) == go:
            x = x if x is not None else _at(pa_.dims, px)
            w = w if w is not None else _at(pa_.dims, pw)
    if go is None or w is None or len(go) < 3 or len(w) != len(go):
        return None
    es = a.size[gi]
    transposed = _at(c.concrete, tri) is True
    if transposed and x is None:
        return None
    one = 2 * _numel(x if transposed else go) * _numel(w[1:])  # type: ignore[arg-type]
    if c.name.endswith("_input"):
        grads = (True, False)
    elif c.name.endswith("_weight"):
        grads = (False, True)
    else:
        mask = _at(c.concrete, mi)
        grads = (bool(mask[0]), bool(mask[1])) if isinstance(mask, tuple) and len(mask) >= 2 \
            else (True, True)
    if not any(grads):
        return None
    xb = _numel(x) * es if x is not None else 0
    wb = _numel(w) * es
    inputs = _numel(go) * es + (xb if xi is not None else 0) + (wb if wi is not None else 0)
    nbytes = inputs + (xb if grads[0] else 0) + (wb if grads[1] else 0)
    return Work(float(one * sum(grads)), float(nbytes),
                _dtype([(go, es, a.types[gi])], tf32=True))

"""FLOPs and HBM bytes of GPU kernels, inferred from the aten ops that launched them.

A Kineto trace gives a kernel's duration, not its work. To move a recorded duration to
another GPU (``sim/compute.py``, ``ComputeModel.retarget_us``) the compute model needs the
kernel's FLOPs and bytes; traces recorded with ``record_shapes=True`` give the shapes
(``Input Dims``) and element types (``Input type``) of the operator that launched it, and
some (newer PyTorch) the values of its scalar arguments (``Concrete Inputs``). The rules,
all deterministic:

**Which op.** A kernel's op is the innermost ``cpu_op`` on the launching thread whose span
holds the launch call (``cudaLaunchKernel``, ... linked to the kernel by ``correlation``).
Only an ``aten::`` op has rules; a kernel whose innermost op is something else (a compiled
graph, ``fbgemm::``, a ``record_function`` label) or that has no op gets no work.

**FLOPs.** A ``flops`` argument (``torch.profiler(with_flops=True)``) on the op, or on an
enclosing op of the same family (``aten::conv2d`` around ``aten::cudnn_convolution``), is
used as it is. Otherwise, from the shapes:

- matmul family: ``mm`` [M,K]x[K,N] and ``addmm``: 2MKN; ``bmm``/``baddbmm``: 2BMKN;
  ``matmul`` (broadcast batch), ``linear`` (x[...,K], w[N,K]): 2·rows·K·N; ``mv``/``addmv``:
  2MN. The bias of ``addmm`` and the like is not counted. ``einsum`` needs no rule: its
  operands are a ``TensorList`` (no dtype recorded), and it launches its kernels through
  ``bmm``/``mm``, the innermost op.
- convolution: 2·N·Cout·prod(out spatial)·Cin/groups·prod(kernel), i.e. 2·prod(output)·
  prod(weight[1:]). Forward ops (``convolution``, ``_convolution``, ``cudnn_convolution``,
  ``conv1d/2d/3d``, ``miopen_convolution``) need the output's spatial size: from stride,
  padding and dilation in ``Concrete Inputs``, else from the gradient the matching backward
  node received (``*Conv*Backward*`` with the forward op's ``Sequence number``; it must agree
  with the batch and the output channels), else the op is skipped. Backward:
  ``convolution_backward`` and ``cudnn_convolution_backward`` count one forward's FLOPs for
  each gradient asked for (``output_mask`` from ``Concrete Inputs``, else both);
  ``cudnn_convolution_backward_input``/``_weight`` one each (the weight's shape, which
  ``_weight`` lacks, comes from the enclosing ``cudnn_convolution_backward``). Transposed
  convolutions (by name, or ``transposed`` in ``Concrete Inputs``): 2·prod(input)·
  prod(weight[1:]).

**Bytes.** Matmul and convolution: inputs plus output. Every other aten op (elementwise,
reductions, norms, copies; backward ops alike): the sum of its tensor inputs plus an output
the size of the first input; write-only ops (``fill_``, ``zero_``, ``normal_``, ...) count
the first input once, ``copy_`` its two tensors, reductions (``sum``, ``mean``, ``max``, ...)
only their inputs. Ops whose first input is a table they index sparsely (``embedding``,
``index``, ``gather``, ``scatter``, ...) and ops with ``TensorList`` inputs get nothing.
Element sizes come from ``Input type`` (``float`` 4, ``c10::Half``/``c10::BFloat16`` 2,
``double`` and ``long`` 8, ``int`` 4, ``bool`` and ``(un)signed char`` 1, ...); an input of
unknown type is not a tensor.

**dtype.** From the first tensor input: ``c10::Half`` fp16, ``c10::BFloat16`` bf16,
``double`` fp64, ``Float8_*`` fp8, ``signed char`` int8, ``float`` fp32, except that float
convolutions are ``tf32`` (PyTorch's default ``torch.backends.cudnn.allow_tf32=True``; float
matmuls stay fp32, ``torch.backends.cuda.matmul.allow_tf32`` being False by default since
1.12). A GPU without TF32 (V100) runs tf32 at its fp32 peak (``AcceleratorSpec``).

**Several kernels of one op** share its FLOPs and bytes in proportion to their recorded
durations (all of them, in the whole trace, so a window cut keeps each kernel's share).
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

# Element size in bytes of each ``Input type`` that names a tensor's dtype (c10 ScalarType
# names, as typeMeta prints them in older PyTorch and as toString does in newer).
ELEMENT_BYTES: dict[str, int] = {
    "float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2, "long": 8, "long int": 8,
    "int64_t": 8, "long long": 8, "int": 4, "unsigned int": 4, "short": 2, "short int": 2,
    "signed char": 1, "unsigned char": 1, "bool": 1, "c10::complex<float>": 8,
    "c10::complex<double>": 16, "c10::complex<c10::Half>": 4, "c10::Float8_e4m3fn": 1,
    "c10::Float8_e5m2": 1, "c10::Float8_e4m3fnuz": 1, "c10::Float8_e5m2fnuz": 1,
    "c10::qint8": 1, "c10::quint8": 1, "c10::qint32": 4,
}
_DTYPE_OF = {"float": "fp32", "double": "fp64", "c10::Half": "fp16", "c10::BFloat16": "bf16",
             "c10::Float8_e4m3fn": "fp8", "c10::Float8_e5m2": "fp8",
             "c10::Float8_e4m3fnuz": "fp8", "c10::Float8_e5m2fnuz": "fp8",
             "signed char": "int8"}
# dtype codes stored per op (-1: none)
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp64", "fp8", "int8")
_CODE = {d: i for i, d in enumerate(DTYPES)}

_MM = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
       "aten::addmv", "aten::mv", "aten::_addmm_activation"}
# Forward convolutions: name -> (stride, padding, dilation, transposed) argument positions.
_CONV_FWD = {
    "aten::conv1d": (3, 4, 5, None), "aten::conv2d": (3, 4, 5, None),
    "aten::conv3d": (3, 4, 5, None), "aten::convolution": (3, 4, 5, 6),
    "aten::_convolution": (3, 4, 5, 6), "aten::cudnn_convolution": (3, 2, 4, None),
    "aten::miopen_convolution": (4, 3, 5, None),
}
_CONV_TRANSPOSED = {"aten::conv_transpose1d", "aten::conv_transpose2d",
                    "aten::conv_transpose3d", "aten::cudnn_convolution_transpose",
                    "aten::miopen_convolution_transpose"}
# Backward convolutions: name -> (grad_output, input, weight, transposed, output_mask)
# positions; the input (or weight) is None where the op takes only its size.
_CONV_BWD = {
    "aten::convolution_backward": (0, 1, 2, 7, 10),
    "aten::cudnn_convolution_backward": (1, 0, 2, None, 10),
    "aten::miopen_convolution_backward": (1, 0, 2, None, 9),
    "aten::cudnn_convolution_backward_input": (1, None, 2, None, None),
    "aten::miopen_convolution_backward_input": (1, None, 2, None, None),
    "aten::cudnn_convolution_backward_weight": (1, 2, None, None, None),
    "aten::miopen_convolution_backward_weight": (1, 2, None, None, None),
}
_WRITE_ONLY = {"aten::fill_", "aten::zero_", "aten::normal_", "aten::uniform_",
               "aten::random_", "aten::bernoulli_", "aten::exponential_", "aten::geometric_",
               "aten::log_normal_", "aten::cauchy_"}
_REDUCTIONS = {"aten::sum", "aten::mean", "aten::amax", "aten::amin", "aten::max",
               "aten::min", "aten::norm", "aten::linalg_vector_norm", "aten::var",
               "aten::std", "aten::var_mean", "aten::std_mean", "aten::argmax",
               "aten::argmin", "aten::prod", "aten::all", "aten::any", "aten::logsumexp"}
_SPARSE = re.compile(r"embedding|index|gather|scatter|take|put_|masked_select|nonzero|"
                     r"unique|bincount|histc|multinomial|randperm")
_CONV_NODE = re.compile(r"Conv\w*Backward")

# Op families, for finding a ``flops`` argument on an enclosing op.
MM, CONV, CONV_BWD, OTHER = 1, 2, 3, 0


def family(name: str) -> int:
    if name in _MM:
        return MM
    if name in _CONV_FWD or name in _CONV_TRANSPOSED:
        return CONV
    if name in _CONV_BWD:
        return CONV_BWD
    return OTHER


class Work(NamedTuple):
    """An op's FLOPs (0: none), bytes (0: none) and dtype code (-1: none)."""

    flops: float
    nbytes: float
    dtype: int


class ConvArgs(NamedTuple):
    """What a convolution's work needs beyond its own arguments (resolved after parsing)."""

    name: str
    dims: tuple[Any, ...]
    types: tuple[str, ...]
    concrete: tuple[Any, ...] | None


def _flat(d: Any) -> tuple[int, ...] | None:
    """Dims of one tensor (a list of ints), else None."""
    if isinstance(d, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                   for x in d):
        return tuple(d)
    return None


def _numel(d: tuple[int, ...]) -> int:
    return math.prod(d)


class _Args(NamedTuple):
    dims: list[tuple[int, ...] | None]   # per argument: tensor dims, or None if not a tensor
    size: list[int]                      # element size (0: not a tensor)
    types: list[str]
    has_list: bool                       # some argument is a TensorList


def _args(dims: Any, types: Any) -> _Args | None:
    if not isinstance(dims, list) or not isinstance(types, list) or len(dims) != len(types):
        return None
    out_d: list[tuple[int, ...] | None] = []
    out_s: list[int] = []
    has_list = False
    for d, t in zip(dims, types):
        t = t if isinstance(t, str) else ""
        es = ELEMENT_BYTES.get(t, 0)
        f = _flat(d) if es else None
        out_d.append(f)
        out_s.append(es if f is not None else 0)
        has_list = has_list or t in ("TensorList", "c10::List<c10::optional<at::Tensor>>")
    return _Args(out_d, out_s, [t if isinstance(t, str) else "" for t in types], has_list)


def _tensors(a: _Args) -> list[tuple[tuple[int, ...], int, str]]:
    return [(d, s, t) for d, s, t in zip(a.dims, a.size, a.types) if d is not None]


def _dtype(tensors: list[tuple[tuple[int, ...], int, str]], tf32: bool = False) -> int:
    for _, _, t in tensors:
        d = _DTYPE_OF.get(t)
        if d is not None:
            return _CODE["tf32" if tf32 and d == "fp32" else d]
    return -1


def _matmul(name: str, a: _Args) -> Work | None:
    ts = _tensors(a)
    if not ts:
        return None
    es = ts[0][1]
    dims = [d for d, _, _ in ts]
    flops = out = None
    if name in ("aten::mm",) and len(dims) >= 2:
        x, y = dims[0], dims[1]
        if len(x) == 2 and len(y) == 2 and x[1] == y[0]:
            flops, out = 2 * x[0] * x[1] * y[1], x[0] * y[1]
    elif name in ("aten::addmm", "aten::_addmm_activation") and len(dims) >= 3:
        x, y = dims[1], dims[2]
        if len(x) == 2 and len(y) == 2 and x[1] == y[0]:
            flops, out = 2 * x[0] * x[1] * y[1], x[0] * y[1]
    elif name in ("aten::bmm", "aten::baddbmm") and len(dims) >= 2:
        x, y = (dims[0], dims[1]) if name == "aten::bmm" else dims[1:3] if len(dims) >= 3 \
            else ((), ())
        if len(x) == 3 and len(y) == 3 and x[0] == y[0] and x[2] == y[1]:
            flops, out = 2 * x[0] * x[1] * x[2] * y[2], x[0] * x[1] * y[2]
    elif name == "aten::linear" and len(dims) >= 2:
        x, w = dims[0], dims[1]
        if len(x) >= 1 and len(w) == 2 and x[-1] == w[1]:
            rows = _numel(x[:-1])
            flops, out = 2 * rows * w[1] * w[0], rows * w[0]
    elif name == "aten::mv" and len(dims) >= 2:
        m, v = dims[0], dims[1]
        if len(m) == 2 and len(v) == 1 and m[1] == v[0]:
            flops, out = 2 * m[0] * m[1], m[0]
    elif name == "aten::addmv" and len(dims) >= 3:
        m, v = dims[1], dims[2]
        if len(m) == 2 and len(v) == 1 and m[1] == v[0]:
            flops, out = 2 * m[0] * m[1], m[0]
    elif name == "aten::matmul" and len(dims) >= 2:
        flops, out = _matmul_shapes(dims[0], dims[1])
    if flops is None or out is None:
        return None
    nbytes = sum(_numel(d) * s for d, s, _ in ts) + out * es
    return Work(float(flops), float(nbytes), _dtype(ts))


def _matmul_shapes(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int | None, int | None]:
    """FLOPs and output elements of torch.matmul(x, y) (broadcast batch dimensions)."""
    if not x or not y:
        return None, None
    xm = x if len(x) > 1 else (1,) + x
    ym = y if len(y) > 1 else y + (1,)
    if xm[-1] != ym[-2]:
        return None, None
    bx, by = xm[:-2], ym[:-2]
    n = max(len(bx), len(by))
    bx, by = (1,) * (n - len(bx)) + bx, (1,) * (n - len(by)) + by
    batch = []
    for p, q in zip(bx, by):
        if p != q and 1 not in (p, q):
            return None, None
        batch.append(max(p, q))
    b = _numel(tuple(batch))
    return 2 * b * xm[-2] * xm[-1] * ym[-1], b * xm[-2] * ym[-1]


def _elementwise(name: str, a: _Args) -> Work | None:
    if a.has_list or _SPARSE.search(name):
        return None
    ts = _tensors(a)
    if not ts:
        return None
    sizes = [_numel(d) * s for d, s, _ in ts]
    if name in _WRITE_ONLY:
        nbytes = sizes[0]
    elif name == "aten::copy_":
        nbytes = sum(sizes[:2])
    elif name in _REDUCTIONS:
        nbytes = sum(sizes)
    else:
        nbytes = sum(sizes) + sizes[0]
    return Work(0.0, float(nbytes), _dtype(ts))


def _concrete(args: dict[str, Any]) -> tuple[Any, ...] | None:
    c = args.get("Concrete Inputs")
    if not isinstance(c, list):
        return None
    return tuple(_value(x) for x in c)


def _value(x: Any) -> Any:
    """A ``Concrete Inputs`` string as a value: int, float, bool, tuple of ints, or the
    string (None for '')."""
    if not isinstance(x, str):
        return x
    s = x.strip()
    if not s:
        return None
    if s in ("True", "False"):
        return s == "True"
    if s.startswith("[") and s.endswith("]"):
        parts = [p.strip() for p in s[1:-1].split(",") if p.strip()]
        vals = [_value(p) for p in parts]
        return tuple(vals)
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def describe(name: str, args: dict[str, Any]) -> Work | ConvArgs | None:
    """What can be said of an aten op's work from its own arguments: its Work, or (for
    convolutions, which may need other events) its arguments kept for later."""
    if family(name) in (CONV, CONV_BWD):
        dims, types = args.get("Input Dims"), args.get("Input type")
        if not isinstance(dims, list) or not isinstance(types, list):
            return None
        return ConvArgs(name, tuple(dims), tuple(t if isinstance(t, str) else "" for t in types),
                        _concrete(args))
    a = _args(args.get("Input Dims"), args.get("Input type"))
    if a is None:
        return None
    if name in _MM:
        return _matmul(name, a)
    return _elementwise(name, a)


def conv_node_dims(args: dict[str, Any]) -> tuple[int, ...] | None:
    """The gradient dims an autograd convolution node received (its first input)."""
    dims = args.get("Input Dims")
    return _flat(dims[0]) if isinstance(dims, list) and dims else None


def is_conv_node(name: str) -> bool:
    return bool(_CONV_NODE.search(name)) and not name.startswith("aten::")


# -- convolutions, resolved with their context -------------------------------------------------


def _ints(v: Any, n: int) -> tuple[int, ...] | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    if isinstance(v, tuple) and v and all(isinstance(x, int) and not isinstance(x, bool)
                                          for x in v):
        return v if len(v) == n else (v * n if len(v) == 1 else None)
    return None


def _at(seq: Sequence[Any] | None, i: int | None) -> Any:
    return seq[i] if seq is not None and i is not None and i < len(seq) else None


def _out_spatial(c: ConvArgs, x: tuple[int, ...], w: tuple[int, ...]) -> tuple[int, ...] | None:
    """Output spatial size from stride, padding and dilation in Concrete Inputs."""
    si, pi, di, _ = _CONV_FWD[c.name]  # signatures of PyTorch >= 2.1 (Concrete Inputs)
    n = len(x) - 2
    stride = _ints(_at(c.concrete, si), n)
    dilation = _ints(_at(c.concrete, di), n)
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


# -- attribution ------------------------------------------------------------------------------


@dataclass
class KernelWork:
    """Per GPU trace index: FLOPs, bytes (NaN: none) and dtype code; and why not."""

    flops: np.ndarray
    nbytes: np.ndarray
    dtype: np.ndarray
    missing: dict[int, str] = field(default_factory=dict)   # trace index -> reason

    def get(self, g: int) -> tuple[float | None, int | None, str | None] | None:
        f, b = self.flops[g], self.nbytes[g]
        if np.isnan(f) and np.isnan(b):
            return None
        d = int(self.dtype[g])
        return (float(f) if f > 0 else None, round(b) if b > 0 else None,
                DTYPES[d] if d >= 0 else None)


def innermost(ts: np.ndarray, end: np.ndarray, thread: np.ndarray,
              q_thread: np.ndarray, q_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query (thread, time), the innermost op on that thread whose span holds the
    time (-1: none); and each op's parent (the innermost op holding it; -1: none or not
    reached)."""
    owner = np.full(len(q_t), -1, dtype=np.int64)
    parent = np.full(len(ts), -1, dtype=np.int64)
    ops_by: dict[int, list[int]] = defaultdict(list)
    for i in np.lexsort((np.arange(len(ts)), -end, ts)).tolist():
        ops_by[int(thread[i])].append(i)
    qs_by: dict[int, list[int]] = defaultdict(list)
    for q in np.lexsort((np.arange(len(q_t)), q_t)).tolist():
        qs_by[int(q_thread[q])].append(q)
    ts_, end_, qt = ts.tolist(), end.tolist(), q_t.tolist()
    for th, qs in qs_by.items():
        ops = ops_by.get(th, [])
        stack: list[int] = []
        k = 0
        for q in qs:
            t = qt[q]
            while k < len(ops) and ts_[ops[k]] <= t:
                i = ops[k]
                while stack and not (ts_[stack[-1]] <= ts_[i] and end_[i] <= end_[stack[-1]]):
                    stack.pop()
                parent[i] = stack[-1] if stack else -1
                stack.append(i)
                k += 1
            while stack and end_[stack[-1]] < t:
                stack.pop()
            owner[q] = stack[-1] if stack else -1
    return owner, parent


def attribute(tr: Any, launch_of: np.ndarray, kernels: np.ndarray) -> KernelWork:
    """FLOPs, bytes and dtype of each kernel in ``kernels`` (trace indices), from the op
    that launched it (``launch_of``: runtime index per trace index, -1: none).

    ``tr`` is a :class:`~simcluster.workload.kineto.events.RankTrace`.
    """
    n = len(tr.g_ts)
    out = KernelWork(np.full(n, np.nan), np.full(n, np.nan), np.full(n, -1, dtype=np.int8))
    ops = tr.cpu
    if not len(kernels):
        return out
    r = launch_of[kernels]
    has = r >= 0
    for g in kernels[~has].tolist():
        out.missing[g] = "no launch call in the trace"
    kernels, r = kernels[has], r[has]
    if not len(ops.ts):
        for g in kernels.tolist():
            out.missing[g] = "no CPU ops in the trace"
        return out
    ts = np.frombuffer(ops.ts, dtype=np.float64)
    end = np.frombuffer(ops.end, dtype=np.float64)
    thread = np.frombuffer(ops.thread, dtype=np.int32)
    r_ts = np.frombuffer(tr.r_ts, dtype=np.float64)
    r_th = np.frombuffer(tr.r_thread, dtype=np.int32)
    owner, parent = innermost(ts, end, thread, r_th[r], r_ts[r])
    by_owner: dict[int, list[int]] = defaultdict(list)
    for g, o in zip(kernels.tolist(), owner.tolist()):
        if o < 0:
            out.missing[g] = "no CPU op around its launch"
        else:
            by_owner[o].append(g)
    dur = np.frombuffer(tr.g_dur, dtype=np.float64)
    for o, gs in by_owner.items():
        name = ops.names[ops.name[o]]
        w = _op_work(tr, o, parent) if name.startswith("aten::") else None
        if w is None:
            why = (f"launched by {name}" if not name.startswith("aten::") else
                   f"{name} (no rule for its shapes)" if ops.shapes[o] else
                   "aten ops without recorded shapes")
            for g in gs:
                out.missing[g] = why
            continue
        d = dur[gs]
        share = d / d.sum() if d.sum() > 0 else np.full(len(gs), 1.0 / len(gs))
        out.flops[gs] = w.flops * share
        out.nbytes[gs] = w.nbytes * share
        out.dtype[gs] = w.dtype
    return out


def _op_work(tr: Any, o: int, parent: np.ndarray) -> Work | None:
    """The work of op ``o`` (an aten op), with its enclosing ops (``parent``) as context."""
    ops: CpuOps = tr.cpu
    fam = family(ops.names[ops.name[o]])
    chain = [o]  # the op and the enclosing ops of its family, innermost first
    p = int(parent[o])
    while p >= 0 and fam != OTHER and family(ops.names[ops.name[p]]) == fam and len(chain) < 8:
        chain.append(p)
        p = int(parent[p])
    arg_flops = next((ops.flops[i] for i in chain if not math.isnan(ops.flops[i])), None)
    if fam in (CONV, CONV_BWD):
        c = ops.conv.get(o)
        w = conv_work(c, [ops.conv.get(i) for i in chain], [ops.seq[i] for i in chain],
                      tr.conv_ctx) if c is not None else None
    else:
        w = ops.work_of(o)
    if arg_flops is not None and arg_flops > 0:
        if w is not None:
            return Work(arg_flops, w.nbytes, w.dtype)
        c = ops.conv.get(o)
        a = _args(list(c.dims), list(c.types)) if c is not None else None
        return Work(arg_flops, 0.0, _dtype(_tensors(a), tf32=True) if a is not None else -1)
    return w


_MEMO_MAX = 1 << 16


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
        self.seq.append(s if isinstance(s, int) and not isinstance(s, bool) else -1)
        d = self._describe(name, args) if name.startswith("aten::") else None
        if isinstance(d, ConvArgs):
            self.conv[i] = d
        w = d if isinstance(d, Work) else Work(math.nan, math.nan, -1)
        self.w_flops.append(w.flops)
        self.w_bytes.append(w.nbytes)
        self.w_dtype.append(w.dtype)
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
        return Work(self.w_flops[i], self.w_bytes[i], self.w_dtype[i])


def summary(missing_time: Counter[str], total_us: float, limit: int = 3) -> str:
    """The largest reasons for kernel time without work, for the import report."""
    items = sorted(missing_time.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{k} ({v / total_us:.0%})" for k, v in items) if total_us > 0 else ""

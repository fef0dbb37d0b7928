"""The work of one aten op from its own arguments: FLOPs, HBM bytes and dtype.

From an op's ``Input Dims``, ``Input type`` and ``Concrete Inputs`` (traces recorded with
``record_shapes=True``): matmuls and elementwise ops are done here; convolutions, whose output
size may need other events of the trace, are kept as :class:`ConvArgs` and resolved by
:mod:`.conv_work`. The rules (which shapes give which FLOPs and bytes, element sizes, dtypes)
are listed in :mod:`.work`'s docstring.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

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
    """An op's FLOPs (0: none), bytes (0: none) and dtype code (-1: none); for a matmul, its
    GEMM shape ``(batch, m, n, k)`` (the compute model's tile and wave quantisation)."""

    flops: float
    nbytes: float
    dtype: int
    shape: tuple[int, int, int, int] | None = None


class ConvArgs(NamedTuple):
    """What a convolution's work needs beyond its own arguments (resolved after parsing)."""

    name: str
    dims: tuple[Any, ...]
    types: tuple[str, ...]
    concrete: tuple[Any, ...] | None


_MAX_NUMEL = 1 << 63  # no tensor has as many elements: a larger shape is corrupt


def _flat(d: Any) -> tuple[int, ...] | None:
    """Dims of one tensor (a list of ints whose product is under 2**63), else None."""
    if isinstance(d, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                   and 0 <= x < _MAX_NUMEL for x in d) \
            and math.prod(d) < _MAX_NUMEL:
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
    shape = None  # (batch, m, n, k)
    if name in ("aten::mm",) and len(dims) >= 2:
        x, y = dims[0], dims[1]
        if len(x) == 2 and len(y) == 2 and x[1] == y[0]:
            shape = (1, x[0], y[1], x[1])
    elif name in ("aten::addmm", "aten::_addmm_activation") and len(dims) >= 3:
        x, y = dims[1], dims[2]
        if len(x) == 2 and len(y) == 2 and x[1] == y[0]:
            shape = (1, x[0], y[1], x[1])
    elif name in ("aten::bmm", "aten::baddbmm") and len(dims) >= 2:
        x, y = (dims[0], dims[1]) if name == "aten::bmm" else dims[1:3] if len(dims) >= 3 \
            else ((), ())
        if len(x) == 3 and len(y) == 3 and x[0] == y[0] and x[2] == y[1]:
            shape = (x[0], x[1], y[2], x[2])
    elif name == "aten::linear" and len(dims) >= 2:
        x, w = dims[0], dims[1]
        if len(x) >= 1 and len(w) == 2 and x[-1] == w[1]:
            shape = (1, _numel(x[:-1]), w[0], w[1])
    elif name == "aten::mv" and len(dims) >= 2:
        m, v = dims[0], dims[1]
        if len(m) == 2 and len(v) == 1 and m[1] == v[0]:
            shape = (1, m[0], 1, m[1])
    elif name == "aten::addmv" and len(dims) >= 3:
        m, v = dims[1], dims[2]
        if len(m) == 2 and len(v) == 1 and m[1] == v[0]:
            shape = (1, m[0], 1, m[1])
    elif name == "aten::matmul" and len(dims) >= 2:
        shape = _matmul_shapes(dims[0], dims[1])
    if shape is None:
        return None
    b, m, n, k = shape
    nbytes = sum(_numel(d) * s for d, s, _ in ts) + b * m * n * es
    return Work(float(2 * b * m * n * k), float(nbytes), _dtype(ts), shape)


def _matmul_shapes(x: tuple[int, ...], y: tuple[int, ...]
                   ) -> tuple[int, int, int, int] | None:
    """The GEMM shape ``(batch, m, n, k)`` of torch.matmul(x, y) (broadcast batch
    dimensions), or None if they do not multiply."""
    if not x or not y:
        return None
    xm = x if len(x) > 1 else (1,) + x
    ym = y if len(y) > 1 else y + (1,)
    if xm[-1] != ym[-2]:
        return None
    bx, by = xm[:-2], ym[:-2]
    n = max(len(bx), len(by))
    bx, by = (1,) * (n - len(bx)) + bx, (1,) * (n - len(by)) + by
    batch = []
    for p, q in zip(bx, by):
        if p != q and 1 not in (p, q):
            return None
        batch.append(max(p, q))
    return _numel(tuple(batch)), xm[-2], ym[-1], xm[-1]


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
    else:  # the output has the broadcast shape and type: those of the largest input
        largest = max(ts, key=lambda t: _numel(t[0]))
        nbytes = sum(sizes) + _numel(largest[0]) * largest[1]
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

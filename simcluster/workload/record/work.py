"""FLOPs, HBM bytes and dtype of one recorded aten operator, from its arguments' shapes.

The rules are the Kineto importer's (:mod:`simcluster.workload.kineto.aten_work`): the
recorder describes each argument as a profiler trace with ``record_shapes=True`` does
(``Input Dims`` and ``Input type``) and asks :func:`~simcluster.workload.kineto.aten_work.
describe`. One family is added here because a recording sees it and a Kineto trace lets its
kernel say: fused scaled-dot-product attention (``_scaled_dot_product_flash_attention``,
``_efficient_``, ``_cudnn_`` and their ``_backward``), counted as the generator counts the
attention core (``workload/generate/costs.py``): forward ``2 B H Sq Sk (D + Dv)`` FLOPs
(causal masking not discounted), backward twice that; bytes: Q, K, V and O read or written
once (backward: those, dO, and dQ, dK, dV).
"""

from __future__ import annotations

import math
import re
from typing import Any

from simcluster.workload.kineto.aten_work import DTYPES, ELEMENT_BYTES, Work, describe

# torch dtype names (``str(torch.float32)`` without ``torch.``) -> Kineto ``Input type``.
INPUT_TYPE: dict[str, str] = {
    "float32": "float", "float64": "double", "float16": "c10::Half",
    "bfloat16": "c10::BFloat16", "int64": "long int", "int32": "int", "int16": "short int",
    "int8": "signed char", "uint8": "unsigned char", "bool": "bool",
    "float8_e4m3fn": "c10::Float8_e4m3fn", "float8_e5m2": "c10::Float8_e5m2",
    "complex64": "c10::complex<float>",
}
_SDPA = re.compile(r"^aten::_scaled_dot_product_(flash|efficient|cudnn|fused)_attention"
                   r"(_for_cpu)?(_backward)?$")


def gpu_name(name: str) -> str:
    """The name the op has on a GPU: the CPU build's ``_for_cpu`` variants lose the suffix.

    Example:
        >>> gpu_name("aten::_scaled_dot_product_flash_attention_for_cpu_backward")
        'aten::_scaled_dot_product_flash_attention_backward'
    """
    return name.replace("_for_cpu", "")


def _attention(backward: bool, dims: list[Any], types: list[str]) -> Work | None:
    first = 1 if backward else 0
    q, k, v = (dims[first + i] if len(dims) > first + i else None for i in range(3))
    if not all(isinstance(t, list) and len(t) == 4 for t in (q, k, v)):
        return None
    es = ELEMENT_BYTES.get(types[first], 0)
    b, h, sq, d = q
    sk, dv = k[2], v[3]
    flops = 2.0 * b * h * sq * sk * (d + dv)
    qkvo = es * (math.prod(q) + math.prod(k) + math.prod(v) + b * h * sq * dv)
    if backward:
        return Work(2 * flops, float(2 * qkvo + es * b * h * sq * dv), _code(types[first]))
    return Work(flops, float(qkvo), _code(types[first]))


def _code(input_type: str) -> int:
    name = {"float": "fp32", "double": "fp64", "c10::Half": "fp16",
            "c10::BFloat16": "bf16"}.get(input_type)
    return DTYPES.index(name) if name else -1


def op_work(name: str, dims: list[Any], types: list[str]) -> tuple[float | None, int | None,
                                                                     str | None]:
    """FLOPs, bytes and dtype of aten op ``name`` (``aten::mm``) whose arguments have these
    Kineto-style dims and types (None where the rules say nothing).

    Example:
        >>> op_work("aten::mm", [[4, 8], [8, 2]], ["float", "float"])
        (128.0, 224, 'fp32')
        >>> op_work("aten::_scaled_dot_product_flash_attention_for_cpu",
        ...         [[1, 2, 4, 8]] * 3, ["c10::BFloat16"] * 3)
        (1024.0, 512, 'bf16')
    """
    m = _SDPA.match(name)
    work = _attention(bool(m.group(3)), dims, types) if m else \
        describe(name, {"Input Dims": dims, "Input type": types})
    if not isinstance(work, Work):
        return None, None, None
    return (work.flops or None, round(work.nbytes) or None,
            DTYPES[work.dtype] if work.dtype >= 0 else None)

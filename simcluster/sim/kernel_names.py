"""What a kernel is, from its name: its class (for the analyses) and its family (for the
compute model).

A kernel's **class** comes from its name (NVIDIA, AMD and cuDNN naming; first rule that
matches):

- ``gemm``: matrix multiplies and convolutions (cuBLAS/cuBLASLt/CUTLASS ``gemm``, ``xmma``,
  ``sm80_``/``sm90_`` GEMM kernels, Tensile ``Cijk_`` on AMD, cuDNN ``conv``/``dgrad``/
  ``wgrad``/``implicit_gemm``);
- ``attention``: flash/fused attention (``flash``, ``fmha``, ``attention``);
- ``norm``: normalisation (``norm``, cuDNN ``bn_``);
- ``reduction``: reductions and softmax (``reduce``, ``softmax``, ``sum``);
- ``memset``, ``copy``: memory kernels (``Memset``, ``Memcpy``, ``copy``);
- ``elementwise``: pointwise kernels (``elementwise``);
- ``other``: everything else.

A kernel's **family** says which of the compute model's parameters it has of its own
(``DeviceCalibration.families``); most kernels have none (``""``):

- ``flash1``: FlashAttention 1.x (2022-2023): recorded ``fmha_*loop*`` kernels, and the
  generator's ``<layer>.<pass>.attn.fa1`` ops; it computes at its own efficiency.
- ``small``: recorded non-GEMM kernels (the classes norm, reduction, memset, copy,
  elementwise): back to back inside a framework, their fixed time is a few microseconds, not
  the ramp-up and tail of a large GEMM. The generator's coarse ops are not named so.
- ``attention``: other recorded attention kernels (class ``attention``: FlashAttention 2/3,
  cuDNN fused attention). The built-in calibrations give them no parameters of their own (they
  run at the GEMM efficiency); a topology's ``compute:`` block may (``simcluster calibrate``
  fits their efficiency on a trace that has them).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("gemm", re.compile(r"gemm|xmma|cutlass|^Cijk_|sm\d\d_|matmul|conv|dgrad|wgrad", re.IGNORECASE)),
    ("attention", re.compile(r"flash|fmha|attention", re.IGNORECASE)),
    ("norm", re.compile(r"norm|bn_(fw|bw)", re.IGNORECASE)),
    ("reduction", re.compile(r"reduce|softmax|\bsum\b", re.IGNORECASE)),
    ("memset", re.compile(r"memset", re.IGNORECASE)),
    ("copy", re.compile(r"memcpy|copy", re.IGNORECASE)),
    ("elementwise", re.compile(r"elementwise", re.IGNORECASE)),
)
SMALL_CLASSES = frozenset({"norm", "reduction", "memset", "copy", "elementwise"})
FAMILIES: tuple[str, ...] = ("", "flash1", "small", "attention")
_FLASH1 = re.compile(r"\.attn\.fa1$|^fmha_\w*loop", re.IGNORECASE)


def kernel_class(name: str) -> str:
    """The class of a kernel from its name (module docstring).

    Example:
        >>> [kernel_class(n) for n in ("volta_sgemm_128x32_nt", "Memset (Device)",
        ...  "void at::native::vectorized_elementwise_kernel<4>", "flash_fwd_kernel")]
        ['gemm', 'memset', 'elementwise', 'attention']
    """
    return next((c for c, pattern in CLASSES if pattern.search(name)), "other")


def kernel_family(name: str) -> str:
    """The family of a kernel or op name ("" for none; module docstring).

    Example:
        >>> [kernel_family(n) for n in ("L3.fwd.attn.fa1", "L3.fwd.attn", "flash_fwd_kernel",
        ...  "Memset (Device)", "L3.fwd.res_ln2")]
        ['flash1', '', 'attention', 'small', '']
    """
    if _FLASH1.search(name):
        return "flash1"
    cls = kernel_class(name)
    if cls == "attention":
        return "attention"
    return "small" if cls in SMALL_CLASSES else ""


def family_codes(names: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Per name, an index into the returned list of families (:data:`FAMILIES`); each
    distinct name is classified once."""
    enc = names.dictionary_encode()
    enc = enc.combine_chunks() if isinstance(enc, pa.ChunkedArray) else enc
    families = list(FAMILIES)
    per_name = np.fromiter((families.index(kernel_family(n))
                            for n in enc.dictionary.to_pylist()), dtype=np.int64,
                           count=len(enc.dictionary))
    return per_name[enc.indices.to_numpy(zero_copy_only=False)], families

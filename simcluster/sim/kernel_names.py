"""What a kernel is, from its name: its class (for the analyses) and its family (for the
compute model).

A kernel's **class** comes from its name (NVIDIA, AMD and cuDNN naming; first rule that
matches):

- ``other``: cuDNN's helper kernels that compute a convolution's index offsets
  (``cask_cudnn::computeOffsetsKernel``, ``computeWgradBOffsetsKernel``, ...): integer
  work, no multiply-accumulates, whatever the ``wgrad`` in their names;
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
- ``small``: the parent of the recorded non-GEMM kernels' families below (a parameter set on
  it, by a topology's ``compute:`` block or ``simcluster calibrate``, applies to all of
  them), and the family of generated ops named like one of their classes.
- ``memset``, ``copy``, ``elementwise``, ``reduction``, ``norm`` (children of ``small``): the
  recorded kernels of these classes (names that are C++ symbols or driver operations), each
  with its own fixed time and HBM efficiency (fitted on the A100 traces,
  ``bench/fit_kernel_classes.py``). Back to back inside a framework, their fixed time is a
  few microseconds, not the ramp-up and tail of a large GEMM. A generated op whose name
  says one of these classes (``final_norm``) has family ``small``.
- ``norm_2pass_fwd``, ``norm_2pass_bwd`` (children of ``norm``): cuDNN batch-norm kernels
  that read their input twice (statistics, then normalisation; the ``singleread`` variants
  keep it on chip): ``hbm_passes`` 3/2 forward (read twice, write once, where the importer
  counts one read and one write) and 5/3 backward (read ``dy`` and ``x`` twice, write ``dx``,
  where it counts three tensors).
- ``winograd``: cuDNN's Winograd convolution kernels (``winograd`` in the name: the
  transforms and fused kernels of F(4x4, 3x3) and F(2x2, 3x3)). They compute the op's
  convolution with fewer multiplications than its nominal FLOPs: ``flop_fraction`` 1/4,
  the ratio of F(4x4, 3x3)'s 6 x 6 = 36 multiplications per 4 x 4 output tile to direct
  convolution's 16 x 9 = 144 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
  Networks", CVPR 2016, arXiv 1509.09308, section 4).
- ``gemm_align1``: CUTLASS GEMMs built for operands aligned to one element (``_align1``):
  without 128-bit vector loads they sustain their own, lower efficiency (fitted on the A100
  traces).
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
    ("other", re.compile(r"^cask_cudnn::compute\w*Offsets", re.IGNORECASE)),
    ("gemm", re.compile(r"gemm|xmma|cutlass|^Cijk_|sm\d\d_|matmul|conv|dgrad|wgrad|scudnn|"
                        r"winograd", re.IGNORECASE)),
    ("attention", re.compile(r"flash|fmha|attention", re.IGNORECASE)),
    # not the norms of at::native's vector-norm reductions (NormTwoOps, ...)
    ("norm", re.compile(r"norm(?!(Two|One|Zero|Inf)Ops)|bn_(fw|bw)|GammaBeta|RowwiseMoments",
                        re.IGNORECASE)),
    ("reduction", re.compile(r"reduce|softmax|\bsum\b", re.IGNORECASE)),
    ("memset", re.compile(r"memset", re.IGNORECASE)),
    ("copy", re.compile(r"memcpy|copy", re.IGNORECASE)),
    ("elementwise", re.compile(r"elementwise", re.IGNORECASE)),
)
# Each family with a parent takes its parent's parameters, then its own.
PARENT: dict[str, str] = {
    "memset": "small", "copy": "small", "elementwise": "small", "reduction": "small",
    "norm": "small", "norm_2pass_fwd": "norm", "norm_2pass_bwd": "norm",
}
SMALL_CLASSES = frozenset(f for f, parent in PARENT.items() if parent == "small")
FAMILIES: tuple[str, ...] = ("", "flash1", "small", "attention", "memset", "copy",
                             "elementwise", "reduction", "norm", "norm_2pass_fwd",
                             "norm_2pass_bwd", "gemm_align1", "winograd")
_FLASH1 = re.compile(r"\.attn\.fa1$|^fmha_\w*loop", re.IGNORECASE)
_BN_2PASS = re.compile(r"bn_(fw|bw)\w*1C11_kernel", re.IGNORECASE)  # not *_singleread
# A recorded kernel's name is a C++ symbol (``void at::native::...<...>(...)``) or a driver
# operation (``Memset (Device)``); the generator's op names are dotted words.
_SYMBOL = re.compile(r"[\s<(:]")
_ALIGN1 = re.compile(r"cutlass\w*_align1\b", re.IGNORECASE)
_WINOGRAD = re.compile(r"winograd", re.IGNORECASE)


def lineage(family: str) -> tuple[str, ...]:
    """``family`` and its ancestors, root first (whose parameters apply in that order).

    Example:
        >>> lineage("norm_2pass_fwd"), lineage("flash1")
        (('small', 'norm', 'norm_2pass_fwd'), ('flash1',))
    """
    chain = [family]
    while chain[-1] in PARENT:
        chain.append(PARENT[chain[-1]])
    return tuple(reversed(chain))


def descendants(family: str) -> frozenset[str]:
    """The families below ``family`` (a parameter set on it is set for them too)."""
    return frozenset(f for f in FAMILIES if f != family and family in lineage(f))


# The recorded non-GEMM kernels' families (``small`` and below it).
SMALL_FAMILIES = frozenset({"small"} | descendants("small"))


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
        ...  "Memset (Device)", "L3.fwd.res_ln2", "final_norm", "cudnn::bn_fw_tr_1C11_kernel<f>",
        ...  "cutlass_80_tensorop_s1688gemm_64x64_32x6_nn_align1")]
        ['flash1', '', 'attention', 'memset', '', 'small', 'norm_2pass_fwd', 'gemm_align1']
    """
    if _FLASH1.search(name):
        return "flash1"
    cls = kernel_class(name)
    if cls == "attention":
        return "attention"
    if cls == "gemm":
        if _WINOGRAD.search(name):
            return "winograd"
        return "gemm_align1" if _ALIGN1.search(name) else ""
    if cls not in SMALL_CLASSES:
        return ""
    if not _SYMBOL.search(name):  # a generated op (``final_norm``), not a recorded kernel
        return "small"
    if cls == "norm" and (m := _BN_2PASS.search(name)):
        return "norm_2pass_fwd" if m.group(1).lower() == "fw" else "norm_2pass_bwd"
    return cls


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

"""Tile and wave quantisation of recorded GEMM kernels.

A GEMM kernel computes its output in tiles of ``tile_m x tile_n`` elements, one thread block
per tile, and the GPU runs them in *waves* of one block per SM (the kernels of the traces
here run one block of their large tiles per SM at a time). The last wave is as long as a full
one however few tiles it has, so a GEMM of 1.1 waves takes the time of 2:

    tiles       = batch * ceil(n / tile_m) * ceil(m / tile_n)
    split       = min(k_slices, floor(SMs / tiles)) if tiles < SMs else 1   (split-K)
    waves       = ceil(tiles * split / SMs)
    utilisation = tiles * split / (waves * SMs)
    t_c         = flops / (peak * gemm_efficiency * utilisation)

``(batch, m, n, k)`` is the aten op's GEMM (``gemm_shape``, from the Kineto importer); PyTorch
calls the column-major cuBLAS with the operands swapped, so the kernel's first tile
dimension runs along the op's ``n``. The tile comes from the kernel's name where cuBLAS,
CUTLASS and cuDNN write it (``sgemm_128x64_nn``, ``s1688gemm_64x64_32x6``,
``tilesize128x128x32``, ``scudnn_128x64``), else :data:`DEFAULT_TILE`. The SM counts are
NVIDIA's (whitepapers: V100 80, A100 108, H100 SXM5 132, H100 PCIe 114); a chip not listed
uses its catalog ``compute_units``, and without those no quantisation is applied.
``gemm_efficiency`` stays the fit of the cuBLASLt tables, whose large square GEMMs run
nearly whole waves.

**Split-K.** A GEMM with fewer tiles than SMs and a long ``k`` (a weight gradient over many
tokens, ``[15, 72, 327680]``) does not run on a few SMs: cuBLAS and CUTLASS split ``k`` into
slices, one thread block per (tile, slice), and reduce the partial tiles after (the
``splitKreduce_kernel`` of the traces, recorded as its own kernel). Modelled: as many slices
as fill one wave, ``floor(SMs / tiles)``, each of at least :data:`K_SLICE` of ``k``
(``k_slices = max(1, k // K_SLICE)``).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from simcluster.sim.kernel_names import kernel_class
from simcluster.topology.catalog import AcceleratorSpec

DEFAULT_TILE = (128, 128)  # the common cuBLAS/CUTLASS tile of large GEMMs
# The shortest k slice of a split-K GEMM, elements: CUTLASS's kernels step over k by the
# tile's k (16 or 32 in the names here, ``_32x3``), and a slice needs several steps to fill
# its pipeline (3-6 stages). Chosen on the A100 traces' GEMMs (least mean squared log error
# of 64, 128, 256, 512, 1,024 and no split-K, with their efficiencies refitted; 64-1,024
# are within 0.011 of each other: ``python bench/fit_kernel_classes.py --k-slice``).
K_SLICE = 512
SM_COUNT: dict[str, int] = {
    "V100-SXM2-32GB": 80, "V100-SXM2-16GB": 80, "V100-SXM3-32GB": 80,
    "A100-SXM4-80GB": 108, "A100-SXM4-40GB": 108, "A100-PCIe-80GB": 108,
    "A100-PCIe-40GB": 108, "H100-SXM5-80GB": 132, "H200": 132, "H800-SXM5-80GB": 132,
    "H100-PCIe-80GB": 114, "H100-NVL-94GB": 132,
}
# Boost clocks, GHz (NVIDIA's whitepapers and datasheets: Tesla V100 SXM2/SXM3 1,530 MHz, A100
# SXM4 and PCIe 1,410 MHz, H100 SXM5 1,980 MHz and PCIe 1,755 MHz). A chip not listed has no
# clock here (its fixed times are not rescaled, ``sim/compute.py``).
CLOCK_GHZ: dict[str, float] = {
    "V100-SXM2-32GB": 1.53, "V100-SXM2-16GB": 1.53, "V100-SXM3-32GB": 1.53,
    "A100-SXM4-80GB": 1.41, "A100-SXM4-40GB": 1.41, "A100-PCIe-80GB": 1.41,
    "A100-PCIe-40GB": 1.41, "H100-SXM5-80GB": 1.98, "H200": 1.98, "H800-SXM5-80GB": 1.98,
    "H100-PCIe-80GB": 1.755,
}
_TILE = re.compile(r"tilesize(\d+)x(\d+)|(?:gemm|scudnn)\w*?_(\d+)x(\d+)(?=_|$)", re.IGNORECASE)


def tile_of(name: str) -> tuple[int, int]:
    """The output tile ``(tile_m, tile_n)`` a GEMM kernel's name gives, else the default.

    Example:
        >>> [tile_of(n) for n in ("ampere_sgemm_128x64_nn",
        ...  "cutlass_80_tensorop_s1688gemm_256x128_32x3_nt_align4",
        ...  "sm80_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x64x32_stage4", "gemvx")]
        [(128, 64), (256, 128), (128, 64), (128, 128)]
    """
    m = _TILE.search(name)
    if m is None:
        return DEFAULT_TILE
    a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return int(a), int(b)


def sm_count(spec: AcceleratorSpec) -> int | None:
    """SMs (compute units) of ``spec``, None if unknown."""
    return SM_COUNT.get(spec.model, spec.compute_units)


def gemm_tiles(names: pa.ChunkedArray | pa.Array, shapes: pa.ChunkedArray | pa.Array,
               k_slice: int = K_SLICE) -> np.ndarray:
    """Per op, ``(tiles, k_slices)``: the thread-block tiles of its GEMM and how many slices
    of at least ``k_slice`` elements its ``k`` splits into (module docstring); ``(0, 1)`` where the
    op has no ``gemm_shape`` or is not a GEMM kernel (a split-K reduction launched by the
    same matmul carries its shape too). Shape ``(len(names), 2)``."""
    out = np.zeros((len(names), 2), dtype=np.float64)
    out[:, 1] = 1.0
    valid = np.flatnonzero(shapes.is_valid().to_numpy(zero_copy_only=False))
    if not len(valid):
        return out
    take = pa.array(valid)
    tile: dict[str, tuple[int, int]] = {}
    for i, name, shape in zip(valid.tolist(), names.take(take).to_pylist(),
                              shapes.take(take).to_pylist()):
        if len(shape) != 4 or min(shape) <= 0 or kernel_class(name) != "gemm":
            continue
        tm, tn = tile.get(name) or tile.setdefault(name, tile_of(name))
        b, m, n, k = shape
        out[i] = b * -(-n // tm) * -(-m // tn), max(1, k // k_slice)
    return out


def op_tiles(table: pa.Table, rows: np.ndarray | None = None, k_slice: int = K_SLICE
             ) -> np.ndarray:
    """:func:`gemm_tiles` of a workload's ops (``rows`` of them; all where None), from its
    ``name`` and ``gemm_shape`` columns; ``(0, 1)`` for every op without the column."""
    n = table.num_rows if rows is None else len(rows)
    if "gemm_shape" not in table.column_names:
        return np.tile(np.array([0.0, 1.0]), (n, 1))
    names, shapes = table.column("name"), table.column("gemm_shape")
    if rows is not None:
        take = pa.array(rows, type=pa.int64())
        names, shapes = names.take(take), shapes.take(take)
    return gemm_tiles(names, shapes, k_slice)


def wave_utilisation(tiles: np.ndarray, sms: int | None) -> np.ndarray:
    """The fraction of the SMs' wave time that does work (1 where there are no tiles or the
    SM count is unknown). ``tiles``: per op, ``(tiles, k_slices)`` (:func:`gemm_tiles`), or
    the tiles alone (no split-K). A GEMM of fewer tiles than SMs splits its ``k`` into as
    many slices as fill one wave, at most ``k_slices`` (split-K).

    Example: 4,096^3 with 128x256 tiles on 108 SMs is 512 tiles, 5 waves (4.74 rounded up);
    16 tiles with k = 8,192 split 6 ways (16 slices of 512 allowed, 6 fill the SMs):
        >>> u = wave_utilisation(np.array([[512.0, 16.0], [16.0, 16.0]]), 108)
        >>> bool(u[0] == 512 / 540), bool(u[1] == 96 / 108)
        (True, True)
    """
    grid = np.asarray(tiles, dtype=np.float64)
    if grid.ndim == 1:
        grid = np.stack([grid, np.ones(len(grid))], axis=1)
    t, slices = grid[:, 0], grid[:, 1]
    if not sms:
        return np.ones(len(t))
    split = np.where((t > 0) & (t < sms),
                     np.clip(np.floor(sms / np.maximum(t, 1.0)), 1.0, slices), 1.0)
    work = t * split
    waves = np.ceil(work / sms)
    return np.where(t > 0, work / np.maximum(waves * sms, 1.0), 1.0)


def wave_flops(flops: np.ndarray, tiles: np.ndarray | None, spec: AcceleratorSpec
               ) -> np.ndarray:
    """``flops`` over the wave utilisation of ``tiles`` on ``spec`` (the FLOPs the SMs spend
    the time of; ``flops`` itself when ``tiles`` is None)."""
    flops = np.asarray(flops, dtype=np.float64)
    return flops if tiles is None else flops / wave_utilisation(tiles, sm_count(spec))

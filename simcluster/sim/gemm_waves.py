"""Tile and wave quantisation of recorded GEMM kernels.

A GEMM kernel computes its output in tiles of ``tile_m x tile_n`` elements, one thread block
per tile, and the GPU runs them in *waves* of one block per SM (the kernels of the traces
here run one block of their large tiles per SM at a time). The last wave is as long as a full
one however few tiles it has, so a GEMM of 1.1 waves takes the time of 2:

    tiles       = batch * ceil(n / tile_m) * ceil(m / tile_n)
    waves       = ceil(tiles / SMs)
    utilisation = tiles / (waves * SMs)
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
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from simcluster.sim.kernel_names import kernel_class
from simcluster.topology.catalog import AcceleratorSpec

DEFAULT_TILE = (128, 128)  # the common cuBLAS/CUTLASS tile of large GEMMs
SM_COUNT: dict[str, int] = {
    "V100-SXM2-32GB": 80, "V100-SXM2-16GB": 80, "V100-SXM3-32GB": 80,
    "A100-SXM4-80GB": 108, "A100-SXM4-40GB": 108, "A100-PCIe-80GB": 108,
    "A100-PCIe-40GB": 108, "H100-SXM5-80GB": 132, "H200": 132, "H800-SXM5-80GB": 132,
    "H100-PCIe-80GB": 114, "H100-NVL-94GB": 132,
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


def gemm_tiles(names: pa.ChunkedArray | pa.Array, shapes: pa.ChunkedArray | pa.Array
               ) -> np.ndarray:
    """Per op, the thread-block tiles of its GEMM (module docstring; 0 where the op has no
    ``gemm_shape`` or is not a GEMM kernel: a split-K reduction launched by the same matmul
    carries its shape too)."""
    out = np.zeros(len(names), dtype=np.float64)
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
        b, m, n, _ = shape
        out[i] = b * -(-n // tm) * -(-m // tn)
    return out


def wave_utilisation(tiles: np.ndarray, sms: int | None) -> np.ndarray:
    """The fraction of the SMs' wave time that does work (1 where ``tiles`` is 0 or the SM
    count unknown).

    Example: 4,096^3 with 128x256 tiles on 108 SMs is 512 tiles, 5 waves (4.74 rounded up):
        >>> float(wave_utilisation(np.array([512.0]), 108)[0]) == 512 / 540
        True
    """
    tiles = np.asarray(tiles, dtype=np.float64)
    if not sms:
        return np.ones(len(tiles))
    waves = np.ceil(tiles / sms)
    return np.where(tiles > 0, tiles / np.maximum(waves * sms, 1.0), 1.0)

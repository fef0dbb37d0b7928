"""Tile and wave quantisation of recorded GEMMs: a partial last wave costs a whole one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from simcluster.sim.compute import ComputeModel
from simcluster.sim.gemm_waves import (gemm_tiles, op_tiles, sm_count, tile_of,
                                         wave_utilisation)
from simcluster.topology.catalog import lookup

A100 = lookup("A100-SXM4-80GB")
XMMA_128x256 = "sm80_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x32_stage3"


def test_a100_4096_cubed_with_128x256_tiles_runs_5_waves() -> None:
    """512 tiles on 108 SMs: 4.74 waves, paid as 5 (512 / 540 of the SMs' time works)."""
    n = 4096
    flops, nbytes = 2.0 * n**3, 2.0 * 3 * n * n
    tiles = gemm_tiles(pa.array([XMMA_128x256]), pa.array([[1, n, n, n]]))
    assert tiles.tolist() == [[(n // 128) * (n // 256), n // 512]] == [[512, 8]]
    assert sm_count(A100) == 108
    got = ComputeModel().roofline_us(np.array([flops]), np.array([nbytes]), "bf16", A100,
                                     tiles=tiles)[0]
    # The A100 fit: 0.805 of 312 TFLOP/s, 0.79 of 2,039 GB/s, 9 us fixed, sharpness 1.5.
    tc = flops / (312e6 * 0.805 * 512 / 540)
    tm = nbytes / (2039e3 * 0.79)
    assert got == pytest.approx(9.0 + (tc**1.5 + tm**1.5) ** (1 / 1.5))
    whole = ComputeModel().roofline_us(np.array([flops]), np.array([nbytes]), "bf16", A100)[0]
    assert got > whole  # without the shape: the cuBLASLt fit alone


def test_a_gemm_of_one_wave_and_a_bit_costs_two() -> None:
    assert wave_utilisation(np.array([108.0, 109.0, 216.0, 0.0]), 108).tolist() == [
        1.0, 109 / 216, 1.0, 1.0]
    assert wave_utilisation(np.array([109.0]), None).tolist() == [1.0]  # SMs unknown


def test_tiles_come_from_the_name_along_the_ops_n_then_m() -> None:
    names = ["ampere_sgemm_128x64_nn", "void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_"
             "64x64_32x6_nn_align1>", "void gemmSN_NN_kernel<float>", "void splitKreduce_kernel<float>",
             "ampere_sgemm_128x64_nn"]
    shapes = pa.array([[1, 1000, 300, 64], [2, 2048, 125, 320], [1, 640, 130, 64],
                       [1, 1000, 300, 64], None])
    # n = 300 over 128 -> 3, m = 1000 over 64 -> 16; 2 x ceil(125/64) x 2048/64;
    # no tile in the name: 128 x 128; a reduction launched by the matmul is not a GEMM.
    # k slices of 512: 64 // 512 -> 1, 320 // 512 -> 1; none for the others.
    assert gemm_tiles(pa.array(names), shapes).tolist() == [
        [3 * 16, 1], [2 * 2 * 32, 1], [2 * 5, 1], [0, 1], [0, 1]]
    assert tile_of("volta_scudnn_128x64_relu_interior_nn_v1") == (128, 64)


def test_a_gemm_of_few_tiles_and_a_long_k_splits_k_to_fill_the_sms() -> None:
    """A weight gradient [15 x 72, k = 327,680] is one 128x64 tile: split-K into 108 slices
    (640 of 512 allowed) fills the A100's SMs; with k = 1,024 only 2 slices are allowed."""
    name = "void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_128x64_16x6_nt_align1>"
    grid = gemm_tiles(pa.array([name, name]), pa.array([[1, 15, 72, 327680], [1, 15, 72, 1024]]))
    assert grid.tolist() == [[1, 640], [1, 2]]
    assert wave_utilisation(grid, 108).tolist() == [1.0, 2 / 108]
    # 16 tiles: 6 slices fill 96 of 108 SMs (7 would make 112, a second wave).
    assert wave_utilisation(np.array([[16.0, 70.0]]), 108).tolist() == [96 / 108]
    # A GEMM of one wave or more is not split.
    assert wave_utilisation(np.array([[109.0, 70.0]]), 108).tolist() == [109 / 216]


def test_op_tiles_of_a_table_without_shapes_is_no_tiles() -> None:
    t = pa.table({"name": ["ampere_sgemm_128x64_nn"]})
    assert op_tiles(t).tolist() == [[0.0, 1.0]]
    shaped = t.append_column("gemm_shape", pa.array([[1, 1000, 300, 64]]))
    assert op_tiles(shaped, np.array([0])).tolist() == [[48.0, 1.0]]


def test_the_shortest_k_slice_is_a_parameter() -> None:
    name = pa.array(["ampere_sgemm_128x64_nn"])
    shape = pa.array([[1, 15, 72, 4096]])
    assert [gemm_tiles(name, shape, k)[0, 1] for k in (512, 1024, 8192)] == [8.0, 4.0, 1.0]


def test_every_calibrated_part_has_a_clock() -> None:
    """Every part the compute model calibrates (``CHIP_OF``) has its boost clock, so its
    small kernels' fixed cycles are rescaled like its twins' (V100 SXM3 as SXM2)."""
    from simcluster.sim.compute import CHIP_OF
    from simcluster.sim.gemm_waves import CLOCK_GHZ

    assert set(CHIP_OF) <= set(CLOCK_GHZ)
    assert CLOCK_GHZ["V100-SXM3-32GB"] == CLOCK_GHZ["V100-SXM2-32GB"] == 1.53

"""Recorded kernels of each class run on their own parameters (fixed time, HBM efficiency,
passes over HBM); a parameter set on a family applies to the families below it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simcluster.sim.compute import A100_CALIBRATION, ComputeModel, merge_families, with_params
from simcluster.sim.kernel_names import SMALL_FAMILIES, kernel_class, kernel_family, lineage
from simcluster.topology.catalog import lookup
from simcluster.topology.schema import ComputeParams

A100 = lookup("A100-SXM4-80GB")
HBM = 2039e3  # A100-SXM4-80GB, B/us


def _us(name: str, nbytes: float, flops: float = 0.0, dtype: str = "fp32") -> float:
    fam = kernel_family(name)
    return float(ComputeModel().roofline_us(np.array([flops]), np.array([nbytes]), dtype,
                                            A100, fam)[0])


def test_a_memset_is_a_short_write() -> None:
    assert kernel_family("Memset (Device)") == "memset"
    assert _us("Memset (Device)", 1 << 20) == pytest.approx(1.5 + (1 << 20) / HBM)


def test_a_two_pass_batch_norm_reads_its_input_twice() -> None:
    """Forward: read twice, write once where the importer counts a read and a write (3/2);
    backward: read dy and x twice, write dx, where it counts three tensors (5/3); the
    single-read kernels once. All at the norm class's 14.25 us and the full HBM bandwidth."""
    b = 64e6
    fwd = "void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, 512, true, 1>(cudnnTensorStruct)"
    bwd = "void cudnn::bn_bw_1C11_kernel_new<float, float, float2, 512, true, 1>(float)"
    one = "void cudnn::bn_fw_tr_1C11_singleread<float, 512, true, 1, 2, 0>(cudnnTensorStruct)"
    assert [kernel_class(n) for n in (fwd, bwd, one)] == ["norm"] * 3
    assert _us(fwd, b) == pytest.approx(14.25 + 1.5 * b / HBM)
    assert _us(bwd, b) == pytest.approx(14.25 + 5 / 3 * b / HBM)
    assert _us(one, b) == pytest.approx(14.25 + b / HBM)


def test_each_small_class_has_its_fixed_time_and_bandwidth() -> None:
    b = 8e6
    copy = "void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda>"
    red = "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float>>(float)"
    ew = "void at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor<float>>"
    assert _us(copy, b) == pytest.approx(7.5 + b / (HBM * 0.7))
    assert _us(red, b) == pytest.approx(5.75 + b / (HBM * 0.19))
    assert _us(ew, b) == pytest.approx(3.75 + b / HBM)
    # A vector norm is a reduction, not a normalisation.
    assert kernel_class("reduce_kernel<512, 1, ReduceOp<float, NormTwoOps<float>>>") == \
        "reduction"


def test_one_element_aligned_cutlass_gemms_have_their_own_efficiency() -> None:
    name = "void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_64x64_32x6_nn_align1>(Params)"
    assert kernel_family(name) == "gemm_align1"
    f = 1e12
    tc = f / (156e6 * 0.295)  # TF32 peak 156 TFLOP/s
    assert _us(name, 0.0, f, "tf32") == pytest.approx(9.0 + tc)


def test_generated_ops_keep_the_small_family() -> None:
    """The generator's ``final_norm`` is not a recorded kernel: the one small fixed time."""
    assert kernel_family("final_norm") == "small"
    assert _us("final_norm", 0.0) == 3.75


def test_a_parameter_set_on_a_parent_applies_to_its_children() -> None:
    assert lineage("norm_2pass_bwd") == ("small", "norm", "norm_2pass_bwd")
    assert "memset" in SMALL_FAMILIES and "gemm_align1" not in SMALL_FAMILIES
    cal = replace(A100_CALIBRATION, families=merge_families(
        A100_CALIBRATION.families, {("small", "fixed_us"): 2.0}))
    assert [cal.for_family(f).fixed_us for f in ("memset", "norm_2pass_fwd", "")] == [
        2.0, 2.0, 9.0]
    assert cal.for_family("norm_2pass_fwd").hbm_passes == 1.5  # other parameters kept
    # A chip HBM efficiency of your own replaces the classes' (small sets none); a chip
    # fixed time does not replace theirs (small sets one).
    mine = with_params(A100_CALIBRATION, ComputeParams(memory_efficiency=0.6, fixed_us=5.0))
    assert mine.for_family("copy").memory_efficiency == 0.6
    assert mine.for_family("copy").fixed_us == 7.5 and mine.fixed_us == 5.0


def test_a_topology_may_set_every_family() -> None:
    from simcluster.sim.kernel_names import FAMILIES
    from simcluster.topology.schema import COMPUTE_FAMILIES
    assert set(COMPUTE_FAMILIES) == set(FAMILIES) - {""}


def test_winograd_convolutions_do_a_quarter_of_the_nominal_multiplications() -> None:
    """F(4x4, 3x3): 36 multiplications per 4x4 output tile against 144 (Lavin & Gray)."""
    name = "void cudnn::winograd_nonfused::winogradForwardData4x4<float, float>(Params)"
    assert kernel_class(name) == "gemm" and kernel_family(name) == "winograd"
    f = 1e12
    tc = f / 4 / (156e6 * 0.805)  # A100 TF32 peak 156 TFLOP/s at the chip's GEMM efficiency
    assert _us(name, 0.0, f, "tf32") == pytest.approx(9.0 + tc)


def test_cudnn_offset_helpers_are_not_gemms() -> None:
    assert [kernel_class(n) for n in ("cask_cudnn::computeWgradBOffsetsKernel(Params)",
                                      "cask_cudnn::computeOffsetsKernel(Params)",
                                      "volta_scudnn_128x64_relu_interior_nn_v1")] == [
        "other", "other", "gemm"]

"""The calibrated compute model: its formula, its fit to measured GEMMs, retargeting."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.sim.calibration import fit_device, parse_benchmark_page
from simcluster.sim.compute import (
    A100_CALIBRATION,
    H100_CALIBRATION,
    ComputeModel,
    DeviceCalibration,
    kernel_us,
    resolve_durations,
)
from simcluster.topology.catalog import ACCELERATORS

A100 = ACCELERATORS["A100-SXM4-80GB"]
H100 = ACCELERATORS["H100-SXM5-80GB"]


def test_kernel_formula_by_hand() -> None:
    cal = DeviceCalibration(gemm_efficiency=0.5, memory_efficiency=0.5, fixed_us=3.0,
                            sharpness=2.0)
    # t_c = 1e6 / (1e6 * 0.5) = 2 us, t_m = 1.5e3 / (1e3 * 0.5) = 3 us -> 3 + sqrt(4 + 9).
    t = kernel_us(np.array([1e6]), np.array([1.5e3]), 1e6, 1e3, cal)
    assert t[0] == pytest.approx(3.0 + np.sqrt(13.0))
    hard = DeviceCalibration(0.5, 0.5, 0.0, float("inf"))
    assert kernel_us(np.array([1e6]), np.array([1.5e3]), 1e6, 1e3, hard)[0] == pytest.approx(3.0)


def test_gemm_efficiency_falls_for_small_shapes_and_memory_bound_ops_follow_bandwidth() -> None:
    model = ComputeModel()
    sizes = np.array([256, 1024, 4096, 16384], dtype=float)
    flops = 2 * sizes**3
    nbytes = 2 * 3 * sizes**2
    t = model.roofline_us(flops, nbytes, "bf16", A100)
    eff = flops / t / (A100.peak_tflops["bf16"] * 1e6)
    assert np.all(np.diff(eff) > 0) and eff[-1] == pytest.approx(0.805, abs=0.01)
    # An elementwise op over 1 GB: its time is its bytes at the STREAM rate.
    t = model.roofline_us(np.array([1e8]), np.array([1e9]), "bf16", A100)[0]
    assert t == pytest.approx(1e9 / (A100.hbm_GBps * 1e3 * 0.79) + 9.0, rel=1e-3)


@pytest.mark.parametrize("fname,model,dtype,in_bytes,stored", [
    ("azure-nd-a100-v4.md", "A100-SXM4-80GB", "fp16", 2, A100_CALIBRATION),
    ("azure-nd-h100-v5.md", "H100-SXM5-80GB", "fp8", 1, H100_CALIBRATION),
])
def test_stored_calibration_is_the_fit_of_the_measurements(shared_data, fname, model, dtype,
                                                           in_bytes, stored) -> None:
    page = parse_benchmark_page((shared_data / "calibration" / fname).read_text())
    assert len(page.gemms) >= 8 and "Copy" in page.stream_TBps
    cal, err = fit_device(page, ACCELERATORS[model], dtype, in_bytes)
    assert (cal.gemm_efficiency, cal.memory_efficiency, cal.fixed_us, cal.sharpness) == (
        stored.gemm_efficiency, stored.memory_efficiency, stored.fixed_us, stored.sharpness)
    assert np.mean(np.abs(err)) < 0.06 and np.max(np.abs(err)) < 0.15


def test_retarget_scales_by_the_model_ratio() -> None:
    model = ComputeModel()
    flops, nbytes = np.array([2 * 8192.0**3, 0.0]), np.array([3 * 2 * 8192**2, 0])
    rec = np.array([5000.0, 7.0])
    out = model.retarget_us(rec, flops, nbytes, "bf16", A100, H100)
    ratio = model.roofline_us(flops[:1], nbytes[:1], "bf16", H100) / model.roofline_us(
        flops[:1], nbytes[:1], "bf16", A100)
    assert out[0] == pytest.approx(5000.0 * ratio[0]) and out[0] < 5000.0
    assert out[1] == 7.0  # nothing says how an op without FLOPs or bytes scales
    assert np.array_equal(model.retarget_us(rec, flops, nbytes, "bf16", A100, A100), rec)


def test_retarget_to_the_same_part_with_other_figures_scales_too() -> None:
    """A hardware what-if keeps the model name (and so the calibration): a GEMM recorded on
    the part moves by the roofline ratio of the new figures; the same figures keep it."""
    import dataclasses

    model = ComputeModel()
    flops, nbytes = np.array([2 * 8192.0**3]), np.array([3 * 2 * 8192.0**2])
    faster = dataclasses.replace(H100, peak_tflops={k: 2 * v for k, v in
                                                    H100.peak_tflops.items()})
    out = model.retarget_us(np.array([5000.0]), flops, nbytes, "bf16", H100, faster)
    ratio = model.roofline_us(flops, nbytes, "bf16", faster) / model.roofline_us(
        flops, nbytes, "bf16", H100)
    assert out[0] == pytest.approx(5000.0 * ratio[0]) and 2500.0 < out[0] < 5000.0
    same = dataclasses.replace(H100)
    assert model.retarget_us(np.array([5000.0]), flops, nbytes, "bf16", H100, same)[0] == 5000.0


def test_resolve_durations_retargets_recorded_compute_only_when_asked() -> None:
    kind = np.array(["compute", "compute", "host"])
    rec = np.array([100.0, np.nan, 4.0])
    args = {"kind": kind, "recorded": rec, "flops": np.array([1e9, 1e9, 0.0]),
                "nbytes": np.array([1e6, 1e6, 0.0]), "comm_bytes": np.zeros(3),
                "copy_kind": np.array(["", "", ""]), "dtype_code": np.zeros(3, dtype=np.int64),
                "dtype_names": ["bf16"], "spec_index": np.zeros(3, dtype=np.int64), "specs": [H100]}
    plain = resolve_durations(**args, model=ComputeModel())
    assert plain[0] == 100.0 and plain[2] == 4.0
    moved = resolve_durations(**args, model=ComputeModel(recorded_spec=A100))
    assert moved[0] < 100.0 and moved[1] == plain[1] and moved[2] == 4.0


def test_flash1_attention_runs_at_its_own_efficiency() -> None:
    """An op named as a FlashAttention-1 kernel computes at the chip's flash1 efficiency, any
    other at the GEMM efficiency; a chip without one (V100 borrows A100's fit: it has it)."""
    from simcluster.sim.kernel_names import family_codes, kernel_family
    assert [kernel_family(n) for n in ("L0.bwd.attn.fa1", "fmha_fwd_loop_kernel",
                                       "L0.fwd.attn", "flash_bwd_dq_dk_dv_loop_kernel")] == [
        "flash1", "flash1", "", "attention"]
    model = ComputeModel()
    flops, nbytes = np.array([1e13]), np.array([0.0])
    peak = A100.peak_tflops["bf16"] * 1e6
    fa1 = model.roofline_us(flops, nbytes, "bf16", A100, "flash1")[0]
    gemm = model.roofline_us(flops, nbytes, "bf16", A100)[0]
    assert fa1 == pytest.approx(9.0 + 1e13 / (peak * 0.52))
    assert gemm == pytest.approx(9.0 + 1e13 / (peak * 0.805))
    # Through the simulator's path: per-op families from names.
    import pyarrow as pa
    fam, families = family_codes(pa.chunked_array([["L0.fwd.attn", "L0.fwd.attn.fa1"]]))
    assert fam.tolist() == [0, 1] and families[:2] == ["", "flash1"]
    out = resolve_durations(
        kind=np.array(["compute", "compute"]), recorded=np.full(2, np.nan),
        flops=np.full(2, 1e13), nbytes=np.zeros(2), comm_bytes=np.zeros(2),
        copy_kind=np.array(["", ""]), dtype_code=np.zeros(2, dtype=np.int64),
        dtype_names=["bf16"], spec_index=np.zeros(2, dtype=np.int64), specs=[A100],
        model=model, family_code=fam, family_names=families)
    assert out.tolist() == pytest.approx([gemm, fa1])


V100 = ACCELERATORS["V100-SXM2-32GB"]


def test_recorded_classes_fixed_times_are_cycles_at_the_chips_clock() -> None:
    """The A100-fitted fixed times of the recorded small-kernel classes are the same cycles
    at another chip's boost clock: x 1.41 / 1.53 on V100, x 1.41 / 1.98 on H100 SXM5; the
    A100 keeps them, and neither ``small`` nor GEMM fixed times move."""
    model = ComputeModel()
    assert model.calibration(A100, "elementwise").fixed_us == 3.75
    assert model.calibration(V100, "elementwise").fixed_us == pytest.approx(3.75 * 1.41 / 1.53)
    assert model.calibration(V100, "memset").fixed_us == pytest.approx(1.5 * 1.41 / 1.53)
    assert model.calibration(V100, "norm_2pass_fwd").fixed_us == pytest.approx(
        14.25 * 1.41 / 1.53)
    assert model.calibration(H100, "copy").fixed_us == pytest.approx(7.5 * 1.41 / 1.98)
    assert model.calibration(V100, "small").fixed_us == 3.75
    assert model.calibration(V100).fixed_us == 9.0
    assert model.calibration(V100, "reduction").memory_efficiency == 0.19
    # 4 kB of elementwise work on V100: the fixed cycles plus 4,000 B at 900 GB/s
    got = model.roofline_us(np.array([0.0]), np.array([4000.0]), "fp32", V100, "elementwise")
    assert got[0] == pytest.approx(3.75 * 1.41 / 1.53 + 4000 / 900e3)


def test_clock_ratio_is_one_for_a_chip_of_unknown_clock() -> None:
    from simcluster.sim.compute import at_clock, clock_ratio

    assert clock_ratio("A100-SXM4-40GB") == 1.0
    assert clock_ratio("MI250-GCD") == 1.0
    assert at_clock(A100_CALIBRATION, "MI250-GCD") is A100_CALIBRATION


def test_an_override_keeps_its_fixed_times_as_given() -> None:
    """A topology's ``compute:`` block (or ``simcluster calibrate``'s fit on a V100 trace)
    gives the V100's own fixed times: they are not rescaled again."""
    import dataclasses

    own = dataclasses.replace(A100_CALIBRATION, families=(("elementwise", "fixed_us", 1.0),))
    model = ComputeModel(overrides={V100.model: own})
    assert model.calibration(V100, "elementwise").fixed_us == 1.0

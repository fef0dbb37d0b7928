"""The compute model against recorded kernels: classes, predictions, the predict mode."""

from __future__ import annotations

import dataclasses

import pytest

import simcluster as sc
from simcluster.analysis.kernels import error_by_class, kernel_class, predicted_vs_recorded
from simcluster.sim.compute import ComputeModel, kernel_us
from simcluster.topology.catalog import lookup
from tests.conftest import workload

H100 = lookup("H100")


def _recorded(rows: list[dict]) -> sc.Workload:
    wl = workload(rows)
    return dataclasses.replace(wl, meta=dataclasses.replace(wl.meta, recorded_device=H100.model))


ROWS = [
    {"rank": 0, "kind": "compute", "name": "sm90_xmma_gemm_bf16", "duration_us": 100.0,
     "flops": 1e12, "bytes_accessed": 10**8, "dtype": "bf16"},
    {"rank": 0, "kind": "compute", "name": "void at::native::vectorized_elementwise_kernel<4>",
     "duration_us": 5.0,
     "bytes_accessed": 10**6, "dtype": "bf16"},
    {"rank": 0, "kind": "compute", "name": "no work", "duration_us": 7.0},
]


def _model_us(flops: float, nbytes: float, family: str = "") -> float:
    cal = ComputeModel().calibration(H100, family)
    return float(kernel_us([flops], [nbytes], H100.peak_flops_per_us("bf16"),
                           H100.hbm_GBps * 1e3, cal)[0])


def test_classes_follow_the_names() -> None:
    assert [kernel_class(n) for n in ("Cijk_Alik_Bljk_SB", "cudnn::bn_fw_tr_1C11",
                                      "reduce_kernel<512>", "some_custom_op")] == [
        "gemm", "norm", "reduction", "other"]


def test_predicted_vs_recorded_uses_the_model_on_the_recording_device() -> None:
    pairs = predicted_vs_recorded(_recorded(ROWS), H100).to_pylist()
    assert [p["class"] for p in pairs] == ["gemm", "elementwise"]  # "no work" left out
    assert pairs[0]["predicted_us"] == pytest.approx(_model_us(1e12, 1e8))
    # An elementwise kernel: its class's fixed time (3.75 us fitted at the A100's 1.41 GHz,
    # the same cycles at the H100's 1.98 GHz; not a GEMM's 6.25 us) and the full HBM
    # bandwidth (3,350 GB/s, where a GEMM's bytes move at 0.866 of it).
    assert pairs[1]["predicted_us"] == pytest.approx(_model_us(0, 1e6, "elementwise"))
    assert pairs[1]["predicted_us"] == pytest.approx(3.75 * 1.41 / 1.98 + 1e6 / 3350e3)
    assert pairs[1]["error"] == pytest.approx((pairs[1]["predicted_us"] - 5.0) / 5.0)
    table = error_by_class(predicted_vs_recorded(_recorded(ROWS), H100)).to_pylist()
    assert table[-1]["class"] == "all" and table[-1]["kernels"] == 2
    assert table[-1]["recorded_us"] == 105.0


def test_predict_kernels_replaces_recorded_durations_that_the_model_can_predict() -> None:
    wl = _recorded(ROWS)
    cluster = sc.Scenario(wl).target()[0]
    as_recorded = sc.Scenario(wl, cluster).run()
    predicted = sc.Scenario(wl, cluster, predict_kernels=True).run()
    assert as_recorded.step_time_us == pytest.approx(112.0)
    assert predicted.step_time_us == pytest.approx(
        _model_us(1e12, 1e8) + _model_us(0, 1e6, "elementwise") + 7.0)


def test_real_a100_gemms_and_small_kernels_come_closer(shared_data) -> None:
    """On the recorded A100 trace with the most GEMMs, tile and wave quantisation (with
    split-K) lowers the GEMMs' bias (too fast without it; with split-K less so); on
    the one with the most small kernels,
    the recorded classes' own parameters lower their per-kernel error (the earlier model:
    one fixed time for every small kernel)."""
    import numpy as np
    import pyarrow.compute as pc

    from simcluster.sim.compute import A100_CALIBRATION, CALIBRATIONS

    wl = sc.load_workload(shared_data / "kineto" / "single-rank" / "sampled-128rank-rank0.json.gz")
    spec = lookup(wl.meta.recorded_device)
    no_shapes = dataclasses.replace(wl, ops=wl.ops.drop_columns(["gemm_shape"]))
    earlier = ComputeModel(calibrations={**CALIBRATIONS, "A100": dataclasses.replace(
        A100_CALIBRATION, families=(("small", "fixed_us", 3.75),))})

    def errors(pairs, cls: str) -> np.ndarray:
        return pairs.filter(pc.equal(pairs.column("class"), cls)).column("error").to_numpy()

    def mape(pairs, cls: str) -> float:
        return float(np.abs(errors(pairs, cls)).mean())

    now = predicted_vs_recorded(wl, spec)
    without = errors(predicted_vs_recorded(no_shapes, spec), "gemm").mean()
    assert without < -0.2 and abs(errors(now, "gemm").mean()) < abs(without)
    wl = sc.load_workload(shared_data / "kineto" / "single-rank" /
                          "a100-16rank-rank0-5streams.json.gz")
    now, before = predicted_vs_recorded(wl, spec), predicted_vs_recorded(wl, spec, earlier)
    for cls in ("memset", "reduction", "copy", "elementwise"):
        assert mape(now, cls) < mape(before, cls), cls

"""``simcluster calibrate TRACE``: the compute model fitted on recorded kernels. A synthetic
trace whose durations come from known parameters gives them back; what a trace cannot
identify is said so; the calibrated topology loads and predicts what the report says; bad
traces end with exit 2, a message naming the file, and no output."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from simcluster.analysis.kernels import predicted_vs_recorded
from simcluster.sim.compute import A100_CALIBRATION, ComputeModel, kernel_us, overrides_for
from simcluster.topology import load_cluster
from simcluster.topology.catalog import lookup
from simcluster.workload.model import OPS_SCHEMA, WorkloadMeta
from simcluster.workload.native import write_workload
from simcluster.workload.validate import make_workload
from tests.cli.test_cli import _run
from tests.conftest import ROOT

A100_TOPO = ROOT / "topologies" / "azure-nd-a100-v4.yaml"
A100 = lookup("A100-SXM4-80GB")
TRUTH = {"gemm_efficiency": 0.7, "fixed_us": 6.0, "families.small.fixed_us": 2.0,
         "memory_efficiency": 0.85, "families.attention.gemm_efficiency": 0.6}


def _truth_calibration():
    from dataclasses import replace
    return replace(A100_CALIBRATION, gemm_efficiency=0.7, fixed_us=6.0, memory_efficiency=0.85,
                   families=(("small", "fixed_us", 2.0), ("attention", "gemm_efficiency", 0.6)))


def _kernels(gemm_sizes: np.ndarray, small_bytes: np.ndarray, attn_flops: np.ndarray
             ) -> list[tuple[str, float, float]]:
    """(name, flops, bytes) of GEMMs (m = n = k), elementwise kernels and attention kernels."""
    out = [("sm80_xmma_gemm_bf16bf16_bf16f32", 2.0 * s**3, 2.0 * 3 * s * s)
           for s in gemm_sizes]
    out += [("void at::native::vectorized_elementwise_kernel<4>", 0.0, float(b))
            for b in small_bytes]
    out += [("flash_fwd_kernel", float(f), f / 200.0) for f in attn_flops]
    return out


def synthetic_trace(path: Path, kernels: list[tuple[str, float, float]], steps: int = 2,
                    device: str = "A100-SXM4-80GB", cal=None) -> Path:
    """A native workload of ``steps`` identical steps whose recorded durations are the
    compute model's under ``cal`` (default: :data:`TRUTH`), written at ``path``."""
    cal = cal or _truth_calibration()
    rows = []
    for step in range(steps):
        for name, flops, nbytes in kernels:
            fam = ("attention" if name.startswith("flash") else
                   "small" if "elementwise" in name else "")
            t = kernel_us(np.array([flops]), np.array([nbytes]), A100.peak_flops_per_us("bf16"),
                          A100.hbm_GBps * 1e3, cal.for_family(fam))[0]
            rows.append({"rank": 0, "op_id": len(rows), "name": name, "kind": "compute",
                         "stream": "s", "duration_us": float(t), "flops": flops or None,
                         "bytes_accessed": int(nbytes), "dtype": "bf16", "step": step})
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in OPS_SCHEMA} for r in rows],
                                 schema=OPS_SCHEMA)
    wl = make_workload(table, {}, WorkloadMeta(name="synthetic", world_size=1,
                                               recorded_device=device))
    write_workload(wl, path)
    return path


@pytest.fixture(scope="module")
def rich_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kernels = _kernels(np.geomspace(256, 8192, 30).round(), np.geomspace(1e3, 2e9, 40),
                       np.geomspace(1e9, 1e13, 15))
    return synthetic_trace(tmp_path_factory.mktemp("rich") / "trace.parquet", kernels)


def test_known_parameters_are_recovered(rich_trace: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "calibrated.yaml"
    code, stdout, _ = _run(capsys, "calibrate", str(rich_trace), "-t", str(A100_TOPO),
                           "-o", str(out), "--json")
    assert code == 0
    report = json.loads(stdout)["compute"][0]
    assert report["model"] == "A100-SXM4-80GB"
    fitted = {p["name"]: p["after"] for p in report["parameters"] if p["status"] == "fitted"}
    assert set(fitted) == set(TRUTH)
    for name, value in TRUTH.items():
        assert fitted[name] == pytest.approx(value, abs=0.02 if name.endswith("_us") else 2e-3)
    flash1 = next(p for p in report["parameters"] if p["name"].startswith("families.flash1"))
    assert flash1["status"] == "not identifiable" and "no FlashAttention 1" in flash1["reason"]
    # The last step is held out and predicted as well as the fitted one.
    held = next(c for c in report["classes"] if c["held_out"] and c["label"] == "all")
    assert held["kernels"] == 85 and held["mape_after"] < 2e-3 < held["mape_before"]


def test_the_calibrated_topology_predicts_what_was_reported(rich_trace: Path, tmp_path: Path,
                                                           capsys) -> None:
    """The YAML round trip: the written compute: block gives the fitted values, and the
    compute model on the loaded topology predicts the kernels as the report did."""
    out = tmp_path / "out" / "calibrated.yaml"
    code, stdout, _ = _run(capsys, "calibrate", str(rich_trace), "-t", str(A100_TOPO),
                           "-o", str(out), "--json")
    assert code == 0
    report = json.loads(stdout)["compute"][0]
    cluster = load_cluster(out)
    model = ComputeModel(overrides=overrides_for(cluster.compute))
    cal = model.calibration(A100)
    assert cal.gemm_efficiency == next(p["after"] for p in report["parameters"]
                                       if p["name"] == "gemm_efficiency")
    from simcluster.workload import load_workload
    pairs = predicted_vs_recorded(load_workload(rich_trace), A100, model)
    after = sum(c["after_us"] for c in report["classes"] if c["label"] == "all")
    assert float(np.sum(pairs.column("predicted_us").to_numpy())) == pytest.approx(after,
                                                                                   rel=1e-9)
    text = out.read_text()
    assert text.startswith("# Compute model of A100-SXM4-80GB calibrated by `simcluster "
                           "calibrate` on trace.parquet")
    assert "# One Azure ND A100 v4 VM" in text  # the input's own comments follow
    assert cluster.network.host_launch_us == 44.0  # the rest as it was
    # The same input gives the same bytes.
    again = tmp_path / "again.yaml"
    assert _run(capsys, "calibrate", str(rich_trace), "-t", str(A100_TOPO), "-o",
                str(again))[0] == 0
    assert again.read_text().split("\nname:", 1)[1] == text.split("\nname:", 1)[1]


def test_what_a_trace_cannot_identify_is_kept_and_said(tmp_path: Path, capsys) -> None:
    """GEMMs of one size cannot tell efficiency from fixed time; tiny elementwise kernels
    say nothing of HBM bandwidth; three attention kernels are too few."""
    kernels = _kernels(np.full(20, 1024.0), np.full(30, 4096.0), np.geomspace(1e9, 1e12, 3))
    trace = synthetic_trace(tmp_path / "poor.parquet", kernels)
    code, stdout, _ = _run(capsys, "calibrate", str(trace), "-t", str(A100_TOPO), "--json")
    assert code == 0
    params = {p["name"]: p for p in json.loads(stdout)["compute"][0]["parameters"]}
    assert params["fixed_us"]["status"] == "not identifiable"
    assert "confounded with gemm_efficiency" in params["fixed_us"]["reason"]
    # The efficiency takes up what the held fixed time (9 us, truth 6) leaves: at its bound.
    assert params["gemm_efficiency"]["status"] in ("fitted", "at bound")
    assert params["memory_efficiency"]["status"] == "not identifiable"
    assert "memory-bound" in params["memory_efficiency"]["reason"]
    assert "only 3 attention kernels" in params["families.attention.gemm_efficiency"]["reason"]
    for p in params.values():
        if p["status"] == "not identifiable":
            assert p["after"] == p["before"]
    code, text, _ = _run(capsys, "calibrate", str(trace), "-t", str(A100_TOPO))
    assert code == 0 and "not identifiable: confounded" in text.replace("\n", " ")


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    trunc = tmp / "truncated.json.gz"
    full = json.dumps({"traceEvents": [{"ph": "X", "name": "k", "ts": 1, "dur": 2}] * 50})
    trunc.write_bytes(gzip.compress(full.encode())[:60])
    foreign = tmp / "foreign.json"
    foreign.write_text('{"hello": "world"}')
    no_work = tmp / "no_work.parquet"
    synthetic_trace(no_work, [("vectorized_elementwise_kernel", 0.0, 0.0)])
    h100 = synthetic_trace(tmp / "h100.parquet", _kernels(np.full(3, 512.0), np.full(3, 1e6),
                                                           np.array([])), device="H100")
    odd = synthetic_trace(tmp / "odd.parquet", _kernels(np.full(3, 512.0), np.full(3, 1e6),
                                                         np.array([])), device="Z9000-GPU")
    return {"missing": (tmp / "nope.json.gz", "nope.json.gz: cannot be read"),
            "truncated": (trunc, "truncated.json.gz: cannot be read"),
            "foreign": (foreign, "foreign.json: cannot be read"),
            "no work": (no_work, "no kernel carries FLOPs or bytes"),
            "other GPU": (h100, ("recorded on H100-SXM5-80GB, but azure-nd-a100-v4 has "
                                 "A100-SXM4-80GB")),
            "unknown GPU": (odd, "'Z9000-GPU', which is not in the catalog")}


@pytest.mark.parametrize("case", ["missing", "truncated", "foreign", "no work", "other GPU",
                                  "unknown GPU"])
def test_bad_traces_exit_2_naming_the_file_with_no_output(tmp_path: Path, capsys,
                                                          case: str) -> None:
    path, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "calibrated.yaml"
    code, stdout, stderr = _run(capsys, "calibrate", str(path), "-t", str(A100_TOPO),
                                "-o", str(out))
    assert code == 2
    assert message in " ".join((stdout + stderr).split())
    assert not out.exists()


def test_check_traces_are_held_out_and_a_single_step_is_fitted(
        rich_trace: Path, tmp_path: Path, capsys) -> None:
    single = synthetic_trace(tmp_path / "one.parquet",
                             _kernels(np.geomspace(256, 8192, 12).round(), np.array([1e6]),
                                      np.array([])), steps=1)
    code, stdout, _ = _run(capsys, "calibrate", str(single), "--check", str(rich_trace),
                                "-t", str(A100_TOPO), "--json")
    assert code == 0  # one step: nothing held out of it, the --check trace is
    report = json.loads(stdout)["compute"][0]
    held = {c["label"] for c in report["traces"] if c["held_out"]}
    assert held == {str(rich_trace)}
    # Without a trace to fit on, --check alone is an error.
    code, _, _ = _run(capsys, "calibrate", "--check", str(rich_trace), "-t", str(A100_TOPO))
    assert code != 0


def test_real_a100_trace_fit_and_held_out_check(shared_data: Path, tmp_path: Path) -> None:
    """Fit on the 16-rank A100 trace, check on the 128-rank one (both A100-SXM4-80GB): the
    GEMM and small-kernel parameters are identified, attention is not (no such kernels), the
    fitted kernels' summed time moves closer to the recording, and a replay with predicted
    kernels on the calibrated topology gets the fitted trace's GPU compute time closer."""
    import pyarrow.compute as pc

    import simcluster as sc
    from simcluster.analysis import hta
    from simcluster.calibrate.compute import calibrate_compute, read_traces
    from simcluster.calibrate.kernel_output import compute_yaml
    from simcluster.calibrate.kernel_quality import by_class

    one = shared_data / "kineto" / "single-rank"
    fit_on = one / "a100-16rank-rank0-5streams.json.gz"
    fits = calibrate_compute(load_cluster(A100_TOPO), read_traces(
        [fit_on], [one / "sampled-128rank-rank0.json.gz"]))
    (fit,) = fits
    status = {p.knob.name: p.status for p in fit.params}
    # Its 15 aligned GEMMs run on TF32 tensor cores and are short: their time is mostly
    # fixed time and partial waves; neither the efficiency nor the fixed time is fitted
    # inside its range (the align1 GEMMs have an efficiency of their own, not fitted here).
    assert status["families.small.fixed_us"] == "fitted"
    assert status["fixed_us"] in ("fitted", "at bound")
    assert status["gemm_efficiency"] in ("not identifiable", "at bound")
    assert status["families.attention.gemm_efficiency"] == "not identifiable"
    everything = {(s.label, s.held_out): s for s in by_class(fit)}
    fitted = everything[("all", False)]
    assert abs(fitted.time_error_after) < abs(fitted.time_error_before)
    assert fit.objective_after < fit.objective_before
    out = tmp_path / "calibrated.yaml"
    out.write_text(compute_yaml(A100_TOPO, fits, out))

    def compute_error(topology: Path) -> float:
        result = sc.replay(fit_on, topology, predict_kernels=True)
        assert result.recorded is not None
        sim, rec = (float(pc.sum(hta.temporal_breakdown(r).column("compute_us")).as_py())
                    for r in (result.run, result.recorded))
        return sim / rec - 1.0

    assert abs(compute_error(out)) < abs(compute_error(A100_TOPO))

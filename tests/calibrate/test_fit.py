"""Calibration recovers known parameters from logs the simulator wrote, says which it cannot
identify and why, and predicts what nccl-tests (and the simulator) would measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simcluster.calibrate as cal
from simcluster import collective_perf
from simcluster.calibrate.optimise import minimise
from simcluster.errors import CalibrationError
from simcluster.topology import load_cluster
from tests.calibrate.synthetic import simulated_log, truth_topology
from tests.conftest import ROOT

TOPOLOGIES = ROOT / "topologies"
SIZES = [2**k for k in range(3, 35)]  # 8 B to 16 GiB, as the DGX H100 log


def _recover(tmp_path: Path, base: str, truth: dict[str, Any], ranks: int, per_host: int,
             **options: Any) -> cal.Calibration:
    """Write a log of ``truth`` on ``base`` with the simulator, then calibrate ``base``."""
    topo = truth_topology(TOPOLOGIES / base, truth, tmp_path / "truth.yaml")
    log = simulated_log(topo, ranks, per_host, SIZES, tmp_path / "log.txt")
    return cal.calibrate(load_cluster(TOPOLOGIES / base), [cal.read_log(log)], **options)


def _params(result: cal.Calibration) -> dict[str, cal.Fitted]:
    return {p.knob.name: p for p in result.params}


def test_the_prediction_is_the_simulators(tmp_path: Path) -> None:
    cluster = load_cluster(TOPOLOGIES / "h100-2node.yaml")
    for collective in ("all_reduce", "all_gather", "broadcast"):
        rows = collective_perf.run(cluster, collective, SIZES[::5], ranks=16)
        curve = cal.Curve("x", collective, 16, tuple(cal.Point(s, 1.0, 1.0) for s in SIZES[::5]))
        (pred,) = cal.Predictor(cluster, [curve]).predict(cluster.network, labels=True)
        assert pred.time_us == pytest.approx([r.time_us for r in rows], rel=1e-12)
        assert list(pred.labels) == [r.algorithm for r in rows]


def test_one_server_recovers_nvls_and_the_host_launch_cost(tmp_path: Path) -> None:
    truth = {"nvls_efficiency": 0.70, "nvls_base_latency_us": 30.0, "host_launch_us": 25.0}
    result = _recover(tmp_path, "dgx-h100.yaml", truth, 8, 8)
    p = _params(result)
    for name, value in truth.items():
        assert p[name].status == cal.FITTED
        assert p[name].after == pytest.approx(value, rel=2e-3), name
        assert p[name].interval[0] <= p[name].after <= p[name].interval[1]
    # The NVLS plateau fixes NVLink x NVLS efficiency only: NVLink's is held.
    assert p["link_efficiency.nvlink"].status == cal.NOT_IDENTIFIABLE
    assert "confounded with nvls_efficiency" in p["link_efficiency.nvlink"].reason
    # NVLS and LL win every size: Simple's ring overhead moves nothing; LL128, never chosen
    # in the truth, keeps its value.
    assert "changes no predicted time" in p["protocol_overhead_us.Simple"].reason
    assert p["protocol_overhead_us.LL128"].after == 300.0
    assert "no log here crosses servers" in p["net_step_latency_scale"].reason
    assert result.objective_after < 0.01 and result.objective_before > 1.0
    assert result.network.nvls_efficiency == p["nvls_efficiency"].after


def test_one_server_without_nvls_recovers_nvlink_and_simple(tmp_path: Path) -> None:
    truth = {"link_efficiency": {"nvlink": 0.70}, "host_launch_us": 25.0,
             "protocol_overhead_us": {"LL": 0.0, "LL128": 300.0, "Simple": 40.0}}
    p = _params(_recover(tmp_path, "azure-nd-a100-v4.yaml", truth, 8, 8))
    assert p["link_efficiency.nvlink"].after == pytest.approx(0.70, rel=2e-3)
    assert p["protocol_overhead_us.Simple"].after == pytest.approx(40.0, rel=2e-3)
    assert p["host_launch_us"].after == pytest.approx(25.0, rel=2e-3)
    assert "changes no predicted time" in p["nvls_efficiency"].reason  # an A100 has no NVLS


def test_two_servers_recover_the_network_efficiency_and_latency(tmp_path: Path) -> None:
    # NVLS off in the truth and the calibrated topology: rings and trees carry the data. With
    # NVLS-tree a candidate (16 H100s on 2 servers), the search stops in a local minimum
    # (host launch 19.3 us and network scale 5.5 for 60 and 3; objective 2.28 for 0).
    base = truth_topology(TOPOLOGIES / "h100-2node.yaml", {"nvls": False}, tmp_path / "b.yaml")
    truth = {"link_efficiency": {"ib": 0.80}, "net_step_latency_scale": 3.0,
             "host_launch_us": 60.0, "nvls": False}
    result = _recover(tmp_path, str(base), truth, 16, 8)
    p = _params(result)
    assert p["link_efficiency.ib"].after == pytest.approx(0.80, rel=2e-3)
    assert p["net_step_latency_scale"].after == pytest.approx(3.0, rel=2e-3)
    assert p["host_launch_us"].after == pytest.approx(60.0, rel=2e-3)
    for name in ("link_efficiency.nvlink", "nvls_efficiency", "protocol_overhead_us.Simple"):
        assert p[name].status == cal.NOT_IDENTIFIABLE
        assert "every log here crosses servers" in p[name].reason
    assert result.servers == (2,)


def test_a_hidden_host_launch_cost_keeps_its_value(tmp_path: Path) -> None:
    # 25 us is under the device time of the smallest sizes on two servers: no size shows it,
    # so the current 19.3 us fits as well and stays; the interval holds both.
    truth = {"link_efficiency": {"ib": 0.80}, "net_step_latency_scale": 3.0,
             "host_launch_us": 25.0}
    p = _params(_recover(tmp_path, "h100-2node.yaml", truth, 16, 8))["host_launch_us"]
    assert p.after == p.before == 19.3
    assert p.interval[0] <= 19.3 and p.interval[1] >= 25.0


def test_an_all_gather_log_tells_nvlink_from_nvls(tmp_path: Path) -> None:
    # all_gather runs rings on NVLink, all_reduce NVLS: together they identify both.
    truth = {"link_efficiency": {"nvlink": 0.70}, "nvls_efficiency": 0.70,
             "nvls_base_latency_us": 30.0, "host_launch_us": 25.0}
    topo = truth_topology(TOPOLOGIES / "dgx-h100.yaml", truth, tmp_path / "truth.yaml")
    logs = [simulated_log(topo, 8, 8, SIZES[7::2], tmp_path / f"{c}.log", collective=c)
            for c in ("all_reduce", "all_gather")]
    result = cal.calibrate(load_cluster(TOPOLOGIES / "dgx-h100.yaml"),
                           [cal.read_log(log) for log in logs])
    p = _params(result)
    assert p["link_efficiency.nvlink"].after == pytest.approx(0.70, rel=2e-3)
    assert p["nvls_efficiency"].after == pytest.approx(0.70, rel=2e-3)
    assert [c.curve.collective for c in result.curves] == ["all_reduce", "all_gather"]


def test_held_out_sizes_are_predicted_not_fitted(tmp_path: Path) -> None:
    truth = {"nvls_efficiency": 0.70, "nvls_base_latency_us": 30.0, "host_launch_us": 25.0}
    result = _recover(tmp_path, "dgx-h100.yaml", truth, 8, 8, fit_sizes=(1024, 2**28))
    (fit,) = result.curves
    assert fit.held_out.tolist() == [s < 1024 or s > 2**28 for s in SIZES]
    assert not (fit.fitted & fit.held_out).any()
    held = fit.stats(cal.BANDS[3], held_out=True)  # >= 1 GiB, all held out
    assert held is not None and held.points == 5
    assert held.mape_after < 0.5 < held.mape_before
    assert fit.stats(cal.BANDS[3], held_out=False) is None


def test_two_systems_share_physics_and_keep_their_host_costs(tmp_path: Path) -> None:
    systems = []
    for k, (base, host) in enumerate((("dgx-h100.yaml", 25.0), ("azure-nd-h100-v5.yaml", 40.0))):
        topo = truth_topology(TOPOLOGIES / base, {"nvls_efficiency": 0.70,
                                                  "nvls_base_latency_us": 30.0,
                                                  "host_launch_us": host},
                              tmp_path / f"truth{k}.yaml")
        log = simulated_log(topo, 8, 8, SIZES[7:], tmp_path / f"log{k}.txt")
        systems.append((load_cluster(TOPOLOGIES / base), [cal.read_log(log)]))
    first, second = cal.calibrate_systems(systems)
    for result, host in ((first, 25.0), (second, 40.0)):
        p = _params(result)
        assert p["nvls_efficiency"].shared and p["nvls_efficiency"].after == pytest.approx(
            0.70, rel=2e-3)
        assert not p["host_launch_us"].shared
        assert p["host_launch_us"].after == pytest.approx(host, rel=2e-3)
    assert first.evaluations == second.evaluations > 0


def test_no_fitted_size_is_an_error(tmp_path: Path) -> None:
    curve = cal.Curve("tiny.log", "all_reduce", 8, (cal.Point(64, 10.0, 0.01, 40),))
    with pytest.raises(CalibrationError, match=r"no measured size of tiny.log lies in a "
                       r"fitted band"):
        cal.calibrate(load_cluster(TOPOLOGIES / "dgx-h100.yaml"), [curve])


def test_the_search_is_deterministic_and_stays_in_bounds() -> None:
    calls: list[np.ndarray] = []

    def f(x: np.ndarray) -> float:
        calls.append(x.copy())
        return float(abs(x[0] - 5.0) + (x[1] + 1.0) ** 2)

    lo, hi = np.array([0.0, 0.0]), np.array([4.0, 3.0])
    a = minimise(f, np.array([1.0, 2.0]), lo, hi)
    b = minimise(f, np.array([1.0, 2.0]), lo, hi)
    assert a.x.tolist() == b.x.tolist() == [4.0, 0.0]  # the optimum is outside: its corner
    assert all((lo <= x).all() and (x <= hi).all() for x in calls)


def test_an_rccl_cluster_starts_from_rccls_per_call_costs() -> None:
    """On AMD parts the collective library is RCCL, which drops the NVIDIA-fitted host launch
    (19.3 us) and Simple overhead (86.3 us): the calibration starts from, and reports, the
    values the simulation used (0), not the schema's defaults."""
    log = ROOT / "bench" / "data" / "published" / "nccl" / "aac_mi300x_1node_8gpu_allreduce.txt"
    result = cal.calibrate(load_cluster(TOPOLOGIES / "mi300x-8gpu.yaml"), [cal.read_log(log)])
    params = _params(result)
    assert params["host_launch_us"].before == 0.0
    assert params["protocol_overhead_us.Simple"].before == 0.0
    assert params["link_efficiency.nvlink"].before == 0.711

"""Failed, flapping and scaled elements and hardware parameters as sweep axes
(``sweep/elements.py``, ``sweep/point.py``): exact rows on a k = 4 fat-tree, the same step
times as ``sc.replay`` and ``replay --fail``, and bad what-ifs refused before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import simcluster as sc
from simcluster.sweep import SweepError, load_sweep, run_sweep
from simcluster.sweep.point import DEGRADATION_COLUMNS, evaluate_point
from simcluster.workload.native import write_workload
from tests.cli.test_cli import _run as _cli
from tests.sim.test_interference import overlapped, sms_topology
from tests.test_degradation import _files
from tests.topology.test_transform import UPLINK

NIC = "n0/nic0"
AGG1 = "fabric/pod0-agg1"


def _spec(tmp_path: Path, ranks: int = 0, **doc: Any) -> Path:
    """A sweep over the two 1 GB sends n0 -> n2, n1 -> n3 on ``fat_tree_k4`` (or an
    all-reduce over ``ranks`` ranks): healthy, each flow has its own uplink, 40,000 us."""
    trace, topo = _files(tmp_path, ranks)
    base = {"topology": topo, "workload": {"trace": trace}, **doc.pop("base", {})}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": base, **doc}, sort_keys=False))
    return path


def _rows(path: Path, out: Path) -> list[dict[str, Any]]:
    sweep = load_sweep(path)
    out.mkdir(exist_ok=True)
    return [evaluate_point(p.id, p.values, sweep.spec.base.document(), str(sweep.folder),
                           str(out)) for p in sweep.points]


POINTS = [  # values, step time, healthy step time (us)
    # Healthy: 40 ms.
    ({"fail": []}, 40_000.0, 40_000.0),
    # The uplink edge0 -> agg0 down: both flows share edge0 -> agg1, 12.5 GB/s each: 80 ms.
    ({"fail": [UPLINK]}, 80_000.0, 40_000.0),
    # n0's NIC down half the time: 12.5 GB/s on average, n0's flow takes 80 ms.
    ({"fail": [], f"flap.{NIC}": 0.5}, 80_000.0, 40_000.0),
    # Every NIC at 12.5 GB/s: 80 ms healthy, and the shared uplink (25 GB/s) costs nothing.
    ({"fail": [UPLINK], "hw.scale_out_GBps": 12.5}, 80_000.0, 80_000.0),
    # agg1's links at half: healthy, the flow through agg1 takes 80 ms; with agg0's uplink
    # down both share edge0 -> agg1 at 12.5 GB/s, 6.25 each: 160 ms.
    ({"fail": [UPLINK], f"scale_link.{AGG1}": 0.5}, 160_000.0, 80_000.0),
]


def test_points_give_the_hand_computed_step_times_and_the_healthy_baseline(
        tmp_path: Path) -> None:
    rows = _rows(_spec(tmp_path, mode="points", points=[v for v, _, _ in POINTS]),
                 tmp_path / "out")
    for row, (values, step, healthy) in zip(rows, POINTS):
        assert row["status"] == "ok", row["error"]
        assert (row["step_time_us"], row["healthy_step_us"]) == pytest.approx((step, healthy))
        assert row["degraded_slowdown"] == pytest.approx(step / healthy)
        assert row["fail"] == values["fail"]


def test_point_results_equal_the_api_and_the_cli_route(tmp_path: Path, capsys) -> None:
    rows = _rows(_spec(tmp_path, mode="points", points=[v for v, _, _ in POINTS]),
                 tmp_path / "out")
    trace, topo = str(tmp_path / "w.parquet"), str(tmp_path / "ft4.yaml")
    for row, (values, _, _) in zip(rows, POINTS):
        flap = {k[5:]: v for k, v in values.items() if k.startswith("flap.")}
        links = {k[11:]: v for k, v in values.items() if k.startswith("scale_link.")}
        hardware = {k[3:]: v for k, v in values.items() if k.startswith("hw.")}
        whatif = sc.WhatIf(scale_links=links, hardware=hardware, fail=tuple(values["fail"]),
                           flap=flap)
        api = sc.Scenario(sc.load_workload(trace), sc.load_cluster(topo), whatif=whatif).run()
        assert row["step_time_us"] == api.step_time_us  # exactly: one pipeline
        if not hardware:
            assert row["step_time_us"] == sc.replay(trace, topo, fail=values["fail"],
                                                    flap=flap, scale_links=links).step_time_us
    args = ["replay", trace, "-t", topo, "--fail", UPLINK, "--json"]
    code, out, _ = _cli(capsys, *args)
    cost = json.loads(out)["degradation"]
    assert code == 0 and (rows[1]["step_time_us"], rows[1]["healthy_step_us"],
                          rows[1]["degraded_slowdown"]) == (
        cost["degraded_step_us"], cost["healthy_step_us"], cost["slowdown"])


def test_base_what_ifs_apply_to_every_point_and_an_axis_overrides_them(
        tmp_path: Path) -> None:
    path = _spec(tmp_path, base={"fail": [UPLINK], "scale_link": {AGG1: 0.5}},
                 axes={"fail": [[], [UPLINK]]})
    rows = _rows(path, tmp_path / "out")
    ids = {p.id for p in load_sweep(path).points}
    # fail: [] overrides the base's failure; the base's scale_link stays (80 ms, see POINTS).
    assert [r[k] for r in rows for k in ("step_time_us", "healthy_step_us")] == pytest.approx(
        [80_000.0, 80_000.0, 160_000.0, 80_000.0])
    # A spec without what-ifs in its base keeps its point ids.
    plain = load_sweep(_spec(tmp_path, axes={"fail": [[], [UPLINK]]}))
    assert not {"fail", "flap", "scale_link", "hw"} & set(plain.spec.base.document())
    assert {p.id for p in plain.points}.isdisjoint(ids)


def test_a_sweep_writes_the_fail_lists_and_degradation_columns(tmp_path: Path,
                                                               dask_client) -> None:
    pytest.importorskip("distributed")
    path = _spec(tmp_path, axes={"fail": [[], [UPLINK]], f"flap.{NIC}": [0.0, 0.5]})
    out = tmp_path / "out"
    done = run_sweep(load_sweep(path), out, client=dask_client)
    assert (done.total, done.failed) == (4, 0)
    table = pq.read_table(out / "results.parquet")
    assert table.schema.field("fail").type.value_type == pa.string()
    assert set(DEGRADATION_COLUMNS) <= set(table.column_names)
    got = {(tuple(r["fail"]), r[f"flap.{NIC}"]): [r["step_time_us"], r["degraded_slowdown"]]
           for r in table.to_pylist()}
    want = {((), 0.0): [40_000.0, 1.0], ((UPLINK,), 0.0): [80_000.0, 2.0],
            ((), 0.5): [80_000.0, 2.0], ((UPLINK,), 0.5): [80_000.0, 2.0]}
    assert got.keys() == want.keys()
    assert all(got[k] == pytest.approx(want[k]) for k in want)


@pytest.mark.parametrize("doc, where, problem", [
    ({"axes": {"fail": [["n0/nic9"]]}}, "axes.fail", "fail 'n0/nic9' does not apply to topology"),
    ({"axes": {"fail": ["n0/nic0"]}}, "axes.fail[0]", "is not a list of element names"),
    ({"axes": {"flap.n0/nic0": [0.5, 1.0]}}, "axes.flap.n0/nic0[1]",
     "1.0 is not a fraction in [0, 1)"),
    ({"axes": {"flap.fabric/nope": [0.1]}}, "axes.flap.fabric/nope",
     "flap 'fabric/nope' does not apply"),
    ({"axes": {"scale_link.n0--n9": [2.0]}}, "axes.scale_link.n0--n9",
     "scale_link 'n0--n9' does not apply"),
    ({"axes": {"hw.tflops": [100.0]}}, "axes.hw.tflops", "unknown hardware parameter 'tflops'"),
    ({"base": {"hw": {"hbm": 80}}, "axes": {"fail": [[]]}}, "base.hw.hbm",
     "unknown hardware parameter 'hbm'"),
    ({"base": {"flap": {"n0/nic0": -0.1}}, "axes": {"fail": [[]]}}, "base.flap.n0/nic0",
     "-0.1 is not a fraction"),
    ({"axes": {"hw.peak_tflops": [0]}}, "axes.hw.peak_tflops[0]", "0 is not a positive"),
    ({"axes": {"comm_sms": [16, -1]}}, "axes.comm_sms[1]", "-1 is not a number >= 0"),
    ({"axes": {"hw.scale_up_GBps": [900.0]}}, "axes.hw.scale_up_GBps",  # no NVLink in ft4
     "hw 'scale_up_GBps' does not apply to topology"),
    ({"axes": {"hw.scale_up_size": [2]}}, "axes.hw.scale_up_size",  # PCIe servers in ft4
     "hw 'scale_up_size' does not apply to topology"),
])
def test_bad_what_ifs_are_refused_naming_the_line_and_the_fix(
        tmp_path: Path, doc: dict[str, Any], where: str, problem: str) -> None:
    path = _spec(tmp_path, **doc)
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert f"{path}:" in str(err.value) and f": {where}: " in str(err.value)
    assert problem in str(err.value)


def test_a_comm_sms_axis_sets_the_sms_collectives_take(tmp_path: Path) -> None:
    # tests/sim/test_interference.py: 1,000 us of compute, a 400 us all-reduce from t=200 on
    # 100-SM GPUs: 1,000 us without interference, 1,080 with 20 SMs, 1,200 with 50.
    topo = tmp_path / "sms.yaml"
    topo.write_text(yaml.safe_dump(sms_topology(None)))
    trace = write_workload(overlapped(), tmp_path / "w.parquet")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": {"topology": str(topo),
                                             "workload": {"trace": str(trace)}},
                                    "axes": {"comm_sms": [0, 20, 50]}}))
    rows = _rows(path, tmp_path / "out")
    assert [r["step_time_us"] for r in rows] == pytest.approx([1000.0, 1080.0, 1200.0])


def test_a_partitioned_group_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    # n2's only NIC down: the all-reduce over n0..n3 can no longer reach n2.
    path = _spec(tmp_path, ranks=4, axes={"fail": [[], ["n2/nic0"]]})
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert ": axes.fail: group 'g' is partitioned with n2/nic0 down" in str(err.value)
    out = tmp_path / "out"
    code, _, stderr = _cli(capsys, "sweep", str(path), "--out", str(out))
    assert code == 2 and "partitioned" in stderr and "Traceback" not in stderr
    assert not out.exists()

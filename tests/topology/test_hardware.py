"""Hardware what-ifs: ``hardware_of`` reads a cluster's parameters, ``with_hardware`` sets
them, and a Scenario applies them like any other what-if."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from simcluster.errors import TopologyError
from simcluster.placement import bind
from simcluster.scenario import Scenario, WhatIf
from simcluster.sim import simulate
from simcluster.topology import load_cluster
from simcluster.topology.transform import hardware_of, with_hardware
from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel
from tests.conftest import TEST_ACCEL, servers, star, workload


def test_hardware_of_reads_the_built_parameters() -> None:
    # 2 servers x 4 test GPUs (100 TFLOP/s, 80 GiB, 1,000 GB/s), NVLink 400 GB/s per GPU,
    # one 25 GB/s NIC per GPU: 8 NIC links of 25 GB/s over 8 GPUs.
    assert hardware_of(servers(2, 4, nic_GBps=25.0)) == {
        "peak_tflops": 100.0, "hbm_GiB": 80.0, "hbm_GBps": 1000.0, "scale_up_GBps": 400.0,
        "scale_out_GBps": 25.0, "scale_up_size": 4}
    assert hardware_of(star(2))["scale_out_GBps"] == 0.0


def test_with_hardware_sets_specs_and_scales_links() -> None:
    c = servers(2, 4, nic_GBps=25.0)
    v = with_hardware(c, {"peak_tflops": 250.0, "hbm_GiB": 40.0, "hbm_GBps": 3000.0,
                          "scale_up_GBps": 800.0, "scale_out_GBps": 100.0})
    spec = v.specs[v.accelerators[5]]
    assert (spec.peak_tflops["bf16"], spec.hbm_GiB, spec.hbm_GBps, spec.nvlink_GBps) == (
        250.0, 40.0, 3000.0, 800.0)
    assert spec.model == c.specs[c.accelerators[5]].model  # keeps its chip's calibration
    roles = np.asarray(c.link_roles())
    ratio = v.bandwidth_Bpus / c.bandwidth_Bpus
    assert set(ratio[roles == "nvlink"]) == {2.0}
    assert set(ratio[roles == "nic"]) == {4.0}
    assert set(ratio[(roles != "nvlink") & (roles != "nic")]) == {1.0}
    assert hardware_of(v)["scale_out_GBps"] == 100.0
    assert hardware_of(c)["scale_out_GBps"] == 25.0  # the given cluster is unchanged


def test_with_hardware_errors() -> None:
    c = servers(1, 2)
    with pytest.raises(TopologyError, match="'tflops': use one of peak_tflops"):
        with_hardware(c, {"tflops": 2.0})
    with pytest.raises(TopologyError, match="hbm_GiB = 0.0: must be positive"):
        with_hardware(c, {"hbm_GiB": 0.0})
    with pytest.raises(TopologyError, match="scale_out_GBps: 'star2' has no such links"):
        with_hardware(star(2), {"scale_out_GBps": 50.0})


def test_halved_nic_bandwidth_doubles_a_nic_bound_transfer() -> None:
    # Ranks 0 and 4 are on different servers; their all-reduce of 1 GiB moves over the
    # NICs (25 GB/s, the slowest hop). Through the Scenario, the what-if halves it: the flows
    # take twice as long.
    rows = [{"rank": r, "kind": "collective" if r in (0, 4) else "host",
             "collective": "all_reduce" if r in (0, 4) else None,
             "comm_bytes": 2**30 if r in (0, 4) else None,
             "duration_us": None if r in (0, 4) else 0.0,
             "group": "g" if r in (0, 4) else None} for r in range(8)]
    wl = workload(rows, {"g": [0, 4]})
    c = servers(2, 4, nic_GBps=25.0)
    moving = [sum(r["end_us"] - r["start_us"] for r in run.flows.to_pylist()) for run in (
        simulate(bind(wl, c)), Scenario(wl, c, whatif=WhatIf(
            hardware={"scale_out_GBps": 12.5})).run().run)]
    assert moving[1] == pytest.approx(moving[0] * 2)


def test_a_hardware_whatif_is_the_transformed_cluster() -> None:
    wl = data_parallel(DataParallelConfig(ranks=4, dims=TransformerDims(layers=2)))
    c = servers(1, 4)
    hw = {"peak_tflops": 300.0, "hbm_GBps": 2000.0}
    assert Scenario(wl, c, whatif=WhatIf(hardware=hw)).run().step_time_us == simulate(
        bind(wl, with_hardware(c, hw))).makespan_us


def _rail_topology(tmp_path: Path, servers: int = 4, gpus: int = 4) -> Path:
    """``servers`` x ``gpus`` test GPUs on NVSwitch (400 GB/s), one 25 GB/s NIC per GPU,
    rail-optimized with 2 servers per scalable unit."""
    path = tmp_path / "rail.yaml"
    path.write_text(yaml.safe_dump({
        "name": "rail", "accelerator_models": {"T": {**TEST_ACCEL, "hbm_GiB": 80.0}},
        "nodes": [{"name": "n", "count": servers, "accelerator": "T", "accelerators": gpus,
                   "nvlink": {"bandwidth_GBps": 400.0},
                   "nics": {"count": gpus, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "rail-optimized", "nodes_per_leaf": 2},
        "network": {"latency_scale": 0.0}}))
    return path


def test_scale_up_size_rebuilds_the_servers_with_the_same_gpus_and_nics_per_gpu(
        tmp_path: Path) -> None:
    c = load_cluster(_rail_topology(tmp_path))
    leaves = {n for n in c.graph if "-rail" in n}
    assert len(leaves) == 2 * 4  # 2 scalable units of 2 servers, 4 rails
    v = with_hardware(c, {"scale_up_size": 8.0})
    # 2 servers of 8, a NIC per GPU (8 rails), 8 GPUs per scalable unit: 1 server each.
    assert len(v.accelerators) == 16 and v.host_of(v.accelerators[7]) == "n0"
    assert {v.host_of(a) for a in v.accelerators} == {"n0", "n1"}
    assert sum(v.kind_of(n) == "nic" for n in v.graph) == 16
    assert {n for n in v.graph if "-rail" in n} == {f"fabric/su{u}-rail{r}" for u in (0, 1)
                                                     for r in range(8)}
    assert hardware_of(v) == {**hardware_of(c), "scale_up_size": 8}
    assert hardware_of(c)["scale_up_size"] == 4  # the given cluster is unchanged


def test_scale_up_size_errors_name_the_sizes_that_would_do(tmp_path: Path) -> None:
    c = load_cluster(_rail_topology(tmp_path))
    with pytest.raises(TopologyError, match="has 16 accelerators with 4 NICs per 4; use a "
                       "size that divides them whole: 1, 2, 4, 8, 16."):
        with_hardware(c, {"scale_up_size": 3.0})
    with pytest.raises(TopologyError, match="scale_up_size = 0.0: must be positive"):
        with_hardware(c, {"scale_up_size": 0.0})
    with pytest.raises(TopologyError, match="'servers1x2' has no file"):
        with_hardware(servers(1, 2), {"scale_up_size": 1.0})


def test_a_larger_domain_takes_an_all_reduce_off_the_nics(tmp_path: Path) -> None:
    # 8 ranks over 2 servers of 4: the ring crosses the 25 GB/s NICs. In one domain of 8 it
    # stays on NVLink (400 GB/s), so it is faster and moves nothing over a NIC.
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce",
             "comm_bytes": 2**28, "group": "g"} for r in range(8)]
    wl = workload(rows, {"g": list(range(8))})
    c = load_cluster(_rail_topology(tmp_path))
    runs = [Scenario(wl, c, whatif=WhatIf(hardware=hw)).run() for hw in (
        {}, {"scale_up_size": 8.0})]
    nic = [sum(r["bytes"] for r in run.run.links.to_pylist() if r["kind"] == "ib")
           for run in runs]
    assert nic[0] > 0 and nic[1] == 0
    assert runs[1].step_time_us < runs[0].step_time_us

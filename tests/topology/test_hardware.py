"""Hardware what-ifs: ``hardware_of`` reads a cluster's parameters, ``with_hardware`` sets
them, and a Scenario applies them like any other what-if."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.errors import TopologyError
from simcluster.placement import bind
from simcluster.scenario import Scenario, WhatIf
from simcluster.sim import simulate
from simcluster.topology.transform import hardware_of, with_hardware
from simcluster.workload.generate import DataParallelConfig, TransformerDims, data_parallel
from tests.conftest import servers, star, workload


def test_hardware_of_reads_the_built_parameters() -> None:
    # 2 servers x 4 test GPUs (100 TFLOP/s, 80 GiB, 1,000 GB/s), NVLink 400 GB/s per GPU,
    # one 25 GB/s NIC per GPU: 8 NIC links of 25 GB/s over 8 GPUs.
    assert hardware_of(servers(2, 4, nic_GBps=25.0)) == {
        "peak_tflops": 100.0, "hbm_GiB": 80.0, "hbm_GBps": 1000.0, "scale_up_GBps": 400.0,
        "scale_out_GBps": 25.0}
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

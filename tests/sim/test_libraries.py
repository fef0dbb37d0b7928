"""The collective library registry (``sim/libraries.py``) and RCCL's tables (``sim/rccl.py``).

Expected values are RCCL's constants (ROCm/rccl 0cbce2a, src/graph/tuning.cc) and times
computed by hand from them on the bundled 8 x MI300X mesh: every pair of GPUs has one
Infinity Fabric link of 64 GB/s per direction, run at the topology's efficiency (0.711), so
45,504 B/us per link.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from simcluster.errors import TopologyError
from simcluster.sim.comm import CommModel
from simcluster.sim.libraries import (
    CollectiveLibrary,
    Profile,
    effective_network,
    library_for,
    library_names,
    registered_library,
)
from simcluster.sim.protocols import NCCL
from simcluster.sim.rccl import MODEL_0, MODEL_5
from simcluster.topology import Router, load_cluster
from simcluster.topology.catalog import DEFAULT_HOST_LAUNCH_US, DEFAULT_PROTOCOL_OVERHEAD_US
from simcluster.topology.transform import with_device
from tests.conftest import ROOT, cli_exit_2

LINK_BPUS = 64e3 * 0.711  # one Infinity Fabric link, per direction, bytes per us


def _model(cluster: object) -> CommModel:
    return CommModel(cluster, Router(cluster), cluster.accelerators,  # type: ignore[attr-defined]
                     {"g": tuple(range(8))})


def _yaml(tmp_path: Path, network: str, accelerator: str = "MI300X") -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nnodes:\n  - {{accelerator: {accelerator}, accelerators: 8, "
                    f"fabric: nvlink-mesh}}\n{network}", encoding="utf-8")
    return path


def test_rccl_tables_are_rccls_constants() -> None:
    assert library_names() == ("nccl", "rccl", "nccl-2.27")
    # baseLat {12, 12, 17}; tuning_model_5 NVLink ring {0.8, 0, 2.1}, NET ring Simple 320.
    assert [MODEL_5.base_latency_us("ring", q) for q in ("LL", "LL128", "Simple")] == [
        12.0, 12.0, 17.0]
    assert MODEL_5.step_latency_us("ring", "nvlink", "Simple") == 2.1
    assert MODEL_5.step_latency_us("ring", "net", "Simple") == 320.0
    assert MODEL_0.step_latency_us("tree", "net", "LL128") == 18.2
    # bwRatio: the row for <= 2 nodes, then the one for more.
    assert MODEL_5.bandwidth_factor("ring", "LL", "all_reduce", 1) == 0.08
    assert MODEL_5.bandwidth_factor("tree", "Simple", "all_reduce", 2) == 0.11
    assert MODEL_5.bandwidth_factor("tree", "Simple", "all_reduce", 3) == 0.59
    # No NCCL 1/3 case for other collectives under RCCL; NCCL keeps it.
    assert MODEL_5.bandwidth_factor("ring", "LL", "all_gather", 1) == 0.08
    assert NCCL.bandwidth_factor("ring", "LL", "all_gather", 1) == pytest.approx(1 / 3)
    # Rows RCCL lacks fall back to NCCL's (NVLS base 8.4), unknown tables to the ring's.
    assert MODEL_5.base_latency_us("nvls", "Simple") == 8.4
    assert NCCL.base_latency_us("msccl", "LL") == 6.6


def test_auto_follows_the_vendor_and_a_topology_can_name_one(tmp_path: Path) -> None:
    mi300x = load_cluster(ROOT / "topologies" / "mi300x-8gpu.yaml")
    assert library_for(mi300x).name == "rccl"
    assert library_for(with_device(mi300x, "H100")).name == "nccl"
    assert library_for(load_cluster(ROOT / "topologies" / "gaudi3-8.yaml")).name == "nccl"
    forced = load_cluster(_yaml(tmp_path, "network: {library: nccl}\n"))
    assert library_for(forced).name == "nccl"


def test_rccl_drops_the_nvidia_fitted_per_call_costs_unless_the_topology_sets_them(
        tmp_path: Path) -> None:
    net = effective_network(load_cluster(ROOT / "topologies" / "mi300x-8gpu.yaml"))
    assert (net.library, net.host_launch_us, net.protocol_overhead_us) == ("rccl", 0.0, {})
    own = effective_network(load_cluster(_yaml(tmp_path, "network: {host_launch_us: 9.5}\n")))
    assert (own.host_launch_us, own.protocol_overhead_us) == (9.5, {})
    nccl = effective_network(load_cluster(ROOT / "topologies" / "dgx-h100.yaml"))
    assert (nccl.library, nccl.host_launch_us, nccl.protocol_overhead_us) == (
        "nccl", DEFAULT_HOST_LAUNCH_US, DEFAULT_PROTOCOL_OVERHEAD_US)


def test_msccl_window_picks_allpairs_and_its_time_is_the_hand_computed_one() -> None:
    model = _model(load_cluster(ROOT / "topologies" / "mi300x-8gpu.yaml"))
    # 1 KiB: all-pairs/LL. Each of the 56 pair flows moves 2S/8 alone on its link at LL's
    # half bandwidth; base 12 us, 2 steps of 0.8 us.
    s = model.collective("g", "all_reduce", 1024)
    assert s.label == "allpairs/LL"
    assert s.estimate_us == pytest.approx(12.0 + 2 * 0.8 + 1024 * 0.25 / LINK_BPUS / 0.5)
    # The window's edges: LL to 524,287 B, Simple from 524,288 B to 16 MiB, then the tuner.
    assert model.collective("g", "all_reduce", 524_287).label == "allpairs/LL"
    s = model.collective("g", "all_reduce", 524_288)
    assert s.label == "allpairs/Simple"
    assert s.estimate_us == pytest.approx(17.0 + 2 * 2.1 + 524_288 * 0.25 / LINK_BPUS)
    assert model.collective("g", "all_reduce", 2**24).label == "allpairs/Simple"
    assert model.collective("g", "all_reduce", 2**24 + 1).label == "ring/Simple"


def test_the_tuner_compares_rccl_costs_where_no_window_applies() -> None:
    """On 4 of the 8 GPUs (no MSCCL window), ring LL (12 + 6 x 0.8 us, bandwidth x 0.08)
    against ring Simple (17 + 6 x 2.1 us): LL wins below the size where they cross."""
    cluster = load_cluster(ROOT / "topologies" / "mi300x-8gpu.yaml")
    model = CommModel(cluster, Router(cluster), cluster.accelerators, {"g": (0, 1, 2, 3)})
    small = model.collective("g", "all_reduce", 1024)
    assert small.label == "ring/LL" and small.fixed_us == 12.0
    unit = (small.estimate_us - 12.0 - 6 * 0.8) * 0.08 / 1024  # us per byte at full bandwidth
    cross = (17.0 + 6 * 2.1 - 12.0 - 6 * 0.8) / (unit / 0.08 - unit)
    assert model.collective("g", "all_reduce", int(cross) - 64).label == "ring/LL"
    big = model.collective("g", "all_reduce", int(cross) + 64)
    assert big.label == "ring/Simple" and big.fixed_us == 17.0
    # LL128 is off under RCCL even when asked for: the last allowed protocol runs.
    ll128 = replace(cluster, network=cluster.network.model_copy(update={"protocol": "LL128"}))
    forced = CommModel(ll128, Router(ll128), ll128.accelerators, {"g": (0, 1, 2, 3)})
    assert forced.collective("g", "all_reduce", 1024).protocol == "Simple"


def test_a_forced_algorithm_or_protocol_overrides_the_window() -> None:
    cluster = load_cluster(ROOT / "topologies" / "mi300x-8gpu.yaml")
    model = _model(cluster)
    assert model.collective("g", "all_reduce", 1024, algorithm="ring").label == "ring/LL"
    simple = cluster.network.model_copy(update={"protocol": "Simple"})
    assert _model(replace(cluster, network=simple)).collective(
        "g", "all_reduce", 1024).label == "ring/Simple"


def test_a_registered_library_is_chosen_by_name(tmp_path: Path) -> None:
    mine = CollectiveLibrary("mine", "NCCL's tables, Simple only", vendors=(),
                             profile=lambda specs: Profile(tables=NCCL, protocols=("Simple",)))
    with registered_library(mine):
        cluster = load_cluster(_yaml(tmp_path, "network: {library: mine}\n", "H100"))
        assert _model(cluster).collective("g", "all_reduce", 1024).protocol == "Simple"
    with pytest.raises(TopologyError, match="network.library"):
        load_cluster(_yaml(tmp_path, "network: {library: mine}\n", "H100"))


def test_an_unknown_library_is_exit_2_naming_the_field(tmp_path: Path, capsys) -> None:
    err = cli_exit_2(["collectives", "-t", str(_yaml(tmp_path, "network: {library: rcl}\n")),
                      "--json"], tmp_path / "none", capsys)
    assert "network.library" in err and "'nccl', 'rccl' or 'nccl-2.27'" in err

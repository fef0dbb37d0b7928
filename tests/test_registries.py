"""The registries together: a toy trace format, fabric and collective algorithm, each added
through its registry alone, run one job end to end; the registry mechanics; the docs list
what the registries hold."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from simcluster.errors import RegistryError, SimclusterError, TopologyError
from simcluster.placement import bind
from simcluster.registry import Registry
from simcluster.sim import registered_algorithm, simulate
from simcluster.sim.algorithms import algorithm_names
from simcluster.sim.libraries import library_names
from simcluster.topology import load_cluster, registered_fabric
from simcluster.topology.fabrics import fabric_names
from simcluster.workload import load_workload, registered_trace_format
from simcluster.workload.formats import trace_format_names
from tests.conftest import ROOT, TEST_ACCEL
from tests.toys import GATHER_SCATTER, LINE, OPSLINES

EXACT = {"nvlink": 1.0, "pcie": 1.0, "ib": 1.0, "memory": 1.0, "socket": 1.0}


@dataclass(frozen=True)
class _Rec:
    name: str
    value: int = 0


def test_toy_trace_on_toy_fabric_with_toy_algorithm(tmp_path: Path) -> None:
    # Three one-GPU servers on the line fabric (switches linked at 10 GB/s), one all_reduce
    # of S = 1e8 B with gather-scatter. Phase 1: ranks 1 and 2 send S to rank 0, both through
    # sw1 -> sw0 at 5e3 B/us each: 20,000 us. Phase 2: the mirror image through sw0 -> sw1.
    trace = tmp_path / "job.ops"
    trace.write_text("#opslines\n" + "".join(
        f"rank={r} kind=collective collective=all_reduce comm_bytes=100000000 group=all\n"
        for r in range(3)))
    topo = tmp_path / "line.yaml"
    topo.write_text(yaml.safe_dump({
        "name": "line3",
        "accelerator_models": {"T": TEST_ACCEL},
        "nodes": [{"name": "n", "count": 3, "accelerator": "T", "accelerators": 1,
                   "fabric": "pcie", "pcie": {"bandwidth_GBps": 100.0},
                   "nics": {"count": 1, "bandwidth_GBps": 50.0}}],
        "fabric": {"topology": "line", "spine_link": {"bandwidth_GBps": 10.0}},
        "network": {"algorithm": "gather-scatter", "collective_overhead_us": 0.0,
                    "latency_scale": 0.0, "link_efficiency": EXACT},
    }, sort_keys=False))
    with registered_trace_format(OPSLINES), registered_fabric(LINE), \
            registered_algorithm(GATHER_SCATTER):
        run = simulate(bind(load_workload(trace), load_cluster(topo)))
    assert run.makespan_us == pytest.approx(40_000.0, rel=1e-9)
    assert set(run.timeline["algorithm"].to_pylist()) == {"gather-scatter/Simple"}
    assert "line" not in fabric_names() and "gather-scatter" not in algorithm_names()
    assert "opslines" not in trace_format_names()
    with pytest.raises(TopologyError, match="fabric.topology: input should be"):
        load_cluster(topo)


def test_registry_keeps_order_and_replaces_in_place() -> None:
    reg = Registry[_Rec]("thing", SimclusterError)
    for name in "abc":
        reg.register(_Rec(name))
    with reg.registered(_Rec("b", 1), replace=True):
        assert reg.names() == ("a", "b", "c") and reg.get("b").value == 1
    assert reg.get("b").value == 0 and reg.names() == ("a", "b", "c")
    with reg.registered(_Rec("d")):
        assert reg.names() == ("a", "b", "c", "d")
    assert reg.names() == ("a", "b", "c")


def test_registry_errors() -> None:
    reg = Registry[_Rec]("thing", TopologyError)
    reg.register(_Rec("alpha"))
    with pytest.raises(RegistryError, match="a thing named 'alpha' is already registered"):
        reg.register(_Rec("alpha"))
    with pytest.raises(RegistryError, match="needs a non-empty name"):
        reg.register(_Rec(""))
    with pytest.raises(RegistryError, match="no thing named 'beta'"):
        reg.unregister("beta")
    with pytest.raises(TopologyError, match="unknown thing 'alph'; did you mean 'alpha'\\? "
                       "known things: alpha."):
        reg.get("alph")


def test_a_record_is_removed_even_when_the_block_fails() -> None:
    with pytest.raises(ValueError, match="boom"):
        with registered_fabric(LINE):
            raise ValueError("boom")
    assert "line" not in fabric_names()


def test_docs_list_every_built_in_algorithm_and_fabric() -> None:
    network = (ROOT / "docs" / "network.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| ([\w-]+) \|", network, re.MULTILINE))
    assert set(algorithm_names()) <= rows
    fabrics_section = network.split("## Fabrics", 1)[1]
    for name in fabric_names():
        assert f"**{name}**" in fabrics_section
    formats = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    assert f"# {' | '.join(fabric_names())}" in formats
    libraries = network.split("### Collective libraries", 1)[1].split("\n### ", 1)[0]
    assert f"`network.library: {' | '.join(library_names())}`" in libraries

"""The collective algorithm registry: a toy algorithm added through it alone runs end to end.

The toy (``tests/toys.py``) is an all_reduce where every rank sends its buffer to the first
rank and gets it back: on a star of ``p`` accelerators with links of ``B``, two phases of
``(p-1) S / B`` each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from simcluster.cli import main
from simcluster.errors import RegistryError, SimulationError, TopologyError
from simcluster.sim.algorithms import (
    algorithm_names,
    algorithms_for,
    register_algorithm,
    registered_algorithm,
    unregister_algorithm,
)
from simcluster.sim.protocols import BASE_LATENCY_US, STEP_LATENCY_US
from simcluster.topology import json_schema
from tests.conftest import replay, star, workload
from tests.toys import GATHER_SCATTER

GB = 10**9
BUILT_IN = ("ring", "tree", "hierarchical", "nvls", "nvls-tree", "collnet-direct",
            "collnet-chain", "torus", "allpairs", "chain", "direct", "pairwise")
NCCL_ONLY = {"protocol_overhead_us": {}, "step_latency_scale": {}}


def _all_reduce(p: int, size: int) -> object:
    return workload([{"rank": r, "kind": "collective", "collective": "all_reduce",
                      "comm_bytes": size, "group": "g"} for r in range(p)],
                    {"g": list(range(p))})


def test_built_in_algorithms_in_registration_order() -> None:
    assert algorithm_names() == BUILT_IN
    assert algorithms_for("all_reduce") == ("ring", "tree", "hierarchical", "nvls", "nvls-tree",
                                            "collnet-direct", "collnet-chain", "torus",
                                            "allpairs")
    assert algorithms_for("all_gather") == algorithms_for("reduce_scatter") == ("ring", "torus")
    assert algorithms_for("all_to_all") == ("direct", "pairwise")
    assert algorithms_for("broadcast") == algorithms_for("reduce") == ("chain",)


def test_toy_algorithm_forced_by_the_topology_has_the_hand_computed_time() -> None:
    p = 4
    with registered_algorithm(GATHER_SCATTER):
        assert algorithm_names() == (*BUILT_IN, "gather-scatter")
        assert algorithms_for("all_reduce")[-1] == "gather-scatter"
        run = replay(_all_reduce(p, GB), star(p, 100.0, algorithm="gather-scatter"))
        # Two phases, each (p-1) S through the first rank's 100 GB/s (1e5 B/us) link.
        assert run.makespan_us == pytest.approx(2 * (p - 1) * GB / 1e5, rel=1e-9)
        assert set(run.timeline["algorithm"].to_pylist()) == {"gather-scatter/Simple"}
    assert algorithm_names() == BUILT_IN


def test_toy_algorithm_costs_with_its_tuning() -> None:
    # Ring rows, Simple only: base latency once plus one NVLink-class step per phase.
    p = 4
    with registered_algorithm(GATHER_SCATTER):
        run = replay(_all_reduce(p, GB), star(p, 100.0, algorithm="gather-scatter",
                                              latency_scale=1.0, **NCCL_ONLY))
    step = STEP_LATENCY_US["ring"]["nvlink"]["Simple"]
    expected = BASE_LATENCY_US["ring"]["Simple"] + 2 * step + 2 * (p - 1) * GB / 1e5
    assert run.makespan_us == pytest.approx(expected, rel=1e-9)


def test_auto_considers_the_toy_and_keeps_the_cheaper_ring() -> None:
    p = 4
    with registered_algorithm(GATHER_SCATTER):
        run = replay(_all_reduce(p, GB), star(p, 100.0, algorithm="auto"))
    assert run.timeline["algorithm"][0].as_py().startswith("ring/")
    assert run.makespan_us == pytest.approx(2 * (p - 1) / p * GB / 1e5, rel=1e-9)


def test_where_the_toy_does_not_apply_forcing_it_names_the_alternatives() -> None:
    with registered_algorithm(GATHER_SCATTER):
        with pytest.raises(SimulationError, match="'gather-scatter' cannot run all_reduce on 8"
                           " ranks.*use one of ring, allpairs or auto"):
            replay(_all_reduce(8, GB), star(8, 100.0, algorithm="gather-scatter"))


def test_schema_accepts_the_toy_only_while_registered() -> None:
    with registered_algorithm(GATHER_SCATTER):
        enum = json.loads(json_schema())["$defs"]["NetworkParams"]["properties"]["algorithm"]
        assert enum["enum"] == ["auto", *BUILT_IN, "gather-scatter"]
    enum = json.loads(json_schema())["$defs"]["NetworkParams"]["properties"]["algorithm"]
    assert enum["enum"] == ["auto", *BUILT_IN]
    with pytest.raises(ValidationError, match="input should be 'auto', 'ring'.* or 'pairwise'"):
        star(4, 100.0, algorithm="gather-scatter")


def test_cli_collectives_runs_the_toy(tmp_path: Path, capsys) -> None:
    topo = tmp_path / "star.yaml"
    topo.write_text(yaml.safe_dump({
        "name": "star4",
        "accelerator_models": {"T": {"peak_tflops": {"bf16": 100.0}, "hbm_GiB": 1.0,
                                     "hbm_GBps": 1000.0}},
        "devices": [{"name": f"a{i}", "kind": "accelerator", "model": "T"} for i in range(4)]
        + [{"name": "sw", "kind": "switch"}],
        "links": [{"src": f"a{i}", "dst": "sw", "bandwidth_GBps": 100.0, "latency_ns": 0.0}
                  for i in range(4)],
        "network": {"collective_overhead_us": 0.0, "latency_scale": 0.0, "host_launch_us": 0.0},
    }))
    args = ["collectives", "-t", str(topo), "--op", "all_reduce", "--min", "1G", "--max", "1G",
            "--algo", "gather-scatter"]
    with registered_algorithm(GATHER_SCATTER):
        with pytest.raises(SystemExit) as done:
            main(args)
        out = capsys.readouterr().out
    assert done.value.code in (0, None)
    # 2 (p-1) S / B with S = 1 GiB.
    assert "gather-scatter/Simple" in out and f"{6 * 2**30 / 1e5:.2f}" in out
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    assert "--algo 'gather-scatter': use auto or one of ring" in capsys.readouterr().err


def test_register_and_unregister_by_hand() -> None:
    register_algorithm(GATHER_SCATTER)
    try:
        with pytest.raises(RegistryError, match="already registered"):
            register_algorithm(GATHER_SCATTER)
    finally:
        assert unregister_algorithm("gather-scatter") is GATHER_SCATTER
    with pytest.raises(RegistryError, match="no collective algorithm named 'gather-scatter'"):
        unregister_algorithm("gather-scatter")
    assert algorithm_names() == BUILT_IN


def test_unknown_schema_value_is_a_topology_error(tmp_path: Path) -> None:
    from simcluster.topology import load_cluster

    p = tmp_path / "t.yaml"
    p.write_text("name: t\ndevices:\n  - {name: a, kind: accelerator, model: A100}\n"
                 "network:\n  algorithm: gather-scatter\n")
    with pytest.raises(TopologyError, match="t.yaml:5: network.algorithm: input should be"):
        load_cluster(p)

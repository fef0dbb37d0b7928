"""Placement: strategies, YAML files, and errors when it does not fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.errors import PlacementError
from simcluster.placement import bind, load_placement, strategy_placement
from simcluster.topology import load_cluster
from tests.conftest import ROOT, workload

C = {"kind": "compute", "duration_us": 1.0}


@pytest.fixture(scope="module")
def h100():
    return load_cluster(ROOT / "topologies" / "h100-2node.yaml")


def _yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "place.yaml"
    p.write_text(text)
    return p


def test_packed_is_topology_order(h100) -> None:
    assert strategy_placement(h100, 3).devices == ("node0/gpu0", "node0/gpu1", "node0/gpu2")


def test_spread_alternates_servers(h100) -> None:
    assert strategy_placement(h100, 4, "spread").devices == (
        "node0/gpu0", "node1/gpu0", "node0/gpu1", "node1/gpu1")


def test_yaml_map(tmp_path: Path, h100) -> None:
    p = _yaml(tmp_path, "ranks:\n  0: node1/gpu3\n  1: node0/gpu0\n")
    assert load_placement(p, h100, 2).devices == ("node1/gpu3", "node0/gpu0")
    p = _yaml(tmp_path, "ranks: [node1/gpu3, node0/gpu0]\n")
    assert load_placement(p, h100, 2).devices == ("node1/gpu3", "node0/gpu0")
    p = _yaml(tmp_path, "strategy: spread\n")
    assert load_placement(p, h100, 2).devices == ("node0/gpu0", "node1/gpu0")


def test_too_many_ranks(h100) -> None:
    wl = workload([{"rank": r, **C} for r in range(17)])
    with pytest.raises(PlacementError, match="17 ranks but cluster 'h100-2node' has 16"):
        bind(wl, h100)


def test_device_named_twice(tmp_path: Path, h100) -> None:
    p = _yaml(tmp_path, "ranks:\n  0: node0/gpu1\n  1: node0/gpu1\n")
    with pytest.raises(PlacementError, match="place.yaml:3: ranks\\[1\\]: device 'node0/gpu1' is "
                                             "given to rank 0 and rank 1"):
        load_placement(p, h100, 2)


def test_unknown_device_suggests(tmp_path: Path, h100) -> None:
    p = _yaml(tmp_path, "ranks:\n  0: node0/gpu9\n")
    with pytest.raises(PlacementError, match="unknown device 'node0/gpu9'; did you mean"):
        load_placement(p, h100, 1)


def test_non_accelerator_and_missing_and_extra_ranks(tmp_path: Path, h100) -> None:
    with pytest.raises(PlacementError, match="is a switch, not an accelerator"):
        load_placement(_yaml(tmp_path, "ranks:\n  0: node0/nvswitch\n"), h100, 1)
    with pytest.raises(PlacementError, match="rank\\(s\\) 1 have no device"):
        load_placement(_yaml(tmp_path, "ranks:\n  0: node0/gpu0\n"), h100, 2)
    with pytest.raises(PlacementError, match="rank 5 is not in the workload"):
        load_placement(_yaml(tmp_path, "ranks:\n  5: node0/gpu0\n"), h100, 2)


def test_bad_placement_file(tmp_path: Path, h100) -> None:
    with pytest.raises(PlacementError, match="give either strategy"):
        load_placement(_yaml(tmp_path, "strategy: packed\nranks: [node0/gpu0]\n"), h100, 1)
    with pytest.raises(PlacementError, match="strategy: input should be 'packed', 'spread', 'tp-packed', 'tp-spread', 'rail-aligned', 'speed-aware' or 'ep-packed'"):
        load_placement(_yaml(tmp_path, "strategy: random\n"), h100, 1)


def test_bind_accepts_strategy_names_and_paths(tmp_path: Path, h100) -> None:
    wl = workload([{"rank": r, **C} for r in range(2)])
    assert bind(wl, h100, "spread").placement.devices[1] == "node1/gpu0"
    p = _yaml(tmp_path, "ranks: [node0/gpu4, node0/gpu5]\n")
    assert bind(wl, h100, p).placement.devices == ("node0/gpu4", "node0/gpu5")
    assert bind(wl, h100, str(p)).placement.source == str(p)


# -- group-aware strategies: 16 ranks, TP 4 x DP 4, rank = t + 4 d, on 2 servers of 8 --------

TP_DP = {**{f"tp.d{d}": tuple(t + 4 * d for t in range(4)) for d in range(4)},
         **{f"dp.t{t}": tuple(t + 4 * d for d in range(4)) for t in range(4)}}


def _where(h100, strategy: str, groups=TP_DP) -> list[tuple[int, int]]:
    """(server, local index) of each rank."""
    devs = strategy_placement(h100, 16, strategy, groups).devices
    return [(int(d[4]), int(d[-1])) for d in devs]


def test_tp_packed_and_tp_spread(h100) -> None:
    # tp-packed: each TP group on one server; here that is plain packed order.
    assert _where(h100, "tp-packed") == _where(h100, "packed")
    assert {s for s, _ in _where(h100, "tp-packed")[:4]} == {0}
    # tp-spread: TP group members dealt over the servers: 0 -> s0g0, 1 -> s1g0, 2 -> s0g1, ...
    spread = _where(h100, "tp-spread")
    assert spread[:4] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert all(len({spread[r][0] for r in g}) == 2 for n, g in TP_DP.items() if n[:2] == "tp")


def test_rail_aligned_keeps_dp_groups_on_rails_and_tp_groups_on_servers(h100) -> None:
    where = _where(h100, "rail-aligned")
    # DP group t=0 is {0, 4, 8, 12}: rail-major slots s0g0, s1g0, s0g1, s1g1.
    assert [where[r] for r in (0, 4, 8, 12)] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    # Every TP group on one server; every DP group's members on each server share a rail
    # pattern: member d on server d mod 2.
    for name, members in TP_DP.items():
        if name.startswith("tp"):
            assert len({where[r][0] for r in members}) == 1
        else:
            assert [where[r][0] for r in members] == [0, 1, 0, 1]
    assert sorted(where) == sorted(_where(h100, "packed"))  # a permutation of the GPUs


def test_group_strategies_without_groups_are_plain(h100) -> None:
    assert _where(h100, "tp-packed", {}) == _where(h100, "packed", {})
    assert _where(h100, "rail-aligned", {"world": tuple(range(16))}) == _where(
        h100, "spread", {})


def test_placement_keeps_the_workload(h100) -> None:
    # TP all-reduces of 64 MiB: split over the fabric (tp-spread) they take longer; the
    # ops, ranks and dependencies are the same under every placement.
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce",
             "comm_bytes": 2**26, "group": f"tp.d{r // 4}"} for r in range(16)]
    rows += [{"rank": r, **C, "deps": [0]} for r in range(16)]
    wl = workload(rows, {k: list(v) for k, v in TP_DP.items()})
    from simcluster.sim import simulate

    runs = {s: simulate(bind(wl, h100, s)) for s in ("tp-packed", "tp-spread", "rail-aligned")}
    assert runs["tp-spread"].makespan_us > 2 * runs["tp-packed"].makespan_us
    assert runs["rail-aligned"].makespan_us == runs["tp-packed"].makespan_us
    cols = ("rank", "op_id", "kind", "group")
    base = runs["tp-packed"].timeline.select(cols).sort_by([("rank", "ascending"),
                                                            ("op_id", "ascending")])
    for run in runs.values():
        assert run.timeline.select(cols).sort_by([("rank", "ascending"),
                                                  ("op_id", "ascending")]).equals(base)


def test_a_misspelt_strategy_is_named_with_a_suggestion(capsys) -> None:
    from simcluster.cli import main
    from tests.conftest import ROOT

    with pytest.raises(SystemExit) as exit_:
        main(["replay", str(ROOT / "traces" / "dp-transformer-16.parquet"), "-t",
              str(ROOT / "topologies" / "h100-2node.yaml"), "--placement", "spred"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "did you mean 'spread'?" in err
    assert "file not found" not in err and "tp-packed" in err


def test_strategy_names_match_forgivingly() -> None:
    from simcluster.names import match

    assert match("TP_Packed", ["packed", "tp-packed"]) == "tp-packed"
    assert match("nope", ["packed"]) is None

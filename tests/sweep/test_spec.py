"""Sweep specs: expansion, constraints, and bad specs refused before any work."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from simcluster.sweep import SweepError, load_sweep
from simcluster.sweep.spec import compile_constraint, evaluate
from tests.conftest import ROOT

TOPO = str(ROOT / "topologies" / "h100-2node.yaml")
BASE = {"topology": TOPO, "workload": {"generate": "data-parallel", "ranks": 16, "layers": 2}}


def _spec(tmp_path: Path, **doc: Any) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, **doc}))
    return path


def test_product_of_lists_and_ranges(tmp_path: Path) -> None:
    sweep = load_sweep(_spec(tmp_path, axes={
        "micro_batch": {"range": [1, 4]}, "layers": [2, 4],
        "scale_link.ib": {"range": [0.5, 2.0], "step": 0.5}}))
    assert len(sweep.points) == 4 * 2 * 4
    assert {p.values["scale_link.ib"] for p in sweep.points} == {0.5, 1, 1.5, 2}
    assert {p.values["micro_batch"] for p in sweep.points} == {1, 2, 3, 4}
    assert len({p.id for p in sweep.points}) == len(sweep.points)


def test_zip_and_points(tmp_path: Path) -> None:
    zipped = load_sweep(_spec(tmp_path, mode="zip", axes={"layers": [2, 4, 8],
                                                          "micro_batch": [4, 2, 1]}))
    assert [(p.values["layers"], p.values["micro_batch"]) for p in zipped.points] == [
        (2, 4), (4, 2), (8, 1)]
    listed = load_sweep(_spec(tmp_path, mode="points", points=[
        {"layers": 2}, {"layers": 4, "device": "H200"}]))
    assert [p.values for p in listed.points] == [{"layers": 2}, {"layers": 4, "device": "H200"}]


def test_constraints_use_axes_base_parameters_and_gpus(tmp_path: Path) -> None:
    # ranks (16) comes from the base, gpus from the topology (16 on h100-2node).
    sweep = load_sweep(_spec(tmp_path, axes={"micro_batch": [1, 2, 4, 8]},
                             constraints=["ranks * micro_batch <= 32", "gpus == ranks"]),
                       gpus_of=lambda p: 16)
    assert [p.values["micro_batch"] for p in sweep.points] == [1, 2]
    with pytest.raises(SweepError, match="no point satisfies the constraints"):
        load_sweep(_spec(tmp_path, axes={"micro_batch": [1, 2]}, constraints=["gpus == 8"]),
                   gpus_of=lambda p: 16)


def test_point_ids_follow_the_base(tmp_path: Path) -> None:
    a = load_sweep(_spec(tmp_path, axes={"layers": [2]}))
    again = load_sweep(_spec(tmp_path, axes={"layers": [2]}))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"base": {**BASE, "placement": "spread"},
                                     "axes": {"layers": [2]}}))
    assert a.points[0].id == again.points[0].id != load_sweep(other).points[0].id


@pytest.mark.parametrize(("doc", "message"), [
    ({"axes": {"layerz": [1, 2]}}, r"axes.layerz: unknown axis; use generator parameters"),
    ({"axes": {"layers": []}}, r"axes.layers: the axis has no values"),
    ({"axes": {"layers": {"range": [4, 2]}}}, r"axes.layers: the axis has no values"),
    ({"axes": {}}, r"give at least one axis"),
    ({"mode": "zip", "axes": {"layers": [1, 2], "micro_batch": [1]}}, r"equal length"),
    ({"mode": "points"}, r"non-empty points"),
    ({"axes": {"layers": [1]}, "constraints": ["layers > 4"]}, r"no point satisfies"),
    ({"axes": {"layers": [1]}, "constraints": ["tp * pp == 8"]}, r"unknown name 'tp'"),
    ({"axes": {"layers": [1]}, "constraints": ["__import__('os').system('x')"]},
     r"only arithmetic"),
    ({"axes": {"layers": [1]}, "constraints": ["layers.real > 0"]}, r"only arithmetic"),
    ({"axes": {"layers": [1]}, "constraints": ["layers >"]}, r"not an expression"),
    ({"axes": {"layers": [1]}, "constraints": ["1 / (layers - 1) > 0"]}, r"cannot evaluate"),
    ({"axes": {"layers": [1]}, "typo": 1}, r"typo"),
])
def test_bad_specs(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepError, match=message):
        load_sweep(_spec(tmp_path, **doc))


def test_bad_base_and_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": {"topology": TOPO, "workload": {"generate": "nope"}},
                                    "axes": {"layers": [1]}}))
    with pytest.raises(SweepError, match="unknown generator 'nope'"):
        load_sweep(path)
    path.write_text(yaml.safe_dump({"base": {"topology": TOPO, "workload": {}},
                                    "axes": {"layers": [1]}}))
    with pytest.raises(SweepError, match="either generate"):
        load_sweep(path)
    path.write_text("base: [unclosed\n")
    with pytest.raises(SweepError, match="line"):
        load_sweep(path)
    # A trace base accepts only what-if axes.
    path.write_text(yaml.safe_dump({"base": {"topology": TOPO, "workload": {"trace": "t.pq"}},
                                    "axes": {"layers": [1]}}))
    with pytest.raises(SweepError, match="none: the base is a trace"):
        load_sweep(path)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["layers", "micro_batch", "hidden", "seq_len"]),
                       st.lists(st.integers(1, 64), min_size=1, max_size=4, unique=True),
                       min_size=1, max_size=3))
def test_product_size_and_unique_ids(tmp_path_factory, axes: dict[str, list[int]]) -> None:
    path = _spec(tmp_path_factory.mktemp("h"), axes=axes)
    points = load_sweep(path).points
    assert len(points) == math.prod(len(v) for v in axes.values())
    assert len({p.id for p in points}) == len(points)


@settings(max_examples=60, deadline=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 9))
def test_constraint_arithmetic_matches_python(a: int, b: int, c: int) -> None:
    text = "a * b + c // 2 - a % c >= -b ** 2 and not a == b"
    tree = compile_constraint(text, {"a", "b", "c"})
    assert evaluate(tree, {"a": a, "b": b, "c": c}) == (
        a * b + c // 2 - a % c >= -b ** 2 and not a == b)

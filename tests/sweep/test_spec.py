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
from simcluster.sweep.constraints import compile_constraint
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
    constraint = compile_constraint(text, {"a", "b", "c"})
    assert constraint({"a": a, "b": b, "c": c}) == (
        a * b + c // 2 - a % c >= -b ** 2 and not a == b)


# -- checked before any work: values against their parameters, referenced files --------------

_HEAD = """\
base:
  topology: {topo}
  workload: {workload}
"""
DP = "{generate: data-parallel, ranks: 16, layers: 2}"
LLAMA = "{generate: transformer, preset: llama2-7b, layers: 2}"


def _text(tmp_path: Path, body: str, workload: str = DP, topo: str = TOPO) -> Path:
    """A spec written as text, so that its line numbers are known: the base takes lines
    1-3, ``body`` starts on line 4."""
    path = tmp_path / "sweep.yaml"
    path.write_text(_HEAD.format(topo=topo, workload=workload) + body)
    return path


@pytest.mark.parametrize(("workload", "body", "where", "problem"), [
    (DP, "axes:\n  layers: [2, four]\n", "5: axes.layers[1]", "'four' is not a whole number"),
    (DP, "axes:\n  micro_batch: [1, 2.5]\n", "5: axes.micro_batch[1]", "2.5 is not a whole"),
    (DP, "axes:\n  ranks: [true]\n", "5: axes.ranks[0]", "True is not a whole number"),
    (DP, "axes:\n  bucket_mb: [.inf]\n", "5: axes.bucket_mb[0]", "inf is not a number"),
    (DP, "axes:\n  dtype: [1]\n", "5: axes.dtype[0]", "1 is not a string"),
    (DP, "axes:\n  layers: {range: [1, 2], step: 0.5}\n", "5: axes.layers.range",
     "1.5 is not a whole number"),
    (DP, "mode: points\npoints:\n  - {layers: 2}\n  - {layers: x}\n", "7: points[1].layers",
     "'x' is not a whole number"),
    ("{generate: data-parallel, ranks: sixteen}", "axes:\n  layers: [2]\n",
     "3: base.workload.ranks", "'sixteen' is not a whole number"),
    ("{generate: data-parallel, layerz: 2}", "axes:\n  layers: [2]\n",
     "3: base.workload.layerz", "unknown parameter; generator data-parallel takes"),
    ("{trace: t.parquet, layers: 2}", "axes:\n  device: [H200]\n", "3: base.workload.layers",
     "a trace base takes only trace"),
    (LLAMA, "axes:\n  zero: [1, fsdp, 7]\n", "5: axes.zero[2]", "zero 7: use 0, 1, 2, 3"),
    (LLAMA, "axes:\n  preset: [llama2-7b, gpt5]\n", "5: axes.preset[1]", "unknown preset 'gpt5'"),
    (LLAMA, "axes:\n  sequence_parallel: [maybe]\n", "5: axes.sequence_parallel[0]",
     "'maybe' is not true or false"),
    ("{generate: transformer, layers: 2}", "axes:\n  tp: [1, 2]\n", "3: base.workload",
     "without a preset the model needs hidden, heads"),
    (DP, "axes:\n  price: [2.0, 0]\n", "5: axes.price[1]", "0 is not a positive number"),
    (DP, "axes:\n  scale_link.ib: [.nan]\n", "5: axes.scale_link.ib[0]", "not a positive"),
    (DP, "axes:\n  device: [H100-SXM5-80GB, B999]\n", "5: axes.device[1]",
     "unknown accelerator model 'B999'"),
    (DP, "axes:\n  scale_link.spine: [2.0]\n", "5: axes.scale_link.spine",
     "scale_link 'spine' does not apply to topology"),
    (DP, "axes:\n  placement: [packed, 3]\n", "5: axes.placement[1]", "3 is not a string"),
])
def test_values_are_checked_against_their_parameters(tmp_path: Path, workload: str,
                                                     body: str, where: str,
                                                     problem: str) -> None:
    path = _text(tmp_path, body, workload)
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert str(err.value).startswith(f"{path}:{where}: ")
    assert problem in str(err.value)


def test_referenced_files_must_exist_and_parse(tmp_path: Path) -> None:
    placement = tmp_path / "place.yaml"
    placement.write_text("ranks: {0: node0.gpu0}\n")
    bad_placement = tmp_path / "bad-place.yaml"
    bad_placement.write_text("strategy: diagonal\n")
    other_yaml = tmp_path / "notes.yaml"
    other_yaml.write_text("title: not a topology\n")
    not_parquet = tmp_path / "w.parquet"
    not_parquet.write_bytes(b"PAR1 truncated")
    cases = [  # (spec text after the base, base workload, topology, where, problem)
        ("axes:\n  layers: [2]\n", DP, "missing.yaml", "2: base.topology",
         f"{tmp_path / 'missing.yaml'}: file not found"),
        ("axes:\n  layers: [2]\n", DP, str(other_yaml), "2: base.topology",
         f"{other_yaml}:1: title: unknown key"),
        (f"axes:\n  topology: [{TOPO}, nope.yaml]\n", DP, TOPO, "5: axes.topology[1]",
         "nope.yaml: file not found"),
        ("axes:\n  placement: [packed, nowhere.yaml]\n", DP, TOPO, "5: axes.placement[1]",
         "not a placement strategy (packed, spread"),
        (f"axes:\n  placement: [{bad_placement.name}]\n", DP, TOPO, "5: axes.placement[0]",
         f"{bad_placement}:1: strategy:"),
        ("axes:\n  device: [H200]\n", "{trace: gone.parquet}", TOPO,
         "3: base.workload.trace", "gone.parquet: file not found"),
        ("axes:\n  device: [H200]\n", f"{{trace: {not_parquet}}}", TOPO,
         "3: base.workload.trace", str(not_parquet)),
    ]
    for body, workload, topo, where, problem in cases:
        path = _text(tmp_path, body, workload, topo)
        with pytest.raises(SweepError) as err:
            load_sweep(path)
        assert str(err.value).startswith(f"{path}:{where}: "), str(err.value)
        assert problem in str(err.value), str(err.value)
    # A good placement file, a strategy, and a trace base pass.
    path = _text(tmp_path, f"axes:\n  placement: [packed, {placement.name}]\n")
    assert len(load_sweep(path).points) == 2
    trace = str(ROOT / "traces" / "dp-transformer-16.parquet")
    path = _text(tmp_path, "axes:\n  device: [H200]\n", f"{{trace: {trace}}}")
    assert len(load_sweep(path).points) == 1


def test_gpus_come_from_the_loaded_topology(tmp_path: Path) -> None:
    dgx = str(ROOT / "topologies" / "dgx-h100.yaml")
    path = _text(tmp_path, f"axes:\n  topology: [{TOPO}, {dgx}]\n"
                 "constraints:\n  - gpus == 16\n")
    assert [p.values["topology"] for p in load_sweep(path).points] == [TOPO]


# -- bounded: points, ranges, constraints --------------------------------------------------

@pytest.mark.parametrize(("body", "where", "problem"), [
    ("axes:\n  micro_batch: {range: [1, 1000000000]}\n", "5: axes.micro_batch.range",
     "the range has 1,000,000,000 values, over the limit of 100,000 points per sweep"),
    ("axes:\n  bucket_mb: {range: [-1e308, 1e308], step: 1e-300}\n", "5: axes.bucket_mb.range",
     "the range has more than 1e308 values"),
    ("axes:\n  micro_batch: {range: [1, 1000]}\n  layers: {range: [1, 1000]}\n", "4: axes",
     "1,000 (micro_batch) x 1,000 (layers), has 1,000,000 points, over the limit of 100,000"),
])
def test_too_many_points_are_refused_before_any_work(tmp_path: Path, body: str, where: str,
                                                    problem: str) -> None:
    path = _text(tmp_path, body)
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert str(err.value).startswith(f"{path}:{where}: ")
    assert problem in str(err.value) and "--max-points N" in str(err.value)


def test_the_point_limit_can_be_raised_or_lowered(tmp_path: Path) -> None:
    path = _spec(tmp_path, axes={"layers": [1, 2, 3], "micro_batch": [1, 2]})
    with pytest.raises(SweepError, match="has 6 points, over the limit of 5 points"):
        load_sweep(path, max_points=5)
    assert len(load_sweep(path, max_points=6).points) == 6
    listed = _spec(tmp_path, mode="points", points=[{"layers": n} for n in range(1, 5)])
    with pytest.raises(SweepError, match="4 points are listed, over the limit of 3"):
        load_sweep(listed, max_points=3)
    zipped = _spec(tmp_path, mode="zip", axes={"layers": [1, 2, 3], "micro_batch": [1, 2, 3]})
    with pytest.raises(SweepError, match="zipped axes make 3 points, over the limit of 2"):
        load_sweep(zipped, max_points=2)


@pytest.mark.parametrize(("constraint", "problem"), [
    ("9 ** 9 ** 9 > 0", "9 ** 387420489 exceeds 1e+100"),
    ("(layers + 7) ** (layers + 7) ** (layers + 7) > 0", "9 ** 387420489 exceeds"),
    ("(layers + 98) ** (10 ** 50) > 0", "exceeds 1e+100"),
    ("10 ** 60 * 10 ** 60 > 0", "a result exceeds 1e+100"),
    ("0.5 ** -1000 > 0", "0.5 ** -1000 exceeds"),
    ("1e999 > 0", "a number exceeds 1e+100"),
    ("(-8) ** 0.5 > 0", "not a real number"),
    ("-" * 900 + "layers > 0", "nests operations more than 50 deep"),
    ("layers + " * 200 + "layers > 0", "over the limit of 1000"),
    ("0 ** -1 > 0", "division by zero"),
])
def test_constraints_are_bounded(tmp_path: Path, constraint: str, problem: str) -> None:
    path = _spec(tmp_path, axes={"layers": [2]}, constraints=[constraint])
    with pytest.raises(SweepError, match="constraints") as err:
        load_sweep(path)
    assert problem in str(err.value)


def test_constraint_work_is_bounded(tmp_path: Path, monkeypatch) -> None:
    from simcluster.sweep import spec as spec_module

    monkeypatch.setattr(spec_module, "MAX_CONSTRAINT_STEPS", 20)
    path = _spec(tmp_path, axes={"layers": [1, 2, 3, 4]}, constraints=["layers * 2 > 1"])
    with pytest.raises(SweepError, match="4 points x 9 expression nodes is 36 evaluation "
                                         "steps, over the limit of 20"):
        load_sweep(path)


_numbers = st.one_of(st.integers(-10**120, 10**120), st.floats(allow_nan=False),
                     st.sampled_from([0, 1, -1, 2, 9, 0.5, -8]))


@st.composite
def _expressions(draw, depth: int = 0) -> str:
    if depth > 4 or draw(st.booleans()):
        return draw(st.sampled_from(["a", "b"])) if draw(st.booleans()) else repr(
            draw(_numbers))
    op = draw(st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "<", "==", "and", "or"]))
    if draw(st.integers(0, 5)) == 0:
        return f"{draw(st.sampled_from(['-', 'not ']))}({draw(_expressions(depth + 1))})"
    return f"({draw(_expressions(depth + 1))}) {op} ({draw(_expressions(depth + 1))})"


@settings(max_examples=300, deadline=None)
@given(_expressions(), _numbers, _numbers)
def test_any_constraint_gives_a_bool_or_a_sweep_error(text: str, a: float, b: float) -> None:
    from simcluster.sweep.constraints import MAX_MAGNITUDE

    try:
        constraint = compile_constraint(text, {"a", "b"})
        assert isinstance(constraint({"a": a, "b": b}), bool)
    except SweepError:
        pass
    assert MAX_MAGNITUDE == 1e100


@pytest.mark.parametrize("generate", [[], {}, {"a": {"b": [1]}}, 3])
def test_a_generator_that_is_not_a_name_is_named_as_the_error(tmp_path, generate) -> None:
    import yaml as _yaml

    from simcluster.sweep import load_sweep
    from simcluster.sweep.errors import SweepError

    spec = tmp_path / "s.yaml"
    spec.write_text(_yaml.safe_dump({"base": {"topology": "t.yaml",
                                              "workload": {"generate": generate}},
                                     "axes": {"ranks": [2]}}))
    with pytest.raises(SweepError, match="base.workload.generate: unknown generator"):
        load_sweep(spec)

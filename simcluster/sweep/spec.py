"""The sweep spec (YAML): a base configuration, axes to vary, constraints.

.. code-block:: yaml

    name: dp-scaling
    base:
      topology: ../topologies/h100-2node.yaml     # relative to this file
      workload: {generate: data-parallel, ranks: 16, layers: 12}   # or {trace: path}
      placement: packed
      price: 4.9                 # USD per accelerator-hour (optional)
      fail: [node3/nic0]         # what-ifs of every point (optional; an axis overrides):
      flap: {node0/nic0: 0.1}    #   fail, flap, scale_link, hw mappings
      jobs:                      # other jobs on the cluster with each point's (optional)
        - {trace: other.parquet, placement: other.yaml, start_us: 0, repeat: 1}
    axes:
      layers: [12, 24]                            # a list
      micro_batch: {range: [1, 8], step: 1}       # a range, both ends included
      scale_link.ib: [1.0, 2.0]                   # what-ifs: scale_link.<element>,
      device: [H100-SXM5-80GB, H200]              #   device, placement, price, topology,
      fail: [[], [fabric/spine0]]                 #   fail (a list per value),
      flap.node0/nic0: [0.0, 0.1]                 #   flap.<element>, hw.<param>,
      comm_sms: [0, 16]                           #   comm_sms (SMs collectives take)
    mode: product                                 # product | zip | points
    constraints:
      - "ranks * micro_batch <= 64"               # names: axes (dots -> _) and gpus

Plain axis names are generator parameters. ``mode: points`` takes ``points:``, a list of
mappings, instead of axes. Constraints are arithmetic and comparisons only (``+ - * / // %
** == != < <= > >= and or not``, bounded: ``constraints.py``); nothing in the spec is
evaluated as Python.

Everything is checked before any work (``load_sweep``): the spec's schema; the number of
points (at most ``max_points``, :data:`MAX_POINTS` by default, counted before anything is
expanded); every value's type against its parameter and every referenced file
(``check.py``); the constraints of every point (at most :data:`MAX_CONSTRAINT_STEPS` steps in
all).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from simcluster.sweep.check import (
    WHATIF_AXES,
    FileRef,
    check_files,
    check_value,
    is_whatif,
    resolve,
)
from simcluster.sweep.constraints import Constraint, compile_constraint
from simcluster.sweep.elements import check_elements, check_partitions
from simcluster.sweep.errors import SweepError
from simcluster.sweep.limits import MAX_POINTS
from simcluster.topology.transform import HARDWARE_PARAMS
from simcluster.yamlfile import Loc, YamlDocument, read_yaml, validate

__all__ = ["MAX_CONSTRAINT_STEPS", "MAX_POINTS", "Point", "Sweep", "SweepError", "SweepSpec",
           "compile_constraint", "load_sweep", "point_id"]

Value = int | float | str | bool | list[str]  # a list: the elements of one ``fail`` value

#: Most constraint evaluation steps (points x AST nodes of all constraints) a spec may need.
MAX_CONSTRAINT_STEPS = 20_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeAxis(_Strict):
    range: tuple[FiniteFloat, FiniteFloat]
    step: FiniteFloat = Field(1, gt=0)


class JobSpec(_Strict):
    """A job that shares the cluster with each point's own (a job mix: ``simcluster.jobs``)."""

    trace: str
    placement: str = "packed"
    start_us: FiniteFloat = Field(0.0, ge=0)
    repeat: int = Field(1, ge=1)


class BaseSpec(_Strict):
    topology: str
    workload: dict[str, Any]
    placement: str = "packed"
    price: FiniteFloat | None = Field(None, gt=0)
    jobs: list[JobSpec] = []
    fail: list[str] = []
    flap: dict[str, FiniteFloat] = {}
    scale_link: dict[str, FiniteFloat] = {}
    hw: dict[str, FiniteFloat] = {}

    def document(self) -> dict[str, Any]:
        """The base as the points see it (and as their ids hash it): ``jobs`` and the
        what-ifs only when there are any, so a spec without them keeps the ids it had before
        they existed."""
        empty = {k for k in ("jobs", "fail", "flap", "scale_link", "hw") if not getattr(self, k)}
        return self.model_dump(exclude=empty or None)

    @model_validator(mode="after")
    def _one_source(self) -> BaseSpec:
        if ("generate" in self.workload) == ("trace" in self.workload):
            raise ValueError("workload needs either generate: <generator> (with its "
                             "parameters) or trace: <file>")
        return self


class SweepSpec(_Strict):
    name: str = "sweep"
    base: BaseSpec
    axes: dict[str, list[Value] | RangeAxis] = {}
    mode: Literal["product", "zip", "points"] = "product"
    points: list[dict[str, Value]] = []
    constraints: list[str] = []

    @model_validator(mode="after")
    def _shape(self) -> SweepSpec:
        if self.mode == "points" and not self.points:
            raise ValueError("mode: points needs a non-empty points: list")
        if self.mode != "points" and not self.axes:
            raise ValueError("give at least one axis under axes:")
        return self


@dataclass(frozen=True)
class Point:
    """One configuration: its id (stable hash of its values) and values by axis name."""

    id: str
    values: dict[str, Value]


def point_id(values: dict[str, Value], base: dict[str, Any]) -> str:
    """A stable id of one point of one base: a changed base never reuses old rows."""
    text = json.dumps({"base": base, "values": values}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _too_many(what: str, limit: int, fix: str) -> str:
    return (f"{what}, over the limit of {limit:,} points per sweep; {fix}, or raise the limit "
            "with --max-points N (load_sweep(..., max_points=N)).")


def expand_range(doc: YamlDocument, name: str, axis: RangeAxis, limit: int) -> list[Value]:
    """The values of a range axis, both ends included (whole numbers as ints).

    Raises:
        SweepError: more than ``limit`` values (found before they are listed).
    """
    lo, hi = axis.range
    steps = (hi - lo) / axis.step  # a float: inf for a huge span over a tiny step
    count = math.floor(steps + 1e-9) + 1 if math.isfinite(steps) else None
    if count is None or count > limit:
        shown = f"{count:,}" if count is not None else "more than 1e308"
        raise SweepError(doc.at(("axes", name, "range")) + _too_many(
            f"the range has {shown} values", limit, "narrow it or use a larger step"))
    out, k = [], 0
    while lo + k * axis.step <= hi + 1e-9 and k <= limit:
        v = lo + k * axis.step
        out.append(int(v) if float(v).is_integer() else v)
        k += 1
    return out


def _combinations(doc: YamlDocument, spec: SweepSpec, limit: int) -> list[dict[str, Value]]:
    """Every point's values, in spec order; their number is checked before they are made.

    Raises:
        SweepError: an empty axis, unequal axes under zip, more than ``limit`` points.
    """
    if spec.mode == "points":
        if len(spec.points) > limit:
            raise SweepError(doc.at(("points",)) + _too_many(
                f"{len(spec.points):,} points are listed", limit,
                "split the list over several specs"))
        return [dict(p) for p in spec.points]
    axes = {k: expand_range(doc, k, v, limit) if isinstance(v, RangeAxis) else list(v)
            for k, v in spec.axes.items()}
    empty = [k for k, v in axes.items() if not v]
    if empty:
        raise SweepError(f"{doc.at(('axes', empty[0]))}the axis has no values.")
    keys = list(axes)
    if spec.mode == "zip":
        lengths = {len(v) for v in axes.values()}
        if len(lengths) != 1:
            raise SweepError(f"{doc.path}: mode zip needs axes of equal length; got "
                             f"{', '.join(f'{k}: {len(v)}' for k, v in axes.items())}.")
        if len(axes[keys[0]]) > limit:
            raise SweepError(doc.at(("axes",)) + _too_many(
                f"the zipped axes make {len(axes[keys[0]]):,} points", limit, "shorten them"))
        return [dict(zip(keys, vals)) for vals in zip(*axes.values())]
    total = math.prod(len(v) for v in axes.values())
    if total > limit:
        sizes = " x ".join(f"{len(v):,} ({k})" for k, v in axes.items())
        raise SweepError(doc.at(("axes",)) + _too_many(
            f"the product of the axes, {sizes}, has {total:,} points", limit,
            "use fewer values, or mode: zip or points:"))
    return [dict(zip(keys, vals)) for vals in itertools.product(*axes.values())]


@dataclass(frozen=True)
class Sweep:
    """A loaded spec: where it lives, its base and its points."""

    spec: SweepSpec
    folder: Path
    points: list[Point]

    def path(self, relative: str) -> Path:
        return resolve(self.folder, relative)


def _names(spec: SweepSpec) -> list[str]:
    return sorted({k for p in spec.points for k in p} if spec.mode == "points" else spec.axes)


def _value_loc(spec: SweepSpec, index: int, name: str) -> Loc:
    """Where point ``index``'s value of ``name`` is written (an axis, or a points: entry)."""
    if spec.mode == "points":
        return ("points", index, name)
    axis = spec.axes[name]
    return ("axes", name, "range") if isinstance(axis, RangeAxis) else ("axes", name)


def _located(spec: SweepSpec, combos: list[dict[str, Value]]) -> Iterator[tuple[Loc, str, Any]]:
    """Every distinct value of the spec with the place it is written: (loc, name, value)."""
    seen: set[tuple[str, type, Any]] = set()
    for k, v in spec.base.workload.items():
        if k not in ("generate", "trace"):
            yield ("base", "workload", k), k, v
    yield ("base", "placement"), "placement", spec.base.placement
    if spec.base.price is not None:
        yield ("base", "price"), "price", spec.base.price
    for key in ("flap", "scale_link", "hw"):
        for k, v in getattr(spec.base, key).items():
            yield ("base", key, k), f"{key}.{k}", v
    if spec.mode != "points":
        for name, axis in spec.axes.items():
            if isinstance(axis, list):
                for i, v in enumerate(axis):
                    seen.add(_seen_key(name, v))
                    yield ("axes", name, i), name, v
    for i, values in enumerate(combos):
        for name, v in values.items():
            key = _seen_key(name, v)
            if key not in seen:
                seen.add(key)
                yield _value_loc(spec, i, name), name, v


def _seen_key(name: str, value: Value) -> tuple[str, type, Any]:
    """A hashable key of a value (a ``fail`` list as a tuple)."""
    return name, type(value), tuple(value) if isinstance(value, list) else value


def _file_refs(spec: SweepSpec, combos: list[dict[str, Value]]) -> Iterator[FileRef]:
    """Every file the spec names (topologies, placements that may be files, the trace),
    with where it is named."""
    yield FileRef("topology", spec.base.topology, ("base", "topology"))
    yield FileRef("placement", spec.base.placement, ("base", "placement"))
    if "trace" in spec.base.workload:
        yield FileRef("trace", str(spec.base.workload["trace"]), ("base", "workload", "trace"))
    for i, job in enumerate(spec.base.jobs):
        yield FileRef("trace", job.trace, ("base", "jobs", i, "trace"))
        yield FileRef("placement", job.placement, ("base", "jobs", i, "placement"))
    for kind in ("topology", "placement"):
        axis = spec.axes.get(kind)
        if spec.mode == "points":
            for i, values in enumerate(combos):
                if kind in values:
                    yield FileRef(kind, str(values[kind]), ("points", i, kind))
        elif isinstance(axis, list):
            for i, value in enumerate(axis):
                yield FileRef(kind, str(value), ("axes", kind, i))


def _check_names(doc: YamlDocument, spec: SweepSpec, gen: str | None) -> None:
    """Axis names and the base's workload keys are parameters the generator takes.

    Raises:
        SweepError: an unknown generator, axis or base parameter.
    """
    from simcluster.workload.generate.registry import GENERATORS

    allowed = set(WHATIF_AXES)
    params: set[str] = set()
    if gen is not None:
        if not isinstance(gen, str) or gen not in GENERATORS:
            raise SweepError(f"{doc.at(('base', 'workload', 'generate'))}unknown generator "
                             f"{gen!r}; use one of {', '.join(GENERATORS)}.")
        params = set(GENERATORS[gen].params)
        allowed |= params
    for k in spec.base.workload:
        if k not in params | {"generate", "trace"} or (gen is None and k != "trace"):
            raise SweepError(
                f"{doc.at(('base', 'workload', k))}unknown parameter; "
                + (f"generator {gen} takes {', '.join(sorted(params))}." if gen else
                   "a trace base takes only trace: <file> (vary what-ifs on axes)."))
    params_hw = [(("base", "hw", k), k) for k in spec.base.hw] + [
        (_name_loc(spec, n), n[3:]) for n in _names(spec) if n.startswith("hw.")]
    for loc, param in params_hw:
        if param not in HARDWARE_PARAMS:
            raise SweepError(f"{doc.at(loc)}unknown hardware parameter {param!r}; use "
                             f"{', '.join(f'hw.{p}' for p in HARDWARE_PARAMS)}.")
    for name in _names(spec):
        if name not in allowed and not is_whatif(name):
            raise SweepError(
                f"{doc.at(_name_loc(spec, name))}unknown axis; use generator parameters "
                f"({', '.join(sorted(allowed - set(WHATIF_AXES))) or 'none: the base is a trace'})"
                f", {', '.join(WHATIF_AXES)}, scale_link.<element>, flap.<element> or "
                "hw.<param>."
            )


def _name_loc(spec: SweepSpec, name: str) -> Loc:
    """Where axis ``name`` is first written (its axis, or the first points: entry)."""
    return ("axes", name) if spec.mode != "points" else next(
        ("points", i, name) for i, p in enumerate(spec.points) if name in p)


def _check_transformer(doc: YamlDocument, spec: SweepSpec,
                       combos: list[dict[str, Value]]) -> None:
    """Every point makes a transformer configuration (a preset, or the dimensions it needs).

    Raises:
        SweepError: a point that does not (the generator's message).
    """
    from simcluster.errors import WorkloadError
    from simcluster.workload.generate.registry import transformer_config

    base = {k: v for k, v in spec.base.workload.items() if k != "generate"}
    tried: set[frozenset[str]] = set()
    for i, values in enumerate(combos):
        params = {**base, **{k: v for k, v in values.items() if not is_whatif(k)}}
        given = frozenset(k for k, v in params.items() if v is not None)
        if given in tried:  # values are checked already: only which ones are given matters
            continue
        tried.add(given)
        try:
            transformer_config(params)
        except WorkloadError as exc:
            loc = ("points", i) if spec.mode == "points" else ("base", "workload")
            raise SweepError(f"{doc.at(loc)}{exc}") from None


def _holds(doc: YamlDocument, index: int, constraint: Constraint, env: dict[str, Any],
           values: dict[str, Value]) -> bool:
    """Whether constraint ``index`` holds for a point.

    Raises:
        SweepError: it cannot be evaluated for this point (named with its values).
    """
    try:
        return constraint(env)
    except SweepError as exc:
        raise SweepError(f"{doc.at(('constraints', index))}cannot evaluate for the point "
                         f"{values}: {exc}") from None


def _select(doc: YamlDocument, spec: SweepSpec, combos: list[dict[str, Value]],
            gpus: Callable[[str], int]) -> list[dict[str, Value]]:
    """The combinations that satisfy every constraint.

    Raises:
        SweepError: a constraint outside the language, too much work to evaluate, a point
            it cannot be evaluated for, or no point left.
    """
    if not spec.constraints:
        return combos
    base_params = {k: v for k, v in spec.base.workload.items()
                   if isinstance(v, (int, float)) and k not in ("generate", "trace")}
    names = {n.replace(".", "_") for n in _names(spec)} | {"gpus"} | set(base_params)
    checked: list[Constraint] = []
    for i, text in enumerate(spec.constraints):
        try:
            checked.append(compile_constraint(text, names))
        except SweepError as exc:
            raise SweepError(f"{doc.at(('constraints', i))}{exc}") from None
    steps = len(combos) * sum(c.nodes for c in checked)
    if steps > MAX_CONSTRAINT_STEPS:
        raise SweepError(
            f"{doc.at(('constraints',))}{len(combos):,} points x "
            f"{sum(c.nodes for c in checked)} expression nodes is {steps:,} evaluation steps, over "
            f"the limit of {MAX_CONSTRAINT_STEPS:,}; use fewer points or shorter constraints.")
    kept = []
    for values in combos:
        env: dict[str, Any] = {**base_params, **{k.replace(".", "_"): v
                                                 for k, v in values.items()}}
        env["gpus"] = gpus(str(values.get("topology", spec.base.topology)))
        if all(_holds(doc, i, c, env, values) for i, c in enumerate(checked)):
            kept.append(values)
    if not kept:
        raise SweepError(
            f"{doc.path}: no point satisfies the constraints ({len(combos)} combinations tried: "
            f"{'; '.join(spec.constraints)}); relax them or widen the axes."
        )
    return kept


def load_sweep(path: str | Path, gpus_of: Callable[[str], int] | None = None,
               max_points: int = MAX_POINTS) -> Sweep:
    """Read, validate and expand a sweep spec, and check everything before any work: the
    number of points, every value against its parameter, every referenced file, every
    constraint.

    Parameters:
        path: the spec (YAML).
        gpus_of: ``gpus_of(topology_path) -> int``, the accelerators of a topology for the
            ``gpus`` name in constraints; default: the loaded topology's.
        max_points: the most points (before constraints) the sweep may have.

    Raises:
        SweepError: a bad spec, unknown axis or parameter, a value of the wrong type, a
            missing or invalid file, too many points, an empty product, a constraint that is
            not arithmetic or cannot be evaluated, or no point left. The message names the
            file, line and YAML path.
    """
    doc = read_yaml(path, SweepError)
    spec = validate(doc, SweepSpec, SweepError)
    assert isinstance(spec, SweepSpec)
    folder = Path(path).resolve().parent
    gen = spec.base.workload.get("generate")
    _check_names(doc, spec, gen)
    combos = _combinations(doc, spec, max_points)
    for loc, name, value in _located(spec, combos):
        check_value(doc, gen, loc, name, value)
    clusters = check_files(doc, folder, _file_refs(spec, combos))
    locate = functools.partial(_value_loc, spec)
    check_elements(doc, spec.base, combos, clusters, locate)
    if gen == "transformer":
        _check_transformer(doc, spec, combos)

    counts: dict[str, int] = {}

    def gpus(topology: str) -> int:
        if topology not in counts:
            counts[topology] = (gpus_of(str(resolve(folder, topology))) if gpus_of is not None
                                else len(clusters[topology].accelerators))
        return counts[topology]

    kept = _select(doc, spec, combos, gpus)
    base_doc = spec.base.document()
    check_partitions(doc, base_doc, folder, kept, locate)
    return Sweep(spec=spec, folder=folder,
                 points=[Point(id=point_id(v, base_doc), values=v) for v in kept])

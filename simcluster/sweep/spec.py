"""The sweep spec (YAML): a base configuration, axes to vary, constraints.

.. code-block:: yaml

    name: dp-scaling
    base:
      topology: ../topologies/h100-2node.yaml     # relative to this file
      workload: {generate: data-parallel, ranks: 16, layers: 12}   # or {trace: path}
      placement: packed
      price: 4.9                 # USD per accelerator-hour (optional)
    axes:
      layers: [12, 24]                            # a list
      micro_batch: {range: [1, 8], step: 1}       # a range, both ends included
      scale_link.ib: [1.0, 2.0]                   # what-ifs: scale_link.<kind|role>,
      device: [H100-SXM5-80GB, H200]              #   device, placement, price, topology
    mode: product                                 # product | zip | points
    constraints:
      - "ranks * micro_batch <= 64"               # names: axes (dots -> _) and gpus

Plain axis names are generator parameters. ``mode: points`` takes ``points:``, a list of
mappings, instead of axes. Constraints are arithmetic and comparisons only (``+ - * / // %
** == != < <= > >= and or not``); nothing in the spec is evaluated as Python.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simcluster.errors import SimclusterError
from simcluster.yamlfile import read_yaml, validate

WHATIF_AXES = ("topology", "placement", "device", "price")
Value = int | float | str | bool


class SweepError(SimclusterError):
    """A sweep spec that cannot run."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeAxis(_Strict):
    range: tuple[float, float]
    step: float = Field(1, gt=0)


class BaseSpec(_Strict):
    topology: str
    workload: dict[str, Any]
    placement: str = "packed"
    price: float | None = Field(None, gt=0)

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


def _expand(axis: list[Value] | RangeAxis) -> list[Value]:
    if isinstance(axis, RangeAxis):
        lo, hi = axis.range
        out, k = [], 0
        while lo + k * axis.step <= hi + 1e-9:
            v = lo + k * axis.step
            out.append(int(v) if float(v).is_integer() else v)
            k += 1
        return out
    return list(axis)


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos,
        ast.Not: operator.not_, ast.Eq: operator.eq, ast.NotEq: operator.ne,
        ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


def compile_constraint(text: str, names: set[str]) -> ast.Expression:
    """Parse a constraint and check it uses only arithmetic, comparisons and known names.

    Raises:
        SweepError: a syntax error, an unknown name, or anything but arithmetic.
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise SweepError(f"constraint {text!r}: not an expression ({exc.msg}).") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names:
            raise SweepError(f"constraint {text!r}: unknown name {node.id!r}; known: "
                             f"{', '.join(sorted(names))}.")
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name,
                   ast.Load, ast.Constant, ast.And, ast.Or, *_OPS)
        if not isinstance(node, allowed) or (isinstance(node, ast.Constant) and not isinstance(
                node.value, (int, float, bool))):
            raise SweepError(f"constraint {text!r}: only arithmetic, comparisons and names "
                             "are allowed.")
    return tree


def evaluate(tree: ast.Expression, env: dict[str, Value]) -> Any:
    """Evaluate a checked constraint."""

    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return env[n.id]
        if isinstance(n, ast.UnaryOp):
            return _OPS[type(n.op)](ev(n.operand))
        if isinstance(n, ast.BinOp):
            return _OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.BoolOp):
            vals = [ev(v) for v in n.values]
            return all(vals) if isinstance(n.op, ast.And) else any(vals)
        if isinstance(n, ast.Compare):
            left = ev(n.left)
            for op, right in zip(n.ops, n.comparators):
                r = ev(right)
                if not _OPS[type(op)](left, r):
                    return False
                left = r
            return True
        raise SweepError("unsupported expression")  # compile_constraint rules this out

    return ev(tree)


@dataclass(frozen=True)
class Sweep:
    """A loaded spec: where it lives, its base and its points."""

    spec: SweepSpec
    folder: Path
    points: list[Point]

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else (self.folder / p)


def _names(spec: SweepSpec) -> list[str]:
    return sorted({k for p in spec.points for k in p} if spec.mode == "points" else spec.axes)


def load_sweep(path: str | Path, gpus_of: Any = None) -> Sweep:
    """Read, validate and expand a sweep spec; check every constraint before any work.

    ``gpus_of(topology_path) -> int`` gives the accelerators of a topology for the ``gpus``
    name in constraints.

    Raises:
        SweepError: a bad spec, an unknown axis, an empty product, an impossible constraint.
    """
    from simcluster.workload.generate.registry import GENERATORS

    doc = read_yaml(path, SweepError)
    spec = validate(doc, SweepSpec, SweepError)
    assert isinstance(spec, SweepSpec)
    folder = Path(path).resolve().parent
    gen = spec.base.workload.get("generate")
    allowed = set(WHATIF_AXES)
    if gen is not None:
        if gen not in GENERATORS:
            raise SweepError(f"{path}: base.workload.generate: unknown generator {gen!r}; use "
                             f"one of {', '.join(GENERATORS)}.")
        allowed |= set(GENERATORS[gen].params)
    for name in _names(spec):
        if name not in allowed and not name.startswith("scale_link."):
            raise SweepError(
                f"{path}: axes.{name}: unknown axis; use generator parameters "
                f"({', '.join(sorted(allowed - set(WHATIF_AXES))) or 'none: the base is a trace'})"
                f", {', '.join(WHATIF_AXES)} or scale_link.<kind>."
            )
    if spec.mode == "points":
        combos = [dict(p) for p in spec.points]
    else:
        axes = {k: _expand(v) for k, v in spec.axes.items()}
        empty = [k for k, v in axes.items() if not v]
        if empty:
            raise SweepError(f"{path}: axes.{empty[0]}: the axis has no values.")
        keys = list(axes)
        if spec.mode == "zip":
            lengths = {len(v) for v in axes.values()}
            if len(lengths) != 1:
                raise SweepError(f"{path}: mode zip needs axes of equal length; got "
                                 f"{', '.join(f'{k}: {len(v)}' for k, v in axes.items())}.")
            combos = [dict(zip(keys, vals)) for vals in zip(*axes.values())]
        else:
            combos = [dict(zip(keys, vals)) for vals in itertools.product(*axes.values())]
    base_doc = spec.base.model_dump()
    names = {n.replace(".", "_") for n in _names(spec)} | {"gpus"}
    base_params = {k: v for k, v in spec.base.workload.items() if k not in ("generate", "trace")}
    names |= {k for k, v in base_params.items() if isinstance(v, (int, float))}
    trees = [(c, compile_constraint(c, names)) for c in spec.constraints]
    points = []
    gpus_cache: dict[str, int] = {}
    for values in combos:
        env: dict[str, Value] = {**{k: v for k, v in base_params.items()
                                    if isinstance(v, (int, float))},
                                 **{k.replace(".", "_"): v for k, v in values.items()}}
        if trees and gpus_of is not None:
            topo = str(values.get("topology", spec.base.topology))
            if topo not in gpus_cache:
                gpus_cache[topo] = gpus_of(str((folder / topo) if not Path(topo).is_absolute()
                                               else topo))
            env["gpus"] = gpus_cache[topo]
        else:
            env.setdefault("gpus", 0)
        try:
            ok = all(evaluate(t, env) for _, t in trees)
        except (ZeroDivisionError, TypeError) as exc:
            raise SweepError(f"{path}: constraints: cannot evaluate for {values} ({exc}).") from None
        if ok:
            points.append(Point(id=point_id(values, base_doc), values=values))
    if not points:
        raise SweepError(
            f"{path}: no point satisfies the constraints ({len(combos)} combinations tried: "
            f"{'; '.join(spec.constraints) or 'none'}); relax them or widen the axes."
        )
    return Sweep(spec=spec, folder=folder, points=points)

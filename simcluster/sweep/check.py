"""What a sweep spec is checked against before any point is dispatched.

- **Values.** Every value a point can take (the base's generator parameters, each axis value,
  each ``points:`` entry) has the type its parameter takes: the generators' configuration
  dataclasses carry the types (``DataParallelConfig`` and ``TransformerDims``;
  ``TransformerConfig`` and ``ModelSpec``). Numbers must be finite. A transformer's
  ``preset`` must be known and its ``zero`` a ZeRO stage. What-if values: ``device`` a
  catalog model, ``price``, ``scale_link.<name>`` and ``hw.<param>`` positive numbers (and
  ``<param>`` one of ``HARDWARE_PARAMS``), ``flap.<element>`` a fraction in [0, 1), ``fail``
  a list of element names, ``placement`` a strategy or a placement file.
- **Files.** Every referenced file exists and parses: each topology (``base.topology`` and
  every ``topology`` value), every placement file, the base's trace. The elements the
  what-ifs name, the hardware parameters' links, and the groups failed elements may cut
  apart: ``elements.py``.

Each failure is a :class:`~simcluster.sweep.errors.SweepError` whose message starts with the
spec's ``file:line: yaml.path:`` and says what to write instead.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcluster.errors import PlacementError, TopologyError, WorkloadError
from simcluster.filekinds import is_file
from simcluster.placement import STRATEGIES
from simcluster.sweep.errors import SweepError
from simcluster.topology import load_cluster
from simcluster.topology.catalog import known_models, lookup
from simcluster.topology.cluster import Cluster
from simcluster.workload.generate.data_parallel import DataParallelConfig, TransformerDims
from simcluster.workload.generate.presets import ModelSpec, model_from
from simcluster.workload.generate.registry import zero_stage
from simcluster.workload.generate.transformer import TransformerConfig
from simcluster.yamlfile import Loc, YamlDocument

#: What-if axes by name; ``fail`` takes a list of elements per value.
WHATIF_AXES = ("topology", "placement", "device", "price", "fail", "comm_sms")
#: What-if axes by prefix: ``scale_link.<element>``, ``flap.<element>``, ``hw.<param>``.
WHATIF_PREFIXES = ("scale_link.", "flap.", "hw.")


def is_whatif(name: str) -> bool:
    """Whether axis ``name`` is a what-if (not a generator parameter).

    Example:
        >>> is_whatif("flap.node0/nic0"), is_whatif("hw.peak_tflops"), is_whatif("layers")
        (True, True, False)
    """
    return name in WHATIF_AXES or name.startswith(WHATIF_PREFIXES)


def _hints(*classes: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in classes:
        out.update(typing.get_type_hints(cls))
    return out


def _optional(hints: dict[str, Any]) -> dict[str, Any]:
    return {k: v | None for k, v in hints.items()}


#: Parameter name -> type, per generator (``workload/generate/registry.py`` lists the names).
#: The transformer's model dimensions may be null in the base (the preset's), and ``zero``
#: may be ``fsdp``: ``transformer_config`` takes both.
PARAM_TYPES: dict[str, dict[str, Any]] = {
    "data-parallel": _hints(TransformerDims, DataParallelConfig),
    "transformer": {**_optional(_hints(ModelSpec)), **_hints(TransformerConfig),
                    "preset": str | None, "zero": int | str},
}


def _members(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string",
          type(None): "null"}


def describe(annotation: Any) -> str:
    """What values of ``annotation`` look like, in words.

    Example:
        >>> describe(int | None)
        'a whole number or null'
    """
    return " or ".join(_WORDS.get(t, getattr(t, "__name__", str(t)))
                       for t in _members(annotation))


def accepts(annotation: Any, value: Any) -> bool:
    """Whether a YAML value fits a parameter of type ``annotation``: a whole number for
    ``int`` (not a bool), a finite number for ``float``, a bool, a string, or null.

    Example:
        >>> accepts(int, 4), accepts(int, 4.5), accepts(int, True), accepts(float, 2)
        (True, False, False, True)
    """
    for t in _members(annotation):
        if t is bool and isinstance(value, bool):
            return True
        if isinstance(value, bool):
            continue
        if t is int and isinstance(value, int):
            return True
        if t is float and isinstance(value, (int, float)) and math.isfinite(value):
            return True
        if t is str and isinstance(value, str):
            return True
        if t is type(None) and value is None:
            return True
    return False


def _semantic(generator: str, name: str, value: Any) -> None:
    """Checks beyond the type that need no other value.

    Raises:
        WorkloadError: an unknown preset or a bad ZeRO stage (the generator's message).
    """
    if generator == "transformer" and name == "preset" and isinstance(value, str):
        model_from(value, {})
    if generator == "transformer" and name == "zero":
        zero_stage(value)


def check_param(generator: str, name: str, value: Any) -> str | None:
    """The problem with ``value`` for generator parameter ``name``, or None if it fits.

    Example:
        >>> check_param("data-parallel", "layers", "four")
        "'four' is not a whole number: layers of generator data-parallel takes a whole number"
    """
    annotation = PARAM_TYPES.get(generator, {}).get(name)
    if annotation is not None and not accepts(annotation, value):
        return (f"{value!r} is not {describe(annotation)}: {name} of generator {generator} "
                f"takes {describe(annotation)}")
    try:
        _semantic(generator, name, value)
    except WorkloadError as exc:
        return str(exc).rstrip(".")
    return None


def _positive(value: Any) -> bool:
    return accepts(float, value) and value > 0


def check_whatif(name: str, value: Any) -> str | None:
    """The problem with a what-if value (files are checked by :func:`check_files`), or None."""
    if name in ("topology", "placement", "device") and not isinstance(value, str):
        return f"{value!r} is not a string: {name} takes a name"
    if name == "device" and lookup(value) is None:
        return (f"unknown accelerator model {value!r}; known models: "
                f"{', '.join(known_models())}")
    if name == "fail" and not (isinstance(value, list)
                               and all(isinstance(v, str) for v in value)):
        return (f"{value!r} is not a list of element names: fail takes one per value, e.g. "
                "[node0/nic0, fabric/spine0] ([] for the healthy cluster)")
    if name.startswith("flap.") and not (accepts(float, value) and 0 <= value < 1):
        return (f"{value!r} is not a fraction in [0, 1): {name} takes the fraction of time "
                f"the element is down; for an element down all the time use fail: "
                f"[{name.split('.', 1)[1]}]")
    if (name == "price" or name.startswith(("scale_link.", "hw."))) and not _positive(value):
        return f"{value!r} is not a positive number: {name} takes one"
    if name == "comm_sms" and not (accepts(float, value) and value >= 0):
        return (f"{value!r} is not a number >= 0: comm_sms takes the SMs a collective takes "
                "from compute (0: none)")
    return None


def check_value(doc: YamlDocument, generator: str | None, loc: Loc, name: str,
                value: Any) -> None:
    """Check one value of a point (or of the base) for parameter or what-if ``name``.

    Raises:
        SweepError: ``file:line: loc: problem; fix``.
    """
    if is_whatif(name):
        problem = check_whatif(name, value)
    else:
        problem = check_param(generator, name, value) if generator else None
    if problem is not None:
        raise SweepError(f"{doc.at(loc)}{problem}.")


@dataclass(frozen=True)
class FileRef:
    """A file the spec names: what it is, the value as written and where it is written."""

    kind: str  # "topology", "placement" or "trace"
    value: str
    loc: Loc


def resolve(folder: Path, value: str) -> Path:
    """A spec path: absolute, or relative to the spec's folder."""
    p = Path(value)
    return p if p.is_absolute() else folder / p


def check_files(doc: YamlDocument, folder: Path, refs: Iterable[FileRef]) -> dict[str, Cluster]:
    """Load every referenced file once; return the clusters by topology value as written.

    Raises:
        SweepError: ``file:line: loc:`` then the loader's message (missing file, not YAML,
            schema errors with the referenced file's own line).
    """
    from simcluster.workload import load_workload

    clusters: dict[str, Cluster] = {}
    seen: set[tuple[str, str]] = set()
    for ref in refs:
        if (ref.kind, ref.value) in seen:
            continue
        seen.add((ref.kind, ref.value))
        path = resolve(folder, ref.value)
        try:
            if ref.kind == "topology":
                clusters[ref.value] = load_cluster(path)
            elif ref.kind == "placement" and ref.value not in STRATEGIES:
                _check_placement_file(path)
            elif ref.kind == "trace":
                load_workload(path)
        except (TopologyError, PlacementError, WorkloadError) as exc:
            raise SweepError(f"{doc.at(ref.loc)}{exc}") from None
    return clusters


def _check_placement_file(path: Path) -> None:
    """A placement file exists, is YAML and follows the placement schema (its devices and
    ranks are checked against each point's cluster and workload when the point runs).

    Raises:
        PlacementError: it does not.
    """
    from simcluster.placement.bind import _PlacementSpec  # the schema of placement files
    from simcluster.yamlfile import read_yaml, validate

    if not is_file(path):
        raise PlacementError(f"{path}: not a placement strategy ({', '.join(STRATEGIES)}) "
                             "and no such file; check the name or the path.")
    validate(read_yaml(path, PlacementError), _PlacementSpec, PlacementError)

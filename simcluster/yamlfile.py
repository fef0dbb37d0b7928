"""Read YAML input safely and turn schema errors into messages that name file, line and path.

Only ``yaml.SafeLoader`` is used: nothing in an input file is evaluated. Duplicate keys, which
PyYAML silently collapses, are an error here because the later value would quietly win.

Inputs are bounded before anything is built from them (:class:`YamlLimits`): the file size,
the nesting depth, and the number of nodes the document has once its aliases are expanded.
A few hundred bytes of nested aliases ("billion laughs") would otherwise expand to gigabytes
in the schema check; such a file is refused from its node graph, where aliases are shared and
nothing is expanded yet. A recursive alias (``&a [*a]``) is refused the same way.
"""

from __future__ import annotations

import difflib
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simcluster.errors import SimclusterError, where

Loc = tuple[int | str, ...]

_ENV_MAX_BYTES = "SIMCLUSTER_YAML_MAX_BYTES"
_ENV_MAX_NODES = "SIMCLUSTER_YAML_MAX_NODES"


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on a YAML input, checked before its values are built.

    Attributes:
        max_bytes: the largest file, in bytes (1 MiB: the pure-Python parser reads about
            0.25 MB/s on a slow core, and real topologies, placements and sweeps are a few KB).
            Raise it with the environment variable ``SIMCLUSTER_YAML_MAX_BYTES``.
        max_nodes: the most nodes (mappings, sequences, scalars, keys included) the document
            may have with every alias expanded. Raise it with ``SIMCLUSTER_YAML_MAX_NODES``.
        max_depth: the deepest nesting of mappings and sequences.
    """

    max_bytes: int = 1 << 20
    max_nodes: int = 200_000
    max_depth: int = 64

    @classmethod
    def from_env(cls) -> YamlLimits:
        """The defaults, with ``SIMCLUSTER_YAML_MAX_BYTES``/``_MAX_NODES`` where set (whole
        numbers; anything else is ignored)."""
        base = cls()
        return cls(max_bytes=_env_int(_ENV_MAX_BYTES, base.max_bytes),
                   max_nodes=_env_int(_ENV_MAX_NODES, base.max_nodes),
                   max_depth=base.max_depth)


def _env_int(name: str, default: int) -> int:
    """A positive whole number from the environment variable ``name``, else ``default``."""
    text = os.environ.get(name, "").strip().replace("_", "")
    return int(text) if text.isdigit() and 0 < len(text) < 19 and int(text) > 0 else default


def format_loc(loc: Loc) -> str:
    """Render a location tuple as a YAML path: ``('nodes', 2, 'bandwidth_GBps')`` ->
    ``nodes[2].bandwidth_GBps``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its data and a map from locations to 1-based line numbers."""

    path: Path
    data: Any
    lines: dict[Loc, int]

    def line(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest enclosing location that has one."""
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in self.lines:
                return self.lines[loc[:cut]]
        return None

    def at(self, loc: Loc) -> str:
        """``file:line: path: `` prefix for a message about ``loc``."""
        line = self.line(loc)
        file_part = f"{self.path}:{line}" if line else str(self.path)
        return where(file_part, format_loc(loc))


def _int_key(node: yaml.ScalarNode, loc: Loc, path: Path) -> int:
    """An integer key as YAML reads it (``0x1f``, ``1_000``, ``1:30`` = 90).

    Raises:
        SimclusterError: a number of more than 4,300 digits.
    """
    try:
        return yaml.SafeLoader("").construct_yaml_int(node)
    except ValueError:
        raise SimclusterError(f"{path}:{node.start_mark.line + 1}: {format_loc(loc)}: the key "
                              f"{node.value[:20]!r}... is a number of more than 4,300 digits; "
                              "use a shorter key.") from None


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SimclusterError(
                    f"{path}:{key_node.start_mark.line + 1}: {format_loc(loc)}: a key is a "
                    "mapping or a list; keys must be names or numbers.")
            key = key_node.value
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":int"):
                key = _int_key(key_node, loc, path)
            if key in seen:
                raise SimclusterError(
                    f"{path}:{key_node.start_mark.line + 1}: {format_loc(loc + (key,))}: "
                    f"duplicate key (first given on line {seen[key]}); keep only one."
                )
            seen[key] = key_node.start_mark.line + 1
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), lines, path)


def _read_text(path: Path, limits: YamlLimits, error: type[SimclusterError]) -> str:
    """The file's text, read at most ``limits.max_bytes + 1`` bytes (a device or a pipe that
    never ends is refused like a large file).

    Raises:
        error: missing, unreadable, larger than the limit, or not UTF-8.
    """
    try:
        with path.open("rb") as fh:
            raw = fh.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{path}: file not found; check the path.") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the file ({exc}); it must be UTF-8 YAML.") from None
    if len(raw) > limits.max_bytes:
        raise error(
            f"{path}: the file is larger than the YAML size limit of {limits.max_bytes:,} bytes; "
            "topology, placement and sweep files are a few KB (use templates rather than "
            f"listing every part). Raise the limit with {_ENV_MAX_BYTES}=<bytes> if it is "
            "really needed."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: cannot read the file ({exc}); it must be UTF-8 YAML.") from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly under ``node`` (keys and values of a mapping)."""
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_graph(root: yaml.Node, limits: YamlLimits, path: Path,
                error: type[SimclusterError]) -> int:
    """Check a composed document against ``limits`` without expanding its aliases.

    An alias is the same node object as its anchor, so the expanded size of each node is
    computed once (memoised by identity): the time is linear in the file, whatever the
    aliases would expand to.

    Returns:
        The number of nodes with aliases expanded.

    Raises:
        error: a recursive alias, nesting deeper than ``limits.max_depth``, or more than
            ``limits.max_nodes`` nodes once expanded (the alias bomb).
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            open_.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            line = node.start_mark.line + 1
            if depth[key] > limits.max_depth:
                raise error(f"{path}:{line}: nested deeper than {limits.max_depth} levels; "
                            "topology, placement and sweep files are a few levels deep.")
            if size[key] > limits.max_nodes:
                raise error(
                    f"{path}:{line}: the document expands to more than {limits.max_nodes:,} "
                    "values once its aliases (*name) are resolved: aliases nested in aliases "
                    "multiply (a 'billion laughs' file). Use fewer nested aliases, or raise "
                    f"the limit with {_ENV_MAX_NODES}=<count> if the document is really "
                    "that large."
                )
            continue
        if key in size:
            continue
        if key in open_:
            raise error(f"{path}:{node.start_mark.line + 1}: an alias refers to a node that "
                        "contains it (a recursive structure); YAML inputs must be trees.")
        open_.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)
    return size[id(root)]


def read_yaml(path: str | Path, error: type[SimclusterError],
              limits: YamlLimits | None = None) -> YamlDocument:
    """Parse a YAML file with the safe loader, within ``limits``.

    Parameters:
        path: the file.
        error: the class to raise (``TopologyError``, ``PlacementError``, ...).
        limits: the bounds (default: :meth:`YamlLimits.from_env`).

    Raises:
        error: the file is missing, unreadable, over a limit (size, depth, expanded nodes, a
            recursive alias), not valid YAML, empty, or has duplicate keys.
    """
    path = Path(path)
    limits = limits or YamlLimits.from_env()
    text = _read_text(path, limits, error)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(path, exc, error) from None
    except RecursionError:
        raise error(f"{path}: nested deeper than {limits.max_depth} levels; topology, "
                    "placement and sweep files are a few levels deep.") from None
    if root is None:
        raise error(f"{path}: the file is empty; see docs/formats.md for what it must contain.")
    check_graph(root, limits, path, error)
    lines: dict[Loc, int] = {}
    try:
        _walk(root, (), lines, path)
    except SimclusterError as exc:
        raise error(str(exc)) from None
    try:
        data = yaml.SafeLoader("").construct_document(root)
    except yaml.YAMLError as exc:
        raise _syntax_error(path, exc, error) from None
    except (ValueError, OverflowError, LookupError, AttributeError, TypeError) as exc:
        # PyYAML's constructors on values they cannot build: a 5,000-digit int, a date like
        # 2024-13-45, explicit tags on the wrong text (``!!bool x``, ``!!timestamp x``).
        problem = ("a number has more than 4,300 digits" if "digits" in str(exc)
                   else f"a value cannot be read ({type(exc).__name__}: {exc})")
        raise error(f"{path}: {problem}; check the numbers and dates in the file.") from None
    if data is None:
        raise error(f"{path}: the file is empty; see docs/formats.md for what it must contain.")
    return YamlDocument(path=path, data=data, lines=lines)


def _syntax_error(path: Path, exc: yaml.YAMLError, error: type[SimclusterError]
                  ) -> SimclusterError:
    mark = getattr(exc, "problem_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return error(
        f"{path}{line}: YAML syntax error: {problem}. Check indentation, colons and quotes "
        "around this line."
    )


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/list/dict wrappers down to the model class, if any."""
    for _ in range(4):
        origin = typing.get_origin(annotation)
        if origin is None:
            return annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[-1] if args else annotation
    return annotation


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of ``loc``."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


_HINTS = {
    "greater_than": "use a positive number",
    "greater_than_equal": "use zero or a positive number",
    "missing": "add this key",
    "int_parsing": "use a whole number",
    "int_type": "use a whole number",
    "float_parsing": "use a number",
    "float_type": "use a number",
    "string_type": "use a string",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "model_type": "use a mapping of keys to values",
    "dict_type": "use a mapping of keys to values",
    "list_type": "use a list",
}


def _hint(model: type[BaseModel], err: Any) -> str:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, loc)
        allowed = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        suggestion = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown key; {suggestion}allowed keys here: {', '.join(allowed)}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    hint = _HINTS.get(kind)
    return f"{msg[0].lower()}{msg[1:]}" + (f"; {hint}" if hint else "")


def validate(
    doc: YamlDocument, model: type[BaseModel], error: type[SimclusterError]
) -> BaseModel:
    """Validate ``doc.data`` against ``model``; on failure raise ``error`` listing each problem
    with its line and YAML path."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:8]:
            loc: Loc = tuple(err["loc"])
            problems.append(f"{doc.at(loc)}{_hint(model, err)}.")
        more = exc.error_count() - len(problems)
        if more > 0:
            problems.append(f"... and {more} more problem(s).")
        raise error(" ".join(problems)) from None

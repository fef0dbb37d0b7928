"""Read YAML input safely and turn schema errors into messages that name file, line and path.

Only ``yaml.SafeLoader`` is used: nothing in an input file is evaluated. Duplicate keys, which
PyYAML silently collapses, are an error here because the later value would quietly win.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simcluster.errors import SimclusterError, where

Loc = tuple[int | str, ...]


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


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":int"):
                key = int(key)
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


def read_yaml(path: str | Path, error: type[SimclusterError]) -> YamlDocument:
    """Parse a YAML file with the safe loader.

    Raises:
        error: the file is missing, unreadable, not valid YAML, empty, or has duplicate keys.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found; check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the file ({exc}); it must be UTF-8 YAML.") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(
            f"{path}{line}: YAML syntax error: {problem}. Check indentation, colons and quotes "
            "around this line."
        ) from None
    if root is None or data is None:
        raise error(f"{path}: the file is empty; see docs/formats.md for what it must contain.")
    lines: dict[Loc, int] = {}
    try:
        _walk(root, (), lines, path)
    except SimclusterError as exc:
        raise error(str(exc)) from None
    return YamlDocument(path=path, data=data, lines=lines)


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

"""The sweep constraint language: arithmetic and comparisons over numbers, bounded.

A constraint such as ``"gpus % (tp * pp) == 0 and micro_batch * dp <= 64"`` is parsed with
:func:`ast.parse` and checked node by node (numbers, names, ``+ - * / // % **``, ``== != <
<= > >=``, ``and or not``; nothing else), then compiled into small closures. Nothing is
evaluated as Python.

Every evaluation is bounded, so no spec can make the loader hang or exhaust memory:

- a constraint has at most :data:`MAX_CHARS` characters and nests at most :data:`MAX_DEPTH`
  operations deep;
- every number (a literal, a name's value, each intermediate result) is a finite int or
  float of magnitude at most :data:`MAX_MAGNITUDE`; ``a ** b`` is refused *before* it is
  computed when ``|b| * log10(|a|)`` exceeds ``log10(MAX_MAGNITUDE)``, so ``9 ** 9 ** 9``
  fails at once instead of computing a 370-million-digit number;
- a result that is not a real number (``(-8) ** 0.5``) is refused.

Each operation is therefore O(1), and a constraint costs at most one step per node.

``simpleeval`` was considered and not used: it bounds ``**`` only by its operands' size
(4,000,000), so ``3999999 ** 3999999`` still runs for minutes, and it does not bound
products of large integers.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simcluster.sweep.errors import SweepError

#: Longest constraint, characters.
MAX_CHARS = 1000
#: Deepest nesting of operations in a constraint.
MAX_DEPTH = 50
#: Largest magnitude of any number a constraint uses or computes.
MAX_MAGNITUDE = 1e100
_MAX_LOG10 = math.log10(MAX_MAGNITUDE)

Number = int | float
Env = dict[str, Any]
_Eval = Callable[[Env], Any]


class ConstraintError(SweepError):
    """A constraint that is not in the language, or that cannot be evaluated for a point."""


_ARITH: dict[type[ast.AST], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_COMPARE: dict[type[ast.AST], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge}
_UNARY: dict[type[ast.AST], Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name,
            ast.Load, ast.Constant, ast.And, ast.Or, ast.Pow, *_ARITH, *_COMPARE, *_UNARY)


@dataclass(frozen=True)
class Constraint:
    """A checked constraint: its text, the names it uses and its compiled form.

    Attributes:
        text: the constraint as written.
        names: the names it reads.
        nodes: its size in AST nodes (each costs at most one O(1) step to evaluate).
    """

    text: str
    names: frozenset[str]
    nodes: int
    _run: _Eval

    def __call__(self, env: Env) -> bool:
        """True if the point with values ``env`` (name -> number) satisfies the constraint.

        Raises:
            ConstraintError: a name without a value, a value that is not a number, a number
                over :data:`MAX_MAGNITUDE`, a division by zero, or a result that is not a
                real number.
        """
        try:
            return bool(self._run(env))
        except ZeroDivisionError:
            raise ConstraintError(f"constraint {self.text!r}: division by zero.") from None
        except KeyError as exc:
            raise ConstraintError(f"constraint {self.text!r}: this point has no value for "
                                  f"{exc.args[0]!r}.") from None
        except (OverflowError, TypeError) as exc:
            raise ConstraintError(f"constraint {self.text!r}: cannot evaluate ({exc}).") \
                from None


def _number(value: Any, text: str, what: str) -> Number:
    """``value`` if it is a finite number within :data:`MAX_MAGNITUDE` (bools count as 0/1).

    Raises:
        ConstraintError: anything else.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            return value
    elif isinstance(value, float):
        if math.isfinite(value) and abs(value) <= MAX_MAGNITUDE:
            return value
    else:
        raise ConstraintError(f"constraint {text!r}: {what} is {value!r}, not a real number; "
                              "constraints compute with numbers only.")
    raise ConstraintError(
        f"constraint {text!r}: {what} exceeds {MAX_MAGNITUDE:g}, the largest number "
        "constraints use (a limit that keeps them fast); rewrite it with smaller numbers.")


def _power(a: Number, b: Number, text: str) -> Number:
    """``a ** b``, refused before it is computed if its magnitude would exceed the limit."""
    shown = f"({a}) ** {b}" if a < 0 else f"{a} ** {b}"
    if a not in (0, 1, -1) and b * math.log10(abs(a)) > _MAX_LOG10:
        raise ConstraintError(
            f"constraint {text!r}: {shown} exceeds {MAX_MAGNITUDE:g}, the largest number "
            "constraints compute (a limit that keeps them fast); use smaller exponents.")
    return _number(a ** b, text, shown)


def _depth(tree: ast.AST) -> int:
    """Nesting depth of ``tree``, computed without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def compile_constraint(text: str, names: set[str]) -> Constraint:
    """Parse and check a constraint; names must be in ``names``.

    Raises:
        ConstraintError: too long or too deep, a syntax error, an unknown name, or anything
            but numbers, names, arithmetic, comparisons and ``and or not``.
    """
    if len(text) > MAX_CHARS:
        raise ConstraintError(f"constraint {text[:40]!r}...: {len(text)} characters, over the "
                              f"limit of {MAX_CHARS}; split it into several constraints.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConstraintError(f"constraint {text!r}: not an expression ({exc.msg}).") from None
    except (ValueError, RecursionError, MemoryError):
        raise ConstraintError(f"constraint {text!r}: not an expression.") from None
    if _depth(tree) > MAX_DEPTH:
        raise ConstraintError(f"constraint {text!r}: nests operations more than {MAX_DEPTH} "
                              "deep; simplify it.")
    used, count = set(), 0
    for node in ast.walk(tree):
        count += 1
        if not isinstance(node, _ALLOWED) or (isinstance(node, ast.Constant) and (
                isinstance(node.value, complex) or not isinstance(node.value, (int, float)))):
            raise ConstraintError(f"constraint {text!r}: only arithmetic, comparisons and names "
                                  "are allowed.")
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ConstraintError(f"constraint {text!r}: unknown name {node.id!r}; known: "
                                      f"{', '.join(sorted(names))}.")
            used.add(node.id)
    return Constraint(text=text, names=frozenset(used), nodes=count,
                      _run=_compile(tree.body, text))


def _compile(node: ast.AST, text: str) -> _Eval:
    """Closures evaluating a checked node (``compile_constraint`` ruled out anything else)."""
    if isinstance(node, ast.Constant):
        value = _number(node.value, text, "a number")
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        return lambda env: _number(env[name], text, name)
    if isinstance(node, ast.UnaryOp):
        arg, unary = _compile(node.operand, text), _UNARY[type(node.op)]
        return lambda env: unary(arg(env))
    if isinstance(node, ast.BinOp):
        left, right = _compile(node.left, text), _compile(node.right, text)
        if isinstance(node.op, ast.Pow):
            return lambda env: _power(_number(left(env), text, "a value"),
                                      _number(right(env), text, "a value"), text)
        arith = _ARITH[type(node.op)]
        return lambda env: _number(arith(left(env), right(env)), text, "a result")
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, text) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(p(env) for p in parts)
        return lambda env: any(p(env) for p in parts)
    if isinstance(node, ast.Compare):
        first = _compile(node.left, text)
        chain = [(_COMPARE[type(op)], _compile(c, text))
                 for op, c in zip(node.ops, node.comparators)]

        def compare(env: Env) -> bool:
            left = first(env)
            for cmp, right in chain:
                r = right(env)
                if not cmp(left, r):
                    return False
                left = r
            return True

        return compare
    raise ConstraintError(f"constraint {text!r}: unsupported expression.")

"""Which recorded operators a ``torch.compile``d model runs: its forward and their backward.

Dynamo does not trace under the recorder (it skips every frame while a dispatch mode is
active), so compiled code runs its eager operators; the recorder fuses them as Inductor
would (:mod:`.fusion`) where :class:`CompiledCode` says they come from compiled code:

- **forward**: while a compiled callable runs: ``torch.compile(module)`` (an
  ``OptimizedModule``), ``torch.compile(fn)`` and ``@torch.compile``, ``module.compile()``;
- **backward**: while the autograd engine runs a node that the compiled forward created
  (its sequence number, which autograd gives every node in creation order, lies in a span
  recorded around a compiled call). Gradient accumulation into ``.grad`` (``AccumulateGrad``)
  and the hooks on it (DDP's bucket copies) stay eager, as after AOTAutograd's compiled
  backward.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import torch


class CompiledCode:
    """Spans of autograd sequence numbers made by compiled calls, and whether one runs."""

    def __init__(self) -> None:
        self.depth = 0
        self.spans: list[tuple[int, int]] = []

    def active(self) -> bool:
        """True while compiled code runs: a compiled call, or the backward of its nodes."""
        if self.depth:
            return True
        node = torch._C._current_autograd_node()
        if node is None:
            return False
        seq = node._sequence_nr()
        return any(start <= seq < end for start, end in self.spans)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around one call of compiled code; the autograd nodes it creates are kept."""
        start = torch._C._autograd._get_sequence_nr()
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            end = torch._C._autograd._get_sequence_nr()
            if self.depth == 0 and end > start:
                self.spans.append((start, end))

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` called inside :meth:`running`."""
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self.running():
                return fn(*args, **kwargs)
        return run


@contextlib.contextmanager
def compiled_code(code: CompiledCode) -> Iterator[None]:
    """Patch ``torch.compile`` and compiled modules so that their calls run inside
    ``code.running()``; undone on exit."""
    original = torch.compile

    with contextlib.ExitStack() as stack:
        def compile(model: Any = None, **kwargs: Any) -> Any:
            if model is None:   # @torch.compile(mode=...)
                return lambda fn: compile(fn, **kwargs)
            compiled = original(model, **kwargs)
            if not isinstance(compiled, torch.nn.Module):
                return code.wrap(compiled)
            kind = type(compiled)       # OptimizedModule (Dynamo imported by now)
            if not getattr(kind.__call__, "_simcluster_compiled", False):
                stack.enter_context(mock.patch.object(kind, "__call__", _calls(kind, code)))
            return compiled

        stack.enter_context(mock.patch.object(torch, "compile", compile))
        yield


def _calls(kind: type, code: CompiledCode) -> Callable[..., Any]:
    """``kind.__call__`` run inside ``code.running()`` (marked, to patch it once)."""
    call = code.wrap(kind.__call__)
    call._simcluster_compiled = True  # type: ignore[attr-defined]
    return call

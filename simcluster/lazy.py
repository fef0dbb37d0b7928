"""Lazy package attributes (PEP 562): a package names what it exports and the module each
name lives in, and the module is imported on first use, so that ``import simcluster`` (and
the command line's ``--help``) does not pay for numpy, pyarrow, SimPy, networkx and the
pydantic models until a name that needs them is used.

Usage, at the end of a package's ``__init__.py``::

    __getattr__, __dir__ = lazy_exports(__name__, {"Result": "simcluster.result", ...})

A name resolved once is stored in the package's namespace, so later look-ups are ordinary
attribute reads. Submodules of the package that were never imported resolve too
(``simcluster.sim`` after ``import simcluster``), as they did when the package imported
them eagerly.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of package ``package`` (its ``__name__``) that
    import ``exports[name]`` (a module path) on the first look-up of ``name``.

    ``__getattr__`` raises ``AttributeError`` for a name that is neither exported nor a
    submodule, as a module without it would.
    """

    def __getattr__(name: str) -> Any:
        namespace = vars(sys.modules[package])
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
            namespace[name] = value
            return value
        if not name.startswith("__"):
            try:
                sub = importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":  # the submodule exists but failed
                    raise
            else:
                return sub
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__

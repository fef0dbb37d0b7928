"""Lazy package attributes (``simcluster/lazy.py``) and the lazy public API of ``simcluster``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import simcluster
from simcluster.lazy import lazy_exports
from tests.conftest import ROOT


def _python(code: str, cwd: Path = ROOT) -> dict:
    """Run ``code`` in a fresh interpreter (in ``cwd``); it prints one JSON document."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def _package(tmp_path: Path) -> Path:
    """A package ``lz`` exporting ``VALUE`` from ``lz.heavy`` lazily, with a submodule
    ``broken`` whose own import fails."""
    pkg = tmp_path / "lz"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from simcluster.lazy import lazy_exports\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'VALUE': 'lz.heavy'})\n")
    (pkg / "heavy.py").write_text("VALUE = 42\n")
    (pkg / "broken.py").write_text("import no_such_module_anywhere\n")
    return tmp_path


def test_a_name_imports_its_module_on_first_use_only(tmp_path: Path) -> None:
    root = _package(tmp_path)
    got = _python(f"""
        import json, sys
        sys.path.insert(0, {str(root)!r})
        import lz
        before = "lz.heavy" in sys.modules
        value = lz.VALUE
        print(json.dumps({{"before": before, "after": "lz.heavy" in sys.modules,
                          "value": value, "stored": "VALUE" in vars(lz),
                          "dir": "VALUE" in dir(lz)}}))
    """)
    assert got == {"before": False, "after": True, "value": 42, "stored": True, "dir": True}


def test_unknown_names_and_submodules(tmp_path: Path) -> None:
    root = _package(tmp_path)
    got = _python(f"""
        import json, sys
        sys.path.insert(0, {str(root)!r})
        import lz
        out = {{"heavy": lz.heavy.__name__}}
        try:
            lz.nothing
        except AttributeError as exc:
            out["unknown"] = type(exc).__name__
        try:
            lz.broken
        except ModuleNotFoundError as exc:
            out["broken"] = exc.name
        print(json.dumps(out))
    """)
    # a submodule resolves; a missing name is an AttributeError; a submodule that fails to
    # import says why (its own missing import), not that the attribute is missing
    assert got == {"heavy": "lz.heavy", "unknown": "AttributeError",
                   "broken": "no_such_module_anywhere"}


def test_lazy_exports_without_the_package_loaded() -> None:
    getattr_, dir_ = lazy_exports("simcluster", {"Result": "simcluster.result"})
    from simcluster.result import Result

    assert getattr_("Result") is Result
    assert "Result" in dir_()
    with pytest.raises(AttributeError):
        getattr_("NoSuchName")


def test_every_public_name_resolves() -> None:
    for name in simcluster.__all__:
        assert getattr(simcluster, name) is not None, name
    assert set(simcluster.__all__) <= set(dir(simcluster))
    assert simcluster.Result.__module__ == "simcluster.result"
    assert simcluster.replay.__module__ == "simcluster.scenario"


HEAVY = ("numpy", "pyarrow", "networkx", "simpy", "pydantic", "pandas")


def test_import_simcluster_loads_no_third_party_module() -> None:
    got = _python(f"""
        import json, sys
        import simcluster
        print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules],
                          "all": sorted(n for n in simcluster.__all__
                                        if getattr(simcluster, n, None) is None)}}))
    """)
    assert got == {"loaded": [], "all": []}


def test_public_functions_resolve_their_type_hints() -> None:
    """Every public function of ``simcluster`` resolves its annotations at runtime
    (``typing.get_type_hints``, as typer, pydantic and IDEs do): no name they use hides
    behind ``TYPE_CHECKING``. (Classes are left out: ``Result`` and ``Scenario`` refer to
    each other, and only one of the two can import the other.)"""
    import inspect
    import typing

    unresolved = []
    for name in simcluster.__all__:
        obj = getattr(simcluster, name)
        if not inspect.isfunction(obj):
            continue
        try:
            typing.get_type_hints(obj)
        except NameError as exc:
            unresolved.append(f"{name}: {exc}")
    assert unresolved == []

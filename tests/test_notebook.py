"""The README's Python example, run as a Jupyter notebook would run it: one cell per
statement on a real kernel, with a DataFrame and an inline plot among the outputs, and the
pyplot backend left as the notebook set it. Skipped when nbclient, ipykernel, pandas or
matplotlib is not installed (all come with the test extra)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")


def readme_example() -> str:
    """The first ```python block after "From Python" in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"From Python.*?```python\n(.*?)```", text, re.S)
    assert m, "README has no Python example"
    return m.group(1)


def cells(source: str) -> list[str]:
    """One cell per top-level statement, as a user would step through it."""
    return [ast.get_source_segment(source, node) or "" for node in ast.parse(source).body]


def outputs(nb: Any) -> list[dict[str, Any]]:
    return [o for c in nb.cells for o in c.get("outputs", [])]


def test_readme_example_runs_in_a_notebook(tmp_path: Path) -> None:
    for folder in ("traces", "topologies"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    code = [*cells(readme_example()), "import matplotlib\nmatplotlib.get_backend()"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code])
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    text = "".join(o.get("text", "") for o in outs if o["output_type"] == "stream")
    assert re.search(r"step time \d+\.\d{3} ms, limited by compute", text)
    html = [o["data"]["text/html"] for o in outs if "text/html" in o.get("data", {})]
    assert any("<table" in h and "compute_us" in h for h in html), "no DataFrame shown"
    assert any("image/png" in o.get("data", {}) for o in outs), "no inline plot"
    backend = outs[-1]["data"]["text/plain"]
    assert "inline" in backend and "agg" not in backend.lower()
    assert (tmp_path / "run" / "summary.json").is_file()

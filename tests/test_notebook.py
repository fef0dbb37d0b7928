"""The README's Python example, run as a Jupyter notebook would run it: one cell per
statement on a real kernel, with a DataFrame and an interactive plot among the outputs.
Skipped when nbclient, ipykernel, pandas or plotly is not installed (all come with the test
extra)."""

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
pytest.importorskip("plotly")


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
    code = cells(readme_example())
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
    plots = [o["data"]["application/vnd.plotly.v1+json"] for o in outs
             if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plots) == 1 and len(plots[0]["data"]) == 6, "no inline breakdown plot"
    assert (tmp_path / "run" / "summary.json").is_file()

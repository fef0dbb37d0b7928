"""The HTML report: interactive, self-contained, aggregated so that its size does not grow
with the ops, and looked at the way a person sees it: in headless Chromium."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import simcluster as sc
from tests.conftest import ROOT

pytest.importorskip("plotly")

SAMPLE = ROOT / "traces" / "dp-transformer-16.parquet"
TOPO = ROOT / "topologies" / "h100-2node.yaml"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return sc.replay(SAMPLE, TOPO).write_report(tmp_path_factory.mktemp("report") / "report.html")


def _image(data: bytes) -> np.ndarray:
    mpimg = pytest.importorskip("matplotlib.image")

    return mpimg.imread(io.BytesIO(data), format="png")


def _figures(html: str) -> dict[str, dict]:
    """div id -> the figure's data traces, as Plotly.newPlot receives them."""
    out = {}
    for div, data in re.findall(r'Plotly\.newPlot\(\s*"(\w+)",\s*(\[.*?\]),\s*\{', html, re.S):
        out[div] = json.loads(data)
    return out


def test_page_is_self_contained_with_four_interactive_plots(report: Path) -> None:
    html = report.read_text()
    assert "<script src=" not in html  # plotly.js is inlined: nothing fetched from outside
    figs = _figures(html)
    assert list(figs) == ["limits", "timeline", "links", "breakdown"]
    timeline = {t["name"]: t for t in figs["timeline"]}
    assert set(timeline) == {"collective", "compute", "memcpy"}
    # 16 alike data-parallel ranks: one representative, its three streams.
    assert set(timeline["compute"]["y"]) == {"r0 (x16) compute"}
    assert sum(len(t["x"]) for t in figs["breakdown"]) == 6 * 16  # six categories x 16 ranks
    heat = figs["links"][0]
    assert len(heat["y"]) == 32 and len(heat["z"][0]) == 200
    assert max(max(row) for row in heat["z"]) > 0.5
    assert "step time 21." in html and "Bottleneck links" in html
    assert "Critical path by op class" in html and "bwd.layer*" in html


def test_same_run_same_page(report: Path, tmp_path: Path) -> None:
    again = sc.replay(SAMPLE, TOPO).write_report(tmp_path / "again.html")
    assert again.read_bytes() == report.read_bytes()


def test_a_folded_run_draws_its_replica_and_names_the_mirrors(tmp_path: Path) -> None:
    wl = sc.generate("transformer", preset="llama2-7b", layers=4, tp=2, pp=2, dp=4,
                     global_batch=16)
    html = sc.replay(wl, TOPO).write_report(tmp_path / "r.html").read_text()
    figs = _figures(html)
    ranks = {y.split(" ")[0] for t in figs["timeline"] for y in t["y"]}
    assert ranks <= {"r0", "r1", "r2", "r3"}  # replica 0: tp 2 x pp 2
    assert "12 mirror ranks of the folded workload are not drawn" in html
    assert "L*.fwd.fc1" in html and "by layer: L" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(page: Path, tmp_path: Path, size: tuple[int, int] = (1300, 2600)
                ) -> np.ndarray:
    """The page as headless Chromium draws it (``size`` = width, height in px; RGB 0..1)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian package: chromium)")
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "Chromium wrote no screenshot"
    img = _image(shot.read_bytes())[..., :3]
    assert img.shape[:2] == (size[1], size[0])
    return img


@pytest.mark.parametrize("size", [(1300, 2600), (800, 3000)])
def test_chromium_screenshot_shows_the_plots(report: Path, tmp_path: Path,
                                             size: tuple[int, int]) -> None:
    img = _screenshot(report, tmp_path, size)  # a desktop and a narrow window
    # The page is mostly white; plots add large coloured areas (the Gantt's blue bars, the
    # limits bar's green). Count clearly coloured pixels.
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 0.3).mean() > 0.03
    blue = (img[..., 2] > 0.55) & (img[..., 0] < 0.45)  # the compute bars
    assert blue.mean() > 0.01


@pytest.mark.parametrize("case", ["folded-llm", "kineto"])
def test_chromium_draws_the_llm_and_the_recorded_trace_reports(case: str, tmp_path: Path,
                                                              request) -> None:
    if case == "kineto":
        data = request.getfixturevalue("shared_data")
        result = sc.replay(data / "kineto" / "dlrm-v100-8rank")
    else:
        result = sc.replay(sc.generate("transformer", preset="llama2-7b", layers=4, tp=2, pp=2,
                                       dp=4, global_batch=16), TOPO)
    img = _screenshot(result.write_report(tmp_path / "r.html"), tmp_path)
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 0.3).mean() > 0.03, f"{case}: the plots look blank"


def test_result_plots_are_plotly_figures(tmp_path: Path) -> None:
    from simcluster.errors import SimclusterError

    result = sc.replay(SAMPLE, TOPO)
    for what, traces in (("timeline", 3), ("links", 1), ("breakdown", 6), ("limits", 4)):
        fig = result.plot(what)
        assert len(fig.data) == traces, what
    fig.write_html(tmp_path / "limits.html", include_plotlyjs=False)
    assert "Plotly.newPlot" in (tmp_path / "limits.html").read_text()
    with pytest.raises(SimclusterError, match="plot 'gantt': use one of timeline"):
        result.plot("gantt")


def test_report_of_a_recorded_trace_shows_fidelity_and_the_import_report(
        tmp_path: Path, shared_data: Path, capsys) -> None:
    from simcluster.cli import main

    out = tmp_path / "run"
    for args in (["replay", str(shared_data / "kineto" / "dlrm-v100-8rank"), "--out", str(out)],
                 ["report", str(out)]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
            raise SystemExit(0)
        assert exit_.value.code in (0, None)
    html = (out / "report.html").read_text()
    assert "Simulated vs recorded ProfilerStep" in html and "Import report" in html
    assert html.count("<tr><td>") >= 8  # the eight ranks' ProfilerStep rows, among others
    assert "flow arrows" in html  # a skipped category the importer reported

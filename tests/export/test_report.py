"""The HTML report, looked at the way a person sees it: in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    import simcluster as sc

    result = sc.replay(ROOT / "traces" / "dp-transformer-16.parquet",
                       ROOT / "topologies" / "h100-2node.yaml")
    return result.write_report(tmp_path_factory.mktemp("report") / "report.html")


def _image(data: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(data), format="png")


def test_page_is_self_contained_with_four_non_blank_plots(report: Path) -> None:
    html = report.read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside
    pngs = re.findall(r'alt="(\w+)" src="data:image/png;base64,([^"]+)"', html)
    assert [name for name, _ in pngs] == ["limits", "gantt", "heatmap", "breakdown"]
    for name, data in pngs:
        img = _image(base64.b64decode(data))
        assert img.shape[0] > 80 and img.shape[1] > 400, name
        assert float(img[..., :3].std()) > 0.05, f"{name} looks blank"
    assert "step time 21." in html and "Bottleneck links" in html and "Critical path" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_chromium_screenshot_shows_the_plots(report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian package: chromium)")
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1300,2600", f"--screenshot={shot}", report.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "Chromium wrote no screenshot"
    img = _image(shot.read_bytes())[..., :3]
    assert img.shape[:2] == (2600, 1300)
    # The page is mostly white; plots add large coloured areas (the Gantt's blue bars, the
    # limits bar's green). Count clearly coloured pixels.
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 0.3).mean() > 0.03
    blue = (img[..., 2] > 0.55) & (img[..., 0] < 0.45)  # the compute bars
    assert blue.mean() > 0.01


def test_plots_and_reports_leave_the_pyplot_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    import simcluster as sc
    from simcluster.errors import SimclusterError

    before = matplotlib.get_backend()
    matplotlib.use("pdf")
    try:
        result = sc.replay(ROOT / "traces" / "dp-transformer-16.parquet",
                           ROOT / "topologies" / "h100-2node.yaml")
        result.write_report(tmp_path / "r.html")
        for what in ("timeline", "links", "breakdown", "limits"):
            png = result.plot(what)._repr_png_()
            assert png.startswith(b"\x89PNG") and _image(png).shape[1] > 400, what
        assert result.plot("limits").save(tmp_path / "l.png").read_bytes().startswith(b"\x89PNG")
        assert matplotlib.get_backend() == "pdf"
        with pytest.raises(SimclusterError, match="plot 'gantt': use one of timeline"):
            result.plot("gantt")
    finally:
        matplotlib.use(before)


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

"""Rich renderings of a calibration (``simcluster calibrate``)."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from simcluster.calibrate import BANDS, NOT_IDENTIFIABLE, Calibration, Fitted


def calibration(result: Calibration) -> list[RenderableType]:
    """The title line, the parameters table and the fit-quality table."""
    title = Text(f"# {result.cluster.name}: {len(result.curves)} log(s), objective "
                 f"{result.objective_before:.4f} -> {result.objective_after:.4f} "
                 f"({result.evaluations} evaluations)")
    return [title, parameters(result), quality(result)]


def _value(p: Fitted, v: float) -> str:
    return f"{v:g}{' ' + p.knob.unit if p.knob.unit else ''}"


def parameters(result: Calibration) -> Table:
    """One row per knob: before, after, and what became of it."""
    table = Table(title="network parameters (fits as well: the values within 0.1 % of the "
                  "best objective, the others held)", title_justify="left")
    for col in ("parameter", "before", "after", "fits as well", "status"):
        table.add_column(col, justify="left" if col in ("parameter", "status") else "right")
    for p in result.params:
        status = p.status + (f": {p.reason}" if p.reason else "")
        fitted = p.status != NOT_IDENTIFIABLE
        spread = f"{p.interval[0]:g}-{p.interval[1]:g}" if p.interval else ""
        table.add_row(p.knob.name, _value(p, p.before), _value(p, p.after) if fitted else "",
                      spread, status)
    return table


def quality(result: Calibration) -> Table:
    """Per log and size band (fitted sizes, then held-out ones): MAPE and mean signed error
    of busbw, before -> after."""
    table = Table(title="busbw error per log and size band (before -> after; signed < 0: "
                  "model too slow)", title_justify="left")
    for col in ("log", "band", "sizes", "n", "MAPE %", "signed %"):
        table.add_column(col, justify="left" if col in ("log", "band", "sizes") else "right")
    for fit in result.curves:
        name = f"{fit.curve.source} ({fit.curve.collective}, {fit.curve.ranks} ranks)"
        for band in BANDS:
            for held in (False, True):
                s = fit.stats(band, held)
                if s is None:
                    continue
                table.add_row(name, band.name + ("" if band.tolerance else " (not fitted)"),
                              "held out" if held else "in fit range", str(s.points),
                              f"{s.mape_before:.1f} -> {s.mape_after:.1f}",
                              f"{s.signed_before:+.1f} -> {s.signed_after:+.1f}")
                name = ""
    return table

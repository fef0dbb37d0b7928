"""Rich renderings of a compute calibration (``simcluster calibrate TRACE``)."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from simcluster.calibrate.kernel_fit import NOT_IDENTIFIABLE, ComputeFit, KnobOutcome
from simcluster.calibrate.kernel_quality import KernelStats, by_class, by_trace


def compute_fit(fit: ComputeFit) -> list[RenderableType]:
    """The title line, the parameters table and the per-class and per-trace errors."""
    k = fit.kernels
    title = Text(f"# compute model of {fit.model}: {int((~k.held_out).sum()):,} kernels fitted, "
                 f"{int(k.held_out.sum()):,} held out; objective {fit.objective_before:.4f} -> "
                 f"{fit.objective_after:.4f} ({fit.evaluations} evaluations)")
    return [title, parameters(fit), errors(by_class(fit), "kernel class"),
            errors(by_trace(fit), "trace")]


def _value(p: KnobOutcome, v: float) -> str:
    return f"{v:g}{' ' + p.knob.unit if p.knob.unit else ''}"


def parameters(fit: ComputeFit) -> Table:
    """One row per knob: before, after, and what became of it."""
    table = Table(title=f"compute parameters of {fit.model}", title_justify="left")
    for col in ("parameter", "before", "after", "status"):
        table.add_column(col, justify="left" if col in ("parameter", "status") else "right")
    for p in fit.params:
        status = p.status + (f": {p.reason}" if p.reason else "")
        table.add_row(p.knob.name, _value(p, p.before),
                      _value(p, p.after) if p.status != NOT_IDENTIFIABLE else "", status)
    return table


def errors(rows: tuple[KernelStats, ...], what: str) -> Table:
    """Per class (or trace), fitted then held-out kernels: summed-time error, MAPE and mean
    signed error, before -> after."""
    table = Table(title=f"kernel time error per {what} (before -> after; > 0: model too slow)",
                  title_justify="left")
    for col in (what, "kernels", "n", "recorded ms", "summed time %", "MAPE %", "signed %"):
        table.add_column(col, justify="left" if col in (what, "kernels") else "right")
    for s in rows:
        label = Path(s.label).name if what == "trace" else s.label
        table.add_row(label, "held out" if s.held_out else "fitted", f"{s.kernels:,}",
                      f"{s.recorded_us / 1e3:.2f}",
                      f"{100 * s.time_error_before:+.1f} -> {100 * s.time_error_after:+.1f}",
                      f"{100 * s.mape_before:.0f} -> {100 * s.mape_after:.0f}",
                      f"{100 * s.signed_before:+.0f} -> {100 * s.signed_after:+.0f}")
    return table

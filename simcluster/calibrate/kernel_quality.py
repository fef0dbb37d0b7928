"""How well the compute model predicts recorded kernels, before and after the fit: per kernel
class on the fitted and on the held-out kernels, and per trace.

Per set of kernels: their number, the recorded and predicted summed time (us), the error of
the sums (what a GPU-bound step sees), and per kernel the mean absolute and the mean signed
relative error (``predicted / recorded - 1``), before and after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simcluster.calibrate.kernel_fit import ComputeFit


@dataclass(frozen=True)
class KernelStats:
    """Prediction errors of one set of kernels (``label``: a class, a trace or ``all``)."""

    label: str
    held_out: bool
    kernels: int
    recorded_us: float
    before_us: float
    after_us: float
    mape_before: float
    mape_after: float
    signed_before: float
    signed_after: float

    @property
    def time_error_before(self) -> float:
        """Error of the summed time before the fit (fraction)."""
        return self.before_us / self.recorded_us - 1.0

    @property
    def time_error_after(self) -> float:
        """Error of the summed time after the fit (fraction)."""
        return self.after_us / self.recorded_us - 1.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, with the summed-time errors."""
        return {**vars(self), "time_error_before": self.time_error_before,
                "time_error_after": self.time_error_after}


def _stats(label: str, held: bool, rec: np.ndarray, before: np.ndarray,
           after: np.ndarray) -> KernelStats:
    eb, ea = before / rec - 1.0, after / rec - 1.0
    return KernelStats(label, held, len(rec), float(rec.sum()), float(before.sum()),
                       float(after.sum()), float(np.abs(eb).mean()), float(np.abs(ea).mean()),
                       float(eb.mean()), float(ea.mean()))


def by_class(fit: ComputeFit) -> tuple[KernelStats, ...]:
    """Per kernel class (largest recorded time first, then ``all``), on the fitted kernels
    and then on the held-out ones (a set without kernels is left out)."""
    k = fit.kernels
    out = []
    for held in (False, True):
        part = k.held_out == held
        if not part.any():
            continue
        classes = sorted(set(k.klass[part].tolist()),
                         key=lambda c: (-float(k.recorded_us[part & (k.klass == c)].sum()), c))
        for label, sel in [*((c, part & (k.klass == c)) for c in classes), ("all", part)]:
            out.append(_stats(label, held, k.recorded_us[sel], fit.predicted_before[sel],
                              fit.predicted_after[sel]))
    return tuple(out)


def by_trace(fit: ComputeFit) -> tuple[KernelStats, ...]:
    """Per trace, its fitted and its held-out kernels (all classes)."""
    k = fit.kernels
    out = []
    for origin in dict.fromkeys(k.origin.tolist()):
        for held in (False, True):
            sel = (k.origin == origin) & (k.held_out == held)
            if sel.any():
                out.append(_stats(origin, held, k.recorded_us[sel], fit.predicted_before[sel],
                                  fit.predicted_after[sel]))
    return tuple(out)

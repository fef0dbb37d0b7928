"""How well a network model describes measured curves: per curve and size band, the MAPE and
mean signed error of predicted busbw against measured, on the fitted and the held-out sizes.

Busbw errors are relative: ``(predicted - measured) / measured``; a negative mean signed
error means the model is too slow there. Since nccl-tests' busbw is ``size / time`` times a
constant, the busbw error equals ``measured_time / predicted_time - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simcluster.calibrate.logs import Curve
from simcluster.collective_perf import bus_factor

KIB, MIB, GIB = 2**10, 2**20, 2**30
_TOP = 2**62


@dataclass(frozen=True)
class Band:
    """A size band (bytes, inclusive) and the tolerance that weighs it in the objective (a
    relative error; None: reported only, not fitted)."""

    name: str
    lo: int
    hi: int
    tolerance: float | None


# The bands of bench/fit_collectives.py and docs/network.md: the accuracy the project aims
# for (25 % below 1 MiB, 10 % from 1 MiB, 5 % from 1 GiB). Sizes under 1 KiB are reported but
# not fitted: nccl-tests' time there is launch noise (the DGX H100 log has 68 us at 32 B).
BANDS: tuple[Band, ...] = (
    Band("< 1 KiB", 0, KIB - 1, None),
    Band("1 KiB-1 MiB", KIB, MIB - 1, 0.25),
    Band(">= 1 MiB", MIB, _TOP, 0.10),
    Band(">= 1 GiB", GIB, _TOP, 0.05),
)


@dataclass(frozen=True)
class CurveFit:
    """One curve, measured and predicted before and after calibration.

    Attributes:
        curve: the measured curve.
        sizes: bytes per point.
        measured, before, after: busbw (GB/s) per point.
        fitted: per point, whether the objective used it (False: held out, or in no band).
        held_out: per point, whether it lies outside the fitted size range.
        labels_before, labels_after: the algorithm/protocol the model chose per point.
    """

    curve: Curve
    sizes: np.ndarray
    measured: np.ndarray
    before: np.ndarray
    after: np.ndarray
    fitted: np.ndarray
    held_out: np.ndarray
    labels_before: tuple[str, ...]
    labels_after: tuple[str, ...]

    def stats(self, band: Band, held_out: bool) -> BandStats | None:
        """Errors over the band's points that are held out (or not); None if it has none."""
        sel = (self.sizes >= band.lo) & (self.sizes <= band.hi) & (self.held_out == held_out)
        if not sel.any():
            return None
        b = (self.before[sel] - self.measured[sel]) / self.measured[sel]
        a = (self.after[sel] - self.measured[sel]) / self.measured[sel]
        return BandStats(band.name, held_out, int(sel.sum()),
                         float(np.mean(np.abs(b)) * 100), float(np.mean(np.abs(a)) * 100),
                         float(np.mean(b) * 100), float(np.mean(a) * 100))


@dataclass(frozen=True)
class BandStats:
    """Errors (%) of one band of one curve, before and after calibration."""

    band: str
    held_out: bool
    points: int
    mape_before: float
    mape_after: float
    signed_before: float
    signed_after: float


def busbw(curve: Curve, times_us: np.ndarray) -> np.ndarray:
    """nccl-tests' busbw (GB/s) of the curve's sizes in ``times_us``."""
    sizes = np.array([p.size for p in curve.points], dtype=np.float64)
    return sizes / times_us / 1e3 * bus_factor(curve.collective, curve.ranks)


def band_loss(log_errors: np.ndarray, sizes: np.ndarray, bands: tuple[Band, ...] = BANDS
              ) -> float:
    """The objective's share of one curve: per fitted band, the mean ``|log(measured time /
    predicted time)|`` of its points over the band's tolerance, summed."""
    loss = 0.0
    for band in bands:
        if band.tolerance is None:
            continue
        sel = (sizes >= band.lo) & (sizes <= band.hi)
        if sel.any():
            loss += float(np.mean(log_errors[sel])) / band.tolerance
    return loss


def in_fitted_band(sizes: np.ndarray, bands: tuple[Band, ...] = BANDS) -> np.ndarray:
    """Per size, whether some band with a tolerance holds it."""
    sel = np.zeros(len(sizes), dtype=bool)
    for band in bands:
        if band.tolerance is not None:
            sel |= (sizes >= band.lo) & (sizes <= band.hi)
    return sel

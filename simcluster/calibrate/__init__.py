"""Calibrate the network model from your own nccl-tests logs (``simcluster calibrate``).

Read measured curves (:func:`read_measurements`: nccl-tests ``*_perf`` logs, or the
calibration CSV), fit the physical parameters they can identify (:func:`calibrate`; several
systems at once with :func:`calibrate_systems`), and write the topology with the fitted
values (:func:`calibrated_yaml`, :func:`write_calibrated`). See docs/network.md,
"Calibrating from your own logs".

Modules: ``logs`` (reading, with line numbers), ``model`` (the knobs and the prediction of a
curve), ``problem`` (variables and objective), ``identify`` (what the logs can identify),
``optimise`` (a numpy-only bounded search), ``fit`` (the fit), ``quality`` (errors per size
band), ``output`` (YAML and JSON).

Example:
    >>> import simcluster.calibrate as cal
    >>> from simcluster.topology import load_cluster
    >>> cluster = load_cluster("topologies/dgx-h100.yaml")  # doctest: +SKIP
    >>> curves = cal.read_measurements(["all_reduce.log"])  # doctest: +SKIP
    >>> result = cal.calibrate(cluster, curves)  # doctest: +SKIP
    >>> cal.write_calibrated("calibrated.yaml",
    ...                      cal.calibrated_yaml("topologies/dgx-h100.yaml", result))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simcluster.calibrate.fit import (
    AT_BOUND,
    FITTED,
    NOT_IDENTIFIABLE,
    Calibration,
    Fitted,
    calibrate,
    calibrate_systems,
)
from simcluster.calibrate.logs import CALIBRATABLE, Curve, Point, read_csv, read_log
from simcluster.calibrate.model import Knob, Predictor, knobs_for
from simcluster.calibrate.output import calibrated_yaml, summary, write_calibrated
from simcluster.calibrate.quality import BANDS, Band, BandStats, CurveFit

__all__ = ["AT_BOUND", "BANDS", "CALIBRATABLE", "FITTED", "NOT_IDENTIFIABLE", "Band",
           "BandStats", "Calibration", "Curve", "CurveFit", "Fitted", "Knob", "Point",
           "Predictor", "calibrate", "calibrate_systems", "calibrated_yaml", "knobs_for",
           "read_csv", "read_log", "read_measurements", "summary", "write_calibrated"]


def read_measurements(paths: Sequence[str | Path], collective: str | None = None,
                      ranks: int | None = None, system: str | None = None) -> list[Curve]:
    """Curves from nccl-tests logs and calibration CSVs (``.csv``), in the order given.

    ``collective`` and ``ranks`` serve logs that do not state them; ``system`` picks the
    rows of a CSV that holds several systems.

    Raises:
        CalibrationError: see :func:`read_log` and :func:`read_csv`.
    """
    out: list[Curve] = []
    for path in paths:
        if Path(path).suffix.lower() == ".csv":
            out += read_csv(path, system)
        else:
            out.append(read_log(path, collective, ranks))
    return out

"""The compute model's predictions against recorded kernels, per kernel class.

:func:`predicted_vs_recorded` compares, for every compute op of a recorded workload that
carries FLOPs or bytes, its recorded duration with what the compute model predicts for it on
the recording device; :func:`error_by_class` sums them per class. Classes come from kernel
names (:func:`~simcluster.sim.kernel_names.kernel_class`, re-exported here).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.sim.compute import ComputeModel
from simcluster.sim.gemm_waves import op_tiles
from simcluster.sim.kernel_names import family_codes, kernel_class
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.workload.model import Workload

__all__ = ["error_by_class", "kernel_class", "predicted_vs_recorded"]


def predicted_vs_recorded(workload: Workload, spec: AcceleratorSpec,
                          model: ComputeModel | None = None) -> pa.Table:
    """Per compute op with a recorded duration and FLOPs or bytes: ``rank, name, class,
    recorded_us, predicted_us, error`` (``(predicted - recorded) / recorded``), predicted on
    ``spec`` (the recording device) by ``model`` (default: the calibrated model)."""
    model = model or ComputeModel()
    t = workload.ops
    flops = t.column("flops").fill_null(0).to_numpy(zero_copy_only=False).astype(float)
    nbytes = t.column("bytes_accessed").fill_null(0).to_numpy(zero_copy_only=False).astype(float)
    rec = t.column("duration_us").to_numpy(zero_copy_only=False).astype(float)
    keep = (pc.equal(t.column("kind"), "compute").to_numpy(zero_copy_only=False)
            & ((flops > 0) | (nbytes > 0)) & ~np.isnan(rec) & (rec > 0))
    idx = np.flatnonzero(keep)
    names = t.column("name").take(pa.array(idx))
    dtypes = t.column("dtype").fill_null("").take(pa.array(idx)).to_pylist()
    family, families = family_codes(names)
    tiles = op_tiles(t, idx)
    pred = np.empty(len(idx))
    for dt, f in sorted(set(zip(dtypes, family.tolist()))):
        sel = np.fromiter((d == dt for d in dtypes), dtype=bool, count=len(idx)) & (family == f)
        rows = idx[sel]
        pred[sel] = model.roofline_us(flops[rows], nbytes[rows], dt or None, spec, families[f],
                                      tiles[sel])
    return pa.table({
        "rank": t.column("rank").take(pa.array(idx)),
        "name": names,
        "class": pa.array([kernel_class(n) for n in names.to_pylist()], pa.string()),
        "recorded_us": pa.array(rec[idx]),
        "predicted_us": pa.array(pred),
        "error": pa.array((pred - rec[idx]) / rec[idx]),
    })


def error_by_class(pairs: pa.Table) -> pa.Table:
    """Per class of :func:`predicted_vs_recorded` rows: ``class, kernels, recorded_us`` (sum),
    ``predicted_us`` (sum), ``time_error`` (of the sums), ``mape`` and ``mean_signed`` (per
    kernel, fractions), largest recorded time first; then an ``all`` row."""
    out: dict[str, list] = {k: [] for k in ("class", "kernels", "recorded_us", "predicted_us",
                                            "time_error", "mape", "mean_signed")}
    cls = np.asarray(pairs.column("class").to_pylist(), dtype=object)
    rec, pred = pairs.column("recorded_us").to_numpy(), pairs.column("predicted_us").to_numpy()
    err = pairs.column("error").to_numpy()
    groups = sorted(set(cls.tolist()), key=lambda c: -float(rec[cls == c].sum()))
    for name, sel in [*((c, cls == c) for c in groups), ("all", np.ones(len(cls), bool))]:
        if not sel.any():
            continue
        r, p = float(rec[sel].sum()), float(pred[sel].sum())
        for k, v in (("class", name), ("kernels", int(sel.sum())), ("recorded_us", r),
                     ("predicted_us", p), ("time_error", (p - r) / r if r else float("nan")),
                     ("mape", float(np.abs(err[sel]).mean())),
                     ("mean_signed", float(err[sel].mean()))):
            out[k].append(v)
    return pa.table(out)

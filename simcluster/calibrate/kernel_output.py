"""What the compute calibration writes: the topology with the fitted values under
``compute:``, and the result as a JSON-ready dict.

The document is the input topology (or the network calibration's output, when logs were
calibrated too) with each fitted GPU model's ``compute:`` entry set: the fitted values
replace those of an entry already there (found by the model its key names, an alias
included), the others stay. A comment header says what was fitted on which traces, and which
kernels were held out. The same input gives byte-identical text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from simcluster.calibrate.kernel_fit import NOT_IDENTIFIABLE, ComputeFit
from simcluster.calibrate.kernel_quality import by_class, by_trace
from simcluster.calibrate.output import _leading_comments, _relocated, _wrap
from simcluster.errors import TopologyError
from simcluster.sim.compute import builtin_calibration, with_params
from simcluster.topology.catalog import lookup
from simcluster.topology.schema import TopologySpec
from simcluster.yamlfile import read_yaml


def compute_yaml(topology: str | Path, fits: Sequence[ComputeFit], out: str | Path | None = None,
                 base_text: str | None = None) -> str:
    """The topology document with the fitted compute calibrations, to be written at ``out``
    (None: beside the input); ``base_text`` is the document to start from (the network
    calibration's output) instead of ``topology``'s own.

    Raises:
        TopologyError: the topology file cannot be read again.
    """
    topology = Path(topology)
    if base_text is None:
        data = dict(read_yaml(topology, TopologyError).data)
        if data.get("accelerator_files"):
            data["accelerator_files"] = [_relocated(f, topology, Path(out or topology))
                                         for f in data["accelerator_files"]]
        comments = _leading_comments(topology)
    else:
        data = dict(yaml.safe_load(base_text))
        comments = "".join(line + "\n" for line in base_text.splitlines()
                           if line.startswith("#"))
    compute = dict(data.get("compute") or {})
    for fit in fits:
        key = _entry_key(compute, fit.model)
        compute[key] = _entry(dict(compute.get(key) or {}), fit)
    data["compute"] = compute
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100,
                          allow_unicode=True)
    text = _header(fits) + comments + body
    _check(text, fits)
    return text


def _entry_key(compute: dict[str, Any], model: str) -> str:
    """The key of ``compute`` that names ``model`` (an alias included), else ``model``."""
    for key in compute:
        spec = lookup(str(key))
        if key == model or (spec is not None and spec.model == model):
            return str(key)
    return model


def _entry(entry: dict[str, Any], fit: ComputeFit) -> dict[str, Any]:
    families = {f: dict(v) for f, v in (entry.get("families") or {}).items()}
    for name, value in fit.values.items():
        parts = name.split(".")
        if parts[0] == "families":
            families.setdefault(parts[1], {})[parts[2]] = value
        else:
            entry[name] = value
    if families:
        entry["families"] = families
    entry["source"] = "simcluster calibrate on " + ", ".join(_fitted_traces(fit))
    return entry


def _fitted_traces(fit: ComputeFit) -> list[str]:
    k = fit.kernels
    return [Path(o).name for o in dict.fromkeys(k.origin[~k.held_out].tolist())]


def _header(fits: Sequence[ComputeFit]) -> str:
    lines = []
    for fit in fits:
        k = fit.kernels
        held = [Path(o).name for o in dict.fromkeys(k.origin.tolist())
                if k.held_out[k.origin == o].all()]
        lines.append(f"Compute model of {fit.model} calibrated by `simcluster calibrate` on "
                     f"{', '.join(_fitted_traces(fit))} ({int((~k.held_out).sum())} kernels; "
                     f"{int(k.held_out.sum())} held out"
                     + (f", among them {', '.join(held)}" if held else "") + ").")
        fitted = [p for p in fit.params if p.status != NOT_IDENTIFIABLE]
        if fitted:
            lines.append(f"Fitted under compute.{fit.model}: " + "; ".join(
                f"{p.knob.name} {p.before:g} -> {p.after:g}" for p in fitted) + ".")
        kept = [p.knob.name for p in fit.params if p.status == NOT_IDENTIFIABLE]
        if kept:
            lines.append("Not identifiable from these traces (kept): " + ", ".join(kept) + ".")
    return "".join(_wrap(line) for line in lines) + "#\n"


def _check(text: str, fits: Sequence[ComputeFit]) -> None:
    """The document must validate and give each model the fitted values."""
    spec = TopologySpec.model_validate(yaml.safe_load(text))
    for fit in fits:
        entry = spec.compute[_entry_key(dict(spec.compute), fit.model)]
        cal = with_params(builtin_calibration(fit.model), entry)
        for p in fit.params:
            if p.status != NOT_IDENTIFIABLE and p.knob.value(cal) != p.after:
                raise AssertionError(f"calibrated topology gives {p.knob.name} "
                                     f"{p.knob.value(cal)}, not the fitted {p.after}")


def compute_summary(fits: Sequence[ComputeFit]) -> list[dict[str, Any]]:
    """Per GPU model: parameters before and after with status and reason, the objective,
    and the errors per kernel class and per trace on the fitted and held-out kernels."""
    return [{
        "model": fit.model,
        "objective_before": fit.objective_before,
        "objective_after": fit.objective_after,
        "evaluations": fit.evaluations,
        "parameters": [{"name": p.knob.name, "unit": p.knob.unit, "before": p.before,
                        "after": p.after, "status": p.status, "reason": p.reason,
                        "meaning": p.knob.meaning} for p in fit.params],
        "classes": [s.as_dict() for s in by_class(fit)],
        "traces": [s.as_dict() for s in by_trace(fit)],
    } for fit in fits]

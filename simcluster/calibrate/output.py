"""What calibration writes: the calibrated topology YAML, and the result as a JSON-ready dict.

The topology is the input document with the fitted values set under ``network:`` (other keys
as they were, in their order; dictionaries such as ``link_efficiency`` merged), a comment
header that says what was fitted on what, and the input's own leading comments. The same
input gives byte-identical text. Accelerator files listed with relative paths are rewritten
relative to the output's folder, so the output loads wherever it is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from simcluster.atomic import atomic_path
from simcluster.calibrate.fit import NOT_IDENTIFIABLE, Calibration
from simcluster.calibrate.quality import BANDS, Band
from simcluster.errors import OutputError, TopologyError
from simcluster.topology.schema import TopologySpec
from simcluster.yamlfile import read_yaml

_DICTS = ("link_efficiency", "protocol_overhead_us")


def calibrated_yaml(topology: str | Path, calibration: Calibration,
                    out: str | Path | None = None) -> str:
    """The calibrated topology document for ``topology`` (the file the calibration's cluster
    was loaded from), to be written at ``out`` (None: beside the input).

    Raises:
        TopologyError: the topology file cannot be read again.
    """
    topology = Path(topology)
    data = dict(read_yaml(topology, TopologyError).data)
    network = dict(data.get("network") or {})
    for name, value in calibration.values.items():
        head = name.partition(".")[0]
        if head in _DICTS:  # whole: a partial protocol_overhead_us drops the defaults
            network[head] = dict(getattr(calibration.network, head))
        else:
            network[head] = value
    data["network"] = network
    if data.get("accelerator_files"):
        data["accelerator_files"] = [_relocated(f, topology, Path(out or topology))
                                     for f in data["accelerator_files"]]
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100,
                          allow_unicode=True)
    text = _header(calibration) + _leading_comments(topology) + body
    _check(text, calibration)
    return text


def write_calibrated(path: str | Path, text: str) -> None:
    """Write ``text`` at ``path`` atomically (whole, or not at all).

    Raises:
        OutputError: ``path`` is a folder.
    """
    if Path(path).is_dir():
        raise OutputError(f"{path}: a folder is there; give a file path for the calibrated "
                          "topology (e.g. calibrated.yaml).")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _relocated(entry: str, topology: Path, out: Path) -> str:
    """An accelerator file path of ``topology``, as seen from ``out``'s folder."""
    if Path(entry).is_absolute():
        return entry
    target = os.path.abspath(topology.parent / entry)
    return Path(os.path.relpath(target, os.path.abspath(out.parent))).as_posix()


def _header(calibration: Calibration) -> str:
    logs = ", ".join(f"{Path(c.curve.source).name} ({c.curve.collective}, "
                     f"{c.curve.ranks} ranks)" for c in calibration.curves)
    lines = [f"Calibrated by `simcluster calibrate` on {logs}."]
    fitted = [p for p in calibration.params if p.status != NOT_IDENTIFIABLE]
    if fitted:
        lines.append("Fitted under network: " + "; ".join(
            f"{p.knob.name} {p.before:g} -> {p.after:g}" for p in fitted) + ".")
    held = [p.knob.name for p in calibration.params if p.status == NOT_IDENTIFIABLE]
    if held:
        lines.append("Not identifiable from these logs (kept): " + ", ".join(held) + ".")
    lines.append(f"Objective {calibration.objective_before:.4f} -> "
                 f"{calibration.objective_after:.4f} (sum over size bands of mean |log error| "
                 "/ tolerance).")
    return "".join(_wrap(line) for line in lines) + "#\n"


def _wrap(text: str, width: int = 96) -> str:
    out, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = "  " + word
        else:
            line = f"{line} {word}" if line else word
    out.append(line)
    return "".join(f"# {piece}\n" for piece in out)


def _leading_comments(topology: Path) -> str:
    """The comment lines that open ``topology`` (its own description of the system)."""
    out = []
    for line in topology.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        out.append(line + "\n")
    return "".join(out)


def _check(text: str, calibration: Calibration) -> None:
    """The document must validate and carry exactly the calibrated network parameters."""
    spec = TopologySpec.model_validate(yaml.safe_load(text))
    if spec.network != calibration.network:
        raise AssertionError("calibrated topology does not reproduce the fitted parameters: "
                             f"{spec.network!r} != {calibration.network!r}")


def summary(calibration: Calibration, bands: tuple[Band, ...] = BANDS) -> dict[str, Any]:
    """The calibration as a JSON-ready dict: parameters, per curve the error per band on the
    fitted and the held-out sizes (before and after), and per size the busbw."""
    return {
        "topology": calibration.cluster.name,
        "objective_before": calibration.objective_before,
        "objective_after": calibration.objective_after,
        "evaluations": calibration.evaluations,
        "fit_sizes": list(calibration.fit_sizes) if calibration.fit_sizes else None,
        "parameters": [{"name": p.knob.name, "unit": p.knob.unit, "before": p.before,
                        "after": p.after, "status": p.status, "reason": p.reason,
                        "fits_as_well": list(p.interval) if p.interval else None,
                        "shared": p.shared, "meaning": p.knob.meaning}
                       for p in calibration.params],
        "logs": [{
            "source": c.curve.source, "collective": c.curve.collective,
            "ranks": c.curve.ranks, "servers": calibration.servers[i],
            "bands": [vars(s) for band in bands for held in (False, True)
                      if (s := c.stats(band, held)) is not None],
            "rows": [{"size": int(s), "measured_busbw_GBps": float(m),
                      "before_busbw_GBps": float(b), "after_busbw_GBps": float(a),
                      "fitted": bool(f), "held_out": bool(h), "algorithm_before": lb,
                      "algorithm_after": la}
                     for s, m, b, a, f, h, lb, la in zip(
                         c.sizes, c.measured, c.before, c.after, c.fitted, c.held_out,
                         c.labels_before, c.labels_after)],
        } for i, c in enumerate(calibration.curves)],
    }


"""Evaluate one sweep point: build its workload and cluster, simulate, summarise one row.

Runs in Dask workers, so it is a plain top-level function of picklable arguments. Its
result row is published (whole, and only once) next to the others before it returns; a point
whose row already exists is not computed again (a retried task after a worker died, or a
rerun). ``evaluations.log`` gets a ``start`` line per computation and a ``finish`` line (with
the wall time, s) per published row; the rows themselves hold only results, so the same spec
gives the same ``results.parquet``. A point file that cannot be read back (truncated or
corrupt) counts as absent: the point is computed again (``read_row``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from simcluster.atomic import write_once
from simcluster.degradation import degradation
from simcluster.errors import OutOfMemoryError, SimclusterError
from simcluster.jobs import Job, JobMix
from simcluster.names import match
from simcluster.placement import STRATEGIES
from simcluster.result import Result
from simcluster.scenario import Scenario, WhatIf
from simcluster.sweep.check import is_whatif
from simcluster.topology import load_cluster
from simcluster.workload import load_workload
from simcluster.workload.generate.registry import generate, transformer_config
from simcluster.workload.generate.transformer import memory_fit

RESULT_COLUMNS = ("point_id", "status", "error", "step_time_us", "tokens_per_s", "mfu",
                  "bubble", "exposed_comm_fraction", "peak_memory_bytes",
                  "peak_memory_fraction", "oom", "bottleneck",
                  "usd_per_hour", "usd_per_step", "usd_per_1m_tokens", "gpus")
# With other jobs on the cluster (base ``jobs:``), the columns above are the point's job
# alone, and these its step time and slowdown together, and the largest slowdown among the
# other jobs.
MIX_COLUMNS = ("together_step_us", "slowdown", "others_slowdown")
# With elements failed or flapping (``fail``, ``flap.<element>``, in the base or on an axis):
# the step time on the healthy cluster and step_time_us over it (``simcluster.degradation``,
# as ``replay --fail`` prints it). Left empty with other jobs on the cluster.
DEGRADATION_COLUMNS = ("healthy_step_us", "degraded_slowdown")


def result_path(out: Path, pid: str) -> Path:
    return out / "points" / f"{pid}.parquet"


def read_point(path: Path, pid: str) -> pa.Table | None:
    """The one-row table of point ``pid`` published at ``path``; None if the file is missing
    or is not that row (truncated, corrupt, or another file's content).

    Example:
        >>> read_point(Path("no-such-file.parquet"), "0123456789abcdef") is None
        True
    """
    try:
        table = pq.read_table(path)
        if (table.num_rows != 1 or not set(RESULT_COLUMNS) <= set(table.column_names)
                or table.column("point_id")[0].as_py() != pid):
            return None
    except (pa.ArrowException, OSError):
        return None
    return table


def degrades(values: dict[str, Any], base: dict[str, Any]) -> bool:
    """Whether the point's sweep fails or flaps elements (a ``fail`` or ``flap.*`` value,
    even ``fail: []``, or a base ``fail``/``flap``): its rows carry the healthy step time;
    not with ``baseline: false`` in the base (a search on a degraded cluster, which needs
    no healthy twin: ``search/driver.point_base``).

    >>> degrades({}, {"fail": ["n1"]}), degrades({}, {"fail": ["n1"], "baseline": False})
    (True, False)
    """
    if base.get("baseline") is False:
        return False
    return bool(base.get("fail") or base.get("flap")) or any(
        k == "fail" or k.startswith("flap.") for k in values)


def result_columns(base: dict[str, Any], values: dict[str, Any] | None = None
                   ) -> tuple[str, ...]:
    """The result columns of a point of ``base``: :data:`RESULT_COLUMNS`, then
    :data:`MIX_COLUMNS` when other jobs share the cluster (``base.jobs``), then
    :data:`DEGRADATION_COLUMNS` when the point fails or flaps elements (:func:`degrades`)."""
    return (RESULT_COLUMNS + (MIX_COLUMNS if base.get("jobs") else ())
            + (DEGRADATION_COLUMNS if degrades(values or {}, base) else ()))


def read_row(path: Path, pid: str) -> dict[str, Any] | None:
    """The row of point ``pid`` at ``path`` as a dict, or None (see :func:`read_point`)."""
    table = read_point(path, pid)
    return None if table is None else table.to_pylist()[0]


def _log(out: Path, pid: str, event: str, **extra: Any) -> None:
    """Append a line to the evaluation log (one write: atomic for small lines)."""
    line = json.dumps({"point_id": pid, "event": event, "pid": os.getpid(), **extra}) + "\n"
    with open(out / "evaluations.log", "a", encoding="utf-8") as fh:
        fh.write(line)


def evaluate_point(pid: str, values: dict[str, Any], base: dict[str, Any], folder: str,
                   out: str) -> dict[str, Any]:
    """Evaluate (or read back) one point; returns its row.

    The row is published once (``write_once``): if a readable row is there already, it is
    returned; if an unreadable file holds the place (the driver removes those before it
    dispatches), the row computed here is returned and the file is left to the driver.
    """
    outdir = Path(out)
    target = result_path(outdir, pid)
    existing = read_row(target, pid)
    if existing is not None:
        return existing
    _log(outdir, pid, "start")
    t0 = time.perf_counter()
    columns = result_columns(base, values)
    row: dict[str, Any] = {c: None for c in columns}
    row.update(point_id=pid, status="ok", oom=False)
    try:
        row.update(_simulate(values, base, Path(folder)))
    except SimclusterError as exc:
        oom = isinstance(exc, OutOfMemoryError)
        row.update(status="oom" if oom else "error", error=str(exc)[:2000], oom=oom)
    table = pa.table({**{k: pa.array([v], _VALUE_TYPES.get(k)) for k, v in values.items()},
                      **{k: pa.array([row[k]], _TYPES[k]) for k in columns}})
    if write_once(target, lambda tmp: pq.write_table(table, tmp)):
        _log(outdir, pid, "finish", wall_s=round(time.perf_counter() - t0, 3))
    published = read_row(target, pid)
    return published if published is not None else table.to_pylist()[0]


_TYPES = {"point_id": pa.string(), "status": pa.string(), "error": pa.string(),
          "step_time_us": pa.float64(), "tokens_per_s": pa.float64(), "mfu": pa.float64(),
          "bubble": pa.float64(), "exposed_comm_fraction": pa.float64(),
          "peak_memory_bytes": pa.int64(), "peak_memory_fraction": pa.float64(),
          "oom": pa.bool_(), "bottleneck": pa.string(), "usd_per_hour": pa.float64(),
          "usd_per_step": pa.float64(), "usd_per_1m_tokens": pa.float64(), "gpus": pa.int64(),
          "together_step_us": pa.float64(), "slowdown": pa.float64(),
          "others_slowdown": pa.float64(), "healthy_step_us": pa.float64(),
          "degraded_slowdown": pa.float64()}
# Axis values whose type the value alone does not give (``fail: []`` is still a list of names).
_VALUE_TYPES = {"fail": pa.list_(pa.string())}


def _resolve(folder: Path, p: str) -> Path:
    return Path(p) if Path(p).is_absolute() else folder / p


def generator_params(values: dict[str, Any], base: dict[str, Any],
                     gpus: int) -> dict[str, Any]:
    """The generator's parameters: the base's, then the point's (what-if axes left out). A
    transformer without ``dp`` gets ``gpus / (tp * pp)``."""
    params = {k: v for k, v in base["workload"].items() if k != "generate"}
    params.update({k: v for k, v in values.items() if not is_whatif(k)})
    if base["workload"]["generate"] == "transformer" and "dp" not in params:
        params["dp"] = max(gpus // (int(params.get("tp", 1)) * int(params.get("pp", 1))), 1)
    return params


def whatif_of(values: dict[str, Any], base: dict[str, Any]) -> WhatIf:
    """The what-ifs of one point: the base's (``price``, ``fail``, and the mappings
    ``scale_link``, ``flap``, ``hw``), then the point's values over them (``device``,
    ``price``, ``fail``, ``comm_sms``, ``scale_link.ELEMENT``, ``flap.ELEMENT``,
    ``hw.PARAM``).

    Example:
        >>> w = whatif_of({"flap.node0/nic0": 0.1, "fail": []},
        ...               {"fail": ["fabric/spine0"], "flap": {"node1/nic0": 0.2}})
        >>> w.fail, dict(w.flap)
        ((), {'node1/nic0': 0.2, 'node0/nic0': 0.1})
    """
    def merged(key: str) -> dict[str, float]:
        prefix = key + "."
        return {**{k: float(v) for k, v in (base.get(key) or {}).items()},
                **{k[len(prefix):]: float(v) for k, v in values.items() if k.startswith(prefix)}}

    return WhatIf(device=str(values["device"]) if "device" in values else None,
                  scale_links=merged("scale_link"), hardware=merged("hw"),
                  price=values.get("price", base.get("price")),
                  fail=tuple(values.get("fail", base.get("fail") or ())), flap=merged("flap"),
                  comm_sms=float(values["comm_sms"]) if "comm_sms" in values else None)


def scenario_of(values: dict[str, Any], base: dict[str, Any], folder: Path) -> Scenario:
    """The scenario of one point: the base's workload (trace or generator) and topology, the
    point's values over them (what-ifs: :func:`whatif_of`; ``hw.PARAM`` is a hardware
    parameter, ``topology/transform.py``). The failed and flapping elements stay in the
    scenario's what-if, so that :func:`~simcluster.degradation.degradation` finds its healthy
    twin, and a generated transformer's default ``dp`` counts the healthy cluster's GPUs.

    Raises:
        OutOfMemoryError: a generated transformer that the analytic memory model already
            shows does not fit (nothing is simulated).
        SimclusterError: bad input.
    """
    whatif = whatif_of(values, base)
    # The what-ifs are applied here, once: the memory check needs the device's capacity.
    cluster = whatif.healthy().applied_to(
        load_cluster(_resolve(folder, str(values.get("topology", base["topology"])))))
    wl_spec = base["workload"]
    if "trace" in wl_spec:
        workload = load_workload(_resolve(folder, wl_spec["trace"]))
    else:
        params = generator_params(values, base, len(cluster.accelerators))
        if wl_spec["generate"] == "transformer":
            cap = min(cluster.specs[a].hbm_bytes for a in cluster.accelerators)
            why = memory_fit(transformer_config(params), cap)
            if why is not None:
                raise OutOfMemoryError(why, capacity_bytes=cap)
        workload = generate(wl_spec["generate"], params)
    return Scenario(workload, cluster,
                    _placement(folder, values.get("placement", base.get("placement"))),
                    WhatIf(price=whatif.price, fail=whatif.fail, flap=whatif.flap))


def _placement(folder: Path, placement: Any) -> str:
    """A strategy name as it is; a placement file relative to the spec's folder (as the
    spec's check reads it)."""
    text = str(placement or "packed")
    return text if match(text, STRATEGIES) else str(_resolve(folder, text))


def mix_of(scenario: Scenario, base: dict[str, Any], folder: Path) -> JobMix:
    """The job mix of a point whose base has ``jobs``: the point's scenario as ``job0``
    (its placement, cluster and what-ifs), then the base's jobs in order."""
    others = [Job(load_workload(_resolve(folder, j["trace"])),
                  _placement(folder, j.get("placement")), float(j.get("start_us", 0.0)),
                  int(j.get("repeat", 1))) for j in base["jobs"]]
    return JobMix([Job(scenario.workload, scenario.placement), *others], scenario.cluster,
                  scenario.whatif, scenario.top_links)


def _simulate(values: dict[str, Any], base: dict[str, Any], folder: Path) -> dict[str, Any]:
    scenario = scenario_of(values, base, folder)
    if not base.get("jobs"):
        result = scenario.run()
        row = _row(result)
        if degrades(values, base):
            cost = degradation(scenario, result) if scenario.whatif.degrades else None
            row.update(healthy_step_us=cost.healthy_us if cost else result.step_time_us,
                       degraded_slowdown=cost.slowdown if cost else 1.0)
        return row
    mix = mix_of(scenario, base, folder).run()
    slowdown = mix.jobs.column("slowdown").to_pylist()
    return {**_row(mix.alone[0]),
            "together_step_us": mix.jobs.column("together_step_us")[0].as_py(),
            "slowdown": slowdown[0], "others_slowdown": max(slowdown[1:])}


def _row(result: Result) -> dict[str, Any]:
    ranks = result.breakdown
    peak = ranks.column("peak_memory_bytes").to_numpy()
    cap = ranks.column("memory_capacity_bytes").to_numpy()
    exposed = ranks.column("exposed_comm_us").to_numpy() / ranks.column("window_us").to_numpy()
    training, money = result.training, result.cost
    return {
        "step_time_us": result.step_time_us,
        "tokens_per_s": money.tokens_per_s,
        "mfu": result.mfu,
        "bubble": training["pipeline"]["bubble"] if training else None,
        "exposed_comm_fraction": float(exposed.mean()),
        "peak_memory_bytes": int(peak.max()),
        "peak_memory_fraction": float((peak / cap).max()),
        "bottleneck": result.bottleneck,
        "usd_per_hour": money.usd_per_hour,
        "usd_per_step": money.usd_per_step,
        "usd_per_1m_tokens": money.usd_per_1m_tokens,
        "gpus": len(result.bound.placement.devices),
    }

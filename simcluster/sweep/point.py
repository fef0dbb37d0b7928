"""Evaluate one sweep point: build its workload and cluster, simulate, summarise one row.

Runs in Dask workers, so it is a plain top-level function of picklable arguments. Its
result row is published (whole, and only once) next to the others before it returns; a point
whose row already exists is not computed again (a retried task after a worker died, or a
rerun). ``evaluations.log`` gets a ``start`` line per computation and a ``finish`` line (with
the wall time, s) per published row; the rows themselves hold only results, so the same spec
gives the same ``results.parquet``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simcluster.analysis import critical_path, limits, mean_step_time_us, rank_breakdown
from simcluster.analysis.training import TrainingInfo, training_summary
from simcluster.atomic import write_once
from simcluster.cost import costs, price_per_hour
from simcluster.errors import SimclusterError, SimulationError
from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.topology import load_cluster
from simcluster.topology.cluster import Cluster
from simcluster.topology.transform import scale_links, with_device
from simcluster.workload import load_workload
from simcluster.workload.generate.registry import generate, transformer_config
from simcluster.workload.generate.transformer import memory_fit

WHATIF = ("topology", "device", "placement", "price")
RESULT_COLUMNS = ("point_id", "status", "error", "step_time_us", "tokens_per_s", "mfu",
                  "bubble", "exposed_comm_fraction", "peak_memory_bytes",
                  "peak_memory_fraction", "oom", "bottleneck",
                  "usd_per_hour", "usd_per_step", "usd_per_1m_tokens", "gpus")


def result_path(out: Path, pid: str) -> Path:
    return out / "points" / f"{pid}.parquet"


def _log(out: Path, pid: str, event: str, **extra: Any) -> None:
    """Append a line to the evaluation log (one write: atomic for small lines)."""
    line = json.dumps({"point_id": pid, "event": event, "pid": os.getpid(), **extra}) + "\n"
    with open(out / "evaluations.log", "a", encoding="utf-8") as fh:
        fh.write(line)


def evaluate_point(pid: str, values: dict[str, Any], base: dict[str, Any], folder: str,
                   out: str) -> dict[str, Any]:
    """Evaluate (or read back) one point; returns its row."""
    outdir = Path(out)
    target = result_path(outdir, pid)
    if target.is_file():
        return pq.read_table(target).to_pylist()[0]
    _log(outdir, pid, "start")
    t0 = time.perf_counter()
    row: dict[str, Any] = {c: None for c in RESULT_COLUMNS}
    row.update(point_id=pid, status="ok", oom=False)
    try:
        row.update(_simulate(values, base, Path(folder)))
    except SimclusterError as exc:
        msg = str(exc)
        row.update(status="oom" if "out of memory" in msg else "error", error=msg[:2000],
                   oom="out of memory" in msg)
    table = pa.table({**{k: pa.array([v]) for k, v in values.items()},
                      **{k: pa.array([row[k]], _TYPES[k]) for k in RESULT_COLUMNS}})
    if write_once(target, lambda tmp: pq.write_table(table, tmp)):
        _log(outdir, pid, "finish", wall_s=round(time.perf_counter() - t0, 3))
    return pq.read_table(target).to_pylist()[0]


_TYPES = {"point_id": pa.string(), "status": pa.string(), "error": pa.string(),
          "step_time_us": pa.float64(), "tokens_per_s": pa.float64(), "mfu": pa.float64(),
          "bubble": pa.float64(), "exposed_comm_fraction": pa.float64(),
          "peak_memory_bytes": pa.int64(), "peak_memory_fraction": pa.float64(),
          "oom": pa.bool_(), "bottleneck": pa.string(), "usd_per_hour": pa.float64(),
          "usd_per_step": pa.float64(), "usd_per_1m_tokens": pa.float64(), "gpus": pa.int64()}


def _resolve(folder: Path, p: str) -> Path:
    return Path(p) if Path(p).is_absolute() else folder / p


def _cluster(values: dict[str, Any], base: dict[str, Any], folder: Path) -> Cluster:
    cluster = load_cluster(_resolve(folder, str(values.get("topology", base["topology"]))))
    if "device" in values:
        cluster = with_device(cluster, str(values["device"]))
    scales = {k.split(".", 1)[1]: float(v) for k, v in values.items()
              if k.startswith("scale_link.")}
    return scale_links(cluster, scales) if scales else cluster


def generator_params(values: dict[str, Any], base: dict[str, Any],
                     gpus: int) -> dict[str, Any]:
    """The generator's parameters: the base's, then the point's (what-if axes left out). A
    transformer without ``dp`` gets ``gpus / (tp * pp)``."""
    params = {k: v for k, v in base["workload"].items() if k != "generate"}
    params.update({k: v for k, v in values.items()
                   if k not in WHATIF and not k.startswith("scale_link.")})
    if base["workload"]["generate"] == "transformer" and "dp" not in params:
        params["dp"] = max(gpus // (int(params.get("tp", 1)) * int(params.get("pp", 1))), 1)
    return params


def _simulate(values: dict[str, Any], base: dict[str, Any], folder: Path) -> dict[str, Any]:
    cluster = _cluster(values, base, folder)
    wl_spec = base["workload"]
    if "trace" in wl_spec:
        workload = load_workload(_resolve(folder, wl_spec["trace"]))
    else:
        params = generator_params(values, base, len(cluster.accelerators))
        if wl_spec["generate"] == "transformer":
            cap = min(cluster.specs[a].hbm_bytes for a in cluster.accelerators)
            why = memory_fit(transformer_config(params), cap)
            if why is not None:
                raise SimulationError(why)
        workload = generate(wl_spec["generate"], params)
    bound = bind(workload, cluster, str(values.get("placement", base.get("placement", "packed"))))
    run = simulate(bound, SimOptions.for_workload(workload))
    step = mean_step_time_us(run)
    price = values.get("price", base.get("price"))
    usd_h = price_per_hour(cluster, bound.placement.devices, price)
    money = costs(step, usd_h, run.info.get("tokens_per_step"))
    ranks = rank_breakdown(run)
    specs = [cluster.specs[d] for d in bound.placement.devices]
    training = training_summary(run, workload, ranks, specs)
    info = TrainingInfo.of(workload)
    real = ranks.slice(0, info.real_ranks) if info is not None else ranks
    peak = real.column("peak_memory_bytes").to_numpy()
    cap = real.column("memory_capacity_bytes").to_numpy()
    exposed = real.column("exposed_comm_us").to_numpy() / real.column("window_us").to_numpy()
    return {
        "step_time_us": step,
        "tokens_per_s": money.tokens_per_s,
        "mfu": training["mfu"] if training else _mfu(run, workload.meta.extra, specs, step),
        "bubble": training["pipeline"]["bubble"] if training else None,
        "exposed_comm_fraction": float(exposed.mean()),
        "peak_memory_bytes": int(peak.max()),
        "peak_memory_fraction": float((peak / cap).max()),
        "bottleneck": _dominant(limits(critical_path(run))),
        "usd_per_hour": usd_h,
        "usd_per_step": money.usd_per_step,
        "usd_per_1m_tokens": money.usd_per_1m_tokens,
        "gpus": len(bound.placement.devices),
    }


def _mfu(run: Any, extra: dict[str, Any], specs: list[Any], step_us: float) -> float | None:
    """Model FLOPs utilization of other workloads: the sum of their ops' FLOPs per step over
    the peak of the devices (for the workload's dtype)."""
    total = run.timeline.column("flops").to_numpy(zero_copy_only=False)
    steps = max(pc.count_distinct(run.timeline.column("step")).as_py(), 1)
    flops = float(np.nansum(total.astype(float))) / steps
    dtype = extra.get("dtype", "bf16")
    peak = sum(s.peak_flops_per_us(dtype) for s in specs)  # FLOP/us
    return float(flops / (step_us * peak)) if flops and step_us > 0 else None


def _dominant(lim: dict[str, float]) -> str | None:
    """The largest share of the critical path, as ``compute``, a link role, ``host``..."""
    if not lim:
        return None
    top = max(lim.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return top.split(":", 1)[1] if top.startswith("comm:") else top

"""Training metrics of a generated transformer workload: MFU, tokens/s, memory, bubble.

They need the model description that ``simcluster generate transformer`` stores in the
workload metadata (``extra``); other workloads have none and get ``None``.

Definitions (step time ``t`` in s, from the replay):

- ``tokens_per_s = tokens_per_step / t``;
- ``mfu = model_flops_per_step / (t * world_size * peak)``: model FLOPs (``6 N T`` plus the
  attention terms, no recompute) over the dense peak of the ranks' accelerator for the
  workload's compute dtype (bf16, or fp8); ``hfu`` counts the recomputed FLOPs too;
- ``tflops_per_gpu``: hardware FLOPs per GPU per second, in TFLOP/s;
- memory per rank: the replay's peak against the device capacity, and the analytic breakdown
  of its pipeline stage (weights, grads, optimizer, activations, buffers); ``oom`` when the
  breakdown exceeds the capacity;
- ``bubble``: per pipeline stage, the fraction of the pipeline phase in which the stage
  computes nothing (mean over its ranks). The pipeline phase runs from the start to the end
  of the last forward/backward op of any rank (the optimizer step is left out of both). With
  communication hidden it is the pipeline bubble, ``(p-1)/(v m + p - 1)`` for uniform stages
  (``ideal_bubble``); exposed communication adds to it.

A folded workload (``extra.fold``) holds full ops for the first data-parallel replica only;
the metrics use those ranks, which stand for every replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis.breakdown import mean_step_time_us, union_by_group
from simcluster.analysis.parallelism import comm_breakdown
from simcluster.errors import OutOfMemoryError
from simcluster.sim.result import Run
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.workload.model import Workload

GIB = float(2**30)
CATEGORIES = ("weights", "grads", "optimizer", "activations", "buffers")


@dataclass(frozen=True)
class TrainingInfo:
    """The generator's description of a workload (from ``meta.extra``)."""

    extra: dict[str, Any]

    @classmethod
    def of(cls, workload: Workload) -> TrainingInfo | None:
        """The info of a generated transformer workload, None for others."""
        extra = workload.meta.extra
        if extra.get("generator") != "transformer":
            return None
        return cls(extra)

    @property
    def tp(self) -> int:
        return int(self.extra["config"]["tp"])

    @property
    def pp(self) -> int:
        return int(self.extra["config"]["pp"])

    @property
    def real_ranks(self) -> int:
        """Ranks with the full op list (all, or the first replica when folded)."""
        fold = self.extra.get("fold")
        if fold:
            return int(fold.get("full_ranks", fold["ranks_per_replica"]))
        c = self.extra["config"]
        return int(c["tp"]) * int(c.get("cp", 1)) * self.pp * int(c["dp"])

    @property
    def world(self) -> int:
        c = self.extra["config"]
        return int(c["tp"]) * int(c.get("cp", 1)) * int(c["pp"]) * int(c["dp"])

    def stage_of(self, rank: int) -> int:
        """Pipeline stage of ``rank`` (rank = t + T (c + C (i + S (p + P j))), replica
        d = j S + i, S the replicas an expert-parallel group spans, 1 without MoE, C the
        context-parallel size)."""
        span = int(self.extra["config"].get("ep_span", 1))
        cp = int(self.extra["config"].get("cp", 1))
        return (rank // (self.tp * cp * span)) % self.pp

    def memory(self, stage: int) -> dict[str, int]:
        return {k: int(v) for k, v in self.extra["memory"][str(stage)].items()}


def memory_breakdown_text(info: TrainingInfo, stage: int, capacity_bytes: int) -> str:
    """One sentence: the analytic memory of ``stage`` by category against a capacity."""
    mem = info.memory(stage)
    parts = ", ".join(f"{k} {mem[k] / GIB:.1f}" for k in CATEGORIES)
    verdict = "exceeds" if mem["total"] > capacity_bytes else "fits in"
    return (f"pipeline stage {stage} needs {mem['total'] / GIB:.1f} GiB per GPU ({parts} GiB), "
            f"which {verdict} the {capacity_bytes / GIB:.0f} GiB capacity")


def oom_stages(info: TrainingInfo, capacity_bytes: list[int]) -> list[int]:
    """Stages whose analytic memory exceeds the capacity of any of their (real) ranks."""
    out = []
    for stage in range(info.pp):
        ranks = [r for r in range(info.real_ranks) if info.stage_of(r) == stage]
        cap = min(capacity_bytes[r] for r in ranks)
        if info.memory(stage)["total"] > cap:
            out.append(stage)
    return out


def _pipeline_busy(run: Run, real: int) -> tuple[np.ndarray, float]:
    """Per rank below ``real``, the time covered by forward/backward compute ops, and the
    end of the last such op on any of them (us)."""
    t = run.timeline
    keep = pc.and_(pc.and_(pc.equal(t["kind"], "compute"), pc.not_equal(t["name"], "optimizer")),
                   pc.less(t["rank"], real))
    f = t.filter(keep)
    if f.num_rows == 0:
        return np.zeros(real), 0.0
    rank = f["rank"].to_numpy().astype(np.int64)
    start, end = f["start_us"].to_numpy(), f["end_us"].to_numpy()
    return union_by_group(rank, start, end, real), float(end.max())


def comm_by_parallelism(run: Run, real: int, steps: int = 1) -> dict[str, dict[str, float]]:
    """Communication per kind of parallelism (``analysis/parallelism.py``: ``tp``, ``cp``
    (Ulysses all-to-alls and ring-attention K/V exchanges), ``ep`` expert dispatch and
    combine, ``edp`` expert gradients, ``dp``, ``emb``, ``pp`` pipeline send/recv). For each,
    ``time_us``: time the ranks ``0 .. real-1`` spend moving its data (from the moment all
    peers arrived), and ``exposed_us``: the part of it that no compute op overlaps; per
    step, mean over those ranks."""
    t = comm_breakdown(run)
    mine = t.filter(pc.less(t.column("rank"), real)).to_pydict()
    out: dict[str, dict[str, float]] = {}
    for name, moving, exposed in zip(mine["parallelism"], mine["comm_us"],
                                     mine["exposed_comm_us"]):
        acc = out.setdefault(name, {"time_us": 0.0, "exposed_us": 0.0})
        acc["time_us"] += moving / (real * steps)
        acc["exposed_us"] += exposed / (real * steps)
    return dict(sorted(out.items()))


def training_summary(run: Run, workload: Workload, ranks: pa.Table,
                     specs: list[AcceleratorSpec]) -> dict[str, Any] | None:
    """MFU, tokens/s, memory and bubble (module docstring); None for other workloads.

    Parameters:
        run: the replay.
        workload: the generated workload.
        ranks: ``rank_breakdown(run)``.
        specs: the accelerator spec of each rank.
    """
    info = TrainingInfo.of(workload)
    if info is None:
        return None
    extra = info.extra
    real = info.real_ranks
    t_us = mean_step_time_us(run)
    t_s = t_us * 1e-6
    peak = specs[0].peak_flops_per_us(extra["peak_dtype"]) * 1e6  # FLOP/s
    world = info.world
    busy, span = _pipeline_busy(run, real)
    peak_mem = ranks.column("peak_memory_bytes").to_numpy()[:real]
    cap = ranks.column("memory_capacity_bytes").to_numpy()[:real]
    steps = max(int(extra.get("steps", 1)), 1)
    stage = np.array([info.stage_of(r) for r in range(real)])
    bubble = [float(1.0 - busy[stage == p].mean() / span) if span > 0 else 0.0
              for p in range(info.pp)]
    worst = int(np.argmax(peak_mem / cap))
    stages_mem = []
    for p in range(info.pp):
        c = int(cap[stage == p].min())
        mem = info.memory(p)
        stages_mem.append({"stage": p, **mem, "capacity": c,
                           "replay_peak": int(peak_mem[stage == p].max()),
                           "oom": mem["total"] > c})
    return {
        "model": extra["model"]["name"],
        "params": int(extra["params"]),
        "step_time_us": t_us,
        "tokens_per_s": extra["tokens_per_step"] / t_s if t_s > 0 else 0.0,
        "mfu": extra["model_flops_per_step"] / (t_s * world * peak) if t_s > 0 else 0.0,
        "hfu": extra["hardware_flops_per_step"] / (t_s * world * peak) if t_s > 0 else 0.0,
        "tflops_per_gpu": extra["hardware_flops_per_step"] / (t_s * world) / 1e12
        if t_s > 0 else 0.0,
        "peak_dtype": extra["peak_dtype"],
        "steps": steps,
        "memory": {
            "peak_rank": worst,
            "peak_bytes": int(peak_mem[worst]),
            "capacity_bytes": int(cap[worst]),
            "peak_fraction": float(peak_mem[worst] / cap[worst]),
            "oom": any(s["oom"] for s in stages_mem),
            "stages": stages_mem,
        },
        "pipeline": {**extra["pipeline"], "bubble_by_stage": bubble,
                     "bubble": float(np.mean(bubble))},
        "folded": bool(extra.get("fold")),
        "active_params": int(extra.get("active_params", extra["params"])),
        "communication": comm_by_parallelism(run, real, steps),
    }


def explain_oom(exc: OutOfMemoryError, workload: Workload,
                capacity_bytes: list[int]) -> OutOfMemoryError:
    """``exc`` with the analytic memory breakdown of the stages that do not fit appended (to
    the message, and as ``breakdown``), for a generated transformer; ``exc`` itself for other
    workloads. ``capacity_bytes`` is each rank's device capacity."""
    info = TrainingInfo.of(workload)
    if info is None:
        return exc
    stages = oom_stages(info, capacity_bytes) or [0]
    caps = {p: min(capacity_bytes[r] for r in range(info.real_ranks) if info.stage_of(r) == p)
            for p in stages}
    detail = "; ".join(memory_breakdown_text(info, p, caps[p]) for p in stages)
    return OutOfMemoryError(f"{exc} Memory model: {detail}.", exc.rank, exc.op,
                            exc.requested_bytes, exc.live_bytes, exc.capacity_bytes,
                            {p: info.memory(p) for p in stages})


def flops_utilization(run: Run, dtype: str, specs: list[AcceleratorSpec],
                      step_us: float) -> float | None:
    """FLOPs utilization of any workload: its ops' FLOPs per step over the summed peak of the
    ranks' devices for ``dtype`` in ``step_us``; None when the ops carry no FLOPs.

    Generated transformers have the exact MFU in :func:`training_summary`; this is the
    measure for other workloads (data-parallel, imported traces).
    """
    total = run.timeline.column("flops").to_numpy(zero_copy_only=False)
    steps = max(pc.count_distinct(run.timeline.column("step")).as_py(), 1)
    flops = float(np.nansum(total.astype(float))) / steps
    peak = sum(s.peak_flops_per_us(dtype) for s in specs)  # FLOP/us
    return float(flops / (step_us * peak)) if flops and step_us > 0 else None

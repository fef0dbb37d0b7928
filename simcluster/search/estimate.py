"""A closed-form estimate of a transformer training step: the search's free first rung.

No step is simulated here. The estimate adds up, for the slowest pipeline stage:

- compute: every op of a layer's forward and backward (and recompute) for one micro-batch,
  from the same FLOPs and bytes the generator writes (``workload/generate/costs.py``) and the
  same calibrated roofline the engine uses (``sim/compute.py``); the embedding on the first
  stage and the LM head and loss on the last;
- tensor-parallel communication: per layer and micro-batch, two all-reduces (or, with
  sequence parallelism, two all-gathers and two reduce-scatters) forward and backward, one
  more set when the forward is recomputed; half of the backward ones are hidden when
  ``tp_overlap`` is on. Their times are single-collective simulations of the TP group of
  rank 0 (microbenchmarks of a few flows, cached; not simulations of the step);
- pipeline: ``(m + (p - 1) / v)`` units of forward + backward (+ 2 v point-to-point
  transfers between stages), the 1F1B / interleaved schedule with its bubble;
- data parallelism: the gradient all-reduce (ZeRO >= 1: reduce-scatter + all-gather) of rank
  0's DP group; with ``dp_overlap`` only what outlasts the last backward is exposed (at
  least one bucket);
- the optimizer step: its HBM bytes at the STREAM rate.

It ignores contention between groups, the exact order of a schedule and memory-bound
effects the roofline does not see; ``bench/validate_search.py`` measures how well it ranks
configurations against full simulations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simcluster.placement import Placement, bind
from simcluster.sim import simulate
from simcluster.sim.compute import ComputeModel, overrides_for
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.cluster import Cluster
from simcluster.workload.generate.collective import single_collective
from simcluster.workload.generate.costs import Cost, Shape
from simcluster.workload.generate.transformer import (
    TransformerConfig,
    optimizer_bytes_per_param,
    stage_params,
)


@dataclass(frozen=True)
class Estimate:
    """The estimated step and its parts, us (``bubble``: fraction of the pipeline phase)."""

    step_us: float
    stage_compute_us: float
    tp_comm_us: float
    p2p_us: float
    dp_exposed_us: float
    optimizer_us: float
    bubble: float


class Estimator:
    """Estimates configurations on one cluster (collective times cached across them)."""

    def __init__(self, cluster: Cluster, compute: ComputeModel | None = None) -> None:
        self.cluster = cluster
        self.compute = compute or ComputeModel(overrides=overrides_for(cluster.compute))
        self.devices = cluster.accelerators
        self._coll = lru_cache(maxsize=None)(self._collective_us)

    def _collective_us(self, op: str, size: int, ranks: tuple[int, ...]) -> float:
        """Device time of one collective over the accelerators ``ranks`` (by index)."""
        if len(ranks) < 2 or size <= 0:
            return 0.0
        wl = single_collective(op, size, len(ranks), dtype="bf16")
        placement = Placement(devices=tuple(self.devices[r] for r in ranks), strategy="file")
        return simulate(bind(wl, self.cluster, placement)).makespan_us

    def _us(self, costs: list[Cost], dtype: str, spec: AcceleratorSpec) -> float:
        flops = np.array([c.flops for c in costs])
        nbytes = np.array([c.nbytes for c in costs])
        return float(self.compute.roofline_us(flops, nbytes, dtype, spec).sum())

    def _layer_us(self, cfg: TransformerConfig, shape: Shape, spec: AcceleratorSpec
                  ) -> tuple[float, float]:
        """Forward and backward (with recompute) time of one layer and micro-batch, us."""
        gemms = shape.layer_gemms().values()
        fwd_gemm = [shape.gemm(*g) for g in gemms]
        bwd_gemm = [shape.gemm_dgrad(*g) for g in gemms] + [shape.gemm_wgrad(*g) for g in gemms]
        fwd_other = [shape.attention(), shape.norm(), shape.norm(), shape.residual(),
                     shape.residual(), shape.activation_fn()]
        bwd_other = [shape.attention(True), shape.norm(True), shape.norm(True),
                     shape.residual(True), shape.residual(True), shape.activation_fn(True)]
        gd = cfg.dtype
        f = self._us(fwd_gemm, gd, spec) + self._us(fwd_other, "bf16", spec)
        b = self._us(bwd_gemm, gd, spec) + self._us(bwd_other, "bf16", spec)
        if cfg.recompute == "full":
            b += f
        elif cfg.recompute == "selective" and not cfg.flash_attention:
            b += self._us([shape.attention()], gd, spec)
        return f, b

    def _ends_us(self, cfg: TransformerConfig, shape: Shape, spec: AcceleratorSpec
                 ) -> tuple[float, float]:
        """Extra forward+backward time of the first stage (embedding) and the last (head)."""
        if not cfg.model.vocab:
            return 0.0, 0.0
        emb = self._us([shape.embedding(), shape.embedding(True)], "bf16", spec)
        g = shape.head_gemm()
        head = (self._us([shape.gemm(*g), shape.gemm_dgrad(*g), shape.gemm_wgrad(*g)],
                         cfg.dtype, spec)
                + self._us([shape.loss(), shape.loss(True)], "bf16", spec))
        return emb, head

    def _tp_us(self, cfg: TransformerConfig, shape: Shape) -> float:
        """Exposed TP communication of one layer and micro-batch (forward + backward)."""
        if cfg.tp == 1:
            return 0.0
        group = tuple(range(cfg.tp))
        size = int(shape.tokens * cfg.model.hidden * shape.act_bytes)
        if cfg.sp:
            one = self._coll("all_gather", size, group) + self._coll("reduce_scatter", size,
                                                                     group)
        else:
            one = self._coll("all_reduce", size, group)
        fwd = 2 * one * (2 if cfg.recompute == "full" else 1)
        bwd = 2 * one * (0.5 if cfg.tp_overlap else 1.0)
        return fwd + bwd

    def _p2p_us(self, cfg: TransformerConfig, shape: Shape) -> float:
        if cfg.pp == 1:
            return 0.0
        size = shape.tokens * cfg.model.hidden * shape.act_bytes
        if cfg.sp or (cfg.scatter_gather and cfg.tp > 1):
            size /= cfg.tp
        return self._coll("sendrecv", int(size), (0, cfg.tp))

    def _dp_us(self, cfg: TransformerConfig) -> float:
        """Gradient reduction (and ZeRO parameter gather) of rank 0's DP group, us."""
        if cfg.dp == 1:
            return 0.0
        stride = cfg.tp * cfg.pp
        group = tuple(range(0, stride * cfg.dp, stride))
        params = max(stage_params(cfg, p).total for p in range(cfg.pp))
        grads = params * cfg.gbytes
        if cfg.zero == 0:
            return self._coll("all_reduce", grads, group)
        return (self._coll("reduce_scatter", grads, group)
                + self._coll("all_gather", 2 * params, group))

    def estimate(self, cfg: TransformerConfig, spec: AcceleratorSpec | None = None
                 ) -> Estimate:
        """The closed-form step time of ``cfg`` (module docstring), its compute on ``spec``
        (default: the cluster's first accelerator; a co-search passes its hardware variant's
        and shares the collective times of variants with the same links)."""
        cfg = cfg.padded()
        spec = spec or self.cluster.specs[self.devices[0]]
        shape = cfg.shape()
        f, b = self._layer_us(cfg, shape, spec)
        tp = self._tp_us(cfg, shape)
        emb, head = self._ends_us(cfg, shape, spec)
        per_stage = max(len(cfg.layers_of(c * cfg.pp + s)) for s in range(cfg.pp)
                        for c in range(cfg.chunks)) * cfg.chunks
        stage = per_stage * (f + b + tp) + max(emb if cfg.pp > 1 else emb + head, head)
        p2p = self._p2p_us(cfg, shape)
        m, p, v = cfg.micro_batches, cfg.pp, cfg.chunks
        unit = stage + 2 * v * p2p
        pipeline = (m + (p - 1) / v) * unit
        dp = self._dp_us(cfg)
        exposed = max(dp - per_stage * b, 0.0) if cfg.dp_overlap else dp
        if cfg.dp_overlap and dp > 0:
            n_params = max(stage_params(cfg, q).total for q in range(cfg.pp))
            exposed = max(exposed, dp * min(1.0, cfg.bucket_params / max(n_params, 1)))
        params = max(stage_params(cfg, q).total for q in range(cfg.pp))
        opt_bytes = optimizer_bytes_per_param(cfg.gbytes) * params / (cfg.dp if cfg.zero else 1)
        opt = float(self.compute.roofline_us(np.array([0.0]), np.array([opt_bytes]), "bf16",
                                             spec)[0])
        bubble = (p - 1) / v / (m + (p - 1) / v)
        return Estimate(step_us=pipeline + exposed + opt, stage_compute_us=m * stage,
                        tp_comm_us=m * per_stage * tp, p2p_us=m * 2 * v * p2p,
                        dp_exposed_us=exposed, optimizer_us=opt, bubble=bubble)

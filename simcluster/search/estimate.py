"""A closed-form estimate of a transformer training step: the search's free first rung.

No step is simulated here. The estimate adds up, for the slowest pipeline stage:

- compute: every op of a layer's forward and backward (and recompute) for one micro-batch
  (per stage: the sum over its layers, dense and MoE),
  from the same FLOPs and bytes the generator writes (``workload/generate/costs.py``) and the
  same calibrated roofline the engine uses (``sim/compute.py``); the embedding on the first
  stage and the LM head and loss on the last;
- tensor-parallel communication: per layer and micro-batch, two all-reduces (or, with
  sequence parallelism, two all-gathers and two reduce-scatters) forward and backward, one
  more set when the forward is recomputed; half of the backward ones are hidden when
  ``tp_overlap`` is on. With Transformer Engine's userbuffers (``tp_comm_overlap`` with
  sequence parallelism) only what the generator's chunked schedule exposes: each
  all-gather less the ``(tp-1)/tp`` of its GEMM (forward: QKV, FC1; backward: the output
  gradient's under PROJ's and FC2's dgrad) it runs under, each forward reduce-scatter's
  first ``3/4`` less the GEMM's last ``3/4``, plus its last split's reduce-scatter
  (``Estimator._ub_tp_us``). Their times are single-collective simulations of the TP
  group of rank 0 (microbenchmarks of a few flows, cached; not simulations of the step);
- pipeline: ``(m + (p - 1) / v)`` units of forward + backward (+ 2 v point-to-point
  transfers between stages), the 1F1B / interleaved schedule with its bubble;
- data parallelism: the gradient all-reduce (ZeRO >= 1: reduce-scatter + all-gather) of rank
  0's DP group (the ``dp x cp`` ranks; with hybrid sharding, over its shard group, then the
  all-reduce of its gradient shard over the shard groups: ``layers.dp_collectives``); with
  ``dp_overlap`` only what outlasts the last backward is exposed (at least one bucket); a
  MoE model's routed-expert gradients, reduced over the expert-data-parallel group after the
  dense buckets on the same stream (as the generator emits them), are exposed whole;
- MoE layers and context parallelism (``layers.py``): the expert ops on the busiest rank's
  tokens with the dispatch/combine collectives exposed, ring attention with its K/V
  exchange hidden under each step's attention (or Ulysses' all-to-alls);
- the optimizer step: its HBM bytes at the STREAM rate.

It ignores contention between groups, the exact order of a schedule and memory-bound
effects the roofline does not see; ``bench/validate_search.py`` measures how well it ranks
configurations against full simulations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from simcluster.placement import Placement, bind
from simcluster.scenario import framework_calibration
from simcluster.search.layers import (
    cp_attention,
    dp_collectives,
    moe_collectives,
    moe_costs,
    rank0_groups,
    ring_us,
)
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
from simcluster.workload.generate.transformer.layers import UB_SPLITS
from simcluster.workload.generate.transformer.moe import separate_expert_dp


@dataclass(frozen=True)
class Estimate:
    """The estimated step and its parts, us (``bubble``: fraction of the pipeline phase;
    ``moe_cp_comm_us``: the exposed expert dispatch/combine and CP exchange of the slowest
    stage's micro-batches, part of ``stage_compute_us``)."""

    step_us: float
    stage_compute_us: float
    tp_comm_us: float
    p2p_us: float
    dp_exposed_us: float
    optimizer_us: float
    bubble: float
    moe_cp_comm_us: float = 0.0


class Estimator:
    """Estimates configurations on one cluster (collective times cached across them)."""

    def __init__(self, cluster: Cluster, compute: ComputeModel | None = None) -> None:
        """``compute``: the compute model of every configuration; None: the cluster's
        calibration, with the software stack of each configuration's framework profile
        (``scenario.framework_calibration``, as a replay of its workload applies it)."""
        self.cluster = cluster
        self.compute = compute or ComputeModel(overrides=overrides_for(cluster.compute))
        self.devices = cluster.accelerators
        self._coll = lru_cache(maxsize=None)(self._collective_us)
        self._groups: dict[TransformerConfig, dict[str, tuple[int, ...]]] = {}
        self._stacks: dict[str, Estimator] | None = None if compute else {}

    def _stack(self, framework: str) -> Estimator:
        """The estimator whose compute model has ``framework``'s stack (this one where the
        profile calibrates nothing, or a compute model was given); it shares the collective
        times and groups."""
        if self._stacks is None or not framework:
            return self
        if framework not in self._stacks:
            compute, used = framework_calibration(framework, self.cluster)
            sub = self
            if used:
                sub = Estimator(self.cluster, ComputeModel(overrides=overrides_for(compute)))
                sub._coll, sub._groups = self._coll, self._groups
            self._stacks[framework] = sub
        return self._stacks[framework]

    def groups(self, cfg: TransformerConfig) -> dict[str, tuple[int, ...]]:
        """Rank 0's groups in ``cfg`` (``layers.rank0_groups``), cached per configuration."""
        if cfg not in self._groups:
            self._groups[cfg] = rank0_groups(cfg)
        return self._groups[cfg]

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

    def _attention_us(self, cfg: TransformerConfig, shape: Shape, spec: AcceleratorSpec,
                      backward: bool) -> tuple[float, float]:
        """(time, exposed CP communication) of one layer's attention core (``layers.py``)."""
        cost, comms = cp_attention(cfg, shape, backward)
        a = self._us([cost], cfg.dtype, spec)
        group = self.groups(cfg)["cp"]
        if cfg.cp > 1 and cfg.cp_comm == "p2p":
            return ring_us(a, self._coll(comms[0][0], comms[0][1], group[:2]), cfg.cp)
        comm = sum(self._coll(op, size, group) for op, size in comms)
        return a + comm, comm

    def _layer_us(self, cfg: TransformerConfig, shape: Shape, spec: AcceleratorSpec,
                  moe: bool) -> tuple[float, float, float]:
        """Forward and backward (with recompute) time of one layer and micro-batch, and
        the exposed EP and CP communication in them, us."""
        gemms = shape.layer_gemms()
        names = ("qkv", "proj") if moe else tuple(gemms)
        fwd_gemm = [shape.gemm(*gemms[k]) for k in names]
        bwd_gemm = [shape.gemm_dgrad(*gemms[k]) for k in names] \
            + [shape.gemm_wgrad(*gemms[k]) for k in names]
        fwd_other = [shape.norm(), shape.norm(), shape.residual(), shape.residual()]
        bwd_other = [shape.norm(True), shape.norm(True), shape.residual(True),
                     shape.residual(True)]
        comm_f = comm_b = 0.0
        if moe:
            g, o = moe_costs(cfg, shape, backward=False)
            fwd_gemm, fwd_other = fwd_gemm + g, fwd_other + o
            g, o = moe_costs(cfg, shape, backward=True)
            bwd_gemm, bwd_other = bwd_gemm + g, bwd_other + o
            groups = self.groups(cfg)
            comm_f = comm_b = sum(self._coll(op, size, groups[group])
                                  for group, op, size in moe_collectives(cfg))
        else:
            fwd_other.append(shape.activation_fn())
            bwd_other.append(shape.activation_fn(True))
        af, cf = self._attention_us(cfg, shape, spec, backward=False)
        ab, cb = self._attention_us(cfg, shape, spec, backward=True)
        gd = cfg.dtype
        f = self._us(fwd_gemm, gd, spec) + self._us(fwd_other, "bf16", spec) + af + comm_f
        b = self._us(bwd_gemm, gd, spec) + self._us(bwd_other, "bf16", spec) + ab + comm_b
        comm = comm_f + comm_b + cf + cb
        if cfg.recompute == "full":
            b, comm = b + f, comm + comm_f + cf
        elif cfg.recompute == "save_qkv_proj":  # dense only: all but QKV, FC2, a residual
            b += (self._us([shape.gemm(*gemms[k]) for k in ("proj", "fc1")], gd, spec) + af
                  + self._us(fwd_other[:3] + fwd_other[4:], "bf16", spec))
            comm += cf
        elif cfg.recompute == "selective" and not cfg.flash_attention:
            b += self._us([shape.attention()], gd, spec)
        return f, b, comm

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

    def _tp_us(self, cfg: TransformerConfig, shape: Shape, spec: AcceleratorSpec,
               moe: bool = False) -> float:
        """Exposed TP communication of one layer (a MoE layer with ``moe``) and micro-batch
        (forward + backward) over its TP-sharded blocks (:func:`_tp_blocks`); with
        userbuffers (``cfg.ub``): :meth:`_ub_tp_us`."""
        if cfg.tp == 1:
            return 0.0
        blocks = _tp_blocks(cfg, shape, moe)
        if cfg.ub:
            return self._ub_tp_us(cfg, spec, blocks)
        group = self.groups(cfg)["tp"]
        size = int(shape.tokens * cfg.model.hidden * shape.act_bytes)
        if cfg.sp:
            one = self._coll("all_gather", size, group) + self._coll("reduce_scatter", size,
                                                                     group)
        else:
            one = self._coll("all_reduce", size, group)
        fwd = len(blocks) * one * (2 if cfg.recompute == "full" else 1) \
            + (one if cfg.recompute == "save_qkv_proj" else 0.0)  # the projection's
        bwd = len(blocks) * one * (0.5 if cfg.tp_overlap else 1.0)
        return fwd + bwd

    def _ub_tp_us(self, cfg: TransformerConfig, spec: AcceleratorSpec,
                  blocks: list[tuple[Shape, str, str]]) -> float:
        """Exposed TP communication of one layer and micro-batch with Transformer Engine's
        userbuffers (the generator's ``_ag_gemm``, ``_gemm_rs`` and ``_block_bwd``), us.

        Per block (input GEMM ``i``, output GEMM ``o``; ``n = tp`` ring chunks, ``s =
        UB_SPLITS`` splits; A an all-gather, R a reduce-scatter of the full activation,
        ``G(x)`` a GEMM part's roofline time):

        - forward AG + GEMM ``i``: ``max(A - G((n-1)/n of i), 0)`` (the last chunk, compute,
          after the ring);
        - forward GEMM ``o`` + RS: ``max(R((s-1)/s) - G((s-1)/s of o), 0) + R(1/s)`` (the
          last split's reduce-scatter, the tail, always exposed);
        - backward: the output-gradient gather under ``(n-1)/n`` of ``o``'s dgrad,
          ``max(A - G, 0)``, plus the input gradient's reduce-scatter ``R``; the pair
          halved with ``tp_overlap`` as without userbuffers (the bulk overlaps are the
          same).

        Approximated: the input re-gather of the backward is not counted (as without
        userbuffers), the ring's chunks and the pipeline's splits are costed as fractions
        of one GEMM's roofline, nothing else shares the TP links or the compute stream,
        and fp8's casts stay in compute."""
        group = self.groups(cfg)["tp"]
        shape = blocks[0][0]
        size = int(shape.tokens * cfg.model.hidden * shape.act_bytes)
        n, s = cfg.tp, UB_SPLITS
        ag = self._coll("all_gather", size, group)
        rs = self._coll("reduce_scatter", size, group)
        head = self._coll("reduce_scatter", int(size * (s - 1) / s), group)
        tail = self._coll("reduce_scatter", int(size / s), group)

        def g(cost: Cost, part: float) -> float:
            return self._us([cost.part(part)], cfg.dtype, spec)

        pairs = []  # per block: (forward AG exposed, forward RS exposed, backward)
        for sh, i, o in blocks:
            gm = sh.layer_gemms()
            pairs.append((max(ag - g(sh.gemm(*gm[i]), (n - 1) / n), 0.0),
                          max(head - g(sh.gemm(*gm[o]), (s - 1) / s), 0.0) + tail,
                          max(ag - g(sh.gemm_dgrad(*gm[o]), (n - 1) / n), 0.0) + rs))
        fwd = sum(a + r for a, r, _ in pairs) * (2 if cfg.recompute == "full" else 1)
        if cfg.recompute == "save_qkv_proj":  # the projection's RS, FC1's AG
            fwd += pairs[0][1] + pairs[-1][0]
        return fwd + sum(b for _, _, b in pairs) * (0.5 if cfg.tp_overlap else 1.0)

    def _p2p_us(self, cfg: TransformerConfig, shape: Shape) -> float:
        if cfg.pp == 1:
            return 0.0
        size = shape.tokens * cfg.model.hidden * shape.act_bytes
        if cfg.sp or (cfg.scatter_gather and cfg.tp > 1):
            size /= cfg.tp
        return self._coll("sendrecv", int(size), self.groups(cfg)["pp"])

    def _dp_us(self, cfg: TransformerConfig, grad_groups: list[tuple[int, tuple[int, ...]]]
               ) -> list[float]:
        """Gradient reduction (and ZeRO parameter gather) of rank 0 per group of
        ``grad_groups`` (:func:`_grad_groups`: the dense gradients, then any routed
        experts'), us."""
        out = []
        groups = self.groups(cfg)
        for k, (params, group) in enumerate(grad_groups):
            mine = {**groups, "dp": group} if k else groups
            out.append(sum(self._coll(op, size, mine[g])
                           for g, op, size in dp_collectives(cfg, params)))
        return out

    def _stage_us(self, cfg: TransformerConfig, shape: Shape, spec: AcceleratorSpec
                  ) -> tuple[float, float, float, float]:
        """(forward + backward + TP, backward, TP, exposed EP and CP communication) of the
        slowest pipeline stage's layers for one micro-batch, us."""
        kinds = {moe: (*self._layer_us(cfg, shape, spec, moe),
                       self._tp_us(cfg, shape, spec, moe))
                 for moe in {cfg.model.is_moe_layer(i) for i in range(cfg.model.layers)}}
        best = (0.0, 0.0, 0.0, 0.0)
        for s in range(cfg.pp):
            total = [0.0, 0.0, 0.0, 0.0]
            for c in range(cfg.chunks):
                for layer in cfg.layers_of(c * cfg.pp + s):
                    f, b, comm, tp = kinds[cfg.model.is_moe_layer(layer)]
                    total = [total[0] + f + b + tp, total[1] + b, total[2] + tp,
                             total[3] + comm]
            best = max(best, tuple(total))
        return best  # type: ignore[return-value]

    def estimate(self, cfg: TransformerConfig, spec: AcceleratorSpec | None = None
                 ) -> Estimate:
        """The closed-form step time of ``cfg`` (module docstring), its compute on ``spec``
        (default: the cluster's first accelerator; a co-search passes its hardware variant's
        and shares the collective times of variants with the same links)."""
        cfg = cfg.padded()
        stack = self._stack(cfg.framework)
        if stack is not self:
            return stack.estimate(cfg, spec)
        spec = spec or self.cluster.specs[self.devices[0]]
        shape = cfg.shape()
        layers, back, tp, comm = self._stage_us(cfg, shape, spec)
        emb, head = self._ends_us(cfg, shape, spec)
        stage = layers + max(emb if cfg.pp > 1 else emb + head, head)
        p2p = self._p2p_us(cfg, shape)
        m, p, v = cfg.micro_batches, cfg.pp, cfg.chunks
        unit = stage + 2 * v * p2p
        pipeline = (m + (p - 1) / v) * unit
        grad_groups = _grad_groups(cfg, self.groups(cfg))
        dp, *experts = self._dp_us(cfg, grad_groups)
        exposed = max(dp - back, 0.0) if cfg.dp_overlap else dp
        params = grad_groups[0][0]
        if cfg.dp_overlap and dp > 0:
            exposed = max(exposed, dp * min(1.0, cfg.bucket_size / max(params, 1)))
        exposed += sum(experts)  # queued behind the dense buckets, after the backward
        shards = [cfg.shard_ranks] + [len(g) for _, g in grad_groups[1:]]
        opt_bytes = optimizer_bytes_per_param(cfg.gbytes, cfg.dtype == "fp16") * sum(
            n / (d if cfg.zero else 1) for (n, _), d in zip(grad_groups, shards))
        opt = float(self.compute.roofline_us(np.array([0.0]), np.array([opt_bytes]), "bf16",
                                             spec)[0])
        bubble = (p - 1) / v / (m + (p - 1) / v)
        return Estimate(step_us=pipeline + exposed + opt, stage_compute_us=m * stage,
                        tp_comm_us=m * tp, p2p_us=m * 2 * v * p2p,
                        dp_exposed_us=exposed, optimizer_us=opt, bubble=bubble,
                        moe_cp_comm_us=m * comm)


def _tp_blocks(cfg: TransformerConfig, shape: Shape, moe: bool
               ) -> list[tuple[Shape, str, str]]:
    """(shape, input GEMM, output GEMM) of a layer's TP-sharded blocks: the attention (QKV,
    PROJ), then the MLP (FC1, FC2); a MoE layer's only MLP block is its shared experts'
    (their width ``shared_experts x expert_ffn``, as ``moe_ops.py``), if any."""
    m = cfg.model
    if not moe:
        return [(shape, "qkv", "proj"), (shape, "fc1", "fc2")]
    if not m.shared_experts:
        return [(shape, "qkv", "proj")]
    shared = replace(shape, model=replace(m, ffn=m.shared_experts * m.expert_ffn))
    return [(shape, "qkv", "proj"), (shared, "fc1", "fc2")]


def _grad_groups(cfg: TransformerConfig, groups: dict[str, tuple[int, ...]]
                 ) -> list[tuple[int, tuple[int, ...]]]:
    """(parameters, group) whose gradients rank 0's largest stage reduces: the dense ones
    over ``dp``, then the routed experts over ``edp`` when that is a group of its own (the
    generator emits their buckets after the dense ones, on the same stream); otherwise the
    experts go with the dense ones."""
    sp = max((stage_params(cfg, q) for q in range(cfg.pp)), key=lambda x: x.total)
    if not separate_expert_dp(cfg):
        return [(sp.total, groups["dp"])]
    return [(sp.dense, groups["dp"]), (sp.experts, groups["edp"])]

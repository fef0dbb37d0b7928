"""Training steps of a decoder-only transformer with tensor, pipeline and data parallelism.

Ranks are numbered ``rank = t + T (p + P d)`` for TP rank ``t`` of ``T``, pipeline stage ``p``
of ``P`` and data-parallel replica ``d`` of ``D``: a TP group is ``T`` consecutive ranks (one
server when ``T`` = GPUs per server), and each data-parallel replica is a block of ``T P``
consecutive ranks. (Megatron-LM's default order puts DP before PP; this order keeps replicas
contiguous, which the fold below relies on. Use a placement file for another mapping.)
With context parallelism ``C`` (:mod:`.cp`), ``rank = t + T (c + C (p + P d))`` for CP rank
``c``; the fold keeps all the CP ranks of replica 0.

**Ops per rank** (per micro-batch, per layer, coarse but separating what can overlap):

- forward: norm, QKV GEMM, attention core, projection GEMM, residual+norm, FC1 GEMM,
  activation function, FC2 GEMM, residual; with TP, an all-reduce after each block
  (Megatron's ``g``), or with sequence parallelism an all-gather before and a reduce-scatter
  after each block. All on stream ``compute``, TP collectives on stream ``tp``.
- backward: the same in reverse; each block's input-gradient GEMM (dgrad) is split from its
  weight-gradient GEMM (wgrad), so that the TP all-reduce (or reduce-scatter) of the input
  gradient overlaps the wgrad, as Megatron's async TP communication does; with SP the input
  is re-gathered for the wgrad while the dgrad runs.
- with ``tp_comm_overlap`` and SP (Transformer Engine's userbuffers, Megatron-Core's
  ``--tp-comm-overlap``; :mod:`.layers`): the all-gathers before QKV and FC1 and of the
  output gradient before the PROJ and FC2 dgrads run as ring exchanges under ``(tp-1)/tp``
  of their GEMM (``<gemm>`` runs with the gather, ``<gemm>.tail`` after it); the
  reduce-scatters after PROJ and FC2 are pipelined with the GEMM's 4 splits (``<gemm>``
  the first split, ``<gemm>.tail`` the rest with ``<rs>`` under it, ``<rs>.tail`` the last
  split's).
- recompute: ``full`` replays each layer's forward (with its TP communication) before its
  backward; ``selective`` replays the attention core (not needed with flash attention).
- first virtual stage: embedding (a vocab-parallel all-reduce or reduce-scatter with TP);
  last: final norm, LM head GEMM, vocab-parallel cross-entropy (one small TP all-reduce).
- pipeline: activations and gradients as send/recv between neighbouring (virtual) stages, on
  their own streams (``pp_fwd_send``, ``pp_fwd_recv``, ``pp_bwd_send``, ``pp_bwd_recv``), so
  a sender's compute does not wait for its receiver (Megatron-LM's blocking exchanges can
  make it wait; with 1F1B's paired send/recv this changes little);
  with TP and no SP each TP rank sends ``1/T`` of the tensor and the receivers all-gather it
  (Narayanan et al. 2021 section 4.1, scatter/gather).
- data parallel, stream ``dp``: gradient buckets (``bucket_params`` parameters, in backward
  order; ``max(bucket_params, bucket_per_dp_rank x dp)``, Megatron-Core's
  ``max(40M, 1M x DP)`` in its profile; whole layers, or with ``bucket_split`` exactly that
  many each, a layer split over several as Apex's DistributedFusedAdam does) all-reduced
  (ZeRO-0) or reduce-scattered (ZeRO-1/2) as soon as the last micro-batch has produced them
  (``dp_overlap``), or all after the backward; ZeRO-1/2 all-gather the updated parameters
  over the same buckets in forward order (Megatron-Core's distributed optimizer),
  overlapping the next step's first forward (modelled as the start of this step, the steady
  state); ZeRO-2 reduce-scatters every micro-batch; ZeRO-3 /
  FSDP all-gathers each layer's parameters before its forward and backward (one layer of
  prefetch) and reduce-scatters its gradients after its backward, every micro-batch; tied
  embeddings are all-reduced between the first and last stage. With hybrid sharding
  (``shard_group`` N) the ZeRO gathers and reduce-scatters run within N consecutive
  replicas, each reduce-scatter followed by the all-reduce of the rank's shard across the
  ``dp / N`` groups (PyTorch FSDP ``HYBRID_SHARD``).
- optimizer: Adam over the rank's (sharded) parameters after all gradient communication.

**Memory** (``alloc_bytes``/``free_bytes``): weights, gradients and optimizer states are
allocated by the rank's first op; each layer's stored activations (``costs.py``) at its
forward and freed at the end of its backward; logits at the LM head; recomputed activations
during the backward; ZeRO-3 gathered parameters while a layer runs. The analytic breakdown
is in the workload metadata (``extra.memory``).

**Fold** (``fold=True``): data-parallel replicas run identical ops, so the workload holds the
ops of replica 0 only, plus, for every other rank, the data-parallel collectives alone (no
compute, no dependencies: a mirror that is always ready before its replica-0 peer). Replica
0 meets its real collectives, on the real links, at the times the full simulation would
give, because under this symmetry every replica reaches each collective at the same time.
What the fold leaves out is the other replicas' TP and pipeline traffic, which shares no link
with replica 0's unless the fabric mixes replicas' paths (see ``docs/performance.md``), and
with hybrid sharding the shard collectives of the groups without replica 0 (their mirrors
keep only the all-reduces across groups, which include replica 0's ranks).
``tests/workload/test_transformer.py`` checks folded against full replays.

Modules: :mod:`.config` (the configuration and its checks), :mod:`.cp` (context
parallelism: ring attention, Ulysses), :mod:`.memory` (the analytic
memory model), :mod:`.metrics` (FLOPs per step, the training metadata), :mod:`.template`
(one rank's ops as columns), :mod:`.layers`, :mod:`.comm` and :mod:`.stage` (the ops of a
stage), :mod:`.assemble` (all ranks, and the fold).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simcluster.lazy import lazy_exports

if TYPE_CHECKING:
    from simcluster.workload.generate.transformer.assemble import transformer
    from simcluster.workload.generate.transformer.config import (
        DTYPES,
        RECOMPUTE,
        TransformerConfig,
    )
    from simcluster.workload.generate.transformer.memory import (
        StageParams,
        memory_breakdown,
        memory_fit,
        stage_params,
        static_memory,
    )
    from simcluster.workload.generate.transformer.metrics import (
        hardware_flops_per_step,
        model_flops_per_step,
        optimizer_bytes_per_param,
        training_meta,
    )

# Imported on first use, so that the configuration's constants (``config``, which the
# command line's help texts list) come without the generator itself.
_PKG = __name__
__getattr__, __dir__ = lazy_exports(__name__, {
    "transformer": f"{_PKG}.assemble",
    **dict.fromkeys(("DTYPES", "RECOMPUTE", "TransformerConfig"), f"{_PKG}.config"),
    **dict.fromkeys(("StageParams", "memory_breakdown", "memory_fit", "stage_params",
                     "static_memory"), f"{_PKG}.memory"),
    **dict.fromkeys(("hardware_flops_per_step", "model_flops_per_step",
                     "optimizer_bytes_per_param", "training_meta"), f"{_PKG}.metrics"),
})

__all__ = [
    "DTYPES", "RECOMPUTE", "StageParams", "TransformerConfig", "hardware_flops_per_step",
    "memory_breakdown", "memory_fit", "model_flops_per_step", "optimizer_bytes_per_param",
    "stage_params", "static_memory", "training_meta", "transformer",
]

"""Training steps of a decoder-only transformer with tensor, pipeline and data parallelism.

Ranks are numbered ``rank = t + T (p + P d)`` for TP rank ``t`` of ``T``, pipeline stage ``p``
of ``P`` and data-parallel replica ``d`` of ``D``: a TP group is ``T`` consecutive ranks (one
server when ``T`` = GPUs per server), and each data-parallel replica is a block of ``T P``
consecutive ranks. (Megatron-LM's default order puts DP before PP; this order keeps replicas
contiguous, which the fold below relies on. Use a placement file for another mapping.)

**Ops per rank** (per micro-batch, per layer, coarse but separating what can overlap):

- forward: norm, QKV GEMM, attention core, projection GEMM, residual+norm, FC1 GEMM,
  activation function, FC2 GEMM, residual; with TP, an all-reduce after each block
  (Megatron's ``g``), or with sequence parallelism an all-gather before and a reduce-scatter
  after each block. All on stream ``compute``, TP collectives on stream ``tp``.
- backward: the same in reverse; each block's input-gradient GEMM (dgrad) is split from its
  weight-gradient GEMM (wgrad), so that the TP all-reduce (or reduce-scatter) of the input
  gradient overlaps the wgrad, as Megatron's async TP communication does; with SP the input
  is re-gathered for the wgrad while the dgrad runs.
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
  order) all-reduced (ZeRO-0) or reduce-scattered (ZeRO-1/2) as soon as the last micro-batch
  has produced them (``dp_overlap``), or all after the backward; ZeRO-1/2 all-gather the
  updated parameters per bucket, overlapping the next step's first forward (modelled as the
  start of this step, the steady state); ZeRO-2 reduce-scatters every micro-batch; ZeRO-3 /
  FSDP all-gathers each layer's parameters before its forward and backward (one layer of
  prefetch) and reduce-scatters its gradients after its backward, every micro-batch; tied
  embeddings are all-reduced between the first and last stage.
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
with replica 0's unless the fabric mixes replicas' paths (see ``docs/performance.md``).
``tests/workload/test_transformer.py`` checks folded against full replays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.errors import WorkloadError
from simcluster.workload.generate.costs import Cost, Shape
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.schedules import Unit, parse_schedule, stage_units
from simcluster.workload.model import OPS_SCHEMA, Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

RECOMPUTE = ("none", "selective", "full")
DTYPES = ("bf16", "fp16", "fp8")

# Group kinds of a template op.
_NONE, _TP, _DP, _EMB = 0, 1, 2, 3


@dataclass(frozen=True)
class TransformerConfig:
    """One training configuration.

    Attributes:
        model: the transformer (see ``presets.py``).
        tp, pp, dp: tensor-, pipeline- and data-parallel sizes.
        micro_batch: sequences per micro-batch.
        global_batch: sequences per step over all replicas (default ``micro_batch * dp``);
            gradient accumulation runs ``global_batch / (micro_batch * dp)`` micro-batches.
        sequence_parallel: Megatron sequence parallelism (needs tp > 1 to matter).
        schedule: ``1f1b``, ``gpipe`` or ``1f1b-interleaved:V`` (V model chunks per stage).
        zero: data-parallel sharding: 0 (replicated, DDP), 1 (optimizer states, Megatron's
            distributed optimizer), 2 (+ gradients), 3 (+ parameters, FSDP).
        recompute: activation recompute ``none``, ``selective`` or ``full``.
        dtype: ``bf16``, ``fp16`` or ``fp8`` (fp8 GEMMs, bf16 elsewhere).
        flash_attention: fused attention core; off for the 2020-2021 Megatron runs.
        dp_overlap: overlap gradient communication with the backward pass.
        tp_overlap: overlap the TP reduction of an input gradient with the weight-gradient
            GEMM (Megatron-LM's asynchronous TP communication, from late 2021); off, the
            backward waits for each reduction.
        bucket_params: parameters per gradient bucket (Megatron's default 40M).
        grad_bytes: bytes per gradient element; default 4 (fp32 main grads) for bf16/fp8,
            2 for fp16.
        scatter_gather: the pipeline scatter/gather optimisation (when tp > 1, no SP).
        fold: emit the folded workload (module docstring).
        steps: training steps.
        name: workload name.
        vocab_multiple: the vocabulary is padded to a multiple of this times tp.
    """

    model: ModelSpec
    tp: int = 1
    pp: int = 1
    dp: int = 1
    micro_batch: int = 1
    global_batch: int | None = None
    sequence_parallel: bool = False
    schedule: str = "1f1b"
    zero: int = 0
    recompute: str = "none"
    dtype: str = "bf16"
    flash_attention: bool = True
    dp_overlap: bool = True
    tp_overlap: bool = True
    bucket_params: int = 40_000_000
    grad_bytes: int | None = None
    scatter_gather: bool = True
    fold: bool = True
    steps: int = 1
    name: str = ""
    vocab_multiple: int = 128

    def padded(self) -> TransformerConfig:
        """This configuration with the vocabulary padded to a multiple of
        ``vocab_multiple * tp`` (Megatron-LM's ``--make-vocab-size-divisible-by``)."""
        q = max(self.vocab_multiple, 1) * self.tp
        v = -(-self.model.vocab // q) * q
        return self if v == self.model.vocab else replace(self, model=replace(self.model, vocab=v))

    @property
    def batch(self) -> int:
        return self.global_batch if self.global_batch is not None else self.micro_batch * self.dp

    @property
    def micro_batches(self) -> int:
        """Micro-batches per replica per step (gradient accumulation steps)."""
        return self.batch // (self.micro_batch * self.dp)

    @property
    def schedule_name(self) -> str:
        return parse_schedule(self.schedule)[0]

    @property
    def chunks(self) -> int:
        return parse_schedule(self.schedule)[1]

    @property
    def sp(self) -> bool:
        return self.sequence_parallel and self.tp > 1

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def gbytes(self) -> int:
        if self.grad_bytes is not None:
            return self.grad_bytes
        return 2 if self.dtype == "fp16" else 4

    def shape(self) -> Shape:
        return Shape(model=self.model, micro_batch=self.micro_batch, tp=self.tp, sp=self.sp,
                     act_bytes=2, gemm_bytes=1 if self.dtype == "fp8" else 2,
                     grad_bytes=self.gbytes, flash=self.flash_attention)

    def check(self) -> None:
        """Raise WorkloadError naming the first inconsistent setting."""
        problems = list(self.model.validate())
        for name in ("tp", "pp", "dp", "micro_batch", "steps", "bucket_params"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (got {getattr(self, name)})")
        try:
            name, v = parse_schedule(self.schedule)
        except ValueError as exc:
            problems.append(str(exc))
            name, v = "1f1b", 1
        m = self.model
        if self.batch % (self.micro_batch * max(self.dp, 1)):
            problems.append(f"global batch {self.batch} is not a multiple of micro_batch x dp "
                            f"= {self.micro_batch * self.dp}")
        if self.recompute not in RECOMPUTE:
            problems.append(f"recompute {self.recompute!r} is not one of {', '.join(RECOMPUTE)}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.zero not in (0, 1, 2, 3):
            problems.append(f"zero stage {self.zero} is not 0, 1, 2 or 3")
        if self.zero >= 2 and self.pp > 1:
            problems.append("ZeRO-2/3 (FSDP) shard per micro-batch and are not combined with "
                            "pipeline parallelism (as in DeepSpeed); use zero 0 or 1 with pp > 1")
        if m.heads % self.tp or m.kv_heads % self.tp and self.tp % m.kv_heads:
            problems.append(f"heads {m.heads} / kv_heads {m.kv_heads} do not split over tp "
                            f"{self.tp}")
        if m.ffn % self.tp or (m.vocab and m.vocab % self.tp):
            problems.append(f"ffn {m.ffn} and vocab {m.vocab} must be multiples of tp {self.tp}")
        if self.sp and m.seq_len * self.micro_batch % self.tp:
            problems.append("sequence parallelism needs micro_batch x seq_len divisible by tp")
        if m.layers < self.pp * v:
            problems.append(f"{m.layers} layers cannot fill {self.pp} stages x {v} chunks")
        if name == "interleaved" and self.batch % (self.micro_batch * max(self.dp, 1)) == 0 \
                and self.micro_batches % self.pp:
            problems.append(f"the interleaved schedule needs the micro-batches per replica "
                            f"({self.micro_batches}) to be a multiple of pp ({self.pp})")
        if problems:
            raise WorkloadError("transformer configuration: " + "; ".join(problems) + ".")

    def layers_of(self, virtual_stage: int) -> range:
        """Layers of virtual stage ``c P + p`` (an uneven remainder goes to the first ones)."""
        nv = self.pp * self.chunks
        base, extra = divmod(self.model.layers, nv)
        start = virtual_stage * base + min(virtual_stage, extra)
        return range(start, start + base + (1 if virtual_stage < extra else 0))

    def describe(self) -> dict[str, Any]:
        """The settings, JSON-ready."""
        out = {k: v for k, v in asdict(self).items() if k != "model"}
        out["global_batch"] = self.batch
        out["micro_batches"] = self.micro_batches
        out["grad_bytes"] = self.gbytes
        return out


# -- closed forms ------------------------------------------------------------------------------

def model_flops_per_step(cfg: TransformerConfig) -> float:
    """Model FLOPs of one step (no recompute): ``6 N_matmul tokens + 12 L b s^2 h`` per
    micro-batch, N_matmul including the LM head; the MFU numerator."""
    m = cfg.model
    tokens = cfg.batch * m.seq_len
    n_matmul = m.layers * m.layer_matmul_params + m.vocab * m.hidden
    return 6.0 * n_matmul * tokens + 12.0 * m.layers * cfg.batch * m.seq_len**2 * m.hidden


def hardware_flops_per_step(cfg: TransformerConfig) -> float:
    """FLOPs actually executed: the model FLOPs plus recomputation."""
    m = cfg.model
    tokens = cfg.batch * m.seq_len
    attn = 4.0 * m.layers * cfg.batch * m.seq_len**2 * m.hidden
    layer_fwd = 2.0 * m.layers * m.layer_matmul_params * tokens + attn
    extra = {"none": 0.0, "full": layer_fwd,
             "selective": 0.0 if cfg.flash_attention else attn}[cfg.recompute]
    return model_flops_per_step(cfg) + extra


def optimizer_bytes_per_param(grad_bytes: int) -> int:
    """HBM bytes per parameter of a mixed-precision Adam step: fp16 gradients copied to fp32
    (read 2, write 4; none with fp32 gradients), unscale/overflow check and gradient norm
    (read 4 each), Adam (read parameter, m, v, gradient: 16; write parameter, m, v: 12), and
    the 16-bit copy of the parameter (read 4, write 2)."""
    return (6 if grad_bytes == 2 else 0) + 8 + 28 + 6


# -- memory ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageParams:
    """Parameters held by one rank of a stage (TP-sharded, before DP sharding)."""

    layers: int
    embedding: int
    head: int

    @property
    def total(self) -> int:
        return self.layers + self.embedding + self.head


def stage_params(cfg: TransformerConfig, stage: int) -> StageParams:
    """Parameters on one TP rank of ``stage``: matrices split over TP, biases and norms
    counted whole (an upper bound of a few hidden-sized vectors)."""
    m, t = cfg.model, cfg.tp
    nlayers = sum(len(cfg.layers_of(c * cfg.pp + stage)) for c in range(cfg.chunks))
    per_layer = m.layer_matmul_params // t + (m.layer_params - m.layer_matmul_params)
    emb = head = 0
    if m.vocab:
        if stage == 0:
            emb = m.vocab * m.hidden // t + (m.seq_len * m.hidden if m.learned_positions else 0)
        if stage == cfg.pp - 1:
            head = m.head_params - (0 if m.tied_embeddings else m.vocab * m.hidden)
            if not m.tied_embeddings or cfg.pp > 1:  # untied head, or the tied copy
                head += m.vocab * m.hidden // t
    return StageParams(layers=nlayers * per_layer, embedding=emb, head=head)


def _layer_param_bytes(cfg: TransformerConfig) -> int:
    """bf16 bytes of one layer's parameters on a TP rank (ZeRO-3 gather buffer)."""
    m = cfg.model
    return 2 * (m.layer_matmul_params // cfg.tp + m.layer_params - m.layer_matmul_params)


def static_memory(cfg: TransformerConfig, stage: int) -> dict[str, int]:
    """Weights (bf16), gradients and Adam states (fp32 master, m, v) of one rank, bytes,
    sharded over DP per the ZeRO stage."""
    p = stage_params(cfg, stage).total
    d = cfg.dp
    return {
        "weights": 2 * p // (d if cfg.zero >= 3 else 1),
        "grads": cfg.gbytes * p // (d if cfg.zero >= 2 else 1),
        "optimizer": 12 * p // (d if cfg.zero >= 1 else 1),
    }


def memory_breakdown(cfg: TransformerConfig, stage: int) -> dict[str, int]:
    """Analytic peak memory of one rank of ``stage`` by category, bytes.

    ``activations`` is the largest sum, over the schedule, of the activations of the
    micro-batches in flight (including logits on the last stage) plus the transient of
    recomputing one layer; ``buffers`` the ZeRO-3 gathered parameters (two layers, and the
    embedding and head, kept gathered for the step). The replay's ledger reaches this peak
    exactly, except with ZeRO-3, where it is an upper bound (the gathers run ahead on their
    own stream).
    """
    shape = cfg.shape()
    keep = shape.layer_activation_bytes(cfg.recompute)
    transient = 0
    if cfg.recompute == "full":
        transient = shape.layer_activation_bytes("none")
    elif cfg.recompute == "selective" and not cfg.flash_attention:
        transient = int(2 * shape.score_elems + (shape.score_elems if cfg.model.dropout else 0))
    last_vs = cfg.pp * cfg.chunks - 1
    logits = shape.logits_bytes() if cfg.model.vocab else 0
    per_vs = {}
    for c in range(cfg.chunks):
        vs = c * cfg.pp + stage
        per_vs[c] = len(cfg.layers_of(vs)) * keep + (logits if vs == last_vs else 0)
    live = peak = 0
    for u in stage_units(cfg.schedule_name, stage, cfg.pp, cfg.micro_batches, cfg.chunks):
        if u.forward:
            live += per_vs[u.chunk]
            peak = max(peak, live)
            continue
        if u.chunk * cfg.pp + stage == last_vs:  # the head's backward frees the logits first
            peak = max(peak, live, live - logits + transient)
        else:
            peak = max(peak, live + transient)
        live -= per_vs[u.chunk]
    out = static_memory(cfg, stage)
    out["activations"] = int(peak)
    out["buffers"] = 0
    if cfg.zero >= 3 and cfg.dp > 1:  # two gathered layers, the gathered embedding and head
        sp = stage_params(cfg, stage)
        out["buffers"] = 2 * _layer_param_bytes(cfg) + 2 * (sp.embedding + sp.head)
    out["total"] = sum(out.values())
    return out


def memory_fit(cfg: TransformerConfig, capacity_bytes: int) -> str | None:
    """Why ``cfg`` cannot fit in ``capacity_bytes`` per GPU (the analytic memory model of
    its largest stage), or None if every stage fits."""
    for stage in range(cfg.pp):
        mem = memory_breakdown(cfg.padded(), stage)
        if mem["total"] > capacity_bytes:
            parts = ", ".join(f"{k} {mem[k] / 2**30:.1f}" for k in
                              ("weights", "grads", "optimizer", "activations", "buffers"))
            return (f"out of memory (analytic, not simulated): pipeline stage {stage} needs "
                    f"{mem['total'] / 2**30:.1f} GiB per GPU ({parts} GiB), more than "
                    f"{capacity_bytes / 2**30:.0f} GiB")
    return None


# -- the per-rank template ---------------------------------------------------------------------

@dataclass
class _Rank:
    """Ops of one template rank, column by column; op_id = position."""

    name: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    stream: list[str] = field(default_factory=list)
    flops: list[float | None] = field(default_factory=list)
    nbytes: list[int | None] = field(default_factory=list)
    dtype: list[str | None] = field(default_factory=list)
    deps: list[list[int] | None] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    collective: list[str | None] = field(default_factory=list)
    comm_bytes: list[int | None] = field(default_factory=list)
    gkind: list[int] = field(default_factory=list)
    peer_stage: list[int] = field(default_factory=list)
    alloc: list[int] = field(default_factory=list)
    free: list[int] = field(default_factory=list)
    seq: list[int | None] = field(default_factory=list)
    cur_step: int = 0
    counters: dict[Any, int] = field(default_factory=dict)

    def _add(self, name: str, kind: str, stream: str, deps: list[int] | None, *,
             flops: float | None = None, nbytes: int | None = None, dtype: str | None = None,
             collective: str | None = None, comm: int | None = None, gkind: int = _NONE,
             peer: int = -1, alloc: int = 0, free: int = 0, seq_key: Any = None) -> int:
        if seq_key is None:
            self.seq.append(None)
        else:
            n = self.counters.get(seq_key, 0)
            self.counters[seq_key] = n + 1
            self.seq.append(n)
        self.name.append(name)
        self.kind.append(kind)
        self.stream.append(stream)
        self.flops.append(flops)
        self.nbytes.append(nbytes)
        self.dtype.append(dtype)
        self.deps.append(sorted(set(deps)) if deps else None)
        self.step.append(self.cur_step)
        self.collective.append(collective)
        self.comm_bytes.append(comm)
        self.gkind.append(gkind)
        self.peer_stage.append(peer)
        self.alloc.append(alloc)
        self.free.append(free)
        return len(self.name) - 1

    def compute(self, name: str, cost: Cost, dtype: str, deps: list[int] | None = None,
                alloc: int = 0, free: int = 0) -> int:
        return self._add(name, "compute", "compute", deps, flops=cost.flops,
                         nbytes=int(cost.nbytes), dtype=dtype, alloc=alloc, free=free)

    def coll(self, name: str, collective: str, size: float, gkind: int, stream: str,
             deps: list[int] | None = None, alloc: int = 0, free: int = 0) -> int:
        return self._add(name, "collective", stream, deps, collective=collective,
                         comm=int(size), gkind=gkind, alloc=alloc, free=free,
                         seq_key=("coll", gkind))

    def p2p(self, kind: str, name: str, size: float, peer_stage: int, stream: str,
            grad: bool, deps: list[int] | None = None) -> int:
        """A send or recv. Activations and gradients between the same two stages are
        numbered apart (even and odd seq), so each message meets its own counterpart
        whatever order the two stages post them in."""
        op = self._add(name, kind, stream, deps, comm=int(size), peer=peer_stage,
                       seq_key=(kind, peer_stage, grad))
        self.seq[op] = 2 * self.seq[op] + int(grad)
        return op

    def add_free(self, op: int, nbytes: int) -> None:
        self.free[op] += nbytes

    def table(self, ids: np.ndarray | None = None) -> dict[str, Any]:
        """Columns as Arrow arrays (all rows, or the rows ``ids`` renumbered, deps dropped)."""
        cols: dict[str, Any] = {
            "name": pa.array(self.name, pa.string()),
            "kind": pa.array(self.kind, pa.string()),
            "stream": pa.array(self.stream, pa.string()),
            "flops": pa.array(self.flops, pa.float64()),
            "bytes_accessed": pa.array(self.nbytes, pa.int64()),
            "dtype": pa.array(self.dtype, pa.string()),
            "deps": pa.array(self.deps, pa.list_(pa.int64())),
            "step": pa.array(self.step, pa.int32()),
            "collective": pa.array(self.collective, pa.string()),
            "comm_bytes": pa.array(self.comm_bytes, pa.int64()),
            "alloc_bytes": pa.array(self.alloc, pa.int64()),
            "free_bytes": pa.array(self.free, pa.int64()),
            "seq": pa.array(self.seq, pa.int64()),
        }
        gkind = np.asarray(self.gkind, dtype=np.int64)
        peer = np.asarray(self.peer_stage, dtype=np.int64)
        if ids is not None:
            take = pa.array(ids)
            cols = {k: v.take(take) for k, v in cols.items()}
            cols["deps"] = pa.nulls(len(ids), pa.list_(pa.int64()))
            gkind, peer = gkind[ids], peer[ids]
        cols["op_id"] = pa.array(np.arange(len(cols["name"]), dtype=np.int64))
        return {"cols": cols, "gkind": gkind, "peer": peer}


class _StageBuilder:
    """Emits the ops of one TP rank of one pipeline stage (every TP rank is the same)."""

    def __init__(self, cfg: TransformerConfig, stage: int) -> None:
        self.cfg = cfg
        self.stage = stage
        self.s = cfg.shape()
        self.r = _Rank()
        m = cfg.model
        self.e_th = 2.0 * self.s.tokens * m.hidden  # bytes of one full activation [T x h]
        self.gemm_dtype = cfg.dtype
        self.act_dtype = "fp16" if cfg.dtype == "fp16" else "bf16"
        self.keep = self.s.layer_activation_bytes(cfg.recompute)
        self.keep_full = self.s.layer_activation_bytes("none")
        self.nv = cfg.pp * cfg.chunks
        self.tp = cfg.tp > 1

    # -- helpers ---------------------------------------------------------------------------

    def _c(self, name: str, cost: Cost, gemm: bool = False, **kw: Any) -> int:
        return self.r.compute(name, cost, self.gemm_dtype if gemm else self.act_dtype, **kw)

    def _tp_out(self, name: str, dep: int) -> int:
        """The TP reduction after a row-parallel GEMM: reduce-scatter (SP) or all-reduce."""
        coll = "reduce_scatter" if self.cfg.sp else "all_reduce"
        return self.r.coll(name, coll, self.e_th, _TP, "tp", deps=[dep])

    def _tp_in(self, name: str, deps: list[int]) -> int:
        """The SP all-gather before a column-parallel GEMM."""
        return self.r.coll(name, "all_gather", self.e_th, _TP, "tp", deps=deps)

    # -- one layer ---------------------------------------------------------------------------

    def layer_fwd(self, layer: int, tag: str, deps: list[int], alloc: int) -> tuple[int, int]:
        """Forward (``tag`` fwd) or recomputed forward (rcp) of ``layer``; returns the
        (first, last) op ids."""
        s, c = self.s, self._c
        g = s.layer_gemms()
        p = f"L{layer}.{tag}"
        first = c(f"{p}.ln1", s.norm(), deps=deps, alloc=alloc)
        dep = [first]
        if self.cfg.sp:
            dep = [self._tp_in(f"{p}.ag_qkv", dep)]
        c(f"{p}.qkv", s.gemm(*g["qkv"]), gemm=True, deps=dep)
        c(f"{p}.attn", s.attention())
        last = c(f"{p}.proj", s.gemm(*g["proj"]), gemm=True)
        dep = [self._tp_out(f"{p}.tp_attn", last)] if self.tp else None
        last = c(f"{p}.res_ln2", s.residual() + s.norm(), deps=dep)
        dep = [self._tp_in(f"{p}.ag_fc1", [last])] if self.cfg.sp else None
        c(f"{p}.fc1", s.gemm(*g["fc1"]), gemm=True, deps=dep)
        c(f"{p}.act", s.activation_fn())
        last = c(f"{p}.fc2", s.gemm(*g["fc2"]), gemm=True)
        dep = [self._tp_out(f"{p}.tp_mlp", last)] if self.tp else None
        last = c(f"{p}.res", s.residual(), deps=dep)
        return first, last

    def _block_bwd(self, p: str, out_gemm: str, in_gemm: str,
                   middle: list[tuple[str, Cost, int, int]]) -> int:
        """Backward of one block: [SP: gather the output grad], output GEMM (dgrad+wgrad),
        the middle ops ``(name, cost, alloc, free)``, input GEMM dgrad, then the TP reduction
        of the input grad overlapping the input GEMM's wgrad ([SP: the input re-gathered
        meanwhile]); returns the reduction (the wgrad without TP)."""
        s, c, r = self.s, self._c, self.r
        g = s.layer_gemms()
        deps = [self._tp_in(f"{p}.ag_grad_{out_gemm}", [len(r.name) - 1])] if self.cfg.sp \
            else None
        mo = g[out_gemm]
        last = c(f"{p}.{out_gemm}", s.gemm_dgrad(*mo) + s.gemm_wgrad(*mo), gemm=True, deps=deps)
        for name, cost, alloc, free in middle:
            last = c(f"{p}.{name}", cost, alloc=alloc, free=free)
        gather = self._tp_in(f"{p}.ag_in_{in_gemm}", [last]) if self.cfg.sp else None
        mi = g[in_gemm]
        dgrad = c(f"{p}.{in_gemm}.dgrad", s.gemm_dgrad(*mi), gemm=True)
        red = self._tp_out(f"{p}.tp_{in_gemm}", dgrad) if self.tp else None
        wdeps = [x for x in (gather, None if self.cfg.tp_overlap else red) if x is not None]
        wgrad = c(f"{p}.{in_gemm}.wgrad", s.gemm_wgrad(*mi), gemm=True, deps=wdeps or None)
        return red if red is not None else wgrad

    def layer_bwd(self, layer: int, deps: list[int] | None, free_extra: int = 0
                  ) -> tuple[int, int]:
        """Backward of ``layer`` (with its recomputation); returns (first, last) op ids.
        The last op frees the layer's activations (and ``free_extra``)."""
        s, c, cfg = self.s, self._c, self.cfg
        p = f"L{layer}.bwd"
        first = None
        free = self.keep + free_extra
        if cfg.recompute == "full":
            first, _ = self.layer_fwd(layer, "rcp", deps or [], alloc=self.keep_full)
            deps = None
            free += self.keep_full
        start = c(f"{p}.res", s.residual(backward=True), deps=deps)
        first = start if first is None else first
        red = self._block_bwd(p, "fc2", "fc1",
                              [("act", s.activation_fn(backward=True), 0, 0)])
        c(f"{p}.res_ln2", s.residual(backward=True) + s.norm(backward=True), deps=[red])
        middle: list[tuple[str, Cost, int, int]] = []
        tmp = 0
        if cfg.recompute == "selective" and not cfg.flash_attention:
            tmp = int(2 * s.score_elems + (s.score_elems if cfg.model.dropout else 0))
            middle.append(("attn_rcp", s.attention(), tmp, 0))
        middle.append(("attn", s.attention(backward=True), 0, tmp))
        red = self._block_bwd(p, "proj", "qkv", middle)
        last = c(f"{p}.ln1", s.norm(backward=True), deps=[red], free=free)
        return first, last

    # -- embedding and head --------------------------------------------------------------------

    def embed_fwd(self, deps: list[int], alloc: int) -> int:
        last = self._c("embed", self.s.embedding(), deps=deps, alloc=alloc)
        if self.tp:  # vocab-parallel embedding: sum (or reduce-scatter) the partial lookups
            last = self._tp_out("tp_embed", last)
        return last

    def embed_bwd(self, deps: list[int] | None) -> int:
        return self._c("embed.bwd", self.s.embedding(backward=True), deps=deps)

    def head_fwd(self, deps: list[int]) -> int:
        s, c = self.s, self._c
        c("final_norm", s.norm(), deps=deps)
        dep = [self._tp_in("ag_head", [len(self.r.name) - 1])] if self.cfg.sp else None
        c("logits", s.gemm(*s.head_gemm()), gemm=True, deps=dep, alloc=s.logits_bytes())
        last = c("loss", s.loss())
        if self.tp:  # max, sum of exp and target logit over the vocab shards: 3 fp32 per token
            last = self.r.coll("tp_loss", "all_reduce", 12 * s.tokens, _TP, "tp", deps=[last])
        return last

    def head_bwd(self, deps: list[int] | None) -> int:
        s, c = self.s, self._c
        c("loss.bwd", s.loss(backward=True), deps=deps)
        m = s.head_gemm()
        last = c("logits.dgrad", s.gemm_dgrad(*m), gemm=True)
        red = self._tp_out("tp_head", last) if self.tp else None
        c("logits.wgrad", s.gemm_wgrad(*m), gemm=True, free=s.logits_bytes())
        return c("final_norm.bwd", s.norm(backward=True), deps=[red] if red is not None else None)

    # -- pipeline ------------------------------------------------------------------------------

    def _p2p_bytes(self) -> float:
        return self.e_th / self.cfg.tp if (self.cfg.sp or (self.tp and self.cfg.scatter_gather)) \
            else self.e_th

    def _recv(self, name: str, peer: int, stream: str) -> int:
        op = self.r.p2p("recv", name, self._p2p_bytes(), peer, stream, grad="bwd" in stream)
        if self.tp and not self.cfg.sp and self.cfg.scatter_gather:
            op = self.r.coll(f"{name}.gather", "all_gather", self.e_th, _TP, "tp", deps=[op])
        return op

    def _send(self, name: str, peer: int, stream: str, dep: int) -> int:
        return self.r.p2p("send", name, self._p2p_bytes(), peer, stream, grad="bwd" in stream,
                          deps=[dep])

    # -- data parallel -------------------------------------------------------------------------

    def _dp_reduce(self, name: str, params: int, dep: int) -> int:
        coll = "all_reduce" if self.cfg.zero == 0 else "reduce_scatter"
        return self.r.coll(name, coll, self.cfg.gbytes * params, _DP, "dp", deps=[dep])

    def _buckets(self, ready: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Group (params, ready op) in backward order into buckets of ``bucket_params``;
        returns (params, op after which the bucket is complete)."""
        out, acc = [], 0
        for params, op in ready:
            acc += params
            if acc >= self.cfg.bucket_params:
                out.append((acc, op))
                acc = 0
        if acc:
            out.append((acc, ready[-1][1]))
        return out

    # -- the stage -----------------------------------------------------------------------------

    def build(self) -> _Rank:
        cfg, r = self.cfg, self.r
        for step in range(cfg.steps):
            r.cur_step = step
            self._step(first=step == 0)
        return r

    def _step(self, first: bool) -> None:
        """One training step: parameter gathers, the schedule's units, gradient reduction,
        optimizer."""
        cfg = self.cfg
        st = _StepState(pending_alloc=sum(static_memory(cfg, self.stage).values())
                        if first else 0)
        self._param_gathers(st)
        units = stage_units(cfg.schedule_name, self.stage, cfg.pp, cfg.micro_batches,
                            cfg.chunks)
        last_bwd = {u.chunk: i for i, u in enumerate(units) if not u.forward}
        seen: set[int] = set()
        for i, u in enumerate(units):
            if u.forward:
                self._forward(st, u, first_of_chunk=u.chunk not in seen)
                seen.add(u.chunk)
            else:
                self._backward(st, u, last_of_chunk=i == last_bwd[u.chunk])
        self._finish(st)

    @property
    def _layer_params(self) -> int:
        m = self.cfg.model
        return m.layer_matmul_params // self.cfg.tp + (m.layer_params - m.layer_matmul_params)

    def _param_gathers(self, st: _StepState) -> None:
        """ZeRO-1/2: the updated parameters all-gathered per bucket in forward order (the
        steady state: they overlap this step's first forward). ZeRO-3: the embedding and
        head gathered once for the step."""
        cfg, r = self.cfg, self.r
        sp = stage_params(cfg, self.stage)
        if cfg.dp > 1 and cfg.zero in (1, 2):
            order: list[tuple[int, int]] = []  # (params, layer; -1 embedding, -2 head)
            for c in range(cfg.chunks):
                vs = c * cfg.pp + self.stage
                if vs == 0:
                    order.append((sp.embedding, -1))
                order.extend((self._layer_params, layer) for layer in cfg.layers_of(vs))
                if vs == self.nv - 1:
                    order.append((sp.head, -2))
            acc, members = 0, []
            for k, (params, layer) in enumerate(order):
                acc += params
                members.append(layer)
                if acc >= cfg.bucket_params or k == len(order) - 1:
                    op = r.coll(f"dp.param_ag{len(set(st.gather.values()))}", "all_gather",
                                2 * acc, _DP, "dp", alloc=st.take_alloc())
                    st.gather.update(dict.fromkeys(members, op))
                    acc, members = 0, []
        if cfg.dp > 1 and cfg.zero >= 3 and (sp.embedding or sp.head):
            st.z3_persist = 2 * (sp.embedding + sp.head)
            op = r.coll("dp.z3_ag_embed_head", "all_gather", st.z3_persist, _DP, "dp",
                        alloc=st.take_alloc() + st.z3_persist)
            st.gather[-1] = st.gather[-2] = op

    def _z3_gather(self, name: str, after: int | None) -> int:
        """ZeRO-3: gather one layer's parameters (prefetch: once ``after`` has started)."""
        size = _layer_param_bytes(self.cfg)
        return self.r.coll(name, "all_gather", size, _DP, "dp",
                           deps=[after] if after is not None else None, alloc=size)

    def _forward(self, st: _StepState, u: Unit, first_of_chunk: bool) -> None:
        cfg, P, stage = self.cfg, self.cfg.pp, self.stage
        vs = u.chunk * P + stage
        z3 = cfg.dp > 1 and cfg.zero >= 3
        if vs == 0:
            deps = [st.gather[-1]] if first_of_chunk and -1 in st.gather else []
            if cfg.model.vocab:
                deps = [self.embed_fwd(deps, st.take_alloc())]
        else:
            deps = [self._recv(f"recv_act.c{u.chunk}", stage - 1 if stage else P - 1,
                               "pp_fwd_recv")]
        prev_first = None
        for layer in cfg.layers_of(vs):
            if first_of_chunk and layer in st.gather:
                deps = deps + [st.gather[layer]]
            if z3:
                deps = deps + [self._z3_gather(f"L{layer}.z3_ag_fwd", prev_first)]
            prev_first, last = self.layer_fwd(layer, "fwd", deps, self.keep + st.take_alloc())
            if z3:
                self.r.add_free(last, _layer_param_bytes(cfg))
            deps = [last]
        if vs == self.nv - 1:
            if cfg.model.vocab:
                wait = [st.gather[-2]] if first_of_chunk and -2 in st.gather else []
                deps = [self.head_fwd(deps + wait)]
        else:
            self._send(f"send_act.c{u.chunk}", stage + 1 if stage < P - 1 else 0,
                       "pp_fwd_send", deps[0])
        st.last_compute = deps[0]

    def _backward(self, st: _StepState, u: Unit, last_of_chunk: bool) -> None:
        cfg, r, P, stage = self.cfg, self.r, self.cfg.pp, self.stage
        vs = u.chunk * P + stage
        sp = stage_params(cfg, stage)
        z3 = cfg.dp > 1 and cfg.zero >= 3
        ready: list[tuple[int, int]] = []  # (params, op after which their grads are done)
        deps: list[int] | None = None
        if vs == self.nv - 1:
            if cfg.model.vocab:
                st.emb_ready = self.head_bwd(None)
                ready.append((sp.head, st.emb_ready))
                deps = [st.emb_ready]
        else:
            deps = [self._recv(f"recv_grad.c{u.chunk}", stage + 1 if stage < P - 1 else 0,
                               "pp_bwd_recv")]
        prev_first = None
        for layer in reversed(cfg.layers_of(vs)):
            extra = 0
            if z3:
                deps = (deps or []) + [self._z3_gather(f"L{layer}.z3_ag_bwd", prev_first)]
                extra = _layer_param_bytes(cfg)
            prev_first, last = self.layer_bwd(layer, deps, free_extra=extra)
            deps = [last]
            ready.append((self._layer_params, last))
            if z3:
                r.coll(f"L{layer}.z3_rs", "reduce_scatter", cfg.gbytes * self._layer_params, _DP,
                       "dp", deps=[last])
        assert deps is not None
        if vs == 0:
            if cfg.model.vocab:
                st.emb_ready = self.embed_bwd(deps)
                ready.append((sp.embedding, st.emb_ready))
                deps = [st.emb_ready]
        else:
            self._send(f"send_grad.c{u.chunk}", stage - 1 if stage else P - 1, "pp_bwd_send",
                       deps[0])
        st.last_compute = deps[0]
        if cfg.dp == 1 or z3 or not (cfg.zero == 2 or last_of_chunk):
            return
        for k, (params, op) in enumerate(self._buckets(ready)):
            name = f"dp.grad.c{u.chunk}.b{k}"
            if cfg.dp_overlap:
                self._dp_reduce(name, params, op)
            else:
                st.deferred.append((name, params))

    def _finish(self, st: _StepState) -> None:
        """Deferred gradient reduction, ZeRO-3 head/embedding reduction, tied-embedding
        all-reduce, then the optimizer after all of it."""
        cfg, r, m = self.cfg, self.r, self.cfg.model
        sp = stage_params(cfg, self.stage)
        for name, params in st.deferred:
            self._dp_reduce(name, params, st.last_compute)
        if st.z3_persist:
            r.coll("dp.z3_rs_embed_head", "reduce_scatter",
                   cfg.gbytes * (sp.embedding + sp.head), _DP, "dp", deps=[st.last_compute])
        deps = [st.last_compute]
        if m.vocab and m.tied_embeddings and cfg.pp > 1 and self.stage in (0, cfg.pp - 1):
            size = cfg.gbytes * m.vocab * m.hidden // cfg.tp
            deps.append(r.coll("emb.grad_allreduce", "all_reduce", size, _EMB, "dp",
                               deps=[st.emb_ready if st.emb_ready >= 0 else st.last_compute]))
        dp_ops = [k for k, s in enumerate(r.stream) if s == "dp" and r.step[k] == r.cur_step]
        deps.extend(dp_ops[-1:])
        n = sp.total // (cfg.dp if cfg.zero >= 1 else 1)
        r.compute("optimizer", Cost(15.0 * n, optimizer_bytes_per_param(cfg.gbytes) * n), "fp32",
                  deps=deps, free=st.z3_persist)


@dataclass
class _StepState:
    """What one stage's step carries between units."""

    pending_alloc: int = 0  # static memory, taken by the step's first op
    gather: dict[int, int] = field(default_factory=dict)  # layer -> its parameter gather op
    z3_persist: int = 0  # ZeRO-3: gathered embedding and head bytes
    deferred: list[tuple[str, int]] = field(default_factory=list)
    last_compute: int = -1
    emb_ready: int = -1

    def take_alloc(self) -> int:
        """The pending static allocation, once."""
        out, self.pending_alloc = self.pending_alloc, 0
        return out


# -- assembly ----------------------------------------------------------------------------------

def _group_names(cfg: TransformerConfig) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """All group names (dictionary order) and their ranks."""
    T, P, D = cfg.tp, cfg.pp, cfg.dp
    groups: dict[str, tuple[int, ...]] = {}
    rank = lambda t, p, d: t + T * (p + P * d)  # noqa: E731
    replicas = 1 if cfg.fold else D
    if T > 1:
        for d in range(replicas):
            for p in range(P):
                groups[f"tp.d{d}.p{p}"] = tuple(rank(t, p, d) for t in range(T))
    if D > 1:
        for p in range(P):
            for t in range(T):
                groups[f"dp.p{p}.t{t}"] = tuple(rank(t, p, d) for d in range(D))
    m = cfg.model
    if m.vocab and m.tied_embeddings and P > 1:
        for d in range(replicas):
            for t in range(T):
                groups[f"emb.d{d}.t{t}"] = (rank(t, 0, d), rank(t, P - 1, d))
    return list(groups), groups


def _stamp(tpl: dict[str, Any], cfg: TransformerConfig, t: int, p: int, d: int,
           index: dict[str, int], dictionary: pa.Array) -> pa.Table:
    """The template's rows as rank (t, p, d): rank, groups and peers filled in."""
    T, P = cfg.tp, cfg.pp
    n = len(tpl["gkind"])
    rank = t + T * (p + P * d)
    lut = np.array([-1, index.get(f"tp.d{d}.p{p}", -1), index.get(f"dp.p{p}.t{t}", -1),
                    index.get(f"emb.d{d}.t{t}", -1)], dtype=np.int32)
    gi = lut[tpl["gkind"]]
    groups = pa.DictionaryArray.from_arrays(pa.array(gi, mask=gi < 0), dictionary)
    peer_stage = tpl["peer"]
    peer = pa.array((t + T * (peer_stage + P * d)).astype(np.int32), mask=peer_stage < 0)
    cols = dict(tpl["cols"])
    cols["rank"] = pa.array(np.full(n, rank, dtype=np.int32))
    cols["group"] = groups
    cols["peer"] = peer
    return pa.table(cols)


def transformer(cfg: TransformerConfig) -> Workload:
    """Generate the workload of ``cfg`` (see the module docstring).

    Raises:
        WorkloadError: an inconsistent configuration.

    Example:
        >>> from simcluster.workload.generate.presets import ModelSpec
        >>> m = ModelSpec("toy", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
        ...               seq_len=32)
        >>> wl = transformer(TransformerConfig(model=m, tp=2, pp=2, dp=2, global_batch=8))
        >>> wl.num_ranks, sorted(wl.groups)[:2]
        (8, ['dp.p0.t0', 'dp.p0.t1'])
    """
    cfg = cfg.padded()
    cfg.check()
    names, groups = _group_names(cfg)
    index = {g: i for i, g in enumerate(names)}
    dictionary = pa.array(names or [""], pa.string())
    full = [_StageBuilder(cfg, p).build() for p in range(cfg.pp)]
    tpls = [r.table() for r in full]
    ghosts = []
    if cfg.fold and cfg.dp > 1:
        for r in full:
            ids = np.flatnonzero(np.asarray(r.gkind) == _DP)
            g = r.table(ids)
            g["cols"]["alloc_bytes"] = pa.array(np.zeros(len(ids), np.int64))
            g["cols"]["free_bytes"] = pa.array(np.zeros(len(ids), np.int64))
            g["cols"]["stream"] = pa.array(["dp"] * len(ids), pa.string())
            ghosts.append(g)
    parts = []
    for d in range(cfg.dp):
        for p in range(cfg.pp):
            tpl = tpls[p] if d == 0 or not cfg.fold else ghosts[p]
            for t in range(cfg.tp):
                parts.append(_stamp(tpl, cfg, t, p, d, index, dictionary))
    table = pa.concat_tables(parts)
    table = table.set_column(table.schema.get_field_index("group"), "group",
                             table.column("group").cast(pa.string()))
    table = table.select([f.name for f in OPS_SCHEMA if f.name in table.column_names])
    meta = WorkloadMeta(
        name=cfg.name or f"{cfg.model.name}-tp{cfg.tp}-pp{cfg.pp}-dp{cfg.dp}",
        source="simcluster generate transformer",
        world_size=cfg.world,
        extra=training_meta(cfg),
    )
    return make_workload(table, groups, meta, source="generate transformer")


def training_meta(cfg: TransformerConfig) -> dict[str, Any]:
    """What the analysis needs to report MFU, tokens/s, memory and bubble (JSON-ready)."""
    m = cfg.model
    mem = {str(p): memory_breakdown(cfg, p) for p in range(cfg.pp)}
    v, mb, p = cfg.chunks, cfg.micro_batches, cfg.pp
    return {
        "generator": "transformer",
        "model": asdict(m),
        "params": m.params,
        "config": cfg.describe(),
        "tokens_per_step": cfg.batch * m.seq_len,
        "model_flops_per_step": model_flops_per_step(cfg),
        "hardware_flops_per_step": hardware_flops_per_step(cfg),
        "peak_dtype": "fp8" if cfg.dtype == "fp8" else "bf16",
        "steps": cfg.steps,
        "pipeline": {"stages": p, "micro_batches": mb, "chunks": v,
                     "schedule": cfg.schedule_name,
                     "ideal_bubble": (p - 1) / (v * mb + p - 1) if cfg.schedule_name != "gpipe"
                     else (p - 1) / (mb + p - 1)},
        "memory": mem,
        "fold": {"replicas": cfg.dp, "ranks_per_replica": cfg.tp * cfg.pp}
        if cfg.fold and cfg.dp > 1 else None,
    }

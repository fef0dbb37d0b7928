"""One training configuration of a transformer (:class:`TransformerConfig`): the model, the
parallelism, the schedule and the options; its derived sizes, and its validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.workload.generate.costs import Shape
from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.schedules import parse_schedule
from simcluster.workload.generate.transformer.cp import check_cp
from simcluster.workload.generate.transformer.moe import check_moe, ep_span

RECOMPUTE = ("none", "selective", "full", "save_qkv_proj")
DTYPES = ("bf16", "fp16", "fp8")
ATTENTION_KERNELS = ("flash", "flash1")
LOSS_KERNELS = ("fused", "eager", "unfused")
KERNEL_SETS = ("current", "megatron-2021")


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
        shard_group: hybrid sharding (PyTorch FSDP ``HYBRID_SHARD``, MaxText's
            ``dcn_data_parallelism`` x ``ici/dcn_fsdp_parallelism``): the ZeRO state is
            sharded within groups of ``shard_group`` consecutive data-parallel replicas (with
            their CP ranks), where the parameters are all-gathered and the gradients
            reduce-scattered; each reduced gradient shard is then all-reduced over the
            ``dp / shard_group`` groups. 0 (or ``dp``): one group of all replicas. Needs
            ZeRO 1-3; must divide ``dp``.
        recompute: activation recompute ``none``, ``selective``, ``full`` or
            ``save_qkv_proj`` (JAX's ``save_only_these_names`` of the Q, K and V
            projections, MaxText's ``remat_policy=save_qkv_proj``: the backward recomputes
            what its gradients need from the layer input and the saved Q, K, V; ``layers.py``).
        dtype: ``bf16``, ``fp16`` or ``fp8`` (fp8 GEMMs, bf16 elsewhere).
        flash_attention: fused attention core; off for the 2020-2021 Megatron runs.
        attention_kernel: which fused attention kernel runs: ``flash`` (FlashAttention 2/3,
            cuDNN: the op is named ``<layer>.<pass>.attn``) or ``flash1`` (FlashAttention
            1.x, 2022-2023: ``...attn.fa1``, which the compute model runs at its own,
            lower efficiency; ``docs/compute.md``).
        loss_kernel: the cross-entropy: ``fused`` (one pass over the fp32 logits forward,
            one backward: Megatron's fused vocab-parallel loss) or ``eager`` (PyTorch's
            ``F.cross_entropy`` on upcast logits: a cast, a log-softmax that reads its input
            three times, and a separate backward, ``costs.Shape.loss``) or ``unfused``
            (Megatron-LM's vocab-parallel cross-entropy of 2019-2023 in PyTorch ops, in
            place on ``logits.float()``).
        kernels: the kernels around the GEMMs: ``current`` (bias gradients fused, a
            one-pass norm backward) or ``megatron-2021`` (the Megatron-LM of 2020-2021:
            separate bias-gradient reductions, Apex's two-pass LayerNorm backward, the
            attention context's permute copy; ``costs.py``).
        dp_overlap: overlap gradient communication with the backward pass.
        tp_overlap: overlap the TP reduction of an input gradient with the weight-gradient
            GEMM (Megatron-LM's asynchronous TP communication, from late 2021); off, the
            backward waits for each reduction.
        tp_comm_overlap: Transformer Engine's userbuffers overlap of the sequence-parallel
            collectives with their GEMMs (Megatron-Core ``--tp-comm-overlap``, NeMo
            ``ub_tp_comm_overlap``; ``layers.py``): the all-gather before QKV and FC1 and
            the output-gradient all-gather before the PROJ and FC2 input gradients run as a
            ring exchange under the GEMM's ``tp`` chunks, the reduce-scatter after PROJ and
            FC2 is pipelined with the GEMM's 4 chunks. Needs sequence parallelism (no
            effect without it).
        bucket_params: parameters per gradient bucket (Megatron's default 40M).
        bucket_per_dp_rank: parameters a bucket grows by per data-parallel rank: buckets
            hold ``max(bucket_params, bucket_per_dp_rank x dp_ranks)`` (Megatron-Core's
            DDP default ``max(40M, 1M x DP)``, so that a large DP group's ring stays
            bandwidth-bound: :attr:`bucket_size`); 0: ``bucket_params`` as is.
        bucket_split: gradients fill buckets of exactly ``bucket_params`` elements, one
            layer's split over several when it is larger (Apex's ``DistributedFusedAdam``,
            the optimizer of NeMo 1.x's ``distributed_fused_adam`` recipes:
            ``bucket_cap_mb`` MiB of ``grad_sync_dtype``); off, a bucket closes at the first
            layer boundary once it holds ``bucket_params`` (whole layers per bucket). Each
            bucket is one collective: more buckets pay the ring's per-step latency more often.
        grad_bytes: bytes per gradient element; default 4 (fp32 main grads) for bf16/fp8,
            2 for fp16.
        scatter_gather: the pipeline scatter/gather optimisation (when tp > 1, no SP).
        fold: emit the folded workload (module docstring).
        steps: training steps.
        name: workload name.
        vocab_multiple: the vocabulary is padded to a multiple of this times tp.
        framework: the framework profile whose defaults the settings were completed from
            (``frameworks.py``; recorded, it changes nothing by itself here).
        ep: expert-parallel size (MoE): the routed experts are split over ``ep`` ranks that
            hold different experts, carved out of the data-parallel ranks as Megatron-Core
            does (``moe.py``); must divide the experts.
        expert_tp: tensor-parallel size of the experts: 1 (each expert whole on one rank;
            with ``tp > 1`` the EP groups then span TP ranks) or ``tp``.
        capacity_factor: tokens an expert takes at most, as a multiple of its mean share
            (tokens beyond it are dropped); None: dropless.
        moe_skew: tokens the busiest EP rank receives over the mean (1: balanced, at most
            ``ep``); every rank is modelled as that one, so the slowest sets the pace.
        moe_dispatcher: token dispatch: ``alltoall`` (all-to-all over the EP group) or
            ``allgather`` (all-gather the tokens, reduce-scatter the outputs).
        moe_pad_to_capacity: every expert's input padded to exactly its capacity
            (Megatron-Core's ``moe_pad_expert_input_to_capacity``; needs
            ``capacity_factor``): every expert computes ``capacity_factor`` times its mean
            share whatever the routing, the all-to-alls are even and the collectives
            around the experts get no split sizes (``moe.py``).
        moe_grouped_gemm: the local experts run as one grouped GEMM (Megatron-Core's
            ``moe_grouped_gemm``); False: SequentialMLP, one MLP per local expert, whose
            outputs are concatenated (a copy of the expert rows) and whose input gradient
            is concatenated from the split's pieces (one more) (``moe.py``).
        cp: context-parallel size: each sequence split over ``cp`` ranks (``cp.py``); the
            gradients are reduced over the ``dp x cp`` ranks of a TP rank and stage.
        cp_comm: how context parallelism exchanges keys and values: ``p2p`` (ring
            attention, Megatron-Core / Transformer Engine) or ``a2a`` (DeepSpeed-Ulysses:
            all-to-alls before and after the attention, heads split over ``tp x cp``).
        host_us: host time (us) to launch each GPU op: each rank's CPU thread issues its ops
            in program order at this cost and a GPU op cannot start before its launch
            (``host.py``, ``docs/compute.md#host-time``); 0: no host timeline.
        cuda_graphs: the ops of one layer's forward or backward are captured in one CUDA
            graph and launched at the cost of one op (Megatron-Core's
            ``--enable-cuda-graph``, Transformer Engine's graphed layers).
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
    shard_group: int = 0
    recompute: str = "none"
    dtype: str = "bf16"
    flash_attention: bool = True
    attention_kernel: str = "flash"
    loss_kernel: str = "fused"
    kernels: str = "current"
    dp_overlap: bool = True
    tp_overlap: bool = True
    tp_comm_overlap: bool = False
    bucket_params: int = 40_000_000
    bucket_per_dp_rank: int = 0
    bucket_split: bool = False
    grad_bytes: int | None = None
    scatter_gather: bool = True
    fold: bool = True
    steps: int = 1
    name: str = ""
    vocab_multiple: int = 128
    framework: str = ""
    ep: int = 1
    expert_tp: int = 1
    capacity_factor: float | None = None
    moe_skew: float = 1.0
    moe_dispatcher: str = "alltoall"
    moe_pad_to_capacity: bool = False
    moe_grouped_gemm: bool = True
    cp: int = 1
    cp_comm: str = "p2p"
    host_us: float = 0.0
    cuda_graphs: bool = False

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
        return self.tp * self.cp * self.pp * self.dp

    @property
    def dp_ranks(self) -> int:
        """Ranks a dense gradient is reduced (and ZeRO-sharded) over: ``dp x cp`` (the CP
        ranks of a TP rank and stage hold the same weights, as in Megatron-Core)."""
        return self.dp * self.cp

    @property
    def hybrid(self) -> bool:
        """Hybrid sharding: ZeRO groups smaller than the data-parallel group."""
        return 0 < self.shard_group < self.dp and self.zero >= 1

    @property
    def shard_ranks(self) -> int:
        """Ranks the ZeRO state of a dense tensor is split over: ``shard_group x cp`` with
        hybrid sharding, else all ``dp x cp``."""
        return self.shard_group * self.cp if self.hybrid else self.dp_ranks

    @property
    def ub(self) -> bool:
        """Transformer Engine's userbuffers TP overlap applies (``tp_comm_overlap`` with
        sequence parallelism)."""
        return self.tp_comm_overlap and self.sp

    @property
    def bucket_size(self) -> int:
        """Parameters per gradient bucket: ``max(bucket_params, bucket_per_dp_rank x
        dp_ranks)``."""
        return max(self.bucket_params, self.bucket_per_dp_rank * self.dp_ranks)

    @property
    def gbytes(self) -> int:
        if self.grad_bytes is not None:
            return self.grad_bytes
        return 2 if self.dtype == "fp16" else 4

    def shape(self) -> Shape:
        """The per-rank shape: with context parallelism a rank holds ``seq_len / cp`` tokens
        of each sequence (its attention is then one ring step's: ``cp.py``)."""
        m = self.model
        if self.cp > 1 and m.seq_len % self.cp == 0:
            m = replace(m, seq_len=m.seq_len // self.cp)
        return Shape(model=m, micro_batch=self.micro_batch, tp=self.tp, sp=self.sp,
                     act_bytes=2, gemm_bytes=1 if self.dtype == "fp8" else 2,
                     grad_bytes=self.gbytes, flash=self.flash_attention,
                     loss_kernel=self.loss_kernel, kernels=self.kernels)

    def check(self) -> None:
        """Raise WorkloadError naming the first inconsistent setting."""
        problems = list(self.model.validate())
        if self.bucket_per_dp_rank < 0:
            problems.append(f"bucket_per_dp_rank must be 0 or more (got "
                            f"{self.bucket_per_dp_rank})")
        for name in ("tp", "pp", "dp", "cp", "micro_batch", "steps", "bucket_params"):
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
        for option, value, allowed in (("attention_kernel", self.attention_kernel,
                                        ATTENTION_KERNELS),
                                       ("loss_kernel", self.loss_kernel, LOSS_KERNELS),
                                       ("kernels", self.kernels, KERNEL_SETS)):
            if value not in allowed:
                problems.append(f"{option} {value!r} is not one of {', '.join(allowed)}")
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
        if not self.host_us >= 0:
            problems.append(f"host_us {self.host_us} must be 0 or more (us per launched op)")
        problems.extend(self._check_shard_group())
        problems.extend(self._check_moe())
        problems.extend(check_cp(self))
        if problems:
            raise WorkloadError("transformer configuration: " + "; ".join(problems) + ".")

    def _check_shard_group(self) -> list[str]:
        """What is inconsistent in the hybrid-sharding and recompute settings."""
        out = []
        g = self.shard_group
        if g < 0 or (g and self.dp % g):
            out.append(f"shard_group {g} must divide dp {self.dp} (0: shard over all of it)")
        elif g and self.zero == 0:
            out.append("shard_group needs ZeRO 1, 2 or 3 (zero 0 shards nothing)")
        elif self.hybrid and self.shard_ranks < 2:
            out.append("a shard group of one rank shards nothing: use zero 0")
        if g and self.model.moe:
            out.append("hybrid sharding is not modelled with MoE layers yet")
        if self.recompute == "save_qkv_proj" and self.model.moe:
            out.append("recompute save_qkv_proj is not modelled with MoE layers yet")
        return out

    def _check_moe(self) -> list[str]:
        """What is inconsistent in the MoE settings (``moe.py``)."""
        return check_moe(self)

    @property
    def ep_span(self) -> int:
        """Data-parallel replicas one EP group spans (1 for a dense model; ``moe.py``)."""
        return ep_span(self)

    def rank(self, t: int, p: int, d: int, c: int = 0) -> int:
        """The rank of TP rank ``t``, CP rank ``c``, stage ``p``, replica ``d``:
        ``t + T (c + C (i + S (p + P j)))`` for ``d = j S + i``, ``S`` = :attr:`ep_span`
        (``t + T (c + C (p + P d))`` when dense; ``C = 1`` without context parallelism)."""
        s = self.ep_span
        return t + self.tp * (c + self.cp * (d % s + s * (p + self.pp * (d // s))))

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
        out["ep_span"] = self.ep_span
        return out

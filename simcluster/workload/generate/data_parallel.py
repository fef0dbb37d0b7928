"""A data-parallel training step of a decoder-only transformer (DDP-style), per rank.

Each rank runs, per step, on three streams:

- ``copy``: the input batch copied host-to-device (token ids and labels, int64);
- ``compute``: embedding, forward per layer, LM head and loss, backward in reverse, optimizer;
- ``comm``: gradient all-reduces in buckets (PyTorch DDP's default 25 MB), each launched as
  soon as the backward ops that produce its gradients finish, so they overlap the rest of the
  backward pass. The optimizer waits for all of them.

Op durations are left to the compute model (FLOPs and bytes are given). FLOPs per layer and
micro-batch follow Narayanan et al. 2021 (forward ``24 b s h^2 + 4 b s^2 h``; backward twice
that). Activation memory per layer is ``34 s b h`` bytes (Korthikanti et al. 2022, 16-bit,
flash attention so without the ``5 a s^2 b`` term), allocated in forward and freed in
backward. Weights, gradients and Adam states take 16 bytes per parameter (mixed precision),
allocated by the first compute op.
"""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.workload.model import OpsBuilder, Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

_MB = 1_000_000


@dataclass(frozen=True)
class TransformerDims:
    """Model dimensions."""

    layers: int = 12
    hidden: int = 1024
    seq_len: int = 2048
    vocab: int = 50304

    @property
    def layer_params(self) -> int:
        """Parameters of one layer: attention 4h^2, MLP 8h^2, biases and norms 13h."""
        return 12 * self.hidden**2 + 13 * self.hidden

    @property
    def embedding_params(self) -> int:
        """Token embedding, tied with the LM head."""
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.embedding_params


@dataclass(frozen=True)
class DataParallelConfig:
    """One data-parallel job.

    Attributes:
        ranks: number of data-parallel ranks.
        micro_batch: sequences per rank per step.
        dims: model dimensions.
        dtype: compute dtype (2-byte types assumed for weights and activations).
        bucket_mb: gradient bucket size in MB (1e6 bytes).
        steps: training steps to emit.
        name: workload name.
    """

    ranks: int = 16
    micro_batch: int = 4
    dims: TransformerDims = TransformerDims()
    dtype: str = "bf16"
    bucket_mb: float = 25.0
    steps: int = 1
    name: str = "dp-transformer"


def _layer_costs(cfg: DataParallelConfig) -> tuple[float, int, int]:
    """Forward FLOPs, bytes accessed and activation bytes of one layer."""
    d, b = cfg.dims, cfg.micro_batch
    s, h = d.seq_len, d.hidden
    flops = 24.0 * b * s * h * h + 4.0 * b * s * s * h
    act = 34 * s * b * h
    nbytes = 2 * d.layer_params + act
    return flops, nbytes, act


def _emit_rank(ops: OpsBuilder, cfg: DataParallelConfig, rank: int) -> None:
    d, b = cfg.dims, cfg.micro_batch
    s, h, v = d.seq_len, d.hidden, d.vocab
    tokens = b * s
    f_layer, by_layer, act_layer = _layer_costs(cfg)
    head_flops = 2.0 * tokens * h * v
    head_bytes = 2 * d.embedding_params + 4 * tokens * v  # weights + fp32 logits
    grad_bytes_layer = 2 * d.layer_params
    bucket_bytes = int(cfg.bucket_mb * _MB)
    dt = cfg.dtype
    for step in range(cfg.steps):
        common = {"step": step, "dtype": dt}
        static = 16 * d.params if step == 0 else 0
        load = ops.add(rank, "load_batch", "memcpy", "copy", copy_kind="H2D",
                       comm_bytes=2 * 8 * tokens, step=step)
        ops.add(rank, "fwd.embed", "compute", "compute", flops=0.0,
                bytes_accessed=4 * tokens * h, deps=[load], alloc_bytes=static, **common)
        for layer in range(d.layers):
            ops.add(rank, f"fwd.layer{layer}", "compute", "compute", flops=f_layer,
                    bytes_accessed=by_layer, alloc_bytes=act_layer, **common)
        ops.add(rank, "fwd.head_loss", "compute", "compute", flops=head_flops,
                bytes_accessed=head_bytes, **common)
        ops.add(rank, "bwd.head", "compute", "compute", flops=2 * head_flops,
                bytes_accessed=2 * head_bytes, **common)
        buckets: list[int] = []
        pending = 0
        for layer in reversed(range(d.layers)):
            last = ops.add(rank, f"bwd.layer{layer}", "compute", "compute", flops=2 * f_layer,
                           bytes_accessed=2 * by_layer, free_bytes=act_layer, **common)
            pending += grad_bytes_layer
            if pending >= bucket_bytes:
                buckets.append(ops.add(
                    rank, f"allreduce.bucket{len(buckets)}", "collective", "comm",
                    collective="all_reduce", comm_bytes=pending, group="dp", deps=[last],
                    **common))
                pending = 0
        last = ops.add(rank, "bwd.embed", "compute", "compute", flops=0.0,
                       bytes_accessed=4 * tokens * h, **common)
        pending += 2 * d.embedding_params
        buckets.append(ops.add(
            rank, f"allreduce.bucket{len(buckets)}", "collective", "comm",
            collective="all_reduce", comm_bytes=pending, group="dp", deps=[last], **common))
        ops.add(rank, "optimizer", "compute", "compute", flops=12.0 * d.params,
                bytes_accessed=28 * d.params, deps=buckets, **common)


def data_parallel(cfg: DataParallelConfig) -> Workload:
    """Generate the workload of ``cfg.steps`` data-parallel steps on ``cfg.ranks`` ranks.

    Example:
        >>> wl = data_parallel(DataParallelConfig(ranks=2, dims=TransformerDims(layers=2)))
        >>> wl.num_ranks, wl.groups["dp"]
        (2, (0, 1))
    """
    ops = OpsBuilder()
    for rank in range(cfg.ranks):
        _emit_rank(ops, cfg, rank)
    meta = WorkloadMeta(
        name=cfg.name,
        source="simcluster generate data-parallel",
        world_size=cfg.ranks,
        extra={
            "generator": "data-parallel",
            "layers": cfg.dims.layers, "hidden": cfg.dims.hidden, "seq_len": cfg.dims.seq_len,
            "vocab": cfg.dims.vocab, "micro_batch": cfg.micro_batch, "dtype": cfg.dtype,
            "bucket_mb": cfg.bucket_mb, "steps": cfg.steps, "params": cfg.dims.params,
            "tokens_per_step": cfg.ranks * cfg.micro_batch * cfg.dims.seq_len,
        },
    )
    return make_workload(ops.table(), {"dp": list(range(cfg.ranks))}, meta,
                         source="generate data-parallel")

"""A workload of one collective (or one send/recv pair), as nccl-tests runs it."""

from __future__ import annotations

from simcluster.workload.model import COLLECTIVES, OpsBuilder, Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

OPS = (*COLLECTIVES, "sendrecv")


def single_collective(op: str, size: int, ranks: int, root: int = 0,
                      dtype: str = "fp32") -> Workload:
    """One ``op`` of ``size`` bytes (nccl-tests convention) over ranks 0..ranks-1, group
    ``world``. ``sendrecv`` is rank 0 sending to rank ``ranks - 1``.

    Raises:
        ValueError: unknown op, or fewer than 2 ranks for sendrecv.
    """
    if op not in OPS:
        raise ValueError(f"unknown collective {op!r}; use one of {', '.join(OPS)}")
    ops = OpsBuilder()
    if op == "sendrecv":
        if ranks < 2:
            raise ValueError("sendrecv needs at least 2 ranks")
        ops.add(0, "send", "send", "comm", peer=ranks - 1, comm_bytes=size, dtype=dtype)
        ops.add(ranks - 1, "recv", "recv", "comm", peer=0, comm_bytes=size, dtype=dtype)
        for r in range(1, ranks - 1):
            ops.add(r, "idle", "host", "comm", duration_us=0.0)
        groups: dict[str, list[int]] = {}
    else:
        for r in range(ranks):
            ops.add(r, op, "collective", "comm", collective=op, comm_bytes=size, group="world",
                    dtype=dtype, root=root if op in ("broadcast", "reduce") else None)
        groups = {"world": list(range(ranks))}
    meta = WorkloadMeta(name=f"{op}-{size}", source="simcluster collectives", world_size=ranks)
    return make_workload(ops.table(), groups, meta, source="collectives")

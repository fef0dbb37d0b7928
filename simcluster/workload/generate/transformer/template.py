"""The per-rank template: one TP rank's ops of one stage, column by column (:class:`_Rank`),
with the kind of group each collective uses (filled in per rank by :mod:`.assemble`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.workload.generate.costs import Cost

# Group kinds of a template op (EP: expert parallel; EDP: expert data parallel; CP: context
# parallel, the Ulysses all-to-alls; SHARD and REPL: with hybrid sharding, the ZeRO shard
# group and the group of the same shard across shard groups).
_NONE, _TP, _DP, _EMB, _EP, _EDP, _CP, _SHARD, _REPL = 0, 1, 2, 3, 4, 5, 6, 7, 8
# Direction of an EP all-to-all's tokens (uneven splits under skew: ``moe.py``): towards the
# experts (forward dispatch, backward combine) or back from them.
TO_EXPERTS, FROM_EXPERTS = 1, 2


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
    a2a: list[int] = field(default_factory=list)  # 0, TO_EXPERTS or FROM_EXPERTS
    hot: list[int] = field(default_factory=list)  # the layer's busiest EP rank, or -1
    cur_step: int = 0
    counters: dict[Any, int] = field(default_factory=dict)

    def _add(self, name: str, kind: str, stream: str, deps: list[int] | None, *,
             flops: float | None = None, nbytes: int | None = None, dtype: str | None = None,
             collective: str | None = None, comm: int | None = None, gkind: int = _NONE,
             peer: int = -1, alloc: int = 0, free: int = 0, seq_key: Any = None,
             a2a: int = 0, hot: int = -1) -> int:
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
        self.a2a.append(a2a)
        self.hot.append(hot)
        return len(self.name) - 1

    def compute(self, name: str, cost: Cost, dtype: str, deps: list[int] | None = None,
                alloc: int = 0, free: int = 0) -> int:
        return self._add(name, "compute", "compute", deps, flops=cost.flops,
                         nbytes=int(cost.nbytes), dtype=dtype, alloc=alloc, free=free)

    def coll(self, name: str, collective: str, size: float, gkind: int, stream: str,
             deps: list[int] | None = None, alloc: int = 0, free: int = 0, a2a: int = 0,
             hot: int = -1) -> int:
        """A collective; ``a2a`` and ``hot``: an EP all-to-all's direction and its layer's
        busiest EP rank (its per-pair splits are filled in per rank by :mod:`.assemble`)."""
        return self._add(name, "collective", stream, deps, collective=collective,
                         comm=int(size), gkind=gkind, alloc=alloc, free=free,
                         seq_key=("coll", gkind), a2a=a2a, hot=hot)

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
        a2a = np.asarray(self.a2a, dtype=np.int64)
        hot = np.asarray(self.hot, dtype=np.int64)
        if ids is not None:
            take = pa.array(ids)
            cols = {k: v.take(take) for k, v in cols.items()}
            cols["deps"] = pa.nulls(len(ids), pa.list_(pa.int64()))
            gkind, peer, a2a, hot = gkind[ids], peer[ids], a2a[ids], hot[ids]
        cols["op_id"] = pa.array(np.arange(len(cols["name"]), dtype=np.int64))
        return {"cols": cols, "gkind": gkind, "peer": peer, "a2a": a2a, "hot": hot}

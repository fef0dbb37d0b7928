"""The Workload: what runs. Per rank, ordered ops on streams, held as one Arrow table.

Columns (see ``docs/formats.md`` for the full contract):

==============  ============  ===========================================================
column          type          meaning
==============  ============  ===========================================================
rank            int32         the rank that issues the op
op_id           int64         unique within the rank; stream order follows op_id order
name            string        human-readable name (kernel, layer, bucket)
kind            string        compute, memcpy, collective, send, recv, host
stream          string        the queue the op runs on (``compute``, ``comm``, ``cuda:7``)
duration_us     float64       recorded duration; null = derive from flops/bytes
flops           float64       floating-point operations
bytes_accessed  int64         device-memory bytes read and written
dtype           string        bf16, fp16, fp32, fp8, ...
deps            list<int64>   op_ids on the same rank that must finish first
step            int32         training step the op belongs to
collective      string        all_reduce, all_gather, reduce_scatter, all_to_all,
                              broadcast, reduce, barrier
comm_bytes      int64         bytes of a collective (nccl-tests "size"), send/recv or memcpy
group           string        communication group of a collective
peer            int32         the other rank of a send or recv
seq             int64         matches a collective across a group (k-th on that group), or a
                              send with its recv (k-th between that pair)
copy_kind       string        H2D, D2H, D2D for memcpy
alloc_bytes     int64         device memory allocated when the op starts
free_bytes      int64         device memory freed when the op ends
root            int32         root rank of broadcast/reduce (a group member)
fixed_duration  bool          true: the op lasts its recorded ``duration_us`` whatever its
                              kind (communication whose peers are not in the workload, or
                              whose size is unknown; copies replayed as recorded); null =
                              false
splits          list<int64>   all_to_all only, optional: the bytes this rank sends to each
                              member of its group, in the group's rank order (an uneven
                              all-to-allv); null = ``comm_bytes`` split evenly
gemm_shape      list<int64>   a recorded GEMM's ``[batch, m, n, k]`` (optional; the compute
                              model's tile and wave quantisation)
==============  ============  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

KINDS = ("compute", "memcpy", "collective", "send", "recv", "host")
COLLECTIVES = (
    "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "reduce", "barrier",
)
COPY_KINDS = ("H2D", "D2H", "D2D")

OPS_SCHEMA = pa.schema(
    [
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("op_id", pa.int64(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("stream", pa.string(), nullable=False),
        pa.field("duration_us", pa.float64()),
        pa.field("flops", pa.float64()),
        pa.field("bytes_accessed", pa.int64()),
        pa.field("dtype", pa.string()),
        pa.field("deps", pa.list_(pa.int64())),
        pa.field("step", pa.int32()),
        pa.field("collective", pa.string()),
        pa.field("comm_bytes", pa.int64()),
        pa.field("group", pa.string()),
        pa.field("peer", pa.int32()),
        pa.field("seq", pa.int64()),
        pa.field("copy_kind", pa.string()),
        pa.field("alloc_bytes", pa.int64()),
        pa.field("free_bytes", pa.int64()),
        pa.field("root", pa.int32()),
        pa.field("fixed_duration", pa.bool_()),
        # Where the recording placed the op (us, on the trace's clock); informational: the
        # replay never uses it, the recorded-vs-simulated analyses do. Readers that do not
        # know it drop it, so files that carry it need no new format version.
        pa.field("recorded_start_us", pa.float64()),
        # An all-to-allv's bytes to each member of the group (group order); null: even. Older
        # readers drop it and replay the collective evenly at comm_bytes.
        pa.field("splits", pa.list_(pa.int64())),
        # A recorded GEMM's (batch, m, n, k), for the compute model's tile and wave
        # quantisation; optional, as recorded_start_us: readers that predate it drop it).
        pa.field("gemm_shape", pa.list_(pa.int64())),
    ]
)

REQUIRED_COLUMNS = ("rank", "op_id", "name", "kind", "stream")


@dataclass(frozen=True)
class WorkloadMeta:
    """Where a workload came from.

    Attributes:
        name: a short name.
        source: what produced it (``generate data-parallel``, ``kineto``, a file path).
        world_size: number of ranks (ranks are 0 .. world_size-1).
        recorded_device: accelerator model the durations were recorded on, if any.
        recorded_topology: topology the trace was recorded on, if known.
        extra: free-form string metadata carried through.
    """

    name: str = ""
    source: str = ""
    world_size: int = 0
    recorded_device: str | None = None
    recorded_topology: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "world_size": self.world_size,
            "recorded_device": self.recorded_device,
            "recorded_topology": self.recorded_topology,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkloadMeta:
        return cls(
            name=str(data.get("name", "")),
            source=str(data.get("source", "")),
            world_size=int(data.get("world_size", 0)),
            recorded_device=data.get("recorded_device"),
            recorded_topology=data.get("recorded_topology"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class Workload:
    """A validated workload: the ops table (sorted by rank, op_id), groups and metadata.

    Build one with :func:`simcluster.workload.validate.make_workload` (or a loader), which
    checks every invariant the simulator relies on.
    """

    ops: pa.Table
    groups: dict[str, tuple[int, ...]]
    meta: WorkloadMeta

    @property
    def num_ranks(self) -> int:
        return self.meta.world_size

    @property
    def num_ops(self) -> int:
        return self.ops.num_rows

    def column(self, name: str) -> np.ndarray:
        """A column as numpy (nulls become NaN for floats; use for non-null columns)."""
        return self.ops.column(name).to_numpy(zero_copy_only=False)

    def with_meta(self, **changes: Any) -> Workload:
        return replace(self, meta=replace(self.meta, **changes))


class OpsBuilder:
    """Collects ops row by row into columns, then makes an Arrow table in OPS_SCHEMA.

    Generators use it; it keeps per-column Python lists (cheap appends), never dicts per row.
    """

    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {f.name: [] for f in OPS_SCHEMA}
        self._next_id: dict[int, int] = {}

    def add(self, rank: int, name: str, kind: str, stream: str, **values: Any) -> int:
        """Append one op; returns its op_id (assigned in order per rank)."""
        op_id = self._next_id.get(rank, 0)
        self._next_id[rank] = op_id + 1
        row = {"rank": rank, "op_id": op_id, "name": name, "kind": kind, "stream": stream}
        row.update(values)
        unknown = set(row) - set(self._cols)
        if unknown:
            raise KeyError(f"unknown op column(s): {sorted(unknown)}")
        for col, vals in self._cols.items():
            vals.append(row.get(col))
        return op_id

    def table(self) -> pa.Table:
        return pa.table(
            {f.name: pa.array(self._cols[f.name], f.type) for f in OPS_SCHEMA}, schema=OPS_SCHEMA
        )

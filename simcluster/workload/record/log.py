"""What a recording collects, without torch: rank 0's ops in order, the collectives the other
ranks mirror, and the device-memory ledger; and the workload made of them.

The recorder (:mod:`.tracer`) runs the script as rank 0 of the world and calls this log for
every operator that would launch a kernel, every collective and every host-to-device copy.
The log keeps them as native workload rows (``OpsBuilder``) and a memory ledger in bytes:
an op allocates the storages its outputs create (``alloc_bytes``, taken when it starts) and
a storage that dies is freed at the end of the op recorded last (``free_bytes``).

**The fold.** Only rank 0 runs the script; the ranks of data-parallel training (DDP, FSDP)
do the same work on other data, so every other rank of a group is a *mirror*: it holds only
the collectives rank 0 issued on the groups it belongs to, without dependencies, as in the
generator's fold (``docs/architecture.md``). A mirror is always at a collective before
rank 0, so each collective starts when rank 0 arrives, with its real flows on real links.

**The host.** With a :class:`~simcluster.workload.host.HostModel`, every recorded op is
launched by rank 0's host thread at ``launch_us`` plus ``dispatch_us`` per aten operator
dispatched since the previous recorded op (views and metadata ops included), and where the
script synchronises (``.item()``, ``torch.cuda.synchronize``) the next launch waits for the
GPU (``workload/host.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.workload.host import HostModel, add_host_timeline
from simcluster.workload.model import OpsBuilder, Workload, WorkloadMeta
from simcluster.workload.record.fusion import Fuser
from simcluster.workload.validate import make_workload

COMPUTE, COMM, COPY = "compute", "comm", "copy"


@dataclass
class Ledger:
    """Device memory of rank 0, in bytes: live now, the peak, and per category the bytes
    the categorised storages hold (parameters, gradients, optimizer states)."""

    live: int = 0
    peak: int = 0
    categories: dict[str, int] = field(default_factory=dict)

    def alloc(self, nbytes: int) -> None:
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def free(self, nbytes: int) -> None:
        self.live -= nbytes


@dataclass(frozen=True)
class MirroredCollective:
    """A collective rank 0 issued, for the other members of its group to mirror; or a
    ``send``/``recv`` (``collective``) with ``peer``, which the peer mirrors as the other
    half of the pair."""

    name: str
    collective: str
    comm_bytes: int
    group: str
    step: int
    root: int | None
    peer: int | None = None


class OpLog:
    """Rank 0's recorded ops and the collectives its peers mirror.

    Ops are kept only while ``recording`` is true (the steps after the warm-up); the ledger
    counts every allocation and free, so the first recorded op allocates what is live when
    recording starts (weights, gradients, optimizer states of the warm-up steps).

    Example:
        >>> log = OpLog(world_size=2)
        >>> log.start_recording(step=0)
        >>> log.alloc(64)
        >>> mm = log.compute("aten::mm", flops=1024.0, nbytes=96, dtype="fp32")
        >>> ar = log.collective("c10d::allreduce_", "all_reduce", 32, "world", (0, 1))
        >>> wl = log.workload(name="toy", source="test")
        >>> wl.ops.column("alloc_bytes").to_pylist(), wl.ops.column("rank").to_pylist()
        ([64, None, None], [0, 0, 1])
    """

    def __init__(self, world_size: int, rank: int = 0, host: HostModel | None = None) -> None:
        self.world_size = world_size
        self.rank = rank
        self.host = host
        self._dispatched = 0  # aten operators since the last recorded op
        self._host_us: list[float] = []
        self._sync: list[bool] = []
        self._sync_pending = False
        self.ops = OpsBuilder()
        self.mirrors: list[MirroredCollective] = []
        self.groups: dict[str, tuple[int, ...]] = {}
        self.ledger = Ledger()
        self.recording = False
        self.step = 0
        self.recorded_peak = 0
        self._pending_alloc = 0       # bytes allocated since the last recorded op
        self._last_op: int | None = None
        self._last_compute: int | None = None
        self._free_at: dict[int, int] = {}  # op_id -> bytes freed when it ends
        self._writer: dict[int, int] = {}   # storage key -> op_id of a pending comm/copy
        self.num_ops = 0
        self.fuser: Fuser | None = None     # open chain of fused operators (.fusion)

    # -- memory -----------------------------------------------------------------------------

    def alloc(self, nbytes: int) -> None:
        """A storage of ``nbytes`` was created (given to the next recorded op)."""
        self.ledger.alloc(nbytes)
        self._pending_alloc += nbytes
        if self.recording:
            self.recorded_peak = max(self.recorded_peak, self.ledger.live)

    def free(self, nbytes: int) -> None:
        """A storage of ``nbytes`` died: freed at the end of the op recorded last (or
        netted against allocations not yet given to an op)."""
        self.ledger.free(nbytes)
        if self._last_op is None or self._pending_alloc >= nbytes:
            self._pending_alloc -= nbytes
        else:
            self._free_at[self._last_op] = self._free_at.get(self._last_op, 0) + nbytes

    def start_recording(self, step: int) -> None:
        """Keep ops from now on, as training step ``step``; what is live now is allocated by
        the first op recorded."""
        self.end_chain()
        if not self.recording:
            self._pending_alloc = self.ledger.live
            self.recorded_peak = self.ledger.live
            self._dispatched = 0
            self._sync_pending = False
        self.recording = True
        self.step = step

    # -- the host ---------------------------------------------------------------------------

    def dispatched(self) -> None:
        """An aten operator went through the dispatcher (host time, kernel or not)."""
        self._dispatched += 1

    def sync(self) -> None:
        """The script waits for the GPU (``.item()``, ``synchronize``): the next recorded
        op's launch waits for every op recorded before it."""
        if self.recording:
            self._sync_pending = True

    def next_step(self, step: int) -> None:
        """Ops from now on belong to training step ``step``."""
        self.end_chain()
        self.step = step

    # -- ops --------------------------------------------------------------------------------

    def fusing(self, live: Callable[[int], bool]) -> Fuser:
        """The fuser of this log (made on first use): chains of fusible operators become
        one compute op each (:mod:`.fusion`); ``live(key)`` says whether a storage is
        referenced."""
        if self.fuser is None:
            self.fuser = Fuser(self._fused, live)
        return self.fuser

    def _fused(self, name: str, flops: float | None, nbytes: int | None, dtype: str | None,
               reads: list[int]) -> int | None:
        """A fused kernel: compiled code launches it from its generated wrapper without
        dispatching the chain's aten operators, so they add no dispatch time to its launch
        (the host pays the launch and what was dispatched outside the chain)."""
        assert self.fuser is not None
        self._dispatched = max(0, self._dispatched - self.fuser.flushed_ops)
        return self.compute(name, flops, nbytes, dtype, reads)

    def end_chain(self) -> None:
        """Emit the open chain of fused operators, if any, before what comes next."""
        if self.fuser is not None:
            self.fuser.flush()

    def _add(self, name: str, kind: str, stream: str, deps: list[int], **values: Any) -> int:
        alloc = self._pending_alloc
        self._pending_alloc = 0
        op_id = self.ops.add(self.rank, name, kind, stream, step=self.step, deps=sorted(set(deps)) or None,
                             alloc_bytes=alloc or None, **values)
        self._last_op = op_id
        self.num_ops += 1
        if self.host is not None:
            self._host_us.append(self.host.cost(self._dispatched))
            self._sync.append(self._sync_pending)
        self._dispatched = 0
        self._sync_pending = False
        return op_id

    def consumers_of(self, storages: list[int]) -> list[int]:
        """The pending copies and collectives that wrote any of ``storages`` (compute that
        reads them waits for them); each is waited for once."""
        return [self._writer.pop(s) for s in storages if s in self._writer]

    def compute(self, name: str, flops: float | None, nbytes: int | None, dtype: str | None,
                reads: list[int] | None = None) -> int | None:
        """A kernel on the compute stream; returns its op_id (None while not recording)."""
        self.end_chain()
        deps = self.consumers_of(reads or [])
        if not self.recording:
            return None
        op_id = self._add(name, "compute", COMPUTE, deps, flops=flops or None,
                          bytes_accessed=nbytes or None, dtype=dtype)
        self._last_compute = op_id
        return op_id

    def copy_h2d(self, nbytes: int, storage: int) -> int | None:
        """A host-to-device copy on the copy stream; compute reading ``storage`` waits."""
        self.end_chain()
        if not self.recording:
            return None
        op_id = self._add("memcpy.h2d", "memcpy", COPY, [], copy_kind="H2D", comm_bytes=nbytes)
        self._writer[storage] = op_id
        return op_id

    def collective(self, name: str, collective: str, comm_bytes: int, group: str,
                   ranks: tuple[int, ...], root: int | None = None,
                   writes: list[int] | None = None) -> int | None:
        """A collective on the comm stream, issued after the compute op recorded last (NCCL's
        stream waits for the compute stream at issue); compute reading ``writes`` waits."""
        self.end_chain()
        self.groups.setdefault(group, ranks)
        if not self.recording:
            return None
        deps = [self._last_compute] if self._last_compute is not None else []
        op_id = self._add(name, "collective", COMM, deps, collective=collective,
                          comm_bytes=comm_bytes if collective != "barrier" else None,
                          group=group, root=root)
        for s in writes or []:
            self._writer[s] = op_id
        self.mirrors.append(MirroredCollective(name, collective, comm_bytes, group, self.step,
                                               root))
        return op_id

    def p2p(self, name: str, kind: str, comm_bytes: int, peer: int,
            writes: list[int] | None = None) -> int | None:
        """A ``send`` or ``recv`` (``kind``) of ``comm_bytes`` with global rank ``peer``, on
        a stream of its own per direction (so that an exchange cannot deadlock), issued
        after the compute op recorded last; compute reading ``writes`` (a receive's
        buffer) waits for it."""
        self.end_chain()
        if not self.recording:
            return None
        deps = [self._last_compute] if self._last_compute is not None else []
        op_id = self._add(name, kind, kind, deps, comm_bytes=comm_bytes, peer=peer)
        for s in writes or []:
            self._writer[s] = op_id
        self.mirrors.append(MirroredCollective(name, kind, comm_bytes, "", self.step, None,
                                               peer))
        return op_id

    # -- the workload -----------------------------------------------------------------------

    def table(self) -> pa.Table:
        """This rank's ops, with the frees placed and, with a host model, their launches."""
        self.end_chain()
        table = self.ops.table()
        if self._free_at:
            frees = table.column("free_bytes").to_pylist()
            for op_id, nbytes in self._free_at.items():
                frees[op_id] = (frees[op_id] or 0) + nbytes
            table = table.set_column(table.schema.get_field_index("free_bytes"),
                                     "free_bytes", pa.array(frees, pa.int64()))
        if self.host is not None and table.num_rows:
            table, _ = add_host_timeline(table, np.array(self._host_us), np.array(self._sync))
        return table

    def mirror_table(self) -> pa.Table:
        """For every other rank of this rank's groups, the collectives it mirrors."""
        mirror = OpsBuilder()
        for rank in range(self.world_size):
            for m in self.mirrors if rank != self.rank else ():
                if m.peer is not None:
                    if m.peer == rank:
                        _mirror_p2p(mirror, rank, self.rank, m)
                elif rank in self.groups[m.group]:
                    mirror.add(rank, m.name, "collective", COMM, collective=m.collective,
                               comm_bytes=m.comm_bytes if m.collective != "barrier" else None,
                               group=m.group, step=m.step, root=m.root)
        return mirror.table()

    def workload(self, name: str, source: str, extra: dict[str, Any] | None = None,
                 recorded_device: str | None = None) -> Workload:
        """This rank's ops in full and, for every other rank of its groups, the mirrored
        collectives (module docstring)."""
        return merge([self], name, source, extra, recorded_device, mirrors=True)


def _mirror_p2p(mirror: OpsBuilder, rank: int, peer: int, m: MirroredCollective) -> None:
    """On ``rank``, the other half of ``peer``'s send or receive ``m``."""
    kind = "recv" if m.collective == "send" else "send"
    mirror.add(rank, m.name, kind, kind, comm_bytes=m.comm_bytes, peer=peer, step=m.step)


def merge(logs: list[OpLog], name: str, source: str, extra: dict[str, Any] | None = None,
          recorded_device: str | None = None, mirrors: bool = False) -> Workload:
    """One workload of the ranks recorded in ``logs`` (one per rank; with ``mirrors``, one
    log whose peers mirror its collectives)."""
    tables = [log.table() for log in logs] + ([logs[0].mirror_table()] if mirrors else [])
    ops = pa.concat_tables(tables)
    groups: dict[str, tuple[int, ...]] = {}
    for log in logs:
        groups.update(log.groups)
    meta = WorkloadMeta(name=name, source=source, world_size=logs[0].world_size,
                        recorded_device=recorded_device, extra=dict(extra or {}))
    return make_workload(ops, {g: list(r) for g, r in sorted(groups.items())}, meta,
                         source=source)

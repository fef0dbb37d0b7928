"""Errors that simcluster raises for bad input or impossible simulations.

Every message names the file (when there is one), the place inside it (a YAML path such as
``nodes[2].links[0].bandwidth_GBps``, a Parquet column and row, a rank and op), what is wrong,
and how to fix it. The CLI prints the message without a traceback and exits with code 2.
"""

from __future__ import annotations


class SimclusterError(Exception):
    """Base class: bad input or a simulation that cannot complete."""


class RegistryError(SimclusterError):
    """An extension registry was asked to add a name it already holds, or to remove one it
    does not hold (a programming error in an extension, not bad input)."""


class TopologyError(SimclusterError):
    """The cluster description is malformed or inconsistent."""


class PartitionError(TopologyError):
    """With elements of the cluster failed (a what-if), two ranks that must talk can no longer
    reach each other.

    Attributes:
        group: the communicator group (``send/recv`` for a point-to-point pair).
        ranks: the two ranks, the first the sender.
        devices: their accelerators.
        failed: the failed elements, as named (nodes, or links ``A--B``).
    """

    def __init__(self, message: str, group: str = "", ranks: tuple[int, int] = (0, 0),
                 devices: tuple[str, str] = ("", ""), failed: tuple[str, ...] = ()) -> None:
        super().__init__(message, group, ranks, devices, failed)
        self.group = group
        self.ranks = ranks
        self.devices = devices
        self.failed = failed

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WorkloadError(SimclusterError):
    """The workload (trace) is unreadable, truncated, or inconsistent."""


class UnsupportedOperationError(WorkloadError):
    """Recording a training script met something the recorder cannot stand in for: an
    operator without a shape rule (a custom CUDA extension), a value read back to steer
    control flow, a collective it does not know.

    Attributes:
        operator: the operator (``aten::nonzero``, ``c10d::send``) or call.
        location: ``file:line`` of the script line that called it ("" when unknown).
    """

    def __init__(self, message: str, operator: str = "", location: str = "") -> None:
        super().__init__(message, operator, location)
        self.operator = operator
        self.location = location

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PlacementError(SimclusterError):
    """Ranks cannot be placed onto the cluster's accelerators as asked."""


class OutputError(SimclusterError):
    """An output cannot be written where asked: a file where a folder is needed, or a folder
    that another process is writing."""


class CalibrationError(SimclusterError):
    """Measurements cannot calibrate the model: an nccl-tests log that cannot be read or has
    no data rows, or a rank count or size that does not fit the topology."""


class SimulationError(SimclusterError):
    """The simulation cannot complete: out of memory, deadlock, mismatched collectives."""


class _Detailed(SimulationError):
    """A SimulationError with fields. The fields travel in ``args`` after the message, so a
    copy made as ``type(e)(*e.args)`` (SimPy does that when a process fails) or by pickling
    (Dask workers) keeps them; ``str(e)`` is the message alone."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OutOfMemoryError(_Detailed):
    """A device's live memory would exceed its capacity.

    Attributes:
        rank: the rank whose op allocated (None when the check is analytic, before any
            simulation).
        op: the op that allocated (``rank R op N 'name'``), or None.
        requested_bytes: what that op allocates.
        live_bytes: what was live before it.
        capacity_bytes: the device's capacity.
        breakdown: for a generated transformer, the analytic memory per category (weights,
            grads, optimizer, activations, buffers, total; bytes) of each pipeline stage that
            does not fit, keyed by stage; empty otherwise.
    """

    def __init__(self, message: str, rank: int | None = None, op: str | None = None,
                 requested_bytes: int = 0, live_bytes: int = 0, capacity_bytes: int = 0,
                 breakdown: dict[int, dict[str, int]] | None = None) -> None:
        super().__init__(message, rank, op, requested_bytes, live_bytes, capacity_bytes,
                         breakdown)
        self.rank = rank
        self.op = op
        self.requested_bytes = requested_bytes
        self.live_bytes = live_bytes
        self.capacity_bytes = capacity_bytes
        self.breakdown = dict(breakdown or {})


class DeadlockError(_Detailed):
    """No event is left while ops are unfinished.

    Attributes:
        unfinished: ops that never finished.
        total: ops in the workload.
        stuck: one line per stuck stream: the rank, stream, op and what it waits for.
        ranks: the ranks with a stuck stream, sorted.
    """

    def __init__(self, message: str, unfinished: int = 0, total: int = 0,
                 stuck: list[str] | None = None, ranks: list[int] | None = None) -> None:
        super().__init__(message, unfinished, total, stuck, ranks)
        self.unfinished = unfinished
        self.total = total
        self.stuck = list(stuck or [])
        self.ranks = list(ranks or [])


class CollectiveMismatchError(_Detailed):
    """Ranks met at one collective (or send/recv pair) but disagree on what it is.

    Attributes:
        group: the communicator group (``src->dst`` for a send/recv pair).
        seq: the collective's sequence number in the group.
        ops: the two ops that disagree, as ``rank R op N 'name'``.
    """

    def __init__(self, message: str, group: str = "", seq: int = 0,
                 ops: tuple[str, str] = ("", "")) -> None:
        super().__init__(message, group, seq, ops)
        self.group = group
        self.seq = seq
        self.ops = ops


def where(path: object | None, location: str | None = None) -> str:
    """Format a ``file: location: `` prefix for error messages; either part may be absent."""
    parts = [str(p) for p in (path, location) if p not in (None, "")]
    return "".join(f"{p}: " for p in parts)

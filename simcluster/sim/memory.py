"""Per-device memory ledger: live bytes, peak, and out-of-memory detection.

An op's ``alloc_bytes`` are taken when it starts and its ``free_bytes`` returned when it
ends. Going above the device's capacity is an OOM, reported with rank, op and live bytes.
"""

from __future__ import annotations

from simcluster.errors import OutOfMemoryError

GIB = float(2**30)


class MemoryLedger:
    """Live and peak bytes per slot (one slot per rank, i.e. per placed device)."""

    def __init__(self, capacity: list[int], labels: list[str]) -> None:
        self.capacity = list(capacity)
        self.labels = labels
        self.live = [0] * len(capacity)
        self.peak = [0] * len(capacity)

    def alloc(self, slot: int, nbytes: int) -> bool:
        """Take ``nbytes`` on ``slot``; False (and nothing taken) if it would not fit."""
        live = self.live[slot] + nbytes
        if live > self.capacity[slot]:
            return False
        self.live[slot] = live
        if live > self.peak[slot]:
            self.peak[slot] = live
        return True

    def oom(self, slot: int, nbytes: int, what: str) -> OutOfMemoryError:
        """The error for an ``alloc`` of ``nbytes`` by op ``what`` that did not fit (slot =
        rank)."""
        live = self.live[slot] + nbytes
        return OutOfMemoryError(
            f"out of memory on {self.labels[slot]}: {what} allocates "
            f"{nbytes / GIB:.2f} GiB while {self.live[slot] / GIB:.2f} GiB are live, "
            f"{live / GIB:.2f} GiB > capacity {self.capacity[slot] / GIB:.2f} GiB. Use a "
            "device with more memory, or a workload that needs less (smaller micro-batch, "
            "activation recompute, sharded optimizer states).",
            rank=slot, op=what, requested_bytes=nbytes, live_bytes=self.live[slot],
            capacity_bytes=self.capacity[slot],
        )

    def free(self, slot: int, nbytes: int) -> None:
        """Return ``nbytes`` on ``slot`` (memory allocated before the trace may go below 0)."""
        self.live[slot] -= nbytes

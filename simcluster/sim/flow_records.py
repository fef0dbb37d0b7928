"""What a batch of flows belongs to (:class:`FlowTag`) and one record per batch
(:class:`BatchRecords`): the rows of the run's flows table and the labels of attribution."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlowTag:
    """What a batch of flows belongs to, for attribution and the flows table.

    ``kind`` is ``collective``, ``send`` or ``memcpy``; ``name`` the collective (``all_reduce``)
    or copy direction; ``group`` the communication group (``"0->3"`` for a send/recv pair);
    ``seq`` the match number; ``algorithm`` e.g. ``ring/Simple``; ``phase`` the phase index.
    """

    kind: str
    name: str
    group: str | None = None
    seq: int | None = None
    algorithm: str | None = None
    phase: int = 0

    @property
    def label(self) -> str:
        """What attribution reports: the collective and its group (``all_reduce dp``), or
        ``send``, or ``H2D copies``."""
        if self.kind == "memcpy":
            return f"{self.name} copies"
        if self.kind == "send":
            return "send/recv"
        return f"{self.name} {self.group}" if self.group else self.name


class BatchRecords:
    """One row per batch of flows (a collective phase, a send/recv, a copy), column-wise."""

    COLUMNS = ("kind", "name", "group", "seq", "algorithm", "phase", "start_us", "end_us",
               "flows", "bytes")

    def __init__(self) -> None:
        self.cols: dict[str, list[object]] = {c: [] for c in self.COLUMNS}

    def __len__(self) -> int:
        return len(self.cols["kind"])

    def open(self, tag: FlowTag | None, now: float, flows: float, nbytes: float) -> int:
        tag = tag or FlowTag(kind="other", name="other")
        for col, value in (("kind", tag.kind), ("name", tag.name), ("group", tag.group),
                           ("seq", tag.seq), ("algorithm", tag.algorithm),
                           ("phase", tag.phase), ("start_us", now), ("end_us", float("nan")),
                           ("flows", flows), ("bytes", nbytes)):
            self.cols[col].append(value)
        return len(self) - 1

    def close(self, row: int, now: float) -> None:
        self.cols["end_us"][row] = now

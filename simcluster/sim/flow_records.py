"""What a batch of flows belongs to (:class:`FlowTag`) and one record per batch
(:class:`BatchRecords`): the rows of the run's flows table and the labels of attribution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


# Adding more keys than this at once sums them with numpy, fewer in plain Python.
_ADD_NUMPY = 256
# Pending keys kept as Python lists up to this many, then as arrays.
_PENDING = 1 << 16


class LimitTotals:
    """Flow-time (us x flows) per (batch record, link) during which the link limited the
    batch's flows, summed as the flow network folds it in.

    Each :meth:`add` sums its own values per key (in the order given) and then adds those
    sums to the totals in key order. The totals are not a dict updated key by key (a Python
    loop over every key of every fold: 8 % of the 4,096-rank DP replay's profile, whose folds
    hold up to 430k flows) but the list of every fold's sums, in order; :meth:`totals` adds
    them per key with one bincount, which adds in input order. So each total is the same sum
    of the same numbers in the same order as in that dict, and the keys come in its order
    (first added first; sorted within one fold).

    >>> lim = LimitTotals(num_links=10)
    >>> lim.add(np.array([13, 2, 13]), np.array([1.0, 2.0, 4.0]))  # record 1 link 3; 0, 2
    >>> lim.add(np.array([2]), np.array([0.5]))
    >>> lim.totals()
    {(0, 2): 2.5, (1, 3): 5.0}
    """

    def __init__(self, num_links: int) -> None:
        self.num_links = num_links
        self._keys: list[np.ndarray] = []  # per chunk: keys (record x num_links + link)
        self._sums: list[np.ndarray] = []
        self._pending_keys: list[int] = []  # the latest small folds, not yet a chunk
        self._pending_sums: list[float] = []
        self._rows = 0
        self._merge_at = 1 << 20
        self._merged = True  # the chunks are one, with each key once
        self._totals: dict[tuple[int, int], float] | None = None

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Fold ``values`` (flow-time, us) under ``keys`` (record x num_links + link)."""
        self._merged, self._totals = False, None
        if len(keys) > _ADD_NUMPY:
            unique, inverse = np.unique(keys, return_inverse=True)
            self._flush_pending()
            self._keys.append(unique)
            self._sums.append(np.bincount(inverse, weights=values))
            self._rows += len(unique)
        else:
            sums: dict[int, float] = {}
            for k, v in zip(keys.tolist(), values.tolist()):
                sums[k] = sums.get(k, 0.0) + v
            order = sorted(sums)
            self._pending_keys.extend(order)
            self._pending_sums.extend(sums[k] for k in order)
            self._rows += len(order)
            if len(self._pending_keys) >= _PENDING:
                self._flush_pending()
        if self._rows > self._merge_at:
            self._merge()
            self._merge_at = max(self._merge_at, 2 * self._rows)

    def _flush_pending(self) -> None:
        if self._pending_keys:
            self._keys.append(np.array(self._pending_keys, dtype=np.int64))
            self._sums.append(np.array(self._pending_sums, dtype=np.float64))
            self._pending_keys, self._pending_sums = [], []

    def _merge(self) -> None:
        """Replace the chunks by one: each key once, in first-added order, with its total
        (a total plus later sums adds the same numbers in the same order as before)."""
        self._flush_pending()
        if self._merged:
            return
        self._merged = True
        if not self._keys:
            return
        keys, sums = np.concatenate(self._keys), np.concatenate(self._sums)
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        total = np.bincount(inverse, weights=sums)
        order = np.argsort(first)
        self._keys, self._sums = [unique[order]], [total[order]]
        self._rows = len(unique)

    def totals(self) -> dict[tuple[int, int], float]:
        """Flow-time per (record, link), in the order the keys were first added (made once
        until the next :meth:`add`; callers read it, several times per run)."""
        if self._totals is not None:
            return self._totals
        self._merge()
        self._totals = {}
        if self._keys:
            record, link = np.divmod(self._keys[0], self.num_links)
            self._totals = dict(zip(zip(record.tolist(), link.tolist()),
                                    self._sums[0].tolist()))
        return self._totals

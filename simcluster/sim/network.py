"""Flow-level network: fluid flows on routed links with max-min fair bandwidth sharing.

A flow moves a number of bytes along a route (link ids). While flows are active, each gets the
max-min fair rate given link capacities, computed by progressive filling over numpy arrays of
(flow, link) pairs (:mod:`simcluster.sim.maxmin`). Rates change only when a flow starts or
finishes; all starts at one timestamp are batched into one recomputation. The next completion
is a single SimPy timeout; an epoch counter makes wake-ups that a later change made stale do
nothing. Links are not ``simpy.Resource`` objects, so the cost is O(pairs) per change, not
O(events per byte).

Times are microseconds, sizes bytes, capacities bytes per microsecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np
import simpy

from simcluster.sim.flow_records import BatchRecords, FlowTag
from simcluster.sim.maxmin import _SAT_EPS, maxmin, maxmin_compact, maxmin_rates

# Re-exported: the max-min solver and the flow tags were defined here before they had
# modules of their own (``sim/maxmin.py``, ``sim/flow_records.py``).
__all__ = ["BatchRecords", "FlowNetwork", "FlowTag", "maxmin", "maxmin_compact",
           "maxmin_rates"]

# A flow is finished when what remains would take less than this long at its rate (us), or is
# below this fraction of its size: the float error of advancing rate * dt.
_TIME_EPS_US = 1e-9
_REL_EPS = 1e-12
# ... or less than this fraction of the current time: a wake-up that close to ``now`` lands on
# ``now`` itself (float64 has ~16 digits), and the flow would never advance.
_CLOCK_EPS = 1e-14


@dataclass
class _Batch:
    """Flows started together; ``event`` fires when the last of them finishes."""

    pending: int
    event: simpy.Event
    tag: FlowTag | None
    record: int = -1  # row in the batch records


class FlowNetwork:
    """Active flows on a set of links, advanced by a SimPy environment.

    Besides rates, it accumulates per link: bytes carried, time busy (>= 1 flow), time
    saturated, and the peak number of concurrent flows.
    """

    def __init__(self, env: simpy.Environment, capacity_Bpus: np.ndarray) -> None:
        self.env = env
        self.capacity = np.asarray(capacity_Bpus, dtype=np.float64)
        n = len(self.capacity)
        self.link_bytes = np.zeros(n)
        self.link_busy_us = np.zeros(n)
        self.link_saturated_us = np.zeros(n)
        self.link_max_flows = np.zeros(n, dtype=np.int64)
        self.flows_started = 0
        self.recomputes = 0
        # Attribution: flow-time (us x flows) during which each link limited a flow's rate,
        # per (batch record, link). Each flow accumulates its flow-time under its current
        # limiting link (``_acc``) and folds it into ``_limit`` only when that link changes or
        # the flow ends, so an interval costs one vector add.
        self.labels: list[str] = []
        self._label_id: dict[str, int] = {}
        self.batches = BatchRecords()
        self._record_label: list[int] = []  # label id per batch record
        self._limit: dict[tuple[int, int], float] = {}
        # Load over time, as segments of constant rate per link. Open segments: loaded link
        # ids (sorted) with their start (us) and rate (bytes/us), up to ``_seg_end``. Closed
        # ones in chunks of (link ids, starts, end, rates).
        self._seg_links = np.zeros(0, dtype=np.int64)
        self._seg_start = np.zeros(0)
        self._seg_rate = np.zeros(0)
        self._seg_end = 0.0
        self._segments: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = []
        # Active flows: aligned per-flow arrays, plus the route of each.
        self._routes: list[np.ndarray] = []
        self._size = np.zeros(0)
        self._left = np.zeros(0)
        self._rate = np.zeros(0)
        self._batch_of = np.zeros(0, dtype=np.int64)  # batch id per flow
        self._group_of = np.zeros(0, dtype=np.int64)  # coupling group per flow
        self._weight = np.zeros(0)  # identical flows each one stands for
        self._record_of = np.zeros(0, dtype=np.int64)
        self._bneck = np.zeros(0, dtype=np.int64)  # limiting link per flow; -1: not yet known
        self._acc = np.zeros(0)  # flow-time under the current limiting link
        self._batches: dict[int, _Batch] = {}
        self._next_id = 0
        self._pair_flow = np.zeros(0, dtype=np.int64)
        self._pair_link = np.zeros(0, dtype=np.int64)
        self._pair_slot = np.zeros(0, dtype=np.int64)
        self._links = np.zeros(0, dtype=np.int64)  # links of the active routes, sorted
        # Batches started at the current timestamp, not yet sharing:
        # (routes, sizes, weights, batch id, coupled).
        self._new: list[tuple[list[np.ndarray], np.ndarray, np.ndarray, int, bool]] = []
        self._flush_scheduled = False
        self._epoch = 0
        self._t_last = 0.0

    def transfer(
        self,
        routes: Sequence[np.ndarray],
        sizes: Sequence[float] | np.ndarray,
        tag: FlowTag | None = None,
        coupled: bool = False,
        weights: np.ndarray | None = None,
        counts: np.ndarray | None = None,
    ) -> simpy.Event:
        """Start one flow per (route, size); the returned event fires when all have finished.

        ``coupled`` flows share one rate (see :func:`maxmin_rates`). ``weights`` says how many
        identical flows each one stands for (its size is their total), and so how much rate it
        gets; ``counts``, where given, says how many flows it is for the statistics (a coupled
        phase weights its flows by share). Flows of zero bytes or with an empty route (same
        node) finish at once.
        """
        event = self.env.event()
        if len(routes) == 1:  # fast path: copies and send/recv
            size = np.array([float(sizes[0])])
            weight = np.ones(1) if weights is None else np.asarray(weights, dtype=np.float64)
            flows = weight if counts is None else np.asarray(counts, dtype=np.float64)
            count = int(size[0] > 0 and len(routes[0]) > 0)
        else:
            size = np.asarray(sizes, dtype=np.float64)
            weight = (np.ones(len(routes)) if weights is None
                      else np.asarray(weights, dtype=np.float64))
            hops = np.fromiter(map(len, routes), dtype=np.int64, count=len(routes))
            keep = (size > 0) & (hops > 0)
            count = int(keep.sum())
            flows = weight if counts is None else np.asarray(counts, dtype=np.float64)
            if 0 < count < len(routes):
                routes = [r for r, k in zip(routes, keep.tolist()) if k]
                size = size[keep]
                weight = weight[keep]
                flows = flows[keep]
        self.flows_started += round(float(flows.sum())) if count else 0
        if count == 0:
            event.succeed()
            return event
        bid = self._next_id
        self._next_id += 1
        record = self.batches.open(tag, self.env.now, float(flows.sum()), float(size.sum()))
        self._record_label.append(self._label(tag))
        self._batches[bid] = _Batch(pending=count, event=event, tag=tag, record=record)
        self._new.append((list(routes), size, weight, bid, coupled))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            flush = self.env.event()
            flush.callbacks.append(self._on_flush)
            flush.succeed()
        return event

    # -- internals ----------------------------------------------------------------------------

    def _on_flush(self, _event: simpy.Event) -> None:
        self._flush_scheduled = False
        self._update()

    def _on_wake(self, event: simpy.Event) -> None:
        if event.value == self._epoch:
            self._update()

    def _advance(self, now: float) -> None:
        """Move active flows forward to ``now`` at their current rates; account link stats."""
        t0 = self._t_last
        dt = now - t0
        self._t_last = now
        if dt <= 0 or not self._routes:
            return
        self._left -= self._rate * dt
        # Per link of the active routes only (``_links``; ``_pair_slot`` indexes it).
        links = self._links
        load = np.bincount(self._pair_slot, weights=self._rate[self._pair_flow],
                           minlength=len(links))
        busy = load > 0
        self.link_bytes[links] += load * dt
        self.link_busy_us[links[busy]] += dt
        self.link_saturated_us[links[load >= self.capacity[links] * (1 - _SAT_EPS)]] += dt
        self._extend_load(t0, now, links[busy], load[busy])
        self._acc += dt * self._weight

    def _extend_load(self, t0: float, t1: float, links: np.ndarray, rates: np.ndarray) -> None:
        """Extend the load segments over ``[t0, t1]``, in which ``links`` (sorted) carry
        ``rates``: a link whose rate is unchanged keeps its open segment; the others close
        theirs at ``t0`` and open a new one. Most intervals change few links' rates, so this
        stores far fewer rows than one per loaded link per interval."""
        if t0 != self._seg_end:  # no load in between: everything closed then
            self._close(np.ones(len(self._seg_links), dtype=bool), self._seg_end)
            self._seg_links = self._seg_links[:0]
            self._seg_start, self._seg_rate = self._seg_start[:0], self._seg_rate[:0]
        old, start, rate = self._seg_links, self._seg_start, self._seg_rate
        keep = np.zeros(len(old), dtype=bool)
        pos = np.searchsorted(links, old)
        if len(links):
            at = np.minimum(pos, len(links) - 1)
            keep = (links[at] == old) & (rates[at] == rate)
        self._close(~keep, t0)
        new_start = np.full(len(links), t0)
        new_start[pos[keep]] = start[keep]
        self._seg_links, self._seg_start, self._seg_rate = links, new_start, rates
        self._seg_end = t1

    def _close(self, which: np.ndarray, end: float) -> None:
        if which.any():
            self._segments.append((self._seg_links[which], self._seg_start[which], end,
                                   self._seg_rate[which]))

    def load_segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every link's load over time as segments of constant rate: link ids, start (us),
        end (us), rate (bytes/us), sorted by start then link."""
        chunks = [*self._segments, (self._seg_links, self._seg_start, self._seg_end,
                                    self._seg_rate)]
        links = np.concatenate([c[0] for c in chunks])
        starts = np.concatenate([c[1] for c in chunks])
        ends = np.repeat([c[2] for c in chunks], [len(c[0]) for c in chunks])
        rates = np.concatenate([c[3] for c in chunks])
        order = np.lexsort((links, starts))
        return links[order], starts[order], ends[order], rates[order]

    def _fold(self, which: np.ndarray) -> None:
        """Move the accumulated flow-time of flows ``which`` (a mask) into ``_limit`` under
        their current limiting link."""
        sel = which & (self._acc > 0) & (self._bneck >= 0)
        if not sel.any():
            return
        nl = len(self.capacity)
        keys = self._record_of[sel] * nl + self._bneck[sel]
        uniq, inv = np.unique(keys, return_inverse=True)
        sums = np.bincount(inv, weights=self._acc[sel])
        for k, v in zip(uniq.tolist(), sums.tolist()):
            key = divmod(k, nl)
            self._limit[key] = self._limit.get(key, 0.0) + v
        self._acc[sel] = 0.0

    def limits(self) -> dict[tuple[int, int], float]:
        """Flow-time (us x flows) per (batch record, link) during which that link limited
        the batch's flows; includes the flows still active."""
        self._fold(np.ones(len(self._acc), dtype=bool))
        return self._limit

    def link_limiting_us(self) -> np.ndarray:
        """Per link, the flow-time during which it limited some flow's rate."""
        out = np.zeros(len(self.capacity))
        for (_, link), v in self.limits().items():
            out[link] += v
        return out

    def attribution(self) -> dict[tuple[int, int], float]:
        """Flow-time per (link, label id): which collectives and groups each link held
        back (labels in ``labels``)."""
        out: dict[tuple[int, int], float] = {}
        for (record, link), v in self.limits().items():
            key = (link, self._record_label[record])
            out[key] = out.get(key, 0.0) + v
        return out

    def _retire(self) -> None:
        """Remove finished flows and fire the events of batches that are complete."""
        if not self._routes:
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            eps_us = max(_TIME_EPS_US, abs(self._t_last) * _CLOCK_EPS)
            done = (self._left <= self._size * _REL_EPS) | (self._left / self._rate <= eps_us)
        if not done.any():
            return
        self._fold(done)
        ids, counts = np.unique(self._batch_of[done], return_counts=True)
        for bid, c in zip(ids.tolist(), counts.tolist()):
            b = self._batches[bid]
            b.pending -= c
            if b.pending == 0:
                del self._batches[bid]
                self.batches.close(b.record, self.env.now)
                b.event.succeed()
        keep = ~done
        self._routes = list(compress(self._routes, keep.tolist()))
        self._size = self._size[keep]
        self._left = self._left[keep]
        self._batch_of = self._batch_of[keep]
        self._group_of = self._group_of[keep]
        self._weight = self._weight[keep]
        self._record_of = self._record_of[keep]
        self._bneck = self._bneck[keep]
        self._acc = self._acc[keep]

    def _admit(self) -> None:
        if not self._new:
            return
        sizes, batch_of, group_of = [self._size], [self._batch_of], [self._group_of]
        weights, records = [self._weight], [self._record_of]
        for routes, size, weight, bid, coupled in self._new:
            self._routes.extend(routes)
            sizes.append(size)
            weights.append(weight)
            batch = self._batches[bid]
            records.append(np.full(len(size), batch.record, dtype=np.int64))
            batch_of.append(np.full(len(size), bid, dtype=np.int64))
            # Coupled flows share their batch's group; others get groups of their own.
            first = self._next_id
            self._next_id += 1 if coupled else len(size)
            group_of.append(np.full(len(size), first, dtype=np.int64) if coupled
                            else np.arange(first, first + len(size), dtype=np.int64))
        self._new = []
        self._size = np.concatenate(sizes)
        self._left = np.concatenate([self._left, *sizes[1:]])
        self._batch_of = np.concatenate(batch_of)
        self._group_of = np.concatenate(group_of)
        self._weight = np.concatenate(weights)
        self._record_of = np.concatenate(records)
        added = len(self._size) - len(self._acc)
        self._bneck = np.concatenate([self._bneck, np.full(added, -1, dtype=np.int64)])
        self._acc = np.concatenate([self._acc, np.zeros(added)])

    def _label(self, tag: FlowTag | None) -> int:
        label = tag.label if tag is not None else "other"
        k = self._label_id.get(label)
        if k is None:
            k = self._label_id[label] = len(self.labels)
            self.labels.append(label)
        return k

    def _update(self) -> None:
        now = self.env.now
        self._advance(now)
        self._retire()
        self._admit()
        self._epoch += 1
        if not self._routes:
            self._rate = np.zeros(0)
            self._bneck = np.zeros(0, dtype=np.int64)
            self._pair_flow = self._pair_link = self._pair_slot = np.zeros(0, dtype=np.int64)
            self._links = np.zeros(0, dtype=np.int64)
            return
        lengths = np.fromiter(map(len, self._routes), dtype=np.int64, count=len(self._routes))
        self._pair_link = np.concatenate(self._routes).astype(np.int64, copy=False)
        self._pair_flow = np.repeat(np.arange(len(self._routes)), lengths)
        self._links, self._pair_slot = np.unique(self._pair_link, return_inverse=True)
        # Group ids only grow as flows are admitted, so _group_of is sorted: number its runs.
        coupling = np.empty(len(self._group_of), dtype=np.int64)
        coupling[0] = 0
        np.cumsum(self._group_of[1:] != self._group_of[:-1], out=coupling[1:])
        self._rate, local = maxmin_compact(self._pair_flow, self._pair_slot, len(self._routes),
                                           self.capacity[self._links], coupling, self._weight)
        bneck = self._links[local]  # slots are in link-id order: ties break the same way
        self._fold(bneck != self._bneck)
        self._bneck = bneck
        self.recomputes += 1
        counts = np.bincount(self._pair_slot, weights=self._weight[self._pair_flow],
                             minlength=len(self._links)).astype(np.int64)
        np.maximum.at(self.link_max_flows, self._links, counts)
        wait = float(np.min(self._left / self._rate))
        wake = self.env.timeout(max(wait, 0.0), value=self._epoch)
        wake.callbacks.append(self._on_wake)

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

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from simcluster.sim.components import COMPONENT_PAIRS, runs, solve_touched
from simcluster.sim.flow_records import BatchRecords, FlowTag, LimitTotals
from simcluster.sim.load_segments import LoadSegments
from simcluster.sim.maxmin import _SAT_EPS, maxmin, maxmin_compact, maxmin_rates
from simcluster.sim.rate_cache import RateCache, problem_key
from simcluster.sim.route_pairs import merge_dense, merge_sorted

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
# Marks the key of a whole problem solved by components (its values hold the partition).
_WHOLE_TAG = np.array([3], dtype=np.int8)
# New (flow, link) pairs above this many, and above a quarter of the links, are merged into
# the used links with a table over every link id (``_merge_links_dense``).
_DENSE_PAIRS = 4096


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

    def __init__(self, env: simpy.Environment, capacity_Bpus: np.ndarray,
                 component_pairs: int | None = None) -> None:
        """``component_pairs``: above this many active (flow, link) pairs, an update solves
        only the components its changes touch (``sim/components.py``); at or below it, the
        whole problem at once (None: ``COMPONENT_PAIRS``)."""
        self.env = env
        self.component_pairs = COMPONENT_PAIRS if component_pairs is None else component_pairs
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
        # limiting link (``_acc``) and folds it into ``_limits`` only when that link changes or
        # the flow ends, so an interval costs one vector add.
        self.labels: list[str] = []
        self._label_id: dict[str, int] = {}
        self.batches = BatchRecords()
        self._record_label: list[int] = []  # label id per batch record
        self._limits = LimitTotals(len(self.capacity))
        # Load over time, as segments of constant rate per link.
        self._segments = LoadSegments()
        # Active flows: aligned per-flow arrays; their routes are the (flow, link) pairs.
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
        # The active routes as (flow, link) pairs, in flow order then hop order, kept up to
        # date as flows retire and arrive (not rebuilt at each change): the flow, and the
        # link's slot in ``_links``, the sorted links the active routes use.
        self._pair_flow = np.zeros(0, dtype=np.int64)
        self._pair_slot = np.zeros(0, dtype=np.int64)
        self._links = np.zeros(0, dtype=np.int64)
        # Loaded links (sorted), their load (bytes/us), and the saturated links, under the
        # current rates (``_load``).
        self._busy_links = self._full_links = np.zeros(0, dtype=np.int64)
        self._busy_load = np.zeros(0)
        # Batches started at the current timestamp, not yet sharing:
        # (routes, sizes, weights, batch id, coupled).
        self._new: list[tuple[list[np.ndarray], np.ndarray, np.ndarray, int, bool]] = []
        self._flush_scheduled = False
        # Solved sharing problems, reused when the same one comes back (``rate_cache.py``).
        self.rate_cache = RateCache()
        # Components (``_update_components``): per active flow its component's label (-1:
        # new since the last update), per link id the label of the component using it (or
        # a label no flow has any more), the labels of flows finished since the last update;
        # labels are valid only while the last update solved by components.
        self._comp = np.zeros(0, dtype=np.int64)
        self._link_comp = np.full(n, -1, dtype=np.int64)
        self._next_comp = 0
        self._comp_valid = False
        self._touched: list[np.ndarray] = []
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
        if dt <= 0 or not len(self._size):
            return
        self._left -= self._rate * dt
        # Per loaded link only (the load was summed when the rates were set, ``_load``).
        busy, load = self._busy_links, self._busy_load
        self.link_bytes[busy] += load * dt
        self.link_busy_us[busy] += dt
        self.link_saturated_us[self._full_links] += dt
        self._segments.extend(t0, now, busy, load)
        self._acc += dt * self._weight

    def _load(self, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sum new rates per link of the active routes: the loaded links (sorted), their
        load (bytes/us) and the saturated links, which stay so until the next change."""
        links = self._links
        load = np.bincount(self._pair_slot, weights=rate[self._pair_flow],
                           minlength=len(links))
        busy = load > 0
        return links[busy], load[busy], links[load >= self.capacity[links] * (1 - _SAT_EPS)]

    def load_segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every link's load over time as segments of constant rate: link ids, start (us),
        end (us), rate (bytes/us), sorted by start then link."""
        return self._segments.segments()

    def _fold(self, which: np.ndarray) -> None:
        """Move the accumulated flow-time of flows ``which`` (a mask) into the limits under
        their current limiting link."""
        sel = (which & (self._acc > 0) & (self._bneck >= 0)).nonzero()[0]
        if not len(sel):
            return
        self._limits.add(self._record_of[sel] * len(self.capacity) + self._bneck[sel],
                         self._acc[sel])
        self._acc[sel] = 0.0

    def limits(self) -> dict[tuple[int, int], float]:
        """Flow-time (us x flows) per (batch record, link) during which that link limited
        the batch's flows; includes the flows still active."""
        self._fold(np.ones(len(self._acc), dtype=bool))
        return self._limits.totals()

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
        if not len(self._size):
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            eps_us = max(_TIME_EPS_US, abs(self._t_last) * _CLOCK_EPS)
            done = (self._left <= self._size * _REL_EPS) | (self._left / self._rate <= eps_us)
        if not done.any():
            return
        self._fold(done)
        if self._comp_valid:
            self._touched.append(self._comp[done])
        counts = Counter(self._batch_of[done].tolist())
        for bid in sorted(counts):
            c = counts[bid]
            b = self._batches[bid]
            b.pending -= c
            if b.pending == 0:
                del self._batches[bid]
                self.batches.close(b.record, self.env.now)
                b.event.succeed()
        if done.all():  # the usual end of a lone batch: empty everything by slicing
            self._pair_flow, self._pair_slot = self._pair_flow[:0], self._pair_slot[:0]
            self._links = self._links[:0]
            keep: np.ndarray | slice = slice(0, 0)
        else:
            keep = ~done
            self._drop_pairs(keep)
        self._size = self._size[keep]
        self._left = self._left[keep]
        self._rate = self._rate[keep]
        self._comp = self._comp[keep]
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
        self._add_pairs([r for routes, *_ in self._new for r in routes])
        for _, size, weight, bid, coupled in self._new:
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
        self._comp = np.concatenate([self._comp, np.full(added, -1, dtype=np.int64)])
        self._acc = np.concatenate([self._acc, np.zeros(added)])

    def _drop_pairs(self, keep: np.ndarray) -> None:
        """Drop the pairs of the flows not in ``keep`` (a mask over the active flows),
        renumbering the flows and the link slots that are left (order kept)."""
        pk = keep[self._pair_flow]
        self._pair_flow = (keep.cumsum() - 1)[self._pair_flow[pk]]
        slot = self._pair_slot[pk]
        used = np.zeros(len(self._links), dtype=bool)
        used[slot] = True
        if not used.all():
            self._links = self._links[used]
            slot = (used.cumsum() - 1)[slot]
        self._pair_slot = slot

    def _add_pairs(self, routes: list[np.ndarray]) -> None:
        """Append the pairs of new flows ``routes`` (numbered after the active ones), and
        merge their links into ``_links`` (sorted), moving the old slots where needed."""
        lengths = np.fromiter(map(len, routes), dtype=np.int64, count=len(routes))
        new_link = np.concatenate(routes).astype(np.int64, copy=False)
        first = len(self._size)
        new_flow = np.repeat(np.arange(first, first + len(routes)), lengths)
        if len(new_link) > _DENSE_PAIRS and len(new_link) * 4 > len(self.capacity):
            slot = self._merge_links_dense(new_link)
        else:
            slot = self._merge_links_sorted(new_link)
        self._pair_slot = np.concatenate([self._pair_slot, slot])
        self._pair_flow = np.concatenate([self._pair_flow, new_flow])

    def _merge_links_sorted(self, new_link: np.ndarray) -> np.ndarray:
        """Merge ``new_link`` into ``_links`` (``route_pairs.merge_sorted``, for few
        pairs); returns the new pairs' slots."""
        self._links, self._pair_slot, slot = merge_sorted(self._links, self._pair_slot,
                                                          new_link)
        return slot

    def _merge_links_dense(self, new_link: np.ndarray) -> np.ndarray:
        """The same merge with one table over every link id (``route_pairs.merge_dense``,
        for many pairs); returns the new pairs' slots."""
        self._links, self._pair_slot, slot = merge_dense(self._links, self._pair_slot,
                                                         new_link, len(self.capacity))
        return slot

    def _label(self, tag: FlowTag | None) -> int:
        label = tag.label if tag is not None else "other"
        k = self._label_id.get(label)
        if k is None:
            k = self._label_id[label] = len(self.labels)
            self.labels.append(label)
        return k

    def _solve(self, coupling: np.ndarray) -> tuple[np.ndarray, ...]:
        """Max-min rates of the active flows, their limiting links, and the load they put
        on the links (``_load``). Also raises the links' peak flow counts: a repeat of the
        same problem would raise them to the same values, so it need not."""
        links = self._links
        rate, local = maxmin_compact(self._pair_flow, self._pair_slot, len(self._size),
                                     self.capacity[links], coupling, self._weight)
        counts = np.bincount(self._pair_slot, weights=self._weight[self._pair_flow],
                             minlength=len(links)).astype(np.int64)
        # ``links`` are unique: no need for ``np.maximum.at``.
        self.link_max_flows[links] = np.maximum(self.link_max_flows[links], counts)
        # Slots are in link-id order, so ties between links break the same way.
        return (rate, links[local], *self._load(rate))

    def _update_components(self) -> np.ndarray:
        """Rates by components: a whole problem seen before is taken from the memo (with
        its load and its partition into components), any other solved by
        :meth:`_solve_touched`. Sets the rates and load; returns the limiting link per flow."""
        # The whole problem seen before: its rates, load and partition into components.
        key = problem_key(_WHOLE_TAG, self._links, self._pair_flow, self._pair_slot,
                          runs(self._group_of), self._weight)
        solved = self.rate_cache.get(key)
        if solved is not None:
            self._rate, bneck, self._busy_links, self._busy_load, self._full_links, part = solved
            self._comp = part + self._next_comp
            self._next_comp += int(part.max()) + 1
            self._link_comp[self._links[self._pair_slot]] = self._comp[self._pair_flow]
            self._touched = []
            self._comp_valid = True
            return bneck
        bneck = self._solve_touched()
        # The partition alone, whatever the labels: components numbered from 0.
        part = np.unique(self._comp, return_inverse=True)[1]
        self.rate_cache.put(key, (self._rate.copy(), bneck, self._busy_links, self._busy_load,
                                  self._full_links, part))
        return bneck

    def _solve_touched(self) -> np.ndarray:
        """Solve again only the components that flows started or finished since the last
        update touch (all of them if the last update solved the whole problem); the others
        keep their rates and limiting links.

        The flows solved again are those of the components that finished flows were in or
        that new flows' links are in, and the new flows: a union of whole components of
        the new problem (a component with none of these flows has the same flows and links
        as before, so the same solution)."""
        comp = self._comp
        old = len(self._rate)  # flows admitted since the last update come after these
        if self._comp_valid:
            first_new = self._pair_flow.searchsorted(old)
            hit = self._link_comp[self._links[self._pair_slot[first_new:]]]
            touched = set(hit[hit >= 0].tolist()).union(*(t.tolist() for t in self._touched))
            redo = comp < 0
            if len(touched) > 8:
                redo |= np.isin(comp, np.fromiter(touched, dtype=np.int64))
            else:
                for label in touched:
                    redo |= comp == label
        else:
            redo = np.ones(len(comp), dtype=bool)
        self._touched = []
        self._comp_valid = True
        rf = redo.nonzero()[0]
        if not len(rf):  # only whole components finished: the others keep their rates
            self._busy_links, self._busy_load, self._full_links = self._load(self._rate)
            return self._bneck
        pairs = redo[self._pair_flow].nonzero()[0]
        renumber = np.cumsum(redo) - 1
        slots = self._pair_slot[pairs]
        rate, limit, sub = solve_touched(
            renumber[self._pair_flow[pairs]], slots, self._links, self.capacity,
            self._group_of[rf], self._weight[rf], self.rate_cache, self.link_max_flows)
        self._rate = np.concatenate([self._rate, np.empty(len(comp) - old)])
        self._rate[rf] = rate
        bneck = self._bneck.copy()
        bneck[rf] = limit
        comp[rf] = sub + self._next_comp
        self._next_comp += int(sub.max()) + 1
        self._link_comp[self._links[slots]] = comp[self._pair_flow[pairs]]
        self._busy_links, self._busy_load, self._full_links = self._load(self._rate)
        return bneck

    def _update(self) -> None:
        now = self.env.now
        self._advance(now)
        self._retire()
        self._admit()
        self._epoch += 1
        if not len(self._size):
            self._rate = np.zeros(0)
            self._bneck = np.zeros(0, dtype=np.int64)
            self._touched = []
            return
        if len(self._pair_flow) > self.component_pairs:
            bneck = self._update_components()
        else:
            self._comp_valid = False
            self._touched = []
            # Group ids only grow as flows are admitted, so _group_of is sorted: number its
            # runs. What follows depends on the problem alone: a repeat reuses the first
            # one's arrays.
            coupling = runs(self._group_of)
            key = problem_key(self._links, self._pair_flow, self._pair_slot, coupling,
                              self._weight)
            solved = self.rate_cache.get(key)
            if solved is None:
                solved = self.rate_cache.put(key, self._solve(coupling))
            self._rate, bneck, self._busy_links, self._busy_load, self._full_links = solved
        self._fold(bneck != self._bneck)
        self._bneck = bneck
        self.recomputes += 1
        wait = float((self._left / self._rate).min())
        wake = self.env.timeout(max(wait, 0.0), value=self._epoch)
        wake.callbacks.append(self._on_wake)

"""Flow-level network: fluid flows on routed links with max-min fair bandwidth sharing.

A flow moves a number of bytes along a route (link ids). While flows are active, each gets the
max-min fair rate given link capacities, computed by progressive filling over numpy arrays of
(flow, link) pairs. Rates change only when a flow starts or finishes; all starts at one
timestamp are batched into one recomputation. The next completion is a single SimPy timeout;
an epoch counter makes wake-ups that a later change made stale do nothing. Links are not
``simpy.Resource`` objects, so the cost is O(pairs) per change, not O(events per byte).

Times are microseconds, sizes bytes, capacities bytes per microsecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np
import simpy

# A flow is finished when what remains would take less than this long at its rate (us), or is
# below this fraction of its size: the float error of advancing rate * dt.
_TIME_EPS_US = 1e-9
_REL_EPS = 1e-12
# ... or less than this fraction of the current time: a wake-up that close to ``now`` lands on
# ``now`` itself (float64 has ~16 digits), and the flow would never advance.
_CLOCK_EPS = 1e-14
# A link is saturated when its allocated rate is within this fraction of capacity.
_SAT_EPS = 1e-9


def maxmin(
    pair_flow: np.ndarray,
    pair_link: np.ndarray,
    num_flows: int,
    capacity: np.ndarray,
    coupling: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Max-min fair rates by progressive filling, and the link that limits each flow.

    Every unfrozen flow's rate grows at the same pace until some link is full; flows that
    cross a full link freeze at their rate, and so do all flows coupled with them; repeat
    until all are frozen. Coupled flows (the neighbour transfers of one pipelined ring, which
    advances at the pace of its slowest hop) thus share one rate. A flow of weight ``w``
    stands for ``w`` identical flows on the same route and grows ``w`` times as fast.

    Parameters:
        pair_flow, pair_link: one entry per (flow, link) incidence; every flow has >= 1 link.
        num_flows: number of flows.
        capacity: bytes/us per link id.
        coupling: per flow, a coupling-group id in 0 .. num_flows-1; None = all independent.
        weight: per flow, how many identical flows it stands for; None = all 1.

    Returns:
        Rate per flow in bytes/us (the total of the flows it stands for), and per flow the
        link id that froze it (for a coupled flow, the link that froze its group).
    """
    links, local = np.unique(pair_link, return_inverse=True)
    rate, bottleneck = maxmin_compact(pair_flow, local, num_flows, capacity[links], coupling,
                                      weight)
    return rate, links[bottleneck]


def maxmin_compact(
    pair_flow: np.ndarray,
    local: np.ndarray,
    num_flows: int,
    capacity: np.ndarray,
    coupling: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`maxmin` on links numbered 0..len(capacity)-1, every one of them used (the
    caller has compacted the link ids, keeping their order); returns compact link ids."""
    links = np.arange(len(capacity))
    cap_left = np.asarray(capacity, dtype=np.float64).copy()
    cap_full = cap_left.copy()
    w = np.ones(num_flows) if weight is None else np.asarray(weight, dtype=np.float64)
    pair_w = w[pair_flow]
    rate = np.zeros(num_flows)
    bottleneck = np.full(num_flows, -1, dtype=np.int64)
    active = np.ones(num_flows, dtype=bool)
    group_link = np.full(num_flows, -1, dtype=np.int64)
    pair_active = np.ones(len(pair_flow), dtype=bool)
    while pair_active.any():
        users = np.bincount(local[pair_active], weights=pair_w[pair_active],
                            minlength=len(links))
        used = users > 0
        inc = np.min(cap_left[used] / users[used])
        rate[active] += inc * w[active]
        cap_left -= inc * users
        full = used & (cap_left <= _SAT_EPS * cap_full)
        hit = np.flatnonzero(pair_active & full[local])
        # A flow that fills two links at once is charged to the lower link id: order the
        # pairs so that it is assigned last.
        hit = hit[np.argsort(-links[local[hit]], kind="stable")]
        hit_flow, hit_link = pair_flow[hit], links[local[hit]]
        if coupling is None:
            bottleneck[hit_flow] = hit_link
            active[hit_flow] = False
        else:
            group_link[coupling[hit_flow]] = hit_link
            newly = active & (group_link[coupling] >= 0)
            bottleneck[newly] = group_link[coupling[newly]]
            bottleneck[hit_flow] = hit_link  # a flow on a full link is limited by it
            active &= ~newly
        pair_active = active[pair_flow]
    return rate, bottleneck


def maxmin_rates(
    pair_flow: np.ndarray,
    pair_link: np.ndarray,
    num_flows: int,
    capacity: np.ndarray,
    coupling: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """The rates of :func:`maxmin` alone.

    Example:
        Two flows share link 0 (100 B/us); the second also crosses link 1 (30 B/us):

        >>> r = maxmin_rates(np.array([0, 1, 1]), np.array([0, 0, 1]), 2, np.array([100., 30.]))
        >>> r.tolist()
        [70.0, 30.0]

        Coupled, both run at the slower one's pace:

        >>> maxmin_rates(np.array([0, 1, 1]), np.array([0, 0, 1]), 2, np.array([100., 30.]),
        ...              coupling=np.array([0, 0])).tolist()
        [30.0, 30.0]
    """
    return maxmin(pair_flow, pair_link, num_flows, capacity, coupling, weight)[0]


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
    ) -> simpy.Event:
        """Start one flow per (route, size); the returned event fires when all have finished.

        ``coupled`` flows share one rate (see :func:`maxmin_rates`). ``weights`` says how many
        identical flows each one stands for (its size is their total). Flows of zero bytes or
        with an empty route (same node) finish at once.
        """
        event = self.env.event()
        if len(routes) == 1:  # fast path: copies and send/recv
            size = np.array([float(sizes[0])])
            weight = np.ones(1) if weights is None else np.asarray(weights, dtype=np.float64)
            count = int(size[0] > 0 and len(routes[0]) > 0)
        else:
            size = np.asarray(sizes, dtype=np.float64)
            weight = (np.ones(len(routes)) if weights is None
                      else np.asarray(weights, dtype=np.float64))
            hops = np.fromiter(map(len, routes), dtype=np.int64, count=len(routes))
            keep = (size > 0) & (hops > 0)
            count = int(keep.sum())
            if 0 < count < len(routes):
                routes = [r for r, k in zip(routes, keep.tolist()) if k]
                size = size[keep]
                weight = weight[keep]
        self.flows_started += int(weight.sum()) if count else 0
        if count == 0:
            event.succeed()
            return event
        bid = self._next_id
        self._next_id += 1
        record = self.batches.open(tag, self.env.now, float(weight.sum()), float(size.sum()))
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

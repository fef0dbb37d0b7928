"""The sharing problem split into its connected components, each solved on its own.

Max-min fairness decomposes over the connected components of the flow-link incidence graph:
two flows are in one component when they share a link, transitively, or are coupled (one
rate for a pipelined ring's hops, :func:`~simcluster.sim.maxmin.maxmin`). A flow's max-min
rate depends on its component alone, so when a flow starts or ends, only the components it
touches need solving again; the others keep their rates. :class:`~simcluster.sim.network.
FlowNetwork` uses this above a size (``COMPONENT_PAIRS``).

Each component is solved as a problem of its own (its flows and pairs in their order, its
links in id order), so its rates are a function of the component alone: the same bits
whether it was solved in this update or an earlier one, and whatever other components
exist. They are not always the bits of one progressive filling over every component at
once: that adds each flow's rate from the increments of every component's rounds (the same
value, rounded differently: relative differences of a few ulps), and it freezes a link that
is within ``_SAT_EPS`` (1e-9) of full when another component's round ends, where solved
alone its own round would end a little later (a difference below 1e-9 relative).

Times are not involved; capacities and rates are bytes per microsecond.
"""

from __future__ import annotations

import numpy as np

from simcluster.sim.maxmin import maxmin_compact
from simcluster.sim.rate_cache import RateCache, problem_key

# Above this many (flow, link) pairs, the flow network solves the components a change
# touches instead of the whole problem (measured: docs/performance.md, "Only the components
# a change touches").
COMPONENT_PAIRS = 512
# Up to this many pairs, components are found by a union-find in plain Python.
_SMALL_PAIRS = 64
# Mark a component's key, and a set of components', in a cache shared with whole problems.
_KEY_TAG = np.array([1], dtype=np.int8)
_SET_TAG = np.array([2], dtype=np.int8)


def runs(values: np.ndarray) -> np.ndarray:
    """Number the runs of equal consecutive ``values``: 0, 0, 1, 2, 2, ...

    >>> runs(np.array([5, 5, 7, 9, 9])).tolist()
    [0, 0, 1, 2, 2]
    """
    out = np.empty(len(values), dtype=np.int64)
    if len(values):
        out[0] = 0
        (values[1:] != values[:-1]).cumsum(out=out[1:])
    return out


def component_labels(pair_flow: np.ndarray, pair_slot: np.ndarray, coupling: np.ndarray,
                     num_slots: int) -> np.ndarray:
    """Per flow, the smallest index of a flow in its connected component.

    Parameters:
        pair_flow, pair_slot: one entry per (flow, link) pair, in flow order (``pair_flow``
            non-decreasing); every flow has at least one pair. Slots are 0..num_slots-1.
        coupling: per flow, its coupling group, non-decreasing (a group's flows are
            consecutive); coupled flows are in one component.

    >>> component_labels(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 2]), np.arange(3), 3).tolist()
    [0, 0, 2]
    """
    if len(pair_flow) <= _SMALL_PAIRS:
        return _labels_small(pair_flow, pair_slot, coupling, num_slots)
    group = runs(coupling)
    group_start = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    flow_start = np.flatnonzero(np.r_[True, pair_flow[1:] != pair_flow[:-1]])
    by_slot = pair_slot.argsort(kind="stable")
    ss = pair_slot[by_slot]
    slot_start = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    slot_len = np.diff(np.r_[slot_start, len(ss)])
    label = group_start[group]  # a group's first flow
    per_pair = np.empty(len(pair_flow), dtype=np.int64)
    while True:
        # Through the links: each flow takes the least label of the flows sharing a link.
        per_pair[by_slot] = np.repeat(np.minimum.reduceat(label[pair_flow][by_slot],
                                                          slot_start), slot_len)
        new = np.minimum(label, np.minimum.reduceat(per_pair, flow_start))
        # Through the coupling, then along the labels (a label is a flow of the component).
        new = np.minimum.reduceat(new, group_start)[group]
        while True:
            jumped = new[new]
            if (jumped == new).all():
                break
            new = jumped
        if (new == label).all():
            return label
        label = new


def _labels_small(pair_flow: np.ndarray, pair_slot: np.ndarray, coupling: np.ndarray,
                  num_slots: int) -> np.ndarray:
    """:func:`component_labels` by a union-find in plain Python (for a few pairs)."""
    n = len(coupling)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:  # the smaller index is the root
            parent[max(ra, rb)] = min(ra, rb)

    cp = coupling.tolist()
    for f in range(1, n):
        if cp[f] == cp[f - 1]:
            union(f, f - 1)
    first: list[int] = [-1] * num_slots
    for f, s in zip(pair_flow.tolist(), pair_slot.tolist()):
        if first[s] < 0:
            first[s] = f
        else:
            union(f, first[s])
    return np.array([find(f) for f in range(n)], dtype=np.int64)


def solve_components(pair_flow: np.ndarray, pair_slot: np.ndarray, links: np.ndarray,
                     capacity: np.ndarray, coupling: np.ndarray, weight: np.ndarray,
                     cache: RateCache, peak_flows: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max-min rates of a set of flows that is a union of whole components, each component
    solved alone (a repeat of one solved before is taken from ``cache``).

    Parameters:
        pair_flow, pair_slot, coupling: as for :func:`component_labels`; slots index
            ``links`` (link ids, sorted).
        capacity: bytes/us per link id (all links).
        weight: per flow, how many identical flows it stands for.
        peak_flows: per link id, the peak number of concurrent flows; raised (in place) for
            the links of each component solved, not for a repeat (it raised them already).

    Returns:
        Per flow: the rate (bytes/us), the limiting link id, and its component's number
        (0, 1, ... in the order of each component's first flow).
    """
    label = component_labels(pair_flow, pair_slot, coupling, len(links))
    n = len(label)
    first = label == np.arange(n)
    comp = (first.cumsum() - 1)[label]
    if first[1:].any():
        # Each component's flows and pairs, in their order; a flow's number within its
        # component is its rank there.
        flow_order = comp.argsort(kind="stable")
        pair_comp = comp[pair_flow]
        pair_order = pair_comp.argsort(kind="stable")
        sizes = np.bincount(comp)
        ends = sizes.cumsum()
        local = np.empty(n, dtype=np.int64)
        local[flow_order] = np.arange(n) - np.repeat(ends - sizes, sizes)
        flow_groups = np.split(flow_order, ends[:-1])
        pair_groups = np.split(pair_order, np.bincount(pair_comp).cumsum()[:-1])
        parts = [(flows, local[pair_flow[pairs]], pair_slot[pairs])
                 for flows, pairs in zip(flow_groups, pair_groups)]
    else:
        parts = [(slice(None), pair_flow, pair_slot)]
    rate = np.empty(n)
    bneck = np.empty(n, dtype=np.int64)
    for flows, lflow, slots in parts:
        rate[flows], bneck[flows] = _solve_one(lflow, slots, links, capacity, coupling[flows],
                                               weight[flows], cache, peak_flows)
    return rate, bneck, comp


def _solve_one(pair_flow: np.ndarray, pair_slot: np.ndarray, links: np.ndarray,
               capacity: np.ndarray, coupling: np.ndarray, weight: np.ndarray,
               cache: RateCache, peak_flows: np.ndarray) -> tuple[np.ndarray, ...]:
    """One component (flows numbered from 0, its pairs' slots in ``links``) solved, or
    taken from ``cache``: its rates and limiting link ids."""
    cc = runs(coupling)
    # Keyed by each pair's link id (with the flows, coupling and weights, that is the
    # whole problem): a repeat needs no compaction of the links.
    key = problem_key(_KEY_TAG, links[pair_slot], pair_flow, cc, weight)
    solved = cache.get(key)
    if solved is None:
        # Its links in id order (slots are in link-id order): few are quicker as a set.
        used = (np.unique(pair_slot) if len(pair_slot) > _SMALL_PAIRS
                else np.array(sorted(set(pair_slot.tolist())), dtype=np.int64))
        cl = links[used]
        lslot = used.searchsorted(pair_slot)
        rate, limit = maxmin_compact(pair_flow, lslot, len(weight), capacity[cl], cc, weight)
        counts = np.bincount(lslot, weights=weight[pair_flow], minlength=len(cl))
        peak_flows[cl] = np.maximum(peak_flows[cl], counts.astype(np.int64))
        solved = cache.put(key, (rate, cl[limit]))
    return solved


def solve_touched(pair_flow: np.ndarray, pair_slot: np.ndarray, links: np.ndarray,
                  capacity: np.ndarray, group: np.ndarray, weight: np.ndarray,
                  cache: RateCache, peak_flows: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`solve_components` of a set of flows (``group``: their coupling group ids,
    non-decreasing), or its result taken from ``cache`` when the same set comes back (the
    result is a function of the set's problem: the same bits, without finding and keying
    its components again)."""
    coupling = runs(group)
    key = problem_key(_SET_TAG, links[pair_slot], pair_flow, coupling, weight)
    solved = cache.get(key)
    if solved is None:
        solved = cache.put(key, solve_components(pair_flow, pair_slot, links, capacity,
                                                 coupling, weight, cache, peak_flows))
    return solved  # type: ignore[return-value]

"""Max-min fair rates of flows on shared links, by progressive filling (pure numpy).

The rate allocation that :class:`~simcluster.sim.network.FlowNetwork` recomputes whenever a
flow starts or finishes. A flow is a set of (flow, link) pairs; capacities are bytes per
microsecond, and so are the rates returned. Nothing here knows SimPy or time.
"""

from __future__ import annotations

import numpy as np

# A link is saturated when its allocated rate is within this fraction of capacity.
_SAT_EPS = 1e-9
# Up to this many (flow, link) pairs, plain Python beats numpy's per-call overhead.
_SMALL_PAIRS = 32


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
    caller has compacted the link ids, keeping their order); returns compact link ids.

    Each round works on the pairs of the flows still growing only (``lp``, ``wp``, ``fp``:
    their links, weights and flows, in the original pair order, so every sum adds the same
    numbers in the same order as over the whole masked arrays). Problems of a few pairs go
    to :func:`_maxmin_small`, which does the same float operations in plain Python."""
    if len(pair_flow) <= _SMALL_PAIRS:
        return _maxmin_small(pair_flow, local, num_flows, capacity, coupling, weight)
    nl = len(capacity)
    cap_left = np.asarray(capacity, dtype=np.float64).copy()
    cap_full = cap_left.copy()
    w = np.ones(num_flows) if weight is None else np.asarray(weight, dtype=np.float64)
    rate = np.zeros(num_flows)
    bottleneck = np.full(num_flows, -1, dtype=np.int64)
    active = np.ones(num_flows, dtype=bool)
    group_link = np.full(num_flows, -1, dtype=np.int64)
    lp, wp, fp = local, w[pair_flow], pair_flow
    while len(lp):
        users = np.bincount(lp, weights=wp, minlength=nl)
        used = users > 0
        inc = (cap_left[used] / users[used]).min()
        rate[active] += inc * w[active]
        cap_left -= inc * users
        full = used & (cap_left <= _SAT_EPS * cap_full)
        hit = full[lp]
        hit_flow, hit_link = fp[hit], lp[hit]
        if len(hit_link) > 1:
            # A flow that fills two links at once is charged to the lower link id: order the
            # pairs so that it is assigned last.
            order = np.argsort(-hit_link, kind="stable")
            hit_flow, hit_link = hit_flow[order], hit_link[order]
        if coupling is None:
            bottleneck[hit_flow] = hit_link
            active[hit_flow] = False
        else:
            group_link[coupling[hit_flow]] = hit_link
            newly = active & (group_link[coupling] >= 0)
            bottleneck[newly] = group_link[coupling[newly]]
            bottleneck[hit_flow] = hit_link  # a flow on a full link is limited by it
            active &= ~newly
        still = active[fp]
        lp, wp, fp = lp[still], wp[still], fp[still]
    return rate, bottleneck


def _maxmin_small(pair_flow: np.ndarray, local: np.ndarray, num_flows: int,
                  capacity: np.ndarray, coupling: np.ndarray | None,
                  weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`maxmin_compact` in plain Python for small problems: the same rounds, and in
    each the same float operations in the same order (link sums in pair order, the minimum
    of the same quotients, the same products and differences), so the same bits."""
    pf, lc = pair_flow.tolist(), local.tolist()
    cap_left = np.asarray(capacity, dtype=np.float64).tolist()
    floor = [_SAT_EPS * c for c in cap_left]
    w = [1.0] * num_flows if weight is None else np.asarray(weight, dtype=np.float64).tolist()
    group = list(range(num_flows)) if coupling is None else coupling.tolist()
    rate = [0.0] * num_flows
    bottleneck = [-1] * num_flows
    active = [True] * num_flows
    group_link: dict[int, int] = {}
    pairs = list(range(len(pf)))
    slots = range(len(cap_left))
    while pairs:
        users = [0.0] * len(cap_left)
        for k in pairs:
            users[lc[k]] += w[pf[k]]
        inc = min(cap_left[j] / users[j] for j in slots if users[j] > 0)
        for f in range(num_flows):
            if active[f]:
                rate[f] += inc * w[f]
        for j in slots:
            cap_left[j] -= inc * users[j]
        hit = [k for k in pairs if users[lc[k]] > 0 and cap_left[lc[k]] <= floor[lc[k]]]
        # Lower link ids last, so that they win (the numpy version's stable argsort).
        hit.sort(key=lambda k: -lc[k])
        for k in hit:
            group_link[group[pf[k]]] = lc[k]
        for f in range(num_flows):
            if active[f] and group[f] in group_link:
                bottleneck[f] = group_link[group[f]]
                active[f] = False
        for k in hit:
            bottleneck[pf[k]] = lc[k]
        pairs = [k for k in pairs if active[pf[k]]]
    return np.array(rate), np.array(bottleneck, dtype=np.int64)


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

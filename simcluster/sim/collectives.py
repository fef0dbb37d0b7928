"""Collective algorithms as phases of concurrent flows (no SimPy here).

This module holds the plan functions; which algorithm runs which collective, where it
applies and how it is tuned is its record in ``sim/algorithms.py`` (the registry).

A plan is a list of phases. A phase is a set of flows that run at once. Each flow has its
waypoints (the route is the concatenation of the routes between consecutive waypoints) and a
*share*: the flow's bytes per byte of the collective's size ``S``. Each phase also has a
number of sequential latency steps inside a server and across the network. Plans do not
depend on ``S``, so they are computed once per (group, collective, algorithm) and scaled.

Sizes follow nccl-tests: ``S`` is the per-rank buffer for all_reduce, broadcast and reduce,
the full output for all_gather, the full input for reduce_scatter, and for all_to_all the
bytes each rank sends in total.

Algorithms (``p`` ranks on ``N`` servers of ``g`` ranks, ``C`` channels):

- ``ring``: NCCL-style rings, through a server before leaving it. Across servers there are
  ``C`` channels, one per NIC rail. Channel ``c`` enters every server at the rank on rail
  ``c`` and leaves it towards the next server on the same rail: through that rank's NIC,
  reached over NVLink (PXN), so traffic stays on its rail. Each hop of a channel is a coupled
  flow of ``f(S)/C``. ``f`` is ``2(p-1)/p`` for all_reduce and ``(p-1)/p`` for all_gather and
  reduce_scatter. Steps: all_reduce ``2(p-1)``, of which ``2(N-1)`` cross the network.
  On a server whose ranks are wired to each other point to point (no switch, e.g. DGX-1's
  NVLink cube-mesh), the order inside it is not topology order but one of the rings
  :func:`mesh_rings` finds over its direct links, and every ring on every rail is a channel.
- ``tree``: NCCL's double binary tree (all_reduce across servers). Two binary trees over
  servers with complementary leaves, a chain inside each server, reduce up and broadcast down
  pipelined together. Per (channel, tree) every edge carries ``S/2C`` each way. Steps
  ``2(g-1)`` inside, ``2 ceil(log2 N)`` across.
- ``hierarchical``: reduce-scatter inside each server (ring), all-reduce across servers among
  the ranks of one rail (``S/g`` each), all-gather inside each server.
- ``nvls``, ``nvls-tree``, ``collnet-direct``, ``collnet-chain``: reduction inside switches
  (NVSwitch, InfiniBand SHARP); their plans are in ``in_network.py``.
- ``torus``: dimension-ordered bidirectional rings on a sub-torus of a torus fabric (TPU
  ICI); its plan is in ``torus.py``.
- ``direct`` / ``pairwise``: all_to_all as ``p(p-1)`` independent flows of ``S/p``, at once
  or in ``p-1`` rounds of ``p``.
- ``allpairs``: all_reduce inside one server as a direct reduce-scatter and all-gather
  between every pair (RCCL's MSCCL all-pairs algorithm): ``p(p-1)`` flows of ``2S/p``, 2
  steps.
- ``chain``: broadcast and reduce as a pipelined chain along the ring from/to the root:
  ``p-1`` coupled hops of ``S/C`` per channel, ``p-1`` steps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from simcluster.sim.torus import TorusGrid


@dataclass(frozen=True)
class AggregationTree:
    """The fabric switches that reduce one channel's data in-network (InfiniBand SHARP).

    Each server's head sends its data into ``leaves[k]``, the switch its NIC attaches to;
    every switch reduces what its children send and passes one stream to its parent; the
    root sends the result back down the same edges.

    Attributes:
        leaves: per server, the switch its head's NIC attaches to.
        edges: (child, parent) switch pairs from the leaves up to the root, each once; empty
            when every leaf is the same switch (it is the root).
    """

    leaves: tuple[str, ...]
    edges: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Layout:
    """The ranks of a group as the algorithms see them.

    Attributes:
        devices: accelerator per position; positions of one server are contiguous, in
            topology order.
        hosts: per server, its positions in order.
        rails: per position, the rail (host-local name of the NIC its traffic leaves
            through), or None.
        nvls_switch: per server (an NVLink domain: a server of the topology, however many
            accelerators it holds), the NVSwitch that can reduce in-switch for all its
            ranks, or None.
        rings: per server, the rings over its direct accelerator links (each a cyclic order
            of its positions, see :func:`mesh_rings`), or None where its ranks meet on a
            switch or no ring closes over direct links: there, rings follow topology order.
            Empty: None for every server.
        sharp: per channel rail (:meth:`channel_rails`), the SHARP aggregation tree of its
            heads (:meth:`head`); empty where the fabric cannot reduce for this group.
        torus: where the ranks sit on a torus fabric (``sim/torus.py``), or None.
    """

    devices: tuple[str, ...]
    hosts: tuple[tuple[int, ...], ...]
    rails: tuple[str | None, ...]
    nvls_switch: tuple[str | None, ...]
    rings: tuple[tuple[tuple[int, ...], ...] | None, ...] = ()
    sharp: tuple[AggregationTree, ...] = ()
    torus: TorusGrid | None = None

    @property
    def p(self) -> int:
        return len(self.devices)

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    @property
    def ring_count(self) -> int:
        """Rings per rail: the most any server has over its direct links (at least 1)."""
        return max((len(r) for r in self.rings if r), default=1)

    def order(self, server: int, ring: int) -> tuple[int, ...]:
        """Server ``server``'s positions in the order of its ring ``ring`` (modulo its number
        of rings), or in topology order where it has no mesh rings."""
        rings = self.rings[server] if self.rings else None
        return rings[ring % len(rings)] if rings else self.hosts[server]

    def head(self, server: int, rail: str | None) -> int:
        """The position that carries channel ``rail``'s traffic out of server ``server``: its
        first rank on that rail, or its first rank."""
        return next((i for i in self.hosts[server] if self.rails[i] == rail),
                    self.hosts[server][0])

    @property
    def uniform(self) -> bool:
        """Every server holds the same number of ranks."""
        return len({len(h) for h in self.hosts}) == 1

    def channel_rails(self) -> list[str | None]:
        """One rail per channel: the rails every server has, in the first server's order;
        a single rail-less channel inside one server or without a common rail."""
        if self.n_hosts == 1:
            return [None]
        first = [self.rails[i] for i in self.hosts[0]]
        common = [r for r in dict.fromkeys(first) if r is not None and all(
            any(self.rails[i] == r for i in h) for h in self.hosts[1:])]
        return list(common) if common else [None]


@dataclass(frozen=True)
class Phase:
    """Flows that run at once, then their latency steps.

    Attributes:
        paths: per flow, its waypoints (>= 2 node names).
        share: per flow, bytes per byte of the collective's size.
        intra_steps, inter_steps: sequential latency steps inside servers / across the network.
        coupled: the flows are stages of one pipeline: each moves its share at the same pace,
            set by the slowest (flows with a smaller share need proportionally less rate).
        efficiency: extra bandwidth factor of this phase (NVLS in-switch reduction).
        latency_us: latency beyond the steps (us, before ``latency_scale``), e.g. CollNet
            Direct's serialization over the ranks a head serves.
    """

    paths: tuple[tuple[str, ...], ...]
    share: np.ndarray
    intra_steps: int
    inter_steps: int
    coupled: bool = True
    efficiency: float = 1.0
    latency_us: float = 0.0


# -- rings over direct links (servers without a switch) -----------------------------------------

MAX_CHANNELS = 32  # NCCL's MAXCHANNELS: rings per server at most
SEARCH_STEPS = 20_000  # path extensions the packing search may try per candidate ring speed
_TOL = 1e-9


@functools.lru_cache(maxsize=256)
def mesh_rings(n: int, arcs: tuple[tuple[int, int, float], ...],
               max_channels: int = MAX_CHANNELS, steps: int = SEARCH_STEPS
               ) -> tuple[tuple[int, ...], ...]:
    """Rings over the direct links of ``n`` ranks that together move the most bandwidth.

    A ring is a directed Hamiltonian cycle over direct links, written from rank 0. All rings
    carry equal shares of the data (as NCCL's channels do), so a set of ``K`` rings runs at
    ``K x s``, where ``s`` is the least ``capacity / rings using it`` over its links; parallel
    links between a pair are one link of their summed capacity. The best ``s`` is one
    capacity divided by a whole number, so the search tries those speeds, highest bound
    first, and for each packs rings into the links' ``floor(capacity / s)`` units with a
    backtracking search of at most ``steps`` path extensions (deterministic; the best
    packing found counts when the budget runs out).

    Args:
        n: ranks, numbered 0..n-1.
        arcs: (from, to, capacity) per directed link; capacity in any unit.
        max_channels: rings at most.
        steps: search budget per speed.

    Returns:
        The rings (each a tuple of the ``n`` ranks, from 0), or ``()`` when no ring closes.
    """
    cap: dict[tuple[int, int], float] = {}
    for a, b, c in arcs:
        if a != b and c > 0:
            cap[(a, b)] = cap.get((a, b), 0.0) + c
    if n < 2 or not _pack(n, dict.fromkeys(cap, 1), 1, steps):
        return ()  # no ring closes over these links (or none was found within the budget)
    candidates = []
    for s in {c / k for c in set(cap.values()) for k in range(1, max_channels + 1)}:
        units = {e: math.floor(c / s * (1 + _TOL)) for e, c in cap.items()}
        out = [0] * n
        into = [0] * n
        for (a, b), u in units.items():
            out[a] += u
            into[b] += u
        bound = min(max_channels, *out, *into)
        if bound > 0:
            candidates.append((bound * s, s, bound, units))
    best: tuple[float, tuple[tuple[int, ...], ...]] = (0.0, ())
    # Highest bound first (compared at 9 digits, so rounding cannot reorder equal bounds),
    # then the highest speed: of equal totals, the fewest rings.
    candidates.sort(key=lambda t: (-float(f"{t[0]:.9g}"), -t[1]))
    for upper, s, bound, units in candidates:
        if upper <= best[0] * (1 + _TOL):
            break
        rings = _pack(n, units, bound, steps)
        if len(rings) * s > best[0] * (1 + _TOL):
            best = (len(rings) * s, rings)
    return best[1]


def _pack(n: int, units: dict[tuple[int, int], int], bound: int, steps: int
          ) -> tuple[tuple[int, ...], ...]:
    """Up to ``bound`` Hamiltonian cycles, each link used at most its units.

    Backtracking over cycles taken in order of their first hop from rank 0 (so that each
    set is tried in one order only); each cycle's other hops try the links with the most
    units left first, then the ranks with the fewest ways on (Warnsdorff's rule)."""
    left = dict(units)
    succ = {a: sorted(b for (x, b) in units if x == a) for a in range(n)}
    budget = steps
    chosen: list[tuple[int, ...]] = []
    best: list[tuple[int, ...]] = []

    def cycles(first: int) -> Iterator[tuple[int, ...]]:
        """Cycles on the links left, from 0, whose first hop is ``first`` or higher."""
        path = [0]
        seen = {0}

        def onward(b: int) -> int:
            return sum(1 for c in succ[b] if c not in seen and left[(b, c)] > 0)

        def extend() -> Iterator[tuple[int, ...]]:
            nonlocal budget
            a = path[-1]
            if len(path) == n:
                if left.get((a, 0), 0) > 0:
                    yield tuple(path)
                return
            nxt = [b for b in succ[a] if b not in seen and left[(a, b)] > 0]
            if a == 0:
                nxt = [b for b in nxt if b >= first]
            else:
                nxt.sort(key=lambda b: (-left[(a, b)], onward(b), b))
            for b in nxt:
                if budget <= 0:
                    return
                budget -= 1
                path.append(b)
                seen.add(b)
                yield from extend()
                seen.discard(b)
                path.pop()

        yield from extend()

    def use(ring: tuple[int, ...], d: int) -> None:
        for a, b in zip(ring, ring[1:] + ring[:1]):
            left[(a, b)] -= d

    def room(first: int) -> int:
        """Cycles that could still fit: the least units left out of or into any rank (out of
        rank 0: towards ``first`` or higher)."""
        out = [0] * n
        into = [0] * n
        for (a, b), u in left.items():
            if a or b >= first:
                out[a] += u
            into[b] += u
        return min(*out, *into)

    def search() -> bool:
        """Extend ``chosen``; True once ``bound`` cycles are found or the budget is spent."""
        nonlocal best
        if len(chosen) > len(best):
            best = list(chosen)
        if len(best) >= bound or budget <= 0:
            return True
        first = chosen[-1][1] if chosen else 0
        if len(chosen) + room(first) <= len(best):
            return False
        for ring in cycles(first):
            use(ring, 1)
            chosen.append(ring)
            done = search()
            chosen.pop()
            use(ring, -1)
            if done:
                return True
        return budget <= 0

    search()
    return tuple(best)


# -- ring orders ----------------------------------------------------------------------------------

def rotated(layout: Layout, order: tuple[int, ...], rail: str | None) -> list[int]:
    """A server's positions in ``order`` (topology order or one of its rings), starting at
    the one on ``rail`` (or as they are)."""
    start = next((k for k, i in enumerate(order) if layout.rails[i] == rail), 0)
    return list(order[start:]) + list(order[:start])


def ring_hops(layout: Layout, rail: str | None, pxn: bool = True, ring: int = 0
              ) -> list[tuple[str, ...]]:
    """The ``p`` hops of one ring channel, as waypoint tuples, in ring order from position 0
    of the channel's order. Inside each server the channel follows the server's ring
    ``ring`` (mesh servers) or topology order. The hop that leaves a server goes through the
    rank on the channel's rail (PXN) when ``pxn`` and that rank is not the one leaving."""
    d = layout.devices
    if layout.p == 1:
        return []
    seqs = [rotated(layout, layout.order(k, ring), rail) for k in range(layout.n_hosts)]
    hops: list[tuple[str, ...]] = []
    for k, seq in enumerate(seqs):
        hops += [(d[a], d[b]) for a, b in zip(seq, seq[1:])]
        nxt = seqs[(k + 1) % len(seqs)][0]
        last = seq[-1]
        if len(seqs) == 1:
            hops.append((d[last], d[nxt]))
        elif pxn and rail is not None and layout.rails[last] != rail and seq[0] != last:
            hops.append((d[last], d[seq[0]], d[nxt]))
        else:
            hops.append((d[last], d[nxt]))
    return hops


def layout_channels(layout: Layout) -> list[tuple[str | None, int]]:
    """The (rail, ring) of each channel: every server ring on every rail."""
    return [(rail, k) for rail in layout.channel_rails() for k in range(layout.ring_count)]


def _ring_steps(layout: Layout, laps: int) -> tuple[int, int]:
    total = laps * (layout.p - 1)
    inter = laps * (layout.n_hosts - 1)
    return total - inter, inter


def plan_ring(layout: Layout, collective: str, pxn: bool = True) -> list[Phase]:
    """Ring all_reduce / all_gather / reduce_scatter / barrier over ``C`` rail channels (times
    the rings of mesh servers)."""
    p = layout.p
    if p <= 1:
        return []
    channels = layout_channels(layout)
    laps = 2 if collective in ("all_reduce", "barrier") else 1
    per_hop = {"all_reduce": 2 * (p - 1) / p, "barrier": 0.0}.get(collective, (p - 1) / p)
    paths = [hop for rail, k in channels for hop in ring_hops(layout, rail, pxn, k)]
    share = np.full(len(paths), per_hop / len(channels))
    intra, inter = _ring_steps(layout, laps)
    return [Phase(tuple(paths), share, intra, inter)]


def plan_chain(layout: Layout, root: int, pxn: bool = True, to_root: bool = False
               ) -> list[Phase]:
    """Pipelined chain along each channel's ring from position ``root`` (broadcast), or the
    same hops reversed so that data flows to the root (reduce)."""
    p = layout.p
    if p <= 1:
        return []
    channels = layout_channels(layout)
    paths: list[tuple[str, ...]] = []
    root_dev = layout.devices[root]
    for rail, ring in channels:
        hops = ring_hops(layout, rail, pxn, ring)
        start = next(k for k, h in enumerate(hops) if h[0] == root_dev)
        chain = [hops[(start + k) % p] for k in range(p - 1)]
        paths += [h[::-1] for h in chain] if to_root else chain
    intra, inter = _ring_steps(layout, 1)
    return [Phase(tuple(paths), np.full(len(paths), 1.0 / len(channels)), intra, inter)]


def tree_parents(n: int, mirrored: bool) -> list[int]:
    """Parent of each server in a heap-ordered binary tree (root -1); the mirrored tree
    numbers servers from the other end, so its leaves are the first tree's inner nodes."""
    order = list(range(n))[::-1] if mirrored else list(range(n))
    parents = [-1] * n
    for k in range(1, n):
        parents[order[k]] = order[(k - 1) // 2]
    return parents


def plan_tree(layout: Layout) -> list[Phase]:
    """Double binary tree across servers, chain inside each (all_reduce, N >= 2): along each
    channel's ring, from the rank on its rail."""
    d = layout.devices
    channels = layout_channels(layout)
    paths: list[tuple[str, ...]] = []
    for rail, ring in channels:
        chains = [rotated(layout, layout.order(k, ring), rail) for k in range(layout.n_hosts)]
        for mirrored in (False, True):
            for chain in chains:  # reduce towards the head, broadcast back
                paths += [(d[b], d[a]) for a, b in zip(chain, chain[1:])]
                paths += [(d[a], d[b]) for a, b in zip(chain, chain[1:])]
            for child, parent in enumerate(tree_parents(layout.n_hosts, mirrored)):
                if parent >= 0:
                    c, q = d[chains[child][0]], d[chains[parent][0]]
                    paths += [(c, q), (q, c)]
    share = np.full(len(paths), 1.0 / (2 * len(channels)))
    g = max(len(h) for h in layout.hosts)
    return [Phase(tuple(paths), share, 2 * (g - 1), 2 * math.ceil(math.log2(layout.n_hosts)))]


def plan_hierarchical(layout: Layout, pxn: bool = True) -> list[Phase]:
    """Reduce-scatter in each server, all-reduce across servers per rail, all-gather in each
    server (all_reduce, N >= 2, the same number of ranks per server)."""
    d = layout.devices
    g = len(layout.hosts[0])
    n = layout.n_hosts
    local: list[tuple[str, ...]] = []
    shares: list[float] = []
    for k in range(n if g > 1 else 0):
        rings = (layout.rings[k] if layout.rings else None) or (layout.hosts[k],)
        for r in rings:  # a ring in topology order, or each of the server's mesh rings
            local += [(d[r[j]], d[r[(j + 1) % g]]) for j in range(g)]
            shares += [(g - 1) / g / len(rings)] * g
    inner = Phase(tuple(local), np.array(shares), g - 1, 0)
    cross = [(d[layout.hosts[k][j]], d[layout.hosts[(k + 1) % n][j]])
             for j in range(g) for k in range(n)]
    across = Phase(tuple(cross), np.full(len(cross), 2 * (n - 1) / n / g), 0, 2 * (n - 1))
    return [inner, across, inner] if g > 1 else [across]


def plan_all_to_all(layout: Layout, pairwise: bool) -> list[Phase]:
    """Direct (all pairs at once) or pairwise (p-1 rounds of i -> i+k) all_to_all."""
    p, d = layout.p, layout.devices
    if p <= 1:
        return []
    cross = int(layout.n_hosts > 1)
    rounds = [[(d[i], d[(i + k) % p]) for i in range(p)] for k in range(1, p)]
    if not pairwise:
        rounds = [[hop for r in rounds for hop in r]]
    return [Phase(tuple(r), np.full(len(r), 1.0 / p), 1 - cross, cross, coupled=False)
            for r in rounds]


def plan_allpairs(layout: Layout) -> list[Phase]:
    """All-reduce as a direct reduce-scatter then all-gather between every pair of ranks: each
    rank sends ``S/p`` to each peer twice (``2S/p`` per ordered pair), in 2 steps."""
    p, d = layout.p, layout.devices
    pairs = tuple((d[i], d[j]) for i in range(p) for j in range(p) if i != j)
    return [Phase(pairs, np.full(len(pairs), 2.0 / p), 2, 0, coupled=False)]

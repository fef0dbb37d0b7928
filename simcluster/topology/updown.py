"""Closed-form least-cost routes on two-level fabrics (leaf-spine, rail-optimized).

The generic router finds the fabric part of a route with one Dijkstra per destination switch
over the whole fabric, which is quadratic in the number of leaves. The ``leaf-spine`` and
``rail-optimized`` templates build a *complete bipartite* fabric: every leaf is linked both
ways to every spine and to nothing else in the fabric. There the least-cost paths have a
closed form, provided no fabric link ``x -> y`` costs ``2m`` or more above both the cheapest
link leaving ``x`` and the cheapest link entering ``y`` (``m``: the cheapest fabric link), which
:func:`two_level` checks (the templates' links cost the same both ways and to every spine, so
they always pass, oversubscribed and with partly filled leaves too):

- between the two sides, the direct link is the only least-cost path: any other path from
  ``x`` to ``t`` has at least three hops, so it costs at least ``min_out(x) + 2m`` and at
  least ``2m + min_in(t)``, more than ``c(x, t)``;
- within one side, the least-cost paths are exactly the two-hop ones ``x -> p -> t`` of least
  ``c(x, p) + c(p, t)``: a path of four or more hops whose last switch before ``t`` is ``p``
  costs at least ``c(p, t)`` plus ``min_out(x) + 2m`` and plus ``2m + min_in(p)``, more
  than ``c(x, p) + c(p, t)``.

So the distances and the equal-cost next hops (in the same order as the generic router
lists them: the order of the switch's outgoing links) equal what Dijkstra gives, at the cost
of one pass over the uplinks of a switch. Fabrics of any other shape return None and keep
the generic router.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Adjacency = Mapping[str, Sequence[tuple[str, int, int]]]


@dataclass
class TwoLevel:
    """A complete bipartite fabric: ``side[n]`` (0 or 1) for each fabric switch, the cost and
    the link id of each fabric link, and the adjacency (neighbour, link id, cost) of each
    switch."""

    side: dict[str, int]
    cost: dict[tuple[str, str], int]
    link: dict[tuple[str, str], int]
    succ: Adjacency
    members: tuple[tuple[str, ...], tuple[str, ...]]
    _dist: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    _hops: dict[tuple[str, str], list[tuple[str, int]]] = field(default_factory=dict,
                                                                repr=False)

    def dist(self, x: str, t: str) -> int:
        """Least cost from switch ``x`` to switch ``t`` through the fabric."""
        if x == t:
            return 0
        key = (x, t)
        hit = self._dist.get(key)
        if hit is None:
            if self.side[x] != self.side[t]:
                hit = self.cost[x, t]
            else:
                cost = self.cost
                hit = min(cost[x, y] + cost[y, t] for y in self.members[1 - self.side[x]])
            self._dist[key] = hit
        return hit

    def next_hops(self, u: str, t: str) -> list[tuple[str, int]]:
        """Equal-cost next hops (switch, link id) from ``u`` towards ``t`` (``u != t``), in
        the order of ``u``'s outgoing links."""
        key = (u, t)
        hit = self._hops.get(key)
        if hit is None:
            if self.side[u] != self.side[t]:
                hit = [(t, self.link[u, t])]
            else:
                here, side, cost = self.dist(u, t), self.side, self.cost
                hit = [(v, link) for v, link, c in self.succ[u]
                       if side.get(v, -1) == 1 - side[u] and c + cost[v, t] == here]
            self._hops[key] = hit
        return hit


def two_level(switches: Sequence[str], succ: Adjacency,
              is_switch: Callable[[str], bool]) -> TwoLevel | None:
    """The closed form for the fabric of ``switches`` (host-less forwarding nodes, in topology
    order; ``succ`` their outgoing links), or None when it is not complete bipartite with
    both sides non-empty, or when a link costs too much more than its neighbours (see
    the module's docstring)."""
    if len(switches) < 2:
        return None
    fabric = [(u, [(v, c) for v, _, c in succ[u] if is_switch(v)]) for u in switches]
    link = {(u, v): i for u in switches for v, i, _ in succ[u] if is_switch(v)}
    side = _two_colour(switches, dict(fabric))
    if side is None:
        return None
    members = (tuple(n for n in switches if side[n] == 0),
               tuple(n for n in switches if side[n] == 1))
    if not members[0] or not members[1]:
        return None
    cost: dict[tuple[str, str], int] = {}
    for u, out in fabric:
        if len(out) != len(members[1 - side[u]]) or len({v for v, _ in out}) != len(out):
            return None  # not linked to every switch of the other side exactly once
        for v, c in out:
            cost[u, v] = c
    m = min(cost.values())
    min_out: dict[str, int] = {}
    min_in: dict[str, int] = {}
    for (u, v), c in cost.items():
        min_out[u] = min(min_out.get(u, c), c)
        min_in[v] = min(min_in.get(v, c), c)
    if any(c >= 2 * m + max(min_out[u], min_in[v]) for (u, v), c in cost.items()):
        return None  # a detour might cost as little as a direct link
    return TwoLevel(side=side, cost=cost, link=link, succ=succ, members=members)


def _two_colour(switches: Sequence[str], out: dict[str, list[tuple[str, int]]]
                ) -> dict[str, int] | None:
    """A side per switch such that every link joins the two sides (the fabric connected and
    bipartite), else None."""
    side = {switches[0]: 0}
    stack = [switches[0]]
    while stack:
        u = stack.pop()
        for v, _ in out[u]:
            if v not in side:
                side[v] = 1 - side[u]
                stack.append(v)
            elif side[v] == side[u]:
                return None
    return side if len(side) == len(switches) else None

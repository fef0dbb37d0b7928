"""Closed-form least-cost routes on the fabric templates (leaf-spine, rail-optimized, fat-tree).

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

The ``fat-tree`` template's links all cost the same and its pods, aggregation and core
switches are wired so that hop counts to an edge switch have a closed form too
(:func:`fat_tree` checks the wiring, see :class:`FatTree`).

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

    def supports(self, t: str) -> bool:
        """Routes towards switch ``t`` have a closed form (every switch here)."""
        return True

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


@dataclass
class FatTree:
    """A fat-tree whose fabric links all cost ``cost``: ``level`` 0 (edge), 1 (aggregation)
    or 2 (core) per switch, ``pod`` per edge and aggregation switch. Every edge switch is
    linked both ways to every aggregation switch of its pod, every core to exactly one
    aggregation switch of every pod, every aggregation switch to a core (when there are two
    pods or more), and there are no other fabric links. Least-cost paths are then the
    least-hop ones, and the hops to an edge switch ``t`` are: from an edge switch 0 (itself),
    2 (same pod) or 4; from an aggregation switch 1 (same pod) or 3; from a core 2 (a
    shorter path would need a link that the wiring rules out)."""

    level: dict[str, int]
    pod: dict[str, int]
    cost: int
    succ: Adjacency
    _hops: dict[tuple[str, str], list[tuple[str, int]]] = field(default_factory=dict,
                                                                repr=False)

    def supports(self, t: str) -> bool:
        """Routes towards switch ``t`` have a closed form: ``t`` is an edge switch."""
        return self.level.get(t) == 0

    def hops(self, x: str, t: str) -> int:
        """Least hops from switch ``x`` to edge switch ``t``."""
        lx = self.level[x]
        if lx == 2:
            return 2
        same = self.pod[x] == self.pod[t]
        if lx == 1:
            return 1 if same else 3
        return 0 if x == t else (2 if same else 4)

    def dist(self, x: str, t: str) -> int:
        """Least cost from switch ``x`` to edge switch ``t``."""
        return self.cost * self.hops(x, t)

    def next_hops(self, u: str, t: str) -> list[tuple[str, int]]:
        """Equal-cost next hops (switch, link id) from ``u`` towards edge switch ``t``
        (``u != t``), in the order of ``u``'s outgoing links."""
        key = (u, t)
        hit = self._hops.get(key)
        if hit is None:
            want, level = self.hops(u, t) - 1, self.level
            hit = [(v, link) for v, link, _ in self.succ[u]
                   if v in level and self.hops(v, t) == want]
            self._hops[key] = hit
        return hit


_LEVELS = {"edge": 0, "agg": 1, "core": 2}


def fat_tree(switches: Sequence[str], succ: Adjacency, is_switch: Callable[[str], bool],
             role: Callable[[str], str | None]) -> FatTree | None:
    """The closed form for a fabric of ``switches`` whose ``role`` is edge, agg or core (as
    the fat-tree template names them), or None when its links or wiring differ from what
    :class:`FatTree` needs."""
    level = {n: _LEVELS.get(role(n) or "", -1) for n in switches}
    if not switches or min(level.values()) < 0:
        return None
    out = {u: {v: c for v, _, c in succ[u] if is_switch(v)} for u in switches}
    costs = {c for o in out.values() for c in o.values()}
    if len(costs) != 1 or any(abs(level[u] - level[v]) != 1 or u not in out[v]
                              for u in switches for v in out[u]):
        return None
    pod = _pods(switches, out, level)
    if pod is None:
        return None
    pods = len(set(pod.values()))
    for u in switches:
        ups = [v for v in out[u] if level[v] == level[u] + 1]
        if level[u] == 2 and sorted(pod[v] for v in out[u]) != list(range(pods)):
            return None  # a core must reach every pod through exactly one switch
        if level[u] == 1 and pods > 1 and not ups:
            return None
    return FatTree(level=level, pod=pod, cost=costs.pop(), succ=succ)


def _pods(switches: Sequence[str], out: dict[str, dict[str, int]], level: dict[str, int]
          ) -> dict[str, int] | None:
    """Pods numbered 0.. (the components of edge-aggregation links), each with edge and
    aggregation switches, every edge switch linked to every aggregation switch of its pod;
    else None."""
    pod: dict[str, int] = {}
    members: list[list[str]] = []
    for n in switches:
        if level[n] == 2 or n in pod:
            continue
        pod[n] = len(members)
        group, stack = [n], [n]
        while stack:
            u = stack.pop()
            for v in out[u]:
                if level[v] < 2 and v not in pod:
                    pod[v] = pod[n]
                    group.append(v)
                    stack.append(v)
        members.append(group)
    for group in members:
        edges = [n for n in group if level[n] == 0]
        aggs = {n for n in group if level[n] == 1}
        if not edges or not aggs:
            return None
        if any({v for v in out[e] if level[v] == 1} != aggs for e in edges):
            return None
    return pod

"""SHARP aggregation trees: which fabric switches reduce a channel's data, and how they chain.

For a group on several servers, each channel (NIC rail) has one head per server
(:meth:`~simcluster.sim.collectives.Layout.head`). Its tree starts at the switches the heads'
NICs attach to (the leaves). If they are one switch, that switch is the root. Otherwise the
root is the switch that every leaf reaches in the fewest hops over fabric switches (ties: the
least summed distance, then the channel's turn among the tied switches in name order, so the
channels of a rail-optimized fabric spread over the spines), and each switch's parent is the
next hop of its route to the root. Every switch on the tree must reduce in-network (its
``sharp`` attribute); where one does not, or a head has no NIC, the group gets no tree and the
CollNet algorithms do not apply.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise

from simcluster.sim.collectives import AggregationTree, Layout
from simcluster.topology.cluster import Cluster
from simcluster.topology.routing import Router


def aggregation_trees(cluster: Cluster, router: Router, layout: Layout
                      ) -> tuple[AggregationTree, ...]:
    """One tree per channel rail of ``layout`` (in :meth:`Layout.channel_rails` order), or
    none where some channel has no tree of SHARP switches (or the group is on one server)."""
    if layout.n_hosts < 2:
        return ()
    trees = []
    for c, rail in enumerate(layout.channel_rails()):
        heads = [layout.devices[layout.head(k, rail)] for k in range(layout.n_hosts)]
        tree = _tree(cluster, router, heads, c)
        if tree is None:
            return ()
        trees.append(tree)
    return tuple(trees)


def _sharp(cluster: Cluster, node: str) -> bool:
    attrs = cluster.graph.nodes[node]
    return attrs["kind"] == "switch" and bool(attrs.get("sharp"))


def _leaf(cluster: Cluster, device: str) -> str | None:
    """The SHARP switch that ``device``'s NIC attaches to (the first by name), or None."""
    nic = cluster.graph.nodes[device].get("nic")
    if nic is None:
        return None
    switches = sorted(n for n in cluster.graph.succ[nic] if _sharp(cluster, n))
    return switches[0] if switches else None


def _tree(cluster: Cluster, router: Router, heads: list[str], turn: int
          ) -> AggregationTree | None:
    leaves = [_leaf(cluster, h) for h in heads]
    if any(leaf is None for leaf in leaves):
        return None
    found = [leaf for leaf in leaves if leaf is not None]
    distinct = sorted(set(found))
    if len(distinct) == 1:
        return AggregationTree(tuple(found))
    root = _root(cluster, distinct, turn)
    if root is None:
        return None
    parent: dict[str, str] = {}
    for leaf in distinct:
        hops = router.route(leaf, root).links.tolist()
        path = [leaf] + [cluster.link_dst[i] for i in hops]
        if not all(_sharp(cluster, n) for n in path):
            return None
        for a, b in pairwise(path):
            if a in parent:  # joins the tree built so far
                break
            parent[a] = b
    return AggregationTree(tuple(found), tuple(parent.items()))


def _distances(cluster: Cluster, start: str) -> dict[str, int]:
    """Hops from ``start`` to every SHARP switch it reaches over SHARP switches."""
    dist = {start: 0}
    todo = deque([start])
    while todo:
        a = todo.popleft()
        for b in cluster.graph.succ[a]:
            if b not in dist and _sharp(cluster, b):
                dist[b] = dist[a] + 1
                todo.append(b)
    return dist


def _root(cluster: Cluster, leaves: list[str], turn: int) -> str | None:
    """The switch every leaf reaches in the fewest hops (the ``turn``-th of the tied ones)."""
    maps = [_distances(cluster, leaf) for leaf in leaves]
    common = set(maps[0]).intersection(*maps[1:])
    if not common:
        return None
    cost = {n: (max(m[n] for m in maps), sum(m[n] for m in maps)) for n in common}
    best = min(cost.values())
    tied = sorted(n for n, c in cost.items() if c == best)
    return tied[turn % len(tied)]

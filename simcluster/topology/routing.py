"""Routes between graph nodes, computed once per (src, dst) and cached as link-id arrays.

A route minimises the summed integer cost of its hops (1 per hop plus 1e4/bandwidth_GBps, see
``builder.route_cost``), so traffic prefers NVLink over PCIe and short paths over long ones.
Accelerators and memories never forward traffic: only switches, NICs and CPUs (PCIe root
complexes) appear inside a route.

Routing is hierarchical so that it stays cheap at thousands of accelerators:

1. inside one host, a shortest path over that host's nodes;
2. between hosts, the source's NIC (an accelerator's own ``nic``, else the nearest gateway),
   then a shortest path over the fabric switches, then the destination's NIC. On the fabric
   templates (leaf-spine, rail-optimized, fat-tree) that path has a closed form
   (``updown.py``), checked to give the same routes; other fabrics use Dijkstra.

Equal-cost choices are deterministic. Across the fabric they follow destination-mod-k, the
static routing of InfiniBand fat-trees (e.g. OpenSM's ftree engine): the destination's
ordinal (endpoints numbered switch by switch, port by port), read digit by digit in mixed
radix, picks the branch at each choice, so the traffic to the destinations behind one switch
spreads evenly over parallel spines, and upper levels over the cores. Inside a host, ties are broken by a CRC32 hash of the host-local names.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from simcluster.errors import TopologyError
from simcluster.topology.cluster import TRANSIT_KINDS, Cluster
from simcluster.topology.updown import FatTree, TwoLevel, fat_tree, two_level


@dataclass(frozen=True)
class Route:
    """A route: its directed link ids in order; ``latency_us`` sums their one-way latency."""

    links: np.ndarray
    link_latency_us: np.ndarray = field(repr=False, compare=False)

    @cached_property
    def latency_us(self) -> float:
        return float(self.link_latency_us[self.links].sum())


def _hash(*parts: str) -> int:
    return zlib.crc32("\x1f".join(parts).encode())


class Router:
    """Computes and caches routes on one Cluster."""

    def __init__(self, cluster: Cluster, closed_form: bool = True) -> None:
        """``closed_form=False`` keeps the generic Dijkstra on every fabric (the reference
        the closed form is tested against). A cluster with failed links
        (``Cluster.down_links``) always takes the generic search: the closed forms assume
        the templates' complete wiring."""
        self._c = cluster
        self._g = cluster.graph
        nodes = self._g.nodes
        self._host = {n: nodes[n].get("host") for n in nodes}
        self._transit = {n: nodes[n]["kind"] in TRANSIT_KINDS for n in nodes}
        self._by_host_kind: dict[tuple[str | None, str], list[str]] = {}
        for n in nodes:
            self._by_host_kind.setdefault((self._host[n], nodes[n]["kind"]), []).append(n)
        self._cost_of_link = cluster.route_cost
        # Plain adjacency, (neighbour, link id, cost): networkx views are slow to iterate.
        self._succ: dict[str, list[tuple[str, int, int]]] = {n: [] for n in nodes}
        self._pred: dict[str, list[tuple[str, int, int]]] = {n: [] for n in nodes}
        down = cluster.down_links
        for i, (u, v, cost) in enumerate(zip(cluster.link_src, cluster.link_dst,
                                             cluster.route_cost.tolist())):
            if i in down:
                continue  # a failed link carries nothing
            self._succ[u].append((v, i, cost))
            self._pred[v].append((u, i, cost))
        self._edge_id = {(u, v): i for i, (u, v) in enumerate(zip(cluster.link_src,
                                                                   cluster.link_dst))
                         if i not in down}
        self._hops: dict[tuple[str | None, str, str], list[tuple[str, int]]] = {}
        self._nearest: dict[tuple[str, str], str | None] = {}
        self._nearest_local: dict[tuple[int, str, str], str] = {}
        self._routes: dict[tuple[str, str], Route] = {}
        self._local: dict[tuple[int, str, str], np.ndarray] = {}
        self._dist: dict[tuple[str | None, str], dict[str, int]] = {}
        self._gateway: dict[tuple[str, bool], str] = {}
        self._ordinals: dict[str, int] = {}
        self._side_cache: dict[tuple[str, bool], tuple[tuple[str, int], ...]] = {}
        self._middle: dict[tuple[Any, ...], list[str]] = {}
        self._closed_form = closed_form and not cluster.down_links
        self._closed_fabric: TwoLevel | FatTree | None | bool = False  # False: not yet

    # -- public -------------------------------------------------------------------------------

    def route(self, src: str, dst: str) -> Route:
        """The cached route from ``src`` to ``dst`` (empty when they are the same node).

        Raises:
            TopologyError: no route exists.
        """
        key = (src, dst)
        hit = self._routes.get(key)
        if hit is not None:
            return hit
        hs, hd = self._host[src], self._host[dst]
        if src == dst:
            links = np.zeros(0, dtype=np.int32)
        elif hs is not None and hs == hd:
            links = self._in_host(hs, src, dst)
            if self._own_router(src) and self._own_router(dst):
                # Chips with their own fabric router (a torus): ICI may beat the host's PCIe.
                out = self._across(src, dst, hs, hd)
                if self._cost_of_link[out].sum() < self._cost_of_link[links].sum():
                    links = out
        else:
            links = self._across(src, dst, hs, hd)
        r = Route(links=links, link_latency_us=self._c.latency_us)
        self._routes[key] = r
        return r

    def _across(self, src: str, dst: str, hs: str | None, hd: str | None) -> np.ndarray:
        """Links from ``src`` out of its host, across the fabric, into ``dst``'s host."""
        x = src if hs is None else self._gateway_of(src, leaving=True)
        y = dst if hd is None else self._gateway_of(dst, leaving=False)
        parts = [self._ids(self._fabric(x, y, src, dst))]
        if hs is not None:
            parts.insert(0, self._in_host(hs, src, x))
        if hd is not None:
            parts.append(self._in_host(hd, y, dst))
        return np.concatenate(parts).astype(np.int32, copy=False)

    def _own_router(self, node: str) -> bool:
        """The node leaves its host through a fabric switch linked to it directly."""
        nic = self._g.nodes[node].get("nic")
        return nic is not None and self._host.get(nic) is None and (node, nic) in self._edge_id

    def path(self, src: str, dst: str) -> list[str]:
        """The node sequence of the route from ``src`` to ``dst``."""
        links = self.route(src, dst).links
        if len(links) == 0:
            return [src]
        return [self._c.link_src[int(links[0])]] + [self._c.link_dst[int(i)] for i in links]

    def nearest(self, src: str, kind: str) -> str | None:
        """The node of ``kind`` closest to ``src`` (same host first), or None if unreachable."""
        key = (src, kind)
        if key in self._nearest:
            return self._nearest[key]
        host = self._host[src]
        tpl = self._c.template_hosts.get(host) if host else None
        local_key = (tpl[0], src[len(host) + 1:], kind) if tpl and host else None
        if local_key is not None and local_key in self._nearest_local:
            # Every host of a template has the same answer, in host-local names.
            self._nearest[key] = f"{host}/{self._nearest_local[local_key]}"
            return self._nearest[key]
        cands = self._by_host_kind.get((self._host[src], kind)) or [
            n for (_, k), ns in self._by_host_kind.items() if k == kind for n in ns]
        best: tuple[int, str] | None = None
        for n in cands:
            try:
                cost = int(self._cost_of_link[self.route(src, n).links].sum())
            except TopologyError:
                continue
            if best is None or cost < best[0]:
                best = (cost, n)
        self._nearest[key] = best[1] if best else None
        if local_key is not None and best is not None and host is not None:
            self._nearest_local[local_key] = best[1][len(host) + 1:]
        return self._nearest[key]

    # -- internals ----------------------------------------------------------------------------

    def _ids(self, nodes: list[str]) -> np.ndarray:
        edge_id = self._edge_id
        return np.fromiter((edge_id[u, v] for u, v in itertools.pairwise(nodes)),
                           dtype=np.int32, count=len(nodes) - 1)

    def _next_hops(self, domain: str | None, u: str, dst: str, dist: dict[str, int]
                   ) -> list[tuple[str, int]]:
        """Equal-cost next hops (node, link id) from ``u`` towards ``dst``; cached."""
        key = (domain, u, dst)
        hit = self._hops.get(key)
        if hit is None:
            host, transit = self._host, self._transit
            here = dist[u]
            hit = [
                (v, link) for v, link, cost in self._succ[u]
                if v in dist and (v == dst or (transit[v] and host[v] == domain))
                and dist[v] + cost == here
            ]
            self._hops[key] = hit
        return hit

    def _in_host(self, host: str, a: str, b: str) -> np.ndarray:
        """Link ids from ``a`` to ``b`` inside ``host``; computed once per template."""
        tpl = self._c.template_hosts.get(host)
        if tpl is None:
            return self._ids(self._walk(host, a, b))
        template, base = tpl
        cut = len(host) + 1
        key = (template, a[cut:], b[cut:])
        offsets = self._local.get(key)
        if offsets is None:
            offsets = self._ids(self._walk(host, a, b, strip=cut)) - base
            self._local[key] = offsets
        return offsets + base

    def _dist_to(self, domain: str | None, target: str) -> dict[str, int]:
        """Least cost from each node of ``domain`` to ``target``, forwarding only through
        transit nodes (Dijkstra on reversed edges; cached)."""
        key = (domain, target)
        hit = self._dist.get(key)
        if hit is not None:
            return hit
        pred, host = self._pred, self._host
        dist: dict[str, int] = {target: 0}
        heap: list[tuple[int, str]] = [(0, target)]
        done: set[str] = set()
        while heap:
            d, v = heapq.heappop(heap)
            if v in done:
                continue
            done.add(v)
            if v != target and not self._transit[v]:
                continue  # reachable as an endpoint, but it forwards nothing
            for u, _, cost in pred[v]:
                if host[u] != domain:
                    continue
                nd = d + cost
                if nd < dist.get(u, 1 << 62):
                    dist[u] = nd
                    heapq.heappush(heap, (nd, u))
        self._dist[key] = dist
        return dist

    def _walk(self, domain: str | None, src: str, dst: str, strip: int = 0,
              selector: int | None = None) -> list[str]:
        """Shortest path inside ``domain``. Equal-cost next hops are chosen by ``selector``'s
        mixed-radix digits when given (destination-mod-k), else by a hash of the names with
        their first ``strip`` characters removed (host-local names, so that all hosts of a
        template choose alike)."""
        if src == dst:
            return [src]
        dist = self._dist_to(domain, dst)
        if src not in dist and self._host[src] != domain:
            # Entering the domain from outside it (a fabric router into its chip's host).
            host, transit = self._host, self._transit
            entries = [cost + dist[v] for v, _, cost in self._succ[src] if v in dist and (
                v == dst or (transit[v] and host[v] == domain))]
            if entries:
                dist[src] = min(entries)
        if src not in dist:
            where = f"inside host {domain!r}" if domain else "across the fabric"
            raise TopologyError(
                f"{self._c.source}: no route from {src!r} to {dst!r} {where}; add links that "
                "join them (through switches, NICs or CPUs: accelerators do not forward)."
            )
        out = [src]
        u = src
        while u != dst:
            hops = self._next_hops(domain, u, dst, dist)
            if len(hops) == 1:
                u = hops[0][0]
            elif selector is not None:
                u = hops[selector % len(hops)][0]
                selector //= len(hops)
            else:
                u = hops[_hash(src[strip:], dst[strip:], u[strip:]) % len(hops)][0]
            out.append(u)
        return out

    def _gateway_of(self, node: str, leaving: bool) -> str:
        """Where traffic leaves (or enters) ``node``'s host: its own NIC if it names one, else
        the nearest host node with a link to the fabric."""
        key = (node, leaving)
        hit = self._gateway.get(key)
        if hit is not None:
            return hit
        nic = self._g.nodes[node].get("nic")
        if nic is None:
            host = self._host[node]
            adj = self._succ if leaving else self._pred
            gates = [
                n for n in self._g.nodes
                if self._host[n] == host and self._transit[n]
                and any(self._host[m] is None for m, _, _ in adj[n])
            ]
            scored = []
            for gate in gates:
                dist = self._dist_to(host, gate if leaving else node)
                probe = node if leaving else gate
                if probe in dist:
                    scored.append((dist[probe], gate))
            if not scored:
                raise TopologyError(
                    f"{self._c.source}: host {host!r} of {node!r} has no link to the fabric; "
                    "add a fabric: section, NICs, or links that leave the host."
                )
            best = min(c for c, _ in scored)
            ties = [g for c, g in scored if c == best]
            nic = ties[_hash(node) % len(ties)]
        self._gateway[key] = nic
        return nic

    def _fabric(self, x: str, y: str, src: str, dst: str) -> list[str]:
        """Path from gateway ``x`` to gateway ``y`` over fabric (host-less) transit nodes."""
        if x == y:
            return [x]
        if (x, y) in self._edge_id:
            return [x, y]
        ups, downs = self._fabric_side(x, up=True), self._fabric_side(y, up=False)
        port = self._port(y)
        key = (ups, downs, port)
        middle = self._middle.get(key)
        if middle is None:
            middle = self._fabric_middle(ups, downs, port)
            self._middle[key] = middle
        if not middle:
            raise TopologyError(
                f"{self._c.source}: no route from {src!r} to {dst!r}: {x!r} and {y!r} are not "
                "joined by the fabric; check the fabric: section and links."
            )
        return [x, *middle, y]

    def _fabric_side(self, node: str, up: bool) -> tuple[tuple[str, int], ...]:
        """Fabric switches ``node`` sends to (``up``) or receives from, with the hop's cost."""
        key = (node, up)
        hit = self._side_cache.get(key)
        if hit is None:
            cost = self._cost_of_link
            adj = self._succ[node] if up else self._pred[node]
            hit = tuple((n, int(cost[i])) for n, i, _ in adj if self._fabric_transit(n))
            self._side_cache[key] = hit
        return hit

    def _fabric_middle(self, ups: tuple[tuple[str, int], ...],
                       downs: tuple[tuple[str, int], ...], port: int) -> list[str]:
        """The switches between an up switch of the source and a down switch of the
        destination, least cost first, ties by destination-mod-k; [] if none."""
        fast = self._closed()
        if fast is not None and not all(fast.supports(d) for d, _ in downs):
            fast = None
        options: list[tuple[int, str, str]] = []
        for d, c_down in downs:
            if fast is not None:
                options.extend((c_up + fast.dist(u, d) + c_down, u, d) for u, c_up in ups)
                continue
            dist = self._dist_to(None, d)
            for u, c_up in ups:
                if u in dist:
                    options.append((c_up + dist[u] + c_down, u, d))
        if not options:
            return []
        best = min(c for c, _, _ in options)
        ties = [(u, d) for c, u, d in options if c == best]
        u, d = ties[port % len(ties)]
        if fast is not None:
            return _closed_walk(fast, u, d, port // len(ties))
        return self._walk(None, u, d, selector=port // len(ties))

    def _closed(self) -> TwoLevel | FatTree | None:
        """The closed form of the fabric's routes (two-level fabrics, fat-trees), else
        None."""
        if self._closed_fabric is False:
            found: TwoLevel | FatTree | None = None
            if self._closed_form:
                nodes = self._g.nodes
                switches = [n for n in nodes if self._fabric_transit(n)]
                found = (two_level(switches, self._succ, self._fabric_transit)
                         or fat_tree(switches, self._succ, self._fabric_transit,
                                     lambda n: nodes[n].get("role")))
            self._closed_fabric = found
        return self._closed_fabric  # type: ignore[return-value]

    def _port(self, node: str) -> int:
        """The destination's ordinal for destination-mod-k: endpoints numbered switch by
        switch (in topology order), port by port, so that the low digit is the port on the
        last switch and higher digits tell the switches apart."""
        if not self._ordinals:
            for sw in self._g.nodes:
                if not self._fabric_transit(sw):
                    continue
                for v, _, _ in self._succ[sw]:
                    if not self._fabric_transit(v) and v not in self._ordinals:
                        self._ordinals[v] = len(self._ordinals)
        return self._ordinals.get(node, 0)

    def _fabric_transit(self, n: str) -> bool:
        return self._host[n] is None and self._transit[n]


def _closed_walk(fabric: TwoLevel | FatTree, u: str, d: str, selector: int) -> list[str]:
    """``Router._walk`` over a fabric in closed form: equal-cost next hops by ``selector``'s
    mixed-radix digits."""
    out = [u]
    while u != d:
        hops = fabric.next_hops(u, d)
        if len(hops) == 1:
            u = hops[0][0]
        else:
            u = hops[selector % len(hops)][0]
            selector //= len(hops)
        out.append(u)
    return out

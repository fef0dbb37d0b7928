"""Routes between graph nodes, computed once per (src, dst) and cached as link-id arrays.

A route minimises the summed integer cost of its hops (1 per hop plus 1e4/bandwidth_GBps, see
``build._route_cost``), so traffic prefers NVLink over PCIe and short paths over long ones.
Accelerators and memories never forward traffic: only switches, NICs and CPUs (PCIe root
complexes) appear inside a route.

Routing is hierarchical so that it stays cheap at thousands of accelerators:

1. inside one host, a shortest path over that host's nodes;
2. between hosts, the source's NIC (an accelerator's own ``nic``, else the nearest gateway),
   then a shortest path over the fabric switches, then the destination's NIC.

Equal-cost choices (ECMP) are made per hop by a CRC32 hash of (src, dst, hop node), so they
are deterministic across runs and processes and spread different pairs over different paths.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from simcluster.errors import TopologyError
from simcluster.topology.cluster import TRANSIT_KINDS, Cluster


@dataclass(frozen=True)
class Route:
    """A route: its directed link ids in order and its summed one-way latency (us)."""

    links: np.ndarray
    latency_us: float


def _hash(*parts: str) -> int:
    return zlib.crc32("\x1f".join(parts).encode())


class Router:
    """Computes and caches routes on one Cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self._c = cluster
        self._g = cluster.graph
        nodes = self._g.nodes
        self._host = {n: nodes[n].get("host") for n in nodes}
        self._transit = {n: nodes[n]["kind"] in TRANSIT_KINDS for n in nodes}
        self._routes: dict[tuple[str, str], Route] = {}
        self._dist: dict[tuple[str | None, str], dict[str, int]] = {}
        self._gateway: dict[tuple[str, bool], str] = {}

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
        nodes = self.path(src, dst)
        edges = self._g.edges
        ids = np.fromiter(
            (edges[u, v]["id"] for u, v in zip(nodes, nodes[1:])), dtype=np.int32,
            count=len(nodes) - 1,
        )
        r = Route(links=ids, latency_us=float(self._c.latency_us[ids].sum()))
        self._routes[key] = r
        return r

    def path(self, src: str, dst: str) -> list[str]:
        """The node sequence of the route from ``src`` to ``dst``."""
        if src == dst:
            return [src]
        hs, hd = self._host[src], self._host[dst]
        if hs is not None and hs == hd:
            return self._walk(hs, src, dst)
        head = [src] if hs is None else self._walk(hs, src, self._gateway_of(src, leaving=True))
        tail = [dst] if hd is None else self._walk(hd, self._gateway_of(dst, leaving=False), dst)
        middle = self._fabric(head[-1], tail[0], src, dst)
        return head + middle[1:-1] + tail

    def nearest(self, src: str, kind: str) -> str | None:
        """The node of ``kind`` closest to ``src`` (same host first), or None if unreachable."""
        host = self._host[src]
        cands = [n for n in self._g.nodes if self._g.nodes[n]["kind"] == kind]
        same = [n for n in cands if self._host[n] == host]
        best: tuple[int, str] | None = None
        for n in same or cands:
            try:
                cost = self._cost(self.path(src, n))
            except TopologyError:
                continue
            if best is None or cost < best[0]:
                best = (cost, n)
        return best[1] if best else None

    # -- internals ----------------------------------------------------------------------------

    def _cost(self, nodes: list[str]) -> int:
        edges = self._g.edges
        return sum(edges[u, v]["cost"] for u, v in zip(nodes, nodes[1:]))

    def _in(self, domain: str | None, n: str) -> bool:
        return self._host[n] == domain

    def _dist_to(self, domain: str | None, target: str) -> dict[str, int]:
        """Least cost from each node of ``domain`` to ``target``, forwarding only through
        transit nodes (Dijkstra on reversed edges; cached)."""
        key = (domain, target)
        hit = self._dist.get(key)
        if hit is not None:
            return hit
        pred = self._g.pred
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
            for u, attrs in pred[v].items():
                if not self._in(domain, u):
                    continue
                nd = d + attrs["cost"]
                if nd < dist.get(u, 1 << 62):
                    dist[u] = nd
                    heapq.heappush(heap, (nd, u))
        self._dist[key] = dist
        return dist

    def _walk(self, domain: str | None, src: str, dst: str) -> list[str]:
        """Shortest path inside ``domain``; equal-cost next hops chosen by hash."""
        if src == dst:
            return [src]
        dist = self._dist_to(domain, dst)
        if src not in dist:
            where = f"inside host {domain!r}" if domain else "across the fabric"
            raise TopologyError(
                f"{self._c.source}: no route from {src!r} to {dst!r} {where}; add links that "
                "join them (through switches, NICs or CPUs: accelerators do not forward)."
            )
        succ = self._g.succ
        out = [src]
        u = src
        while u != dst:
            hops = [
                v for v, a in succ[u].items()
                if v in dist and (v == dst or (self._transit[v] and self._in(domain, v)))
                and dist[v] + a["cost"] == dist[u]
            ]
            u = hops[_hash(src, dst, u) % len(hops)] if len(hops) > 1 else hops[0]
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
            adj = self._g.succ if leaving else self._g.pred
            gates = [
                n for n in self._g.nodes
                if self._host[n] == host and self._transit[n]
                and any(self._host[m] is None for m in adj[n])
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
        succ, pred = self._g.succ, self._g.pred
        if y in succ[x]:
            return [x, y]
        ups = self._fabric_neighbours(succ[x])
        downs = self._fabric_neighbours(pred[y])
        options: list[tuple[int, str, str]] = []
        for d in downs:
            dist = self._dist_to(None, d)
            for u in ups:
                if u in dist:
                    options.append((succ[x][u]["cost"] + dist[u] + succ[d][y]["cost"], u, d))
        if not options:
            raise TopologyError(
                f"{self._c.source}: no route from {src!r} to {dst!r}: {x!r} and {y!r} are not "
                "joined by the fabric; check the fabric: section and links."
            )
        best = min(c for c, _, _ in options)
        ties = [(u, d) for c, u, d in options if c == best]
        u, d = ties[_hash(src, dst, x) % len(ties)] if len(ties) > 1 else ties[0]
        return [x] + self._walk(None, u, d) + [y]

    def _fabric_neighbours(self, adj: Iterable[str]) -> list[str]:
        return [n for n in adj if self._host[n] is None and self._transit[n]]

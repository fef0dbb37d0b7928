"""The graph under construction: nodes and links in insertion order, with where each came from.

:func:`~simcluster.topology.build.build` and the fabric templates (``fabrics.py``) add to one
:class:`GraphBuilder`. Link ids are insertion order, so the same topology always gives the
same ids (and byte-identical outputs).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Protocol

import networkx as nx

from simcluster.errors import TopologyError
from simcluster.topology import catalog
from simcluster.yamlfile import Loc, YamlDocument


def parse_loc(path: str) -> Loc:
    """``links[0].dst`` -> ``('links', 0, 'dst')``."""
    return tuple(int(i) if i else k for k, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path))


def route_cost(bandwidth_GBps: float) -> int:
    """Integer routing cost of a hop: 1 per hop plus 1e4/bandwidth, so a 50 GB/s hop costs as
    much as ~4.5 hops at 450 GB/s. Integers keep equal-cost ties exact for ECMP."""
    return 1 + round(1e4 / bandwidth_GBps)


class HasLatency(Protocol):
    """A link description with an optional latency (``LinkParams``, ``ExplicitLink``)."""

    @property
    def latency_ns(self) -> float | None: ...


def link_latency(params: HasLatency | None, kind: str, fallback_ns: float | None = None
                 ) -> float:
    """A templated link's latency (ns): ``params.latency_ns`` if given, else ``fallback_ns``,
    else the default of its kind."""
    if params is not None and params.latency_ns is not None:
        return params.latency_ns
    if fallback_ns is not None:
        return fallback_ns
    return catalog.DEFAULT_LATENCY_NS[kind]


@dataclass
class GraphBuilder:
    """Accumulates nodes and links in insertion order (which fixes link ids).

    ``graph`` is a networkx ``DiGraph`` at every moment (fabric builders read and annotate
    its nodes), but nodes and edges go straight into its adjacency dictionaries, as
    ``add_node`` and ``add_edge`` would put them (same order, same attribute dictionaries):
    at 16,384 GPUs the public calls were a third of the build (issue 19).
    """

    source: str
    doc: YamlDocument | None = None
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    origin: dict[str, str] = field(default_factory=dict)  # node -> YAML path that made it
    src: list[str] = field(default_factory=list)
    dst: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    bw_GBps: list[float] = field(default_factory=list)
    lat_ns: list[float] = field(default_factory=list)
    cost: list[int] = field(default_factory=list)  # per link id, route_cost(bw_GBps)
    link_origin: list[str] = field(default_factory=list)  # per link id, its YAML path
    one_way: bool = False  # a link was added without its reverse (``duplex=False``)

    def at(self, path: str) -> str:
        """``file:line: path: `` for an error about YAML path ``path``."""
        if self.doc is not None:
            return self.doc.at(parse_loc(path))
        return f"{self.source}: {path}: "

    def node(self, name: str, origin: str, **attrs: object) -> str:
        """Add node ``name`` (made by YAML path ``origin``) with ``attrs``; returns the name.

        Raises:
            TopologyError: the name is taken.
        """
        g = self.graph
        if name in g._succ:
            raise TopologyError(
                f"{self.at(origin)}device name {name!r} is already used by "
                f"{self.origin[name]}; give each device a unique name."
            )
        self._put(name, attrs)  # a fresh dict: what add_node(name, **attrs) stores
        self.origin[name] = origin
        return name

    def _put(self, name: str, attrs: dict[str, object]) -> None:
        """Node ``name`` with ``attrs`` and no links, straight into the graph's
        dictionaries (as ``DiGraph.add_node`` puts a new node)."""
        g = self.graph
        g._node[name] = attrs
        g._succ[name] = {}
        g._pred[name] = {}

    def link(
        self, a: str, b: str, bw: float, lat_ns: float, kind: str, origin: str, duplex: bool = True
    ) -> None:
        """Add the link ``a -> b`` (and ``b -> a`` when ``duplex``).

        Raises:
            TopologyError: such a link exists already.
        """
        succ, pred = self.graph._succ, self.graph._pred
        cost = route_cost(bw)
        self.one_way = self.one_way or not duplex
        for u, v in ((a, b), (b, a)) if duplex else ((a, b),):
            out = succ.get(u)
            if out is None or v not in succ:  # as add_edge does: an unknown end, a bare node
                for end in (u, v):
                    if end not in succ:
                        self._put(end, {})
                out = succ[u]
            elif v in out:
                raise TopologyError(
                    f"{self.at(origin)}a link from {u!r} to {v!r} already exists "
                    f"({self.link_origin[out[v]['id']]}); merge them into one link with the "
                    "summed bandwidth."
                )
            out[v] = pred[v][u] = {"id": len(self.src), "cost": cost}
            self.link_origin.append(origin)
            self.src.append(u)
            self.dst.append(v)
            self.kind.append(kind)
            self.bw_GBps.append(bw)
            self.lat_ns.append(lat_ns)
            self.cost.append(cost)

    def record(self, host: str, first_node: int, first_link: int) -> ServerCopy | None:
        """What server ``host`` added (the nodes from the ``first_node``-th on, the links from
        id ``first_link`` on), to add again for another server of its template with
        :meth:`copy_server`; None where that would not be exact: a node named outside
        ``host/``, or an attribute naming another server.

        The attributes that name the server are ``host`` (the server) and ``nic`` (a node
        of it, or None); every other attribute is copied as it is.
        """
        prefix = f"{host}/"
        nodes = list(itertools.islice(self.graph._node.items(), first_node, None))
        for name, attrs in nodes:
            nic = attrs.get("nic")
            if (not name.startswith(prefix) or attrs.get("host", host) != host
                    or not (nic is None or (isinstance(nic, str) and nic.startswith(prefix)))):
                return None
        index = {name: k for k, (name, _) in enumerate(nodes)}
        links = range(first_link, len(self.src))
        if any(self.src[i] not in index or self.dst[i] not in index for i in links):
            return None
        cut = len(prefix)
        return ServerCopy(
            suffixes=tuple(name[cut:] for name, _ in nodes),
            attrs=tuple(dict(attrs) for _, attrs in nodes),
            nic=tuple(None if a.get("nic") is None else a["nic"][cut:] for _, a in nodes),
            origin=tuple(self.origin[name] for name, _ in nodes),
            src=tuple(index[self.src[i]] for i in links),
            dst=tuple(index[self.dst[i]] for i in links),
            kind=tuple(self.kind[first_link:]),
            bw_GBps=tuple(self.bw_GBps[first_link:]),
            lat_ns=tuple(self.lat_ns[first_link:]),
            cost=tuple(self.cost[first_link:]),
            link_origin=tuple(self.link_origin[first_link:]),
        )

    def copy_server(self, copy: ServerCopy, host: str) -> list[str]:
        """Add server ``host`` as ``copy`` of another (:meth:`record`): the same nodes and
        links, in the same order, renamed; returns its node names in order.

        Raises:
            TopologyError: a node name is taken.
        """
        g = self.graph
        node_attrs, succ, pred = g._node, g._succ, g._pred
        prefix = f"{host}/"
        names = [prefix + s for s in copy.suffixes]
        # What node() does, inline: this loop is most of a large build.
        for name, attrs, nic, origin in zip(names, copy.attrs, copy.nic, copy.origin):
            if name in succ:
                self.node(name, origin)  # raises: the name is taken
            new = dict(attrs)
            if "host" in new:
                new["host"] = host
            if nic is not None:
                new["nic"] = prefix + nic
            node_attrs[name] = new
            succ[name] = {}
            pred[name] = {}
            self.origin[name] = origin
        first = len(self.src)
        for k, (i, j, cost) in enumerate(zip(copy.src, copy.dst, copy.cost)):
            data = {"id": first + k, "cost": cost}
            succ[names[i]][names[j]] = data
            pred[names[j]][names[i]] = data
        self.src.extend(names[i] for i in copy.src)
        self.dst.extend(names[j] for j in copy.dst)
        self.kind.extend(copy.kind)
        self.bw_GBps.extend(copy.bw_GBps)
        self.lat_ns.extend(copy.lat_ns)
        self.cost.extend(copy.cost)
        self.link_origin.extend(copy.link_origin)
        return names


@dataclass(frozen=True)
class ServerCopy:
    """One server's nodes and links relative to its name (``GraphBuilder.record``): node name
    suffixes after ``host/``, their attributes and origins, and per link (in id order) the
    indices of its ends into the nodes, with its kind, bandwidth (GB/s), latency (ns), route
    cost and origin."""

    suffixes: tuple[str, ...]
    attrs: tuple[dict[str, object], ...]
    nic: tuple[str | None, ...]  # per node, the suffix its ``nic`` attribute names
    origin: tuple[str, ...]
    src: tuple[int, ...]
    dst: tuple[int, ...]
    kind: tuple[str, ...]
    bw_GBps: tuple[float, ...]
    lat_ns: tuple[float, ...]
    cost: tuple[int, ...]
    link_origin: tuple[str, ...]

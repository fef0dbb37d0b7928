"""The graph under construction: nodes and links in insertion order, with where each came from.

:func:`~simcluster.topology.build.build` and the fabric templates (``fabrics.py``) add to one
:class:`GraphBuilder`. Link ids are insertion order, so the same topology always gives the
same ids (and byte-identical outputs).
"""

from __future__ import annotations

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
    """Accumulates nodes and links in insertion order (which fixes link ids)."""

    source: str
    doc: YamlDocument | None = None
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    origin: dict[str, str] = field(default_factory=dict)  # node -> YAML path that made it
    src: list[str] = field(default_factory=list)
    dst: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    bw_GBps: list[float] = field(default_factory=list)
    lat_ns: list[float] = field(default_factory=list)
    link_origin: dict[tuple[str, str], str] = field(default_factory=dict)

    def at(self, path: str) -> str:
        """``file:line: path: `` for an error about YAML path ``path``."""
        if self.doc is not None:
            return self.doc.at(parse_loc(path))
        return f"{self.source}: {path}: "

    def node(self, name: str, origin: str, **attrs: object) -> str:
        """Add node ``name`` (made by YAML path ``origin``); returns the name.

        Raises:
            TopologyError: the name is taken.
        """
        if name in self.graph:
            raise TopologyError(
                f"{self.at(origin)}device name {name!r} is already used by "
                f"{self.origin[name]}; give each device a unique name."
            )
        self.graph.add_node(name, **attrs)
        self.origin[name] = origin
        return name

    def link(
        self, a: str, b: str, bw: float, lat_ns: float, kind: str, origin: str, duplex: bool = True
    ) -> None:
        """Add the link ``a -> b`` (and ``b -> a`` when ``duplex``).

        Raises:
            TopologyError: such a link exists already.
        """
        for u, v in ((a, b), (b, a)) if duplex else ((a, b),):
            if self.graph.has_edge(u, v):
                raise TopologyError(
                    f"{self.at(origin)}a link from {u!r} to {v!r} already exists "
                    f"({self.link_origin[(u, v)]}); merge them into one link with the summed "
                    "bandwidth."
                )
            self.graph.add_edge(u, v, id=len(self.src), cost=route_cost(bw))
            self.link_origin[(u, v)] = origin
            self.src.append(u)
            self.dst.append(v)
            self.kind.append(kind)
            self.bw_GBps.append(bw)
            self.lat_ns.append(lat_ns)

"""The fabric template registry: how the servers (or the chips) of a topology connect.

A :class:`Fabric` is one record: its name (what ``fabric: topology:`` says), a builder that
adds its switches and links to the graph, and a check of the ``fabric:`` section that the
schema runs (say which keys this template needs). The names the schema accepts, its JSON
Schema and its description derive from this table.

Adding a fabric is one call::

    register_fabric(Fabric(name="mine", build=build_mine))

where ``build_mine(ctx)`` adds nodes and links through ``ctx`` (a :class:`FabricContext`).
Tests use :func:`registered_fabric`, which takes it out again.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simcluster.errors import TopologyError
from simcluster.registry import Registry
from simcluster.topology.builder import GraphBuilder, link_latency

if TYPE_CHECKING:
    from simcluster.topology.schema import FabricSpec


@dataclass(frozen=True)
class NicProps:
    """Per-NIC line rate (GB/s), kind and NIC-to-fabric latency (ns, None for the default)."""

    bandwidth: dict[str, float]
    kind: dict[str, str]
    latency: dict[str, float | None]


@dataclass
class FabricContext:
    """What a fabric builder works with: the graph so far and what it connects.

    Attributes:
        builder: the graph; add nodes and links with ``builder.node`` / ``builder.link``
            (or the helpers below, which name fabric nodes consistently).
        spec: the topology's ``fabric:`` section.
        hosts: the servers, in topology order.
        nics: per server, its NICs in order.
        nic_props: line rate, kind and latency of each NIC.
        accelerators: every accelerator, in topology order.
    """

    builder: GraphBuilder
    spec: FabricSpec
    hosts: list[str]
    nics: dict[str, list[str]]
    nic_props: NicProps
    accelerators: list[str]
    _all_nics: list[str] | None = field(default=None, init=False, repr=False)

    def server_nics(self) -> list[str]:
        """Every server's NICs, server by server.

        Raises:
            TopologyError: no server has a NIC.
        """
        if self._all_nics is None:
            found = [n for h in self.hosts for n in self.nics[h]]
            if not found:
                raise TopologyError(
                    f"{self.builder.at('fabric')}no server has NICs to connect; set "
                    "nodes[i].nics.count (e.g. 8) or remove fabric:."
                )
            self._all_nics = found
        return self._all_nics

    def link_kind(self) -> str:
        """The kind of the fabric's links: ``fabric.kind``, else the first NIC's."""
        return self.spec.kind or self.nic_props.kind[self.server_nics()[0]]

    def switch(self, name: str, role: str) -> str:
        """Add the fabric switch ``fabric/<name>`` with ``role``; returns its node name. It
        reduces in-network (``sharp``) when the fabric's ``sharp`` is on."""
        return self.builder.node(f"fabric/{name}", "fabric", kind="switch", host=None, role=role,
                                 sharp=self.spec.sharp)

    def attach(self, nic: str, switch: str) -> float:
        """Link a NIC to its first switch (``fabric.link``, default: the NIC's line rate and
        latency); returns the link's bandwidth."""
        link = self.spec.link
        bw = link.bandwidth_GBps or self.nic_props.bandwidth[nic]
        kind = self.link_kind()
        self.builder.link(nic, switch, bw, link_latency(link, kind, self.nic_props.latency[nic]),
                          kind, "fabric.link")
        return bw

    def uplink(self, lower: str, upper: str, bandwidth_GBps: float) -> None:
        """Link two fabric switches (``fabric.spine_link``'s latency)."""
        kind = self.link_kind()
        self.builder.link(lower, upper, bandwidth_GBps, link_latency(self.spec.spine_link, kind),
                          kind, "fabric.spine_link")


def no_check(spec: FabricSpec) -> str | None:
    """A fabric that needs no particular key."""
    return None


@dataclass(frozen=True)
class Fabric:
    """One fabric template.

    Attributes:
        name: what ``fabric: topology:`` calls it.
        build: adds the fabric's nodes and links (``build(ctx)``); raises ``TopologyError``
            for a shape the servers cannot fill.
        check: the problem with a ``fabric:`` section for this template, with its fix (e.g.
            a missing key), or None; the schema reports it at the section's line.
        description: what it builds, one sentence (the schema's description lists these).
        needs_nics: it connects the servers' NICs, so a topology without any is refused
            before it builds (a torus connects the chips instead).
    """

    name: str
    build: Callable[[FabricContext], None]
    check: Callable[[FabricSpec], str | None] = no_check
    description: str = ""
    needs_nics: bool = True


REGISTRY: Registry[Fabric] = Registry("fabric", TopologyError)


# The extension point's API is the registry's own (``registry.Registry``): register (after
# those already there; ``replace=True`` to swap one), unregister, a ``with`` block that
# registers for its duration, look-up by name (an unknown name lists the known ones),
# and the names in registration order.
register_fabric = REGISTRY.register
unregister_fabric = REGISTRY.unregister
registered_fabric = REGISTRY.registered
get_fabric = REGISTRY.get
fabric_names = REGISTRY.names


def fabric_list(width: int = 92) -> str:
    """The fabrics as a bullet list of ``- ``name``: description`` (wrapped at ``width``)."""
    records = REGISTRY.records()
    return "\n".join(
        textwrap.fill(f"- ``{f.name}``: {f.description or 'a registered fabric'}"
                      + ("." if k == len(records) - 1 else ";"),
                      width=width, subsequent_indent="  ")
        for k, f in enumerate(records))


def build_fabric(fabric: Fabric, ctx: FabricContext) -> None:
    """Add ``fabric`` to the graph (after checking that there are NICs, if it needs them)."""
    if fabric.needs_nics:
        ctx.server_nics()
    fabric.build(ctx)


# -- the built-in fabrics -------------------------------------------------------------------------

def _single_switch(ctx: FabricContext) -> None:
    switch = ctx.switch("switch", "fabric")
    for nic in ctx.server_nics():
        ctx.attach(nic, switch)


def _two_level(ctx: FabricContext, leaf_of: Callable[[int, int], str]) -> None:
    """Leaves named by ``leaf_of(unit, rail)`` under every spine; a leaf's uplink defaults to
    its downlink bandwidth over the oversubscription, split evenly over the spines."""
    f = ctx.spec
    per_unit = f.nodes_per_leaf or 1
    leaves: dict[str, str] = {}
    down: dict[str, float] = {}
    for h_i, host in enumerate(ctx.hosts):
        for rail, nic in enumerate(ctx.nics[host]):
            label = leaf_of(h_i // per_unit, rail)
            if label not in leaves:
                leaves[label] = ctx.switch(label, "leaf")
            down[label] = down.get(label, 0.0) + ctx.attach(nic, leaves[label])
    spines = [ctx.switch(f"spine{i}", "spine") for i in range(f.spines)]
    for label, leaf in leaves.items():
        up = f.spine_link.bandwidth_GBps or down[label] / f.oversubscription / f.spines
        for spine in spines:
            ctx.uplink(leaf, spine, up)


def _leaf_spine(ctx: FabricContext) -> None:
    _two_level(ctx, lambda unit, rail: f"leaf{unit}")


def _rail_optimized(ctx: FabricContext) -> None:
    _two_level(ctx, lambda unit, rail: f"su{unit}-rail{rail}")


def _needs_nodes_per_leaf(what: str) -> Callable[[FabricSpec], str | None]:
    def check(spec: FabricSpec) -> str | None:
        if spec.nodes_per_leaf is None:
            return f"a {spec.topology} fabric needs nodes_per_leaf (servers per {what})"
        return None
    return check


def _fat_tree(ctx: FabricContext) -> None:
    """k-ary fat-tree: k pods of k/2 edge and k/2 aggregation switches, (k/2)^2 cores."""
    nics = ctx.server_nics()
    f = ctx.spec
    b = ctx.builder
    k = f.k or 2
    half = k // 2
    if len(nics) > k**3 // 4:
        raise TopologyError(
            f"{b.at('fabric.k')}a {k}-ary fat-tree connects at most {k**3 // 4} NICs but the "
            f"servers have {len(nics)}; raise k."
        )
    edges = [[ctx.switch(f"pod{p}-edge{e}", "edge") for e in range(half)] for p in range(k)]
    aggs = [[ctx.switch(f"pod{p}-agg{a}", "agg") for a in range(half)] for p in range(k)]
    cores = [ctx.switch(f"core{c}", "core") for c in range(half * half)]
    bw = 0.0
    for n, nic in enumerate(nics):
        edge = n // half
        bw = ctx.attach(nic, edges[edge // half][edge % half])
    up = (f.spine_link.bandwidth_GBps or bw) / f.oversubscription
    for p in range(k):
        for e in edges[p]:
            for a in aggs[p]:
                ctx.uplink(e, a, up)
        for a_i, a in enumerate(aggs[p]):
            for j in range(half):
                ctx.uplink(a, cores[a_i * half + j], up)


def _check_fat_tree(spec: FabricSpec) -> str | None:
    if spec.k is None or spec.k % 2:
        return "a fat-tree fabric needs an even k (switch ports), e.g. k: 8"
    return None


def _torus(ctx: FabricContext) -> None:
    """Accelerators on a torus: each with an ICI router, routers linked to their +-1
    neighbours in every dimension (with wraparound). Accelerator ``i`` (topology order) sits
    at coordinates ``(i mod d0, (i // d0) mod d1, ...)``, which its node records as ``torus``
    (with the ``torus_dims``)."""
    f = ctx.spec
    b = ctx.builder
    accelerators = ctx.accelerators
    dims = f.dims or []
    if math.prod(dims) != len(accelerators):
        raise TopologyError(
            f"{b.at('fabric.dims')}a {'x'.join(map(str, dims))} torus holds "
            f"{math.prod(dims)} accelerators but the servers have {len(accelerators)}; make "
            "them equal."
        )
    if f.link.bandwidth_GBps is None:
        raise TopologyError(
            f"{b.at('fabric.link')}a torus needs link.bandwidth_GBps (ICI, per link per "
            "direction)."
        )
    bw = f.link.bandwidth_GBps
    lat = link_latency(f.link, "ici")
    routers = []
    for i, acc in enumerate(accelerators):
        r = ctx.switch(f"ici{i}", "ici-router")
        # The chip's own port into its router carries all its ICI links at once.
        b.link(acc, r, 2 * len(dims) * bw, 0.0, "ici", "fabric")
        b.graph.nodes[acc]["nic"] = r
        routers.append(r)
    strides = [math.prod(dims[:d]) for d in range(len(dims))]
    for i in range(len(accelerators)):
        coord = [(i // strides[d]) % dims[d] for d in range(len(dims))]
        # What torus collectives need to see a group's shape (sim/torus.py).
        b.graph.nodes[accelerators[i]].update(torus=tuple(coord), torus_dims=tuple(dims))
        for d in range(len(dims)):
            nxt = list(coord)
            nxt[d] = (coord[d] + 1) % dims[d]
            j = sum(c * s for c, s in zip(nxt, strides))
            if not b.graph.has_edge(routers[i], routers[j]):
                b.link(routers[i], routers[j], bw, lat, "ici", "fabric.link")


def _check_torus(spec: FabricSpec) -> str | None:
    return None if spec.dims else "a torus fabric needs dims, e.g. dims: [4, 4, 4]"


for _fabric in (
    Fabric("single-switch", _single_switch, description="every NIC to one switch"),
    Fabric("leaf-spine", _leaf_spine, _needs_nodes_per_leaf("leaf"),
           description="the NICs of ``nodes_per_leaf`` servers to a leaf, every leaf to "
           "every spine"),
    Fabric("rail-optimized", _rail_optimized, _needs_nodes_per_leaf("scalable unit"),
           description="NVIDIA SuperPOD style: per scalable unit of ``nodes_per_leaf`` "
           "servers, one leaf per rail (NIC i of every server of the unit on leaf i), every "
           "leaf to every spine"),
    Fabric("fat-tree", _fat_tree, _check_fat_tree,
           description="a k-ary fat-tree (``k`` pods of k/2 edge and k/2 aggregation "
           "switches, (k/2)^2 core switches), NICs filling edge switches in order"),
    Fabric("torus", _torus, _check_torus,
           description="accelerators (not NICs) on a ``dims`` torus of ICI links, each chip "
           "with a router", needs_nics=False),
):
    register_fabric(_fabric)
del _fabric

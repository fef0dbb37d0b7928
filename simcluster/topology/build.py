"""Expand a validated TopologySpec (templates and explicit parts) into a Cluster.

Template naming: server ``<template.name><i>``; inside it ``gpu<a>``, ``nvswitch``,
``pcie<s>``, ``cpu<c>``, ``mem<c>``, ``nic<n>``, joined as ``node0/gpu3``. Fabric switches are
``fabric/switch``, ``fabric/leaf<l>`` and ``fabric/spine<s>``.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np

from simcluster.errors import TopologyError
from simcluster.topology import catalog
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.cluster import Cluster
from simcluster.yamlfile import Loc, YamlDocument
from simcluster.topology.schema import (
    CustomAccelerator,
    FabricSpec,
    LinkParams,
    NodeTemplate,
    TopologySpec,
)


def _parse_loc(path: str) -> Loc:
    """``links[0].dst`` -> ``('links', 0, 'dst')``."""
    return tuple(int(i) if i else k for k, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path))


@dataclass
class _Builder:
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
            return self.doc.at(_parse_loc(path))
        return f"{self.source}: {path}: "

    def node(self, name: str, origin: str, **attrs: object) -> str:
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
        for u, v in ((a, b), (b, a)) if duplex else ((a, b),):
            if self.graph.has_edge(u, v):
                raise TopologyError(
                    f"{self.at(origin)}a link from {u!r} to {v!r} already exists "
                    f"({self.link_origin[(u, v)]}); merge them into one link with the summed "
                    "bandwidth."
                )
            self.graph.add_edge(u, v, id=len(self.src), cost=_route_cost(bw))
            self.link_origin[(u, v)] = origin
            self.src.append(u)
            self.dst.append(v)
            self.kind.append(kind)
            self.bw_GBps.append(bw)
            self.lat_ns.append(lat_ns)


def _route_cost(bandwidth_GBps: float) -> int:
    """Integer routing cost of a hop: 1 per hop plus 1e4/bandwidth, so a 50 GB/s hop costs as
    much as ~4.5 hops at 450 GB/s. Integers keep equal-cost ties exact for ECMP."""
    return 1 + round(1e4 / bandwidth_GBps)


def _efficiency(spec: TopologySpec, kind: str) -> float:
    return spec.network.link_efficiency.get(kind, catalog.LINK_EFFICIENCY[kind])


def _latency(params: LinkParams | None, kind: str, fallback_ns: float | None = None) -> float:
    if params is not None and params.latency_ns is not None:
        return params.latency_ns
    if fallback_ns is not None:
        return fallback_ns
    return catalog.DEFAULT_LATENCY_NS[kind]


def _custom_specs(spec: TopologySpec) -> dict[str, AcceleratorSpec]:
    return {name: _to_spec(name, m) for name, m in spec.accelerator_models.items()}


def _to_spec(name: str, m: CustomAccelerator) -> AcceleratorSpec:
    return AcceleratorSpec(
        model=name,
        peak_tflops=dict(m.peak_tflops),
        hbm_GiB=m.hbm_GiB,
        hbm_GBps=m.hbm_GBps,
        nvlink_GBps=m.nvlink_GBps,
        pcie_gen=m.pcie_gen,
        launch_overhead_us=m.launch_overhead_us,
        source=m.source,
        vendor="custom",
        nvls=m.nvls,
    )


def _resolve_model(
    model: str, custom: dict[str, AcceleratorSpec], b: _Builder, loc: str
) -> AcceleratorSpec:
    spec = catalog.lookup(model, custom)
    if spec is None:
        known = sorted(set(catalog.known_models()) | set(custom))
        close = difflib.get_close_matches(model, known, n=1, cutoff=0.4)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TopologyError(
            f"{b.at(loc)}unknown accelerator model {model!r}; {hint}known models: "
            f"{', '.join(known)}. Define others under accelerator_models:."
        )
    return spec


def _add_server(
    b: _Builder, t: NodeTemplate, ti: int, host: str, spec: AcceleratorSpec
) -> tuple[list[str], list[str]]:
    """Add one server of template ``t``; return its accelerators and NICs in order."""
    loc = f"nodes[{ti}]"
    common = {"host": host, "template": ti}
    cpus = [
        b.node(f"{host}/cpu{c}", loc, kind="cpu", **common) for c in range(t.host.cpus)
    ]
    for c, cpu in enumerate(cpus):
        mem = b.node(
            f"{host}/mem{c}", loc, kind="memory",
            capacity_bytes=int(t.host.memory_GiB * catalog.GIB), **common,
        )
        b.link(mem, cpu, t.host.memory_GBps, catalog.DEFAULT_LATENCY_NS["memory"], "memory", loc)
    for c in range(len(cpus)):
        for d in range(c + 1, len(cpus)):
            b.link(cpus[c], cpus[d], t.host.socket_GBps, catalog.DEFAULT_LATENCY_NS["socket"],
                   "socket", loc)

    gen = t.pcie.generation or spec.pcie_gen
    pcie_bw = t.pcie.bandwidth_GBps or catalog.PCIE_X16_GBPS[gen]
    pcie_lat = t.pcie.latency_ns if t.pcie.latency_ns is not None else catalog.DEFAULT_LATENCY_NS[
        "pcie"]
    n_acc = t.accelerators
    n_sw = math.ceil(n_acc / t.pcie.accelerators_per_switch)
    switches = []
    for s in range(n_sw):
        sw = b.node(f"{host}/pcie{s}", loc, kind="switch", role="pcie", **common)
        b.link(sw, cpus[s * len(cpus) // n_sw], pcie_bw, pcie_lat, "pcie", loc)
        switches.append(sw)

    n_nic = t.nics.count
    nics = []
    for n in range(n_nic):
        nic = b.node(f"{host}/nic{n}", loc, kind="nic", **common)
        b.link(nic, switches[n * n_sw // n_nic], pcie_bw, pcie_lat, "pcie", loc)
        nics.append(nic)

    accs = []
    for a in range(n_acc):
        nic = nics[a * n_nic // n_acc] if n_nic else None
        acc = b.node(
            f"{host}/gpu{a}", loc, kind="accelerator", model=spec.model, nic=nic, **common
        )
        b.link(acc, switches[a // t.pcie.accelerators_per_switch], pcie_bw, pcie_lat, "pcie", loc)
        accs.append(acc)

    if t.fabric in ("nvswitch", "nvlink-mesh"):
        nv_bw = t.nvlink.bandwidth_GBps or spec.nvlink_GBps
        if nv_bw <= 0:
            raise TopologyError(
                f"{b.at(loc + '.fabric')}{spec.model} has no NVLink in the catalog; set "
                f"{loc}.nvlink.bandwidth_GBps or use fabric: pcie."
            )
        nv_lat = _latency(t.nvlink, "nvlink")
        if t.fabric == "nvswitch":
            nvs = b.node(f"{host}/nvswitch", loc, kind="switch", role="nvswitch", **common)
            for acc in accs:
                b.link(acc, nvs, nv_bw, nv_lat, "nvlink", loc)
        elif n_acc > 1:
            per_pair = nv_bw / (n_acc - 1)
            for i in range(n_acc):
                for j in range(i + 1, n_acc):
                    b.link(accs[i], accs[j], per_pair, nv_lat, "nvlink", loc)
    return accs, nics


@dataclass(frozen=True)
class _NicProps:
    """Per-NIC line rate (GB/s), kind and NIC-to-fabric latency (ns, None for the default)."""

    bandwidth: dict[str, float]
    kind: dict[str, str]
    latency: dict[str, float | None]


def _add_fabric(
    b: _Builder, f: FabricSpec, hosts: list[str], nics: dict[str, list[str]], props: _NicProps,
    accelerators: list[str],
) -> None:
    """Connect the servers (or, for a torus, the accelerators) as ``f`` says."""
    if f.topology == "torus":
        _fabric_torus(b, f, accelerators)
        return
    all_nics = [n for h in hosts for n in nics[h]]
    if not all_nics:
        raise TopologyError(
            f"{b.at('fabric')}no server has NICs to connect; set nodes[i].nics.count "
            "(e.g. 8) or remove fabric:."
        )
    kind = f.kind or props.kind[all_nics[0]]

    def attach(nic: str, switch: str) -> float:
        """Link a NIC to its first switch; return the link's bandwidth."""
        bw = f.link.bandwidth_GBps or props.bandwidth[nic]
        b.link(nic, switch, bw, _latency(f.link, kind, props.latency[nic]), kind, "fabric.link")
        return bw

    if f.topology == "single-switch":
        sw = b.node("fabric/switch", "fabric", kind="switch", host=None, role="fabric")
        for nic in all_nics:
            attach(nic, sw)
    elif f.topology == "fat-tree":
        _fabric_fat_tree(b, f, all_nics, kind, attach)
    else:
        per_unit = f.nodes_per_leaf or 1
        leaves: dict[str, str] = {}
        down: dict[str, float] = {}
        for h_i, h in enumerate(hosts):
            for r, nic in enumerate(nics[h]):
                label = (f"leaf{h_i // per_unit}" if f.topology == "leaf-spine"
                         else f"su{h_i // per_unit}-rail{r}")
                if label not in leaves:
                    leaves[label] = b.node(f"fabric/{label}", "fabric", kind="switch", host=None,
                                           role="leaf")
                down[label] = down.get(label, 0.0) + attach(nic, leaves[label])
        spines = [b.node(f"fabric/spine{i}", "fabric", kind="switch", host=None, role="spine")
                  for i in range(f.spines)]
        lat = _latency(f.spine_link, kind)
        for label, leaf in leaves.items():
            # Default uplink: the leaf's downlink bandwidth over the oversubscription, split
            # evenly over the spines.
            up = f.spine_link.bandwidth_GBps or down[label] / f.oversubscription / f.spines
            for sp in spines:
                b.link(leaf, sp, up, lat, kind, "fabric.spine_link")


def _fabric_fat_tree(b: _Builder, f: FabricSpec, nics: list[str], kind: str, attach) -> None:
    """k-ary fat-tree: k pods of k/2 edge and k/2 aggregation switches, (k/2)^2 cores."""
    k = f.k or 2
    half = k // 2
    if len(nics) > k**3 // 4:
        raise TopologyError(
            f"{b.at('fabric.k')}a {k}-ary fat-tree connects at most {k**3 // 4} NICs but the "
            f"servers have {len(nics)}; raise k."
        )
    edges = [[b.node(f"fabric/pod{p}-edge{e}", "fabric", kind="switch", host=None, role="edge")
              for e in range(half)] for p in range(k)]
    aggs = [[b.node(f"fabric/pod{p}-agg{a}", "fabric", kind="switch", host=None, role="agg")
             for a in range(half)] for p in range(k)]
    cores = [b.node(f"fabric/core{c}", "fabric", kind="switch", host=None, role="core")
             for c in range(half * half)]
    bw = 0.0
    for n, nic in enumerate(nics):
        edge = n // half
        bw = attach(nic, edges[edge // half][edge % half])
    up = (f.spine_link.bandwidth_GBps or bw) / f.oversubscription
    lat = _latency(f.spine_link, kind)
    for p in range(k):
        for e in edges[p]:
            for a in aggs[p]:
                b.link(e, a, up, lat, kind, "fabric.spine_link")
        for a_i, a in enumerate(aggs[p]):
            for j in range(half):
                b.link(a, cores[a_i * half + j], up, lat, kind, "fabric.spine_link")


def _fabric_torus(b: _Builder, f: FabricSpec, accelerators: list[str]) -> None:
    """Accelerators on a torus: each with an ICI router, routers linked to their +-1
    neighbours in every dimension (with wraparound)."""
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
    lat = _latency(f.link, "ici")
    routers = []
    for i, acc in enumerate(accelerators):
        r = b.node(f"fabric/ici{i}", "fabric", kind="switch", host=None, role="ici-router")
        # The chip's own port into its router carries all its ICI links at once.
        b.link(acc, r, 2 * len(dims) * bw, 0.0, "ici", "fabric")
        b.graph.nodes[acc]["nic"] = r
        routers.append(r)
    strides = [math.prod(dims[:d]) for d in range(len(dims))]
    for i in range(len(accelerators)):
        coord = [(i // strides[d]) % dims[d] for d in range(len(dims))]
        for d in range(len(dims)):
            nxt = list(coord)
            nxt[d] = (coord[d] + 1) % dims[d]
            j = sum(c * s for c, s in zip(nxt, strides))
            if not b.graph.has_edge(routers[i], routers[j]):
                b.link(routers[i], routers[j], bw, lat, "ici", "fabric.link")


def _check_connected(b: _Builder) -> None:
    g = b.graph
    comps = list(nx.weakly_connected_components(g))
    if len(comps) > 1:
        comps.sort(key=lambda c: min(b.origin[n] + n for n in c))
        parts = "; ".join(
            "{" + ", ".join(sorted(c)[:3]) + (", ..." if len(c) > 3 else "") + "}" for c in comps[:3]
        )
        raise TopologyError(
            f"{b.source}: the graph falls apart into {len(comps)} unconnected parts: "
            f"{parts}. Add links (or a fabric: section) that join them."
        )
    if not nx.is_strongly_connected(g):
        comps = sorted(nx.strongly_connected_components(g), key=lambda c: sorted(c)[0])
        a, z = sorted(comps[0])[0], sorted(comps[1])[0]
        one_way = a if nx.has_path(g, a, z) else z
        other = z if one_way == a else a
        raise TopologyError(
            f"{b.source}: {one_way!r} can reach {other!r} but not the other way round; "
            "make the links between them duplex: true or add the reverse links."
        )


def build(
    spec: TopologySpec, source: str | Path = "<topology>", doc: YamlDocument | None = None
) -> Cluster:
    """Build the cluster graph described by ``spec``.

    Parameters:
        spec: a validated topology.
        source: file name used in error messages.
        doc: the parsed YAML, if any, so that errors can name lines.

    Returns:
        The Cluster.

    Raises:
        TopologyError: unknown models or devices, duplicate names or links, a disconnected
            graph.
    """
    source = str(source)
    b = _Builder(source=source, doc=doc)
    custom = _custom_specs(spec)
    specs: dict[str, AcceleratorSpec] = {}
    accelerators: list[str] = []
    hosts: list[str] = []
    nics: dict[str, list[str]] = {}
    nic_bw: dict[str, float] = {}
    nic_kind: dict[str, str] = {}
    nic_lat: dict[str, float | None] = {}
    template_hosts: dict[str, tuple[int, int]] = {}

    for ti, t in enumerate(spec.nodes):
        model = _resolve_model(t.accelerator, custom, b, f"nodes[{ti}].accelerator")
        for i in range(t.count):
            host = f"{t.name}{i}"
            base = len(b.src)
            accs, host_nics = _add_server(b, t, ti, host, model)
            template_hosts[host] = (ti, base)
            for a in accs:
                specs[a] = model
            accelerators.extend(accs)
            hosts.append(host)
            nics[host] = host_nics
            for n in host_nics:
                nic_bw[n] = t.nics.bandwidth_GBps
                nic_kind[n] = t.nics.kind
                nic_lat[n] = t.nics.latency_ns

    if spec.fabric is not None:
        _add_fabric(b, spec.fabric, hosts, nics, _NicProps(nic_bw, nic_kind, nic_lat),
                    accelerators)

    for di, d in enumerate(spec.devices):
        loc = f"devices[{di}]"
        attrs: dict[str, object] = {"kind": d.kind, "host": d.host, "template": None}
        if d.kind == "accelerator":
            model = _resolve_model(d.model or "", custom, b, f"{loc}.model")
            attrs.update(model=model.model, nic=d.nic)
            specs[d.name] = model
            accelerators.append(d.name)
        if d.kind == "memory":
            attrs["capacity_bytes"] = int((d.memory_GiB or catalog.DEFAULT_HOST_MEMORY_GIB)
                                          * catalog.GIB)
        b.node(d.name, loc, **attrs)

    for li, link in enumerate(spec.links):
        loc = f"links[{li}]"
        for end in ("src", "dst"):
            name = getattr(link, end)
            if name not in b.graph:
                close = difflib.get_close_matches(name, list(b.graph.nodes), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "declare it under devices:."
                raise TopologyError(
                    f"{b.at(f'{loc}.{end}')}unknown device {name!r}; {hint}"
                )
        b.link(link.src, link.dst, link.bandwidth_GBps, _latency(link, link.kind), link.kind,
               loc, duplex=link.duplex)

    for di, d in enumerate(spec.devices):
        if d.nic is not None and (d.nic not in b.graph or b.graph.nodes[d.nic]["kind"] != "nic"):
            raise TopologyError(
                f"{b.at(f'devices[{di}].nic')}{d.nic!r} is not a device of kind nic; name one."
            )

    _check_connected(b)
    # Hosts that explicit devices or links touch may route differently from their template.
    touched = {d.host for d in spec.devices} | {
        b.graph.nodes[n]["host"] for link in spec.links for n in (link.src, link.dst)}
    for host in touched:
        template_hosts.pop(host, None)  # type: ignore[arg-type]

    return Cluster(
        name=spec.name,
        description=spec.description,
        graph=b.graph,
        accelerators=tuple(accelerators),
        specs=specs,
        link_src=tuple(b.src),
        link_dst=tuple(b.dst),
        link_kind=tuple(b.kind),
        bandwidth_Bpus=np.asarray(b.bw_GBps, dtype=np.float64) * 1e3,
        latency_us=np.asarray(b.lat_ns, dtype=np.float64) / 1e3,
        route_cost=np.array([_route_cost(bw) for bw in b.bw_GBps], dtype=np.int64),
        capacity_Bpus=np.asarray(b.bw_GBps, dtype=np.float64) * 1e3 * np.array(
            [_efficiency(spec, kind) for kind in b.kind]),
        network=spec.network,
        source=source,
        template_hosts=template_hosts,
        cost_usd_per_hour=spec.cost.usd_per_accelerator_hour if spec.cost else None,
    )

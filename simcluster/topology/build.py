"""Expand a validated TopologySpec (templates and explicit parts) into a Cluster.

Template naming: server ``<template.name><i>``; inside it ``gpu<a>``, ``nvswitch``,
``pcie<s>``, ``cpu<c>``, ``mem<c>``, ``nic<n>``, joined as ``node0/gpu3``. Fabric switches are
``fabric/<name>`` (``fabric/switch``, ``fabric/leaf<l>``, ``fabric/spine<s>``...); the fabric
templates themselves are records of the registry in ``fabrics.py``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path

import networkx as nx
import numpy as np

from simcluster.collector import COLLECTOR
from simcluster.errors import TopologyError
from simcluster.topology import catalog
from simcluster.topology.accelerator_file import to_spec
from simcluster.topology.builder import GraphBuilder, ServerCopy, link_latency
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.cluster import Cluster
from simcluster.topology.fabrics import FabricContext, NicProps, build_fabric, get_fabric
from simcluster.topology.identification import unknown_message
from simcluster.topology.schema import ComputeParams, NodeTemplate, TopologySpec
from simcluster.yamlfile import YamlDocument


def _efficiency(spec: TopologySpec, kind: str) -> float:
    return spec.network.link_efficiency.get(kind, catalog.LINK_EFFICIENCY[kind])


def _custom_specs(spec: TopologySpec, models: Mapping[str, AcceleratorSpec] | None,
                  b: GraphBuilder) -> dict[str, AcceleratorSpec]:
    """The user-defined models: inline ``accelerator_models`` and those of the topology's
    accelerator files (``models``, read by ``load_cluster``)."""
    if spec.accelerator_files and models is None:
        raise TopologyError(f"{b.at('accelerator_files')}accelerator files are read by "
                            "load_cluster (or pass their models to build(models=...)).")
    inline = {name: to_spec(name, m) for name, m in spec.accelerator_models.items()}
    for name in inline.keys() & set(models or {}):
        raise TopologyError(f"{b.at(f'accelerator_models.{name}')}accelerator model {name!r} "
                            "is also defined in an accelerator file; keep one definition.")
    return {**(models or {}), **inline}


def _resolve_model(
    model: str, custom: dict[str, AcceleratorSpec], b: GraphBuilder, loc: str
) -> AcceleratorSpec:
    spec = catalog.lookup(model, custom)
    if spec is None:
        raise TopologyError(f"{b.at(loc)}{unknown_message(model, extra=custom)}")
    return spec


def _add_server(
    b: GraphBuilder, t: NodeTemplate, ti: int, host: str, spec: AcceleratorSpec
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
        nv_lat = link_latency(t.nvlink, "nvlink")
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


def _reaches_all(adjacency: dict[str, dict[str, object]], start: str) -> bool:
    """Whether every node of ``adjacency`` (successors, or predecessors) is reachable from
    ``start`` (breadth first, a frontier at a time)."""
    seen = {start}
    frontier = seen
    while frontier:
        frontier = set().union(*(adjacency[u] for u in frontier)) - seen
        seen |= frontier
    return len(seen) == len(adjacency)


def _check_connected(b: GraphBuilder) -> None:
    g = b.graph
    # Strongly connected (the usual case) when one node reaches all, and all reach it; with
    # every link duplex, the graph is its own reverse and one search tells both.
    if len(g) and _reaches_all(g._succ, next(iter(g))) and (
            not b.one_way or _reaches_all(g._pred, next(iter(g)))):
        return
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
        comps = sorted(nx.strongly_connected_components(g), key=min)
        a, z = min(comps[0]), min(comps[1])
        one_way = a if nx.has_path(g, a, z) else z
        other = z if one_way == a else a
        raise TopologyError(
            f"{b.source}: {one_way!r} can reach {other!r} but not the other way round; "
            "make the links between them duplex: true or add the reverse links."
        )


def build(
    spec: TopologySpec, source: str | Path = "<topology>", doc: YamlDocument | None = None,
    models: Mapping[str, AcceleratorSpec] | None = None,
) -> Cluster:
    """Build the cluster graph described by ``spec``.

    Parameters:
        spec: a validated topology.
        source: file name used in error messages.
        doc: the parsed YAML, if any, so that errors can name lines.
        models: user-defined accelerators from outside the topology (its accelerator files,
            or a ``--device`` part), by name.

    Returns:
        The Cluster.

    Raises:
        TopologyError: unknown models or devices, duplicate names or links, a disconnected
            graph.
    """
    with COLLECTOR.compiling():  # no collection while the graph's dicts pile up
        return _build(spec, str(source), doc, models)


def _build(spec: TopologySpec, source: str, doc: YamlDocument | None,
           models: Mapping[str, AcceleratorSpec] | None) -> Cluster:
    b = GraphBuilder(source=source, doc=doc)
    custom = _custom_specs(spec, models, b)
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
        copy: ServerCopy | None = None
        acc_at: list[int] = []
        nic_at: list[int] = []
        for i in range(t.count):
            host = f"{t.name}{i}"
            base = len(b.src)
            if copy is None:  # the template's first server, built node by node
                first_node = len(b.graph)
                accs, host_nics = _add_server(b, t, ti, host, model)
                if i == 0:
                    copy = b.record(host, first_node, base)
                    names = list(b.graph)[first_node:]
                    acc_at = [names.index(a) for a in accs]
                    nic_at = [names.index(n) for n in host_nics]
            else:  # the others: the same nodes and links, renamed (linear in servers)
                names = b.copy_server(copy, host)
                accs = [names[k] for k in acc_at]
                host_nics = [names[k] for k in nic_at]
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
        ctx = FabricContext(b, spec.fabric, hosts, nics, NicProps(nic_bw, nic_kind, nic_lat),
                            accelerators)
        build_fabric(get_fabric(spec.fabric.topology), ctx)

    for di, d in enumerate(spec.devices):
        loc = f"devices[{di}]"
        attrs: dict[str, object] = {"kind": d.kind, "host": d.host, "template": None}
        if d.kind == "accelerator":
            model = _resolve_model(d.model or "", custom, b, f"{loc}.model")
            attrs.update(model=model.model, nic=d.nic)
            specs[d.name] = model
            accelerators.append(d.name)
        if d.kind == "switch":
            attrs["sharp"] = d.sharp
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
        b.link(link.src, link.dst, link.bandwidth_GBps, link_latency(link, link.kind), link.kind,
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

    efficiency = {kind: _efficiency(spec, kind) for kind in dict.fromkeys(b.kind)}
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
        route_cost=np.array(b.cost, dtype=np.int64),
        capacity_Bpus=np.asarray(b.bw_GBps, dtype=np.float64) * 1e3 * np.array(
            [efficiency[kind] for kind in b.kind]),
        network=spec.network,
        source=source,
        template_hosts=template_hosts,
        cost_usd_per_hour=spec.cost.usd_per_accelerator_hour if spec.cost else None,
        compute=_compute_calibrations(spec, custom, b),
    )


def _compute_calibrations(spec: TopologySpec, custom: dict[str, AcceleratorSpec],
                          b: GraphBuilder) -> dict[str, ComputeParams]:
    """The ``compute:`` block keyed by the model each key names (a catalog name or alias,
    or a user-defined model)."""
    out: dict[str, ComputeParams] = {}
    named: dict[str, str] = {}
    for key, params in spec.compute.items():
        model = _resolve_model(key, custom, b, f"compute.{key}").model
        if model in out:
            raise TopologyError(f"{b.at(f'compute.{key}')}{key!r} and {named[model]!r} both "
                                f"name {model}; give its calibration once.")
        out[model], named[model] = params, key
    return out

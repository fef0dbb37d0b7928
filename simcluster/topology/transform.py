"""What-if changes to a built cluster: faster, slower, flapping or failed links and switches,
failed or other accelerators, other hardware parameters.

Each function returns a new Cluster and leaves the given one as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np

from simcluster.errors import TopologyError
from simcluster.names import suggestion
from simcluster.topology import catalog
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.cluster import Cluster


LINK_SEP = "--"


def scale_links(cluster: Cluster, factors: dict[str, float]) -> Cluster:
    """Multiply the bandwidth of links by a factor per link kind (``ib``, ``nvlink``, ...),
    role (``nic``, ``spine``, see ``Cluster.link_roles``), node (every link into or out of
    it, e.g. a switch) or link (``A--B``: both directions between nodes A and B).

    Raises:
        TopologyError: a name that is none of these in this cluster, or a factor that is not
            positive.
    """
    for name, factor in factors.items():
        if not factor > 0:
            raise TopologyError(f"--scale-link {name}={factor}: the factor must be positive.")
    return _scaled(cluster, factors, "--scale-link", _describe(factors))


def flapping(cluster: Cluster, fractions: dict[str, float]) -> Cluster:
    """Links that are down a fraction of the time (a flapping NIC, a link that retrains),
    modelled as their long-run average bandwidth: ``bandwidth x (1 - fraction)``.

    ``fractions`` maps a node (every link into or out of it: a NIC, a switch) or a link
    (``A--B``), or a link kind or role, to the fraction of time it is down. The average is
    right for transfers much longer than the flap period; a transfer shorter than one down
    (or up) interval sees either the whole bandwidth or none, which the average does not
    show, and neither are the timeouts and retransmissions of a real flap modelled.

    Example:
        >>> from simcluster.topology.recorded import recorded_cluster
        >>> c = recorded_cluster("H100", 2)      # one server, two GPUs on an NVSwitch
        >>> f = flapping(c, {"node0/gpu1--node0/nvswitch": 0.25})
        >>> (f.bandwidth_Bpus[-4:] / 1e3).tolist()   # NVLink GB/s, gpu0 and gpu1 both ways
        [450.0, 450.0, 337.5, 337.5]

    Raises:
        TopologyError: an unknown name, or a fraction outside [0, 1) (a link down all the
            time is ``fail``).
    """
    for name, f in fractions.items():
        if not 0.0 <= f < 1.0:
            raise TopologyError(
                f"--flap {name}={f}: the fraction of time down must be at least 0 and below "
                f"1; for an element that is down all the time use --fail {name}.")
    label = ", ".join(f"{k} flapping {v:.0%}" for k, v in sorted(fractions.items()))
    return _scaled(cluster, {k: 1.0 - v for k, v in fractions.items()}, "--flap", label)


def fail(cluster: Cluster, elements: Sequence[str]) -> Cluster:
    """The cluster with ``elements`` down: nodes (a switch, a NIC, an accelerator: every
    link into or out of it), servers (every node of the host, e.g. ``node3``) or links
    (``A--B``, both directions).

    Routes go around what is down (``Router`` skips ``down_links`` and drops the closed-form
    fabric routes). A failed accelerator leaves ``accelerators``, so the workload runs on
    the others (a placement strategy places over what remains; more ranks than that is a
    PlacementError). An accelerator whose own NIC no longer reaches the fabric sends through
    the nearest NIC of its server that does, as NCCL picks a working NIC at start-up.

    Example:
        >>> from simcluster.topology.recorded import recorded_cluster
        >>> c = fail(recorded_cluster("H100", 2), ["node0/gpu1"])
        >>> sorted(c.down_links), c.accelerators
        ([10, 11, 14, 15], ('node0/gpu0',))

    Raises:
        TopologyError: a name that is not a node or a link of the cluster (the message
            suggests the closest node).
    """
    if not elements:
        return cluster
    src, dst = np.asarray(cluster.link_src), np.asarray(cluster.link_dst)
    down = np.zeros(cluster.num_links, dtype=bool)
    gone: set[str] = set()
    for name in elements:
        down |= _select(cluster, name, "--fail", kinds=False)
        gone.update(a for a in ([name] if name in cluster.graph else _host_nodes(cluster, name))
                    if cluster.kind_of(a) == "accelerator")
    ids = cluster.down_links | frozenset(np.flatnonzero(down).tolist())
    graph = cluster.graph.copy()
    graph.remove_edges_from((cluster.link_src[i], cluster.link_dst[i]) for i in ids)
    for a in cluster.accelerators:
        nic = graph.nodes[a].get("nic")
        if nic is not None and graph.nodes[nic].get("host") is not None and not _on_fabric(
                graph, nic):
            del graph.nodes[a]["nic"]  # the router picks the nearest working gateway
    touched = {cluster.host_of(n) for i in ids for n in (src[i], dst[i])}
    accelerators = tuple(a for a in cluster.accelerators if a not in gone)
    return replace(
        cluster, graph=graph, accelerators=accelerators, accelerator_index={},
        specs={a: cluster.specs[a] for a in accelerators}, down_links=ids,
        failed=cluster.failed + tuple(elements),
        template_hosts={h: t for h, t in cluster.template_hosts.items() if h not in touched},
        name=f"{cluster.name} (down: {', '.join(elements)})")


def _on_fabric(graph: nx.DiGraph, node: str) -> bool:
    """``node`` still sends to and receives from a host-less (fabric) node."""
    nodes = graph.nodes
    return (any(nodes[v].get("host") is None for v in graph.succ[node])
            and any(nodes[u].get("host") is None for u in graph.pred[node]))


def _select(cluster: Cluster, name: str, option: str, kinds: bool = True) -> np.ndarray:
    """The links ``name`` stands for, as a mask over link ids: a kind or role (when
    ``kinds``), a link ``A--B`` (both directions), a node (its links both ways) or a server
    (the links of its nodes).

    Raises:
        TopologyError: nothing of that name (the message lists the kinds and roles and
            suggests the closest node).
    """
    src, dst = np.asarray(cluster.link_src), np.asarray(cluster.link_dst)
    if kinds:
        sel = (np.asarray(cluster.link_kind) == name) | (np.asarray(cluster.link_roles()) == name)
        if sel.any():
            return sel
    a, sep, b = name.partition(LINK_SEP)
    if sep and a in cluster.graph and b in cluster.graph:
        sel = ((src == a) & (dst == b)) | ((src == b) & (dst == a))
        if not sel.any():
            raise TopologyError(f"{option} {name}: {a!r} and {b!r} are not linked in "
                                f"{cluster.name!r}; name a link as two linked nodes, A--B.")
        return sel
    if name in cluster.graph:
        return (src == name) | (dst == name)
    members = _host_nodes(cluster, name)
    if members:
        return np.isin(src, members) | np.isin(dst, members)
    nodes = [n for n in (a, b) if n and n not in cluster.graph] if sep else [name]
    known = sorted(set(cluster.link_kind) | set(cluster.link_roles())) if kinds else []
    what = "link kind, role, node or link" if kinds else "node or link"
    raise TopologyError(
        f"{option} {name}: no {what} of that name in {cluster.name!r}; "
        f"{suggestion(nodes[0], cluster.graph.nodes)}"
        + (f"use one of {', '.join(known)}, " if known else "use ")
        + f"a node or server name (`simcluster topology show` lists them) or a link as "
        f"A{LINK_SEP}B.")


def _host_nodes(cluster: Cluster, host: str) -> list[str]:
    """The nodes of server ``host`` (none if it is not a server's name)."""
    return [n for n, h in cluster.graph.nodes(data="host") if h == host]


def _scaled(cluster: Cluster, factors: dict[str, float], option: str, label: str) -> Cluster:
    """Bandwidth and capacity times each factor, over the links its name selects."""
    scale = np.ones(cluster.num_links)
    for name, factor in factors.items():
        scale[_select(cluster, name, option)] *= factor
    return replace(cluster, bandwidth_Bpus=cluster.bandwidth_Bpus * scale,
                   capacity_Bpus=cluster.capacity_Bpus * scale,
                   name=f"{cluster.name} ({label})")


def with_device(cluster: Cluster, model: str | AcceleratorSpec) -> Cluster:
    """Every accelerator becomes ``model`` (catalog name or alias, or a spec such as a
    user-defined part); links stay as they were.

    Raises:
        TopologyError: unknown model (the message suggests the closest, lists the known ones
            and says how to define one).
    """
    spec = model if isinstance(model, AcceleratorSpec) else catalog.lookup(model)
    if spec is None:
        raise TopologyError(f"--device {model!r}: {catalog.unknown_message(str(model))}")
    specs: dict[str, AcceleratorSpec] = {a: spec for a in cluster.specs}
    graph = cluster.graph.copy()
    for a in cluster.specs:
        graph.nodes[a]["model"] = spec.model
    return replace(cluster, specs=specs, graph=graph, name=f"{cluster.name} ({spec.model})")


# Hardware parameters :func:`with_hardware` sets, per accelerator (units in the names): dense
# BF16 peak, HBM capacity and bandwidth, scale-up (NVLink, ICI) and scale-out (NIC)
# bandwidth per direction, and the scale-up domain's size (GPUs per NVLink domain:
# :func:`with_scale_up_size`).
HARDWARE_PARAMS: tuple[str, ...] = ("peak_tflops", "hbm_GiB", "hbm_GBps", "scale_up_GBps",
                                    "scale_out_GBps", "scale_up_size")
SCALE_UP_LINKS: tuple[str, ...] = ("nvlink", "ici")


def hardware_of(cluster: Cluster) -> dict[str, float]:
    """The :data:`HARDWARE_PARAMS` of the cluster's first accelerator: its spec's BF16 peak
    and HBM; the summed bandwidth of its scale-up links out (GB/s); the summed bandwidth of
    the NICs' links to their first switch over the accelerators (GB/s per GPU; 0 without
    NICs).

    The scale-up domain's size is the accelerators of the first one's server.

    Example:
        >>> from simcluster.topology import load_cluster
        >>> hardware_of(load_cluster("topologies/h100-2node.yaml"))  # 16 GPUs, 16 x 50 GB/s NICs
        {'peak_tflops': 989.5, 'hbm_GiB': 80, 'hbm_GBps': 3350, 'scale_up_GBps': 450.0, \
'scale_out_GBps': 50.0, 'scale_up_size': 8}
    """
    first = cluster.accelerators[0]
    spec = cluster.specs[first]
    src = np.asarray(cluster.link_src)
    kinds = np.asarray(cluster.link_kind)
    up = (src == first) & np.isin(kinds, SCALE_UP_LINKS)
    nic_kind = np.array([cluster.graph.nodes[u]["kind"] == "nic" for u in cluster.link_src])
    out = nic_kind & (np.asarray(cluster.link_roles()) == "nic")
    return {"peak_tflops": spec.peak_tflops.get("bf16", 0.0), "hbm_GiB": spec.hbm_GiB,
            "hbm_GBps": spec.hbm_GBps,
            "scale_up_GBps": float(cluster.bandwidth_Bpus[up].sum()) / 1e3,
            "scale_out_GBps": float(cluster.bandwidth_Bpus[out].sum()) / 1e3
            / len(cluster.accelerators),
            "scale_up_size": sum(cluster.host_of(a) == cluster.host_of(first)
                                 for a in cluster.accelerators)}


def with_hardware(cluster: Cluster, params: dict[str, float]) -> Cluster:
    """Every accelerator gets the :data:`HARDWARE_PARAMS` in ``params`` (the others stay):
    every dtype's peak scales by the BF16 ratio, HBM as given; scale-up links (NVLink, ICI)
    and the NICs' links (role ``nic``) scale by the ratio to :func:`hardware_of`; a
    ``scale_up_size`` other than the cluster's rebuilds it first (:func:`with_scale_up_size`).
    The accelerator keeps its model name, so the compute model keeps its chip's calibration.

    Raises:
        TopologyError: an unknown parameter, a value that is not positive, a bandwidth the
            cluster has no links for (scale-out without NICs, scale-up without NVLink), a
            scale-up size the cluster cannot be rebuilt with.
    """
    unknown = sorted(set(params) - set(HARDWARE_PARAMS))
    if unknown:
        raise TopologyError(f"hardware parameter {unknown[0]!r}: use one of "
                            f"{', '.join(HARDWARE_PARAMS)}.")
    base = hardware_of(cluster)
    for name, value in params.items():
        if not value > 0 and value != base[name]:
            raise TopologyError(f"hardware parameter {name} = {value}: must be positive.")
    size = params.get("scale_up_size", base["scale_up_size"])
    if size != base["scale_up_size"]:
        cluster = with_scale_up_size(cluster, size)
        base = hardware_of(cluster)
    factors: dict[str, float] = {}
    for name, kinds in (("scale_up_GBps", set(cluster.link_kind) & set(SCALE_UP_LINKS)),
                        ("scale_out_GBps", {"nic"})):
        if name in params and params[name] != base[name]:
            if base[name] <= 0:
                raise TopologyError(f"hardware parameter {name}: {cluster.name!r} has no "
                                    "such links to scale; leave it out for this topology.")
            factors.update({k: params[name] / base[name] for k in kinds})
    cluster = scale_links(cluster, factors) if factors else cluster
    specs: dict[str, AcceleratorSpec] = {}
    for a, spec in cluster.specs.items():
        ratio = params.get("peak_tflops", base["peak_tflops"]) / base["peak_tflops"]
        specs[a] = replace(spec, peak_tflops={k: v * ratio for k, v in spec.peak_tflops.items()},
                           hbm_GiB=params.get("hbm_GiB", spec.hbm_GiB),
                           hbm_GBps=params.get("hbm_GBps", spec.hbm_GBps),
                           nvlink_GBps=params.get("scale_up_GBps", spec.nvlink_GBps))
    return replace(cluster, specs=specs, name=f"{cluster.name} ({_describe(params)})")


def with_scale_up_size(cluster: Cluster, size: float) -> Cluster:
    """The cluster rebuilt from its topology file with ``size`` accelerators per scale-up
    domain (server: NVSwitch or NVLink mesh) and the same accelerators in all: ``count x
    accelerators / size`` servers of ``size``. Each GPU keeps its NVLink bandwidth and its
    share of NICs (a server of ``size`` GPUs gets ``nics x size / accelerators`` NICs, each
    at its line rate), so the scale-out fabric connects the same NICs in the same template
    (single switch, fat-tree: unchanged); a leaf-spine or rail-optimized fabric keeps about
    the same GPUs per leaf or scalable unit (``nodes_per_leaf`` scaled by the old size
    over the new, at least 1). PCIe switches keep their accelerators (at most ``size``).
    The accelerators keep their spec (a ``--device`` applied before stays).

    Example:
        >>> from simcluster.topology import load_cluster
        >>> c = with_scale_up_size(load_cluster("topologies/h100-2node.yaml"), 16)
        >>> len(c.accelerators), c.host_of(c.accelerators[15]), hardware_of(c)["scale_up_size"]
        (16, 'node0', 16)

    Raises:
        TopologyError: a size that is not a whole number dividing the accelerators, or one
            that would split a NIC; a cluster not loaded from a file, with failed elements,
            or not one group of NVLink servers (explicit devices or links, PCIe-only
            servers, a torus); the message says which and the sizes that would do.
    """
    from simcluster.topology import load_topology
    from simcluster.topology.build import build

    what = f"hardware parameter scale_up_size = {size:g}"
    if not (cluster.source and Path(cluster.source).is_file()) or cluster.failed:
        raise TopologyError(f"{what}: the domain size rebuilds the topology from its file; "
                            f"{cluster.name!r} " + ("has failed elements (fail them after)"
                                                    if cluster.failed else "has no file") + ".")
    spec, doc, models = load_topology(cluster.source)
    if (len(spec.nodes) != 1 or spec.devices or spec.links or spec.nodes[0].fabric == "pcie"
            or (spec.fabric is not None and spec.fabric.dims)):
        raise TopologyError(f"{what}: {cluster.source} must be one nodes: group of NVSwitch "
                            "or NVLink-mesh servers without explicit devices, links or a "
                            "torus, to be rebuilt with another domain size; leave "
                            "scale_up_size out for this topology.")
    node = spec.nodes[0]
    total = node.count * node.accelerators
    nics = node.nics.count * size / node.accelerators
    fits = [d for d in range(1, total + 1) if total % d == 0
            and (node.nics.count * d) % node.accelerators == 0]
    if size != int(size) or total % size or nics != int(nics):
        raise TopologyError(f"{what}: {cluster.source} has {total} accelerators with "
                            f"{node.nics.count} NICs per {node.accelerators}; use a size that "
                            f"divides them whole: {', '.join(map(str, fits))}.")
    n = int(size)
    new = node.model_copy(update={
        "count": total // n, "accelerators": n,
        "nics": node.nics.model_copy(update={"count": int(nics)}),
        "pcie": node.pcie.model_copy(update={
            "accelerators_per_switch": min(node.pcie.accelerators_per_switch, n)})})
    fabric = spec.fabric
    if fabric is not None and fabric.nodes_per_leaf:
        fabric = fabric.model_copy(update={"nodes_per_leaf": max(
            1, round(fabric.nodes_per_leaf * node.accelerators / n))})
    built = build(spec.model_copy(update={"nodes": [new], "fabric": fabric}),
                  source=cluster.source, doc=doc, models=models)
    first = cluster.specs[cluster.accelerators[0]]
    if built.specs[built.accelerators[0]] != first:
        built = with_device(built, first)
    return replace(built, name=cluster.name)


def _describe(factors: dict[str, float]) -> str:
    return ", ".join(f"{k} x{v:g}" for k, v in sorted(factors.items()))

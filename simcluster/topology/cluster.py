"""The Cluster: a directed graph of devices and links, plus flat arrays for the simulator.

Graph nodes carry ``kind`` (``accelerator``, ``switch``, ``nic``, ``cpu``, ``memory``),
``host`` (the server a node belongs to, ``None`` for fabric switches), for accelerators
``model`` and ``nic`` (the NIC its traffic leaves the host through; on a torus, its ICI
router, with the chip's ``torus`` coordinates and the ``torus_dims``), and for fabric and
explicit switches ``sharp`` (it reduces in-network, InfiniBand SHARP). Edges carry ``id``, an
index into the link arrays. Link arrays hold bandwidth in bytes per microsecond (1 GB/s =
1e3 B/us) and latency in microseconds, the units the simulator computes in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pyarrow as pa

from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.schema import ComputeParams, NetworkParams

# Node kinds that may forward traffic between other nodes. Accelerators and memories are
# endpoints only: a route never passes through a GPU or a DRAM.
TRANSIT_KINDS = frozenset({"switch", "nic", "cpu"})


@dataclass(frozen=True)
class Cluster:
    """A built cluster; immutable once made by :func:`simcluster.topology.build.build`.

    Attributes:
        name: the topology's name.
        graph: the device graph (see module docstring for attributes).
        accelerators: accelerator node names in topology order (rank i goes to the i-th by
            default).
        specs: accelerator node name -> its spec.
        link_src, link_dst, link_kind: per link id, its endpoints and kind.
        bandwidth_Bpus: per link id, bytes per microsecond.
        latency_us: per link id, one-way latency in microseconds.
        route_cost: per link id, the integer routing cost (see ``builder.route_cost``).
        capacity_Bpus: per link id, the bandwidth the network model runs it at: line rate x
            the link kind's efficiency (``catalog.LINK_EFFICIENCY``, overridable under
            ``network.link_efficiency``), bytes per microsecond.
        network: collective-model parameters.
        source: the file it was loaded from, if any.
        cost_usd_per_hour: the topology's price per accelerator-hour (one, or per model).
        compute: per accelerator model (the spec's ``model``), the topology's ``compute:``
            calibration; the simulator's compute model applies it over the built-in one.
        template_hosts: host -> (template index, id of its first link) for hosts built from a
            template and untouched by explicit devices or links. Such a host's links are
            numbered like every other host of its template, shifted by its first link id,
            so routes inside it can be computed once per template.
        down_links: link ids that are down (a failure what-if, ``transform.fail``): routes
            never use them; their graph edges are removed.
        failed: the failed elements as the user named them (nodes, or links ``A--B``).
    """

    name: str
    graph: nx.DiGraph
    accelerators: tuple[str, ...]
    specs: dict[str, AcceleratorSpec]
    link_src: tuple[str, ...]
    link_dst: tuple[str, ...]
    link_kind: tuple[str, ...]
    bandwidth_Bpus: np.ndarray
    latency_us: np.ndarray
    network: NetworkParams
    route_cost: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    capacity_Bpus: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source: str = ""
    description: str = ""
    accelerator_index: dict[str, int] = field(default_factory=dict)
    template_hosts: dict[str, tuple[int, int]] = field(default_factory=dict)
    cost_usd_per_hour: float | dict[str, float] | None = None
    compute: dict[str, ComputeParams] = field(default_factory=dict)
    down_links: frozenset[int] = frozenset()
    failed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.capacity_Bpus) != len(self.bandwidth_Bpus):
            object.__setattr__(self, "capacity_Bpus", self.bandwidth_Bpus.copy())
        for arr in (self.bandwidth_Bpus, self.latency_us, self.capacity_Bpus):
            arr.setflags(write=False)
        if not self.accelerator_index:
            object.__setattr__(
                self, "accelerator_index", {a: i for i, a in enumerate(self.accelerators)}
            )

    @property
    def num_links(self) -> int:
        """Number of directed links."""
        return len(self.link_src)

    def kind_of(self, node: str) -> str:
        """The kind of graph node ``node``."""
        return self.graph.nodes[node]["kind"]

    def host_of(self, node: str) -> str | None:
        """The server ``node`` belongs to, or None for fabric switches."""
        return self.graph.nodes[node].get("host")

    def links_table(self) -> pa.Table:
        """One row per directed link: id, src, dst, kind, bandwidth_GBps (line rate),
        capacity_GBps (what the model runs it at), latency_ns."""
        return pa.table(
            {
                "link_id": pa.array(np.arange(self.num_links, dtype=np.int32)),
                "src": pa.array(self.link_src, pa.string()),
                "dst": pa.array(self.link_dst, pa.string()),
                "kind": pa.array(self.link_kind, pa.string()),
                "role": pa.array(self.link_roles(), pa.string()),
                "bandwidth_GBps": pa.array(self.bandwidth_Bpus / 1e3),
                "capacity_GBps": pa.array(self.capacity_Bpus / 1e3),
                "latency_ns": pa.array(self.latency_us * 1e3),
            }
        )

    def link_roles(self) -> list[str]:
        """What each link is for, to tell NVLink-, PCIe-, NIC- and spine-bound steps apart:
        ``nvlink``, ``pcie``, ``nic`` (a NIC to its first switch, either way), ``spine`` (between
        fabric switches), ``ici``, or the link kind otherwise."""
        nodes = self.graph.nodes
        roles = []
        for u, v, kind in zip(self.link_src, self.link_dst, self.link_kind):
            if kind in ("ib", "ethernet"):
                nic = nodes[u]["kind"] == "nic" or nodes[v]["kind"] == "nic"
                roles.append("nic" if nic else "spine")
            else:
                roles.append(kind)
        return roles

    def counts(self) -> dict[str, int]:
        """Number of graph nodes by kind, plus ``links`` and ``hosts``."""
        out: dict[str, int] = {}
        for _, kind in self.graph.nodes(data="kind"):
            out[kind] = out.get(kind, 0) + 1
        out["links"] = self.num_links
        out["hosts"] = len({h for _, h in self.graph.nodes(data="host") if h is not None})
        return out

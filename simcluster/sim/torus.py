"""Dimension-ordered collectives on a torus of chips (TPU ICI), as phases of flows (pure).

On a torus fabric (``fabric: topology: torus``, ``topology/fabrics.py``) every chip has a
router linked to its +-1 neighbours in each dimension, with wraparound. A group whose ranks
fill a *sub-torus* (in every dimension either all of its positions, a full ring, or one
position) runs an all-reduce per torus dimension, as collectives on TPU slices are
described in Google DeepMind's "How to Scale Your Model" (2025, part 3):

- reduce-scatter along the rings of the first spanned dimension, then along the next
  dimension's rings on the shard each rank holds, and so on;
- all-gather in the reverse order of dimensions.

Each ring is *bidirectional*: half the data goes each way, so every ICI link of the ring
carries traffic in both directions. On a ring of ``n`` chips holding ``D`` bytes each, a
reduce-scatter (or all-gather) phase sends ``(n-1)/n * D / 2`` bytes over each direction's
link from every chip, in ``n - 1`` steps. With the spanned dimensions ``n_1 .. n_k`` in
order, the phase along ``n_j`` starts with ``D_j = S / (n_1 ... n_{j-1})``. So on a 4x4
torus an all-reduce of ``S`` moves ``3/8 S`` then ``3/32 S`` per link per direction in the
reduce-scatter, and the same again in the all-gather: ``15/16 S`` in ``12`` steps, where
one ring over the 16 chips moves ``2 * 15/16 S`` one way in ``30`` steps.

Sizes follow nccl-tests (``collectives.py``): ``reduce_scatter`` is the first half (``S`` the
full input), ``all_gather`` the second (``S`` the full output), with the same phases.

Each step costs the ICI hop latency of the fabric's torus links (``fabric.link.latency_ns``;
the per-hop overhead of about 1 us that the same book quotes for TPU ICI is what
``topologies/tpu-v5p-4x4x8.yaml`` sets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simcluster.sim.collectives import Layout, Phase
from simcluster.topology.cluster import Cluster

Coord = tuple[int, ...]


@dataclass(frozen=True)
class TorusGrid:
    """Where a group's ranks sit on a torus fabric.

    Attributes:
        dims: the torus's size per dimension (e.g. ``(4, 4, 8)``).
        coords: per layout position, its chip's coordinates.
        hop_latency_us: the latency of one ICI hop between neighbouring routers (us): the
            largest of the torus links out of the group's routers.

    Example:
        >>> g = TorusGrid(dims=(4, 2), coords=((0, 1), (1, 1), (2, 1), (3, 1)),
        ...               hop_latency_us=1.0)
        >>> g.spanned(), g.is_sub_torus()
        ((0,), True)
    """

    dims: tuple[int, ...]
    coords: tuple[Coord, ...]
    hop_latency_us: float = 0.0

    def spanned(self) -> tuple[int, ...]:
        """The dimensions along which the group's coordinates differ, in order."""
        return tuple(d for d in range(len(self.dims))
                     if len({c[d] for c in self.coords}) > 1)

    def is_sub_torus(self) -> bool:
        """Whether the group fills whole rings: every spanned dimension fully, each chip once
        (so the group is the product of full rings, and a ring's chips are all in it)."""
        spanned = self.spanned()
        if not spanned or len(set(self.coords)) != len(self.coords):
            return False
        full = all(len({c[d] for c in self.coords}) == self.dims[d] for d in spanned)
        return full and len(self.coords) == math.prod(self.dims[d] for d in spanned)


def torus_grid(cluster: Cluster, devices: Sequence[str]) -> TorusGrid | None:
    """The torus coordinates of ``devices`` (in that order), or None unless every one is a
    chip of the same torus fabric (the ``torus`` and ``torus_dims`` its fabric recorded).

    Costs O(devices): one look-up per chip and its router's links.
    """
    nodes = cluster.graph.nodes
    coords: list[Coord] = []
    dims: set[tuple[int, ...]] = set()
    for dev in devices:
        attrs = nodes[dev]
        if "torus" not in attrs:
            return None
        coords.append(attrs["torus"])
        dims.add(attrs["torus_dims"])
    if len(dims) != 1:
        return None
    return TorusGrid(dims=dims.pop(), coords=tuple(coords),
                     hop_latency_us=_hop_latency_us(cluster, devices))


def _hop_latency_us(cluster: Cluster, devices: Sequence[str]) -> float:
    """The largest latency of the torus links out of the devices' ICI routers (us)."""
    g = cluster.graph
    routers = {g.nodes[d].get("nic") for d in devices} - {None}
    lats = [float(cluster.latency_us[e["id"]]) for r in sorted(routers)
            for v, e in g.succ[r].items() if g.nodes[v].get("role") == "ici-router"]
    return max(lats, default=0.0)


def on_sub_torus(layout: Layout) -> bool:
    """A torus algorithm applies: the group fills a sub-torus of a torus fabric."""
    return layout.torus is not None and layout.torus.is_sub_torus()


def _neighbour(coord: Coord, dim: int, step: int, n: int) -> Coord:
    c = list(coord)
    c[dim] = (c[dim] + step) % n
    return tuple(c)


def reduce_scatter_phases(layout: Layout) -> list[Phase]:
    """The reduce-scatter half: one phase per spanned dimension, in order, each a coupled
    set of flows from every chip to both its neighbours along that dimension."""
    grid = layout.torus
    assert grid is not None and grid.is_sub_torus()
    position = {c: k for k, c in enumerate(grid.coords)}
    d = layout.devices
    phases: list[Phase] = []
    held = 1.0  # bytes each chip reduces in this phase, per byte of S
    for dim in grid.spanned():
        n = grid.dims[dim]
        paths = tuple((d[k], d[position[_neighbour(c, dim, step, n)]])
                      for k, c in enumerate(grid.coords) for step in (1, -1))
        share = np.full(len(paths), held * (n - 1) / n / 2)
        phases.append(Phase(paths, share, 0, 0, latency_us=(n - 1) * grid.hop_latency_us))
        held /= n
    return phases


def plan_torus(layout: Layout, collective: str) -> list[Phase]:
    """Dimension-ordered bidirectional rings: ``all_reduce`` is the reduce-scatter phases
    then the same phases in reverse (the all-gather), ``reduce_scatter`` the first half,
    ``all_gather`` the second."""
    rs = reduce_scatter_phases(layout)
    return {"reduce_scatter": rs, "all_gather": rs[::-1]}.get(collective, rs + rs[::-1])

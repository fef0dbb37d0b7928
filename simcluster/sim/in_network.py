"""Plans of the collectives that reduce inside switches (no SimPy here).

NVSwitches with NVLink SHARP (NVLS) and InfiniBand switches with SHARP add the buffers that
pass through them, so a rank sends its data once and gets the result once, instead of the
``2(p-1)/p`` of a ring. The plans follow NCCL's algorithms of the same names (``p`` ranks
on ``N`` servers, ``C`` channels = NIC rails common to every server, each handled by one
*head* per server: its rank on that rail, :meth:`Layout.head`; at most NCCL's number of
heads, :data:`MAX_NVLS_HEADS` and :data:`MAX_DIRECT_HEADS`):

- ``nvls`` (NCCL ``NVLS``, one NVLink domain): every rank sends ``S`` up to the NVSwitch and
  gets ``S`` back, at the NVLS efficiency. A domain is a server of the topology, whatever its
  size: an 8-GPU DGX, or a 72-GPU GB200 NVL72 rack (NCCL treats a multi-node NVLink domain
  as one node too).
- ``nvls-tree`` (NCCL ``NVLS_TREE``, all_reduce across NVLS domains): NVLS reduction in each
  server, a double binary tree of the heads across servers over the NICs (``S/2C`` per tree
  edge each way, at the tree's network factor), NVLS broadcast; all pipelined.
- ``collnet-chain`` (NCCL ``COLLNET_CHAIN``): per channel, a chain through each server to its
  head (``S/C`` per hop), the head's ``S/C`` up to the SHARP switches of its rail and the
  reduced ``S/C`` back, then down the chain.
- ``collnet-direct`` (NCCL ``COLLNET_DIRECT``): every rank sends head ``h`` its ``S/C``
  share directly, the heads exchange ``S/C`` each with the SHARP switches, and send the
  result back to every rank.

Across the network each byte crosses each NIC once up and once down. The SHARP switches of a
channel form its :class:`AggregationTree`: each reduces its children's streams into one for
its parent, so every tree edge carries ``S/C`` each way whatever the number of servers. Every
plan is one coupled phase: NCCL pipelines the reduction, the network part and the broadcast.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

from simcluster.sim.collectives import Layout, Phase, layout_channels, rotated, tree_parents

# Heads per server at most (NCCL src/include/device.h, 2.21 and later): NVLS and NVLS-tree
# NCCL_MAX_NVLS_ARITY = 32 (a GB200 NVL72 rack uses 32 of its 72 NICs for NVLS-tree);
# CollNet Direct NCCL_MAX_DIRECT_ARITY + 1 = 8.
MAX_NVLS_HEADS = 32
MAX_DIRECT_HEADS = 8


def plan_nvls(layout: Layout, efficiency: float) -> list[Phase]:
    """In-switch reduction in one NVLink domain: each rank sends S to the switch and gets S
    back."""
    switch = layout.nvls_switch[0]
    assert switch is not None
    paths = [(dev, switch) for dev in layout.devices] + [(switch, dev) for dev in layout.devices]
    return [Phase(tuple(paths), np.ones(len(paths)), 2, 0, efficiency=efficiency)]


def _nvls_flows(layout: Layout, efficiency: float) -> tuple[list[tuple[str, ...]], list[float]]:
    """Every rank to its server's NVSwitch and back, ``S / efficiency`` each."""
    paths: list[tuple[str, ...]] = []
    for k, switch in enumerate(layout.nvls_switch):
        assert switch is not None
        for i in layout.hosts[k]:
            paths += [(layout.devices[i], switch), (switch, layout.devices[i])]
    return paths, [1.0 / efficiency] * len(paths)


def plan_nvls_tree(layout: Layout, efficiency: float, net_factor: float) -> list[Phase]:
    """NVLS inside each server, a double binary tree of each channel's heads across servers.

    Args:
        layout: at least two servers, each with an NVLS switch.
        efficiency: the NVLS efficiency of the NVLink flows.
        net_factor: the fraction of bandwidth the tree edges run at.
    """
    d = layout.devices
    paths, shares = _nvls_flows(layout, efficiency)
    rails = layout.channel_rails()[:MAX_NVLS_HEADS]
    edge_share = 1.0 / (2 * len(rails) * net_factor)
    for rail in rails:
        heads = [d[layout.head(k, rail)] for k in range(layout.n_hosts)]
        for mirrored in (False, True):
            for child, parent in enumerate(tree_parents(layout.n_hosts, mirrored)):
                if parent >= 0:
                    paths += [(heads[child], heads[parent]), (heads[parent], heads[child])]
                    shares += [edge_share, edge_share]
    depth = math.ceil(math.log2(layout.n_hosts))
    return [Phase(tuple(paths), np.array(shares), 2, 2 * depth)]


def _switch_flows(layout: Layout, rail_index: int, heads: list[str]
                  ) -> list[tuple[str, ...]]:
    """Each head up to its leaf switch and back, and every tree edge both ways."""
    tree = layout.sharp[rail_index]
    paths: list[tuple[str, ...]] = []
    for head, leaf in zip(heads, tree.leaves):
        paths += [(head, leaf), (leaf, head)]
    for child, parent in tree.edges:
        paths += [(child, parent), (parent, child)]
    return paths


def plan_collnet_chain(layout: Layout) -> list[Phase]:
    """CollNet chain: per channel, reduce along a chain to the head in every server, through
    the SHARP tree and back, broadcast down the chain (all_reduce, ``layout.sharp`` set)."""
    d = layout.devices
    rails = layout.channel_rails()
    channels = layout_channels(layout)
    paths: list[tuple[str, ...]] = []
    for rail, ring in channels:
        chains = [rotated(layout, layout.order(k, ring), rail) for k in range(layout.n_hosts)]
        for chain in chains:  # reduce towards the head, broadcast back
            paths += [(d[b], d[a]) for a, b in pairwise(chain)]
            paths += [(d[a], d[b]) for a, b in pairwise(chain)]
        paths += _switch_flows(layout, rails.index(rail), [d[c[0]] for c in chains])
    g = max(len(h) for h in layout.hosts)
    return [Phase(tuple(paths), np.full(len(paths), 1.0 / len(channels)), 2 * (g - 1), 1)]


def plan_collnet_direct(layout: Layout, arity_latency_us: float) -> list[Phase]:
    """CollNet direct: every rank to each head and back directly, each head through the SHARP
    tree (all_reduce, ``layout.sharp`` set).

    Args:
        layout: the group.
        arity_latency_us: latency per rank a head serves, each way (us).
    """
    d = layout.devices
    rails = layout.channel_rails()[:MAX_DIRECT_HEADS]
    paths: list[tuple[str, ...]] = []
    for c, rail in enumerate(rails):
        heads = [layout.head(k, rail) for k in range(layout.n_hosts)]
        for k, head in enumerate(heads):
            others = [i for i in layout.hosts[k] if i != head]
            paths += [(d[i], d[head]) for i in others] + [(d[head], d[i]) for i in others]
        paths += _switch_flows(layout, c, [d[h] for h in heads])
    g = max(len(h) for h in layout.hosts)
    return [Phase(tuple(paths), np.full(len(paths), 1.0 / len(rails)), 2 * min(1, g - 1), 1,
                  latency_us=2 * (g - 1) * arity_latency_us)]

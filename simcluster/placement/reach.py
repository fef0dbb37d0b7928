"""Whether the ranks that must talk still reach each other on a cluster with failed elements.

A failure what-if (``topology.transform.fail``) removes links; routes go around them where
the fabric leaves a way. Where it does not, the run would stop at the first flow without a
route; checking first names the group, the two ranks and what failed, before any simulation.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simcluster.errors import PartitionError, TopologyError
from simcluster.placement.bind import Bound
from simcluster.topology.routing import Router


def check_reachable(bound: Bound) -> None:
    """Raise if a group's members (or a send/recv pair) can no longer reach each other.

    For each group, routes from its first member to every other member and back are
    checked (O(members) routes per group); every distinct send/recv pair is checked one way.
    A cluster with nothing failed is not checked. A send or recv whose peer is null (outside
    the workload) is skipped.

    Raises:
        PartitionError: the group, the two ranks and their accelerators, and the failed
            elements.
    """
    cluster = bound.cluster
    if not cluster.failed:
        return
    router = Router(cluster)
    devices = bound.placement.devices
    pairs: list[tuple[str, int, int]] = []
    for name, ranks in bound.workload.groups.items():
        for r in ranks[1:]:
            pairs += [(name, ranks[0], r), (name, r, ranks[0])]
    pairs += [("send/recv", a, b) for a, b in _p2p_pairs(bound.workload.ops)]
    for group, a, b in pairs:
        try:
            router.route(devices[a], devices[b])
        except TopologyError:
            raise PartitionError(
                f"group {group!r} is partitioned with {', '.join(cluster.failed)} down: rank "
                f"{a} ({devices[a]}) cannot reach rank {b} ({devices[b]}); fail fewer "
                "elements, or place the group on accelerators that still reach each other.",
                group, (a, b), (devices[a], devices[b]), cluster.failed) from None


def _p2p_pairs(ops: pa.Table) -> list[tuple[int, int]]:
    """Distinct (sender, receiver) rank pairs of the send and recv ops."""
    out: set[tuple[int, int]] = set()
    for kind, flip in (("send", False), ("recv", True)):
        t = ops.filter(pc.and_(pc.equal(ops["kind"], kind), pc.is_valid(ops["peer"])))
        if not t.num_rows:
            continue
        pair = np.stack([t["rank"].to_numpy(zero_copy_only=False),
                         t["peer"].to_numpy(zero_copy_only=False)], axis=1)
        out.update((int(b), int(a)) if flip else (int(a), int(b))
                   for a, b in np.unique(pair, axis=0).tolist())
    return sorted(out)

"""Placement strategies: which accelerator each rank runs on, by name.

A strategy is a slot order (accelerators in some order) and a rank order; rank order[i]
gets slot i.

- ``packed``: ranks in order, servers filled one after another (topology order).
- ``spread``: ranks in order, dealt round-robin over servers (rank i on server i mod H).
- ``tp-packed``: the ranks of each tensor-parallel group (groups named ``tp`` or ``tp.*``)
  together, servers filled one after another: a TP group shares a server when it fits.
- ``tp-spread``: TP groups together, dealt round-robin over servers: the members of a TP
  group land on different servers (the what-if of a TP group split over the fabric).
- ``rail-aligned``: the ranks of each data-parallel group (``dp``/``dp.*``) together, dealt
  round-robin over servers: a DP group takes one local index (one rail) on successive
  servers, so its traffic between servers stays on one rail; with Megatron-style rank order
  (TP fastest) the TP groups end up on one server each.

Ranks in no group of the strategy's kind follow, in rank order. Without groups of that kind
the strategy is ``packed`` (or ``spread``) itself.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from simcluster.errors import PlacementError
from simcluster.topology.cluster import Cluster

STRATEGIES = ("packed", "spread", "tp-packed", "tp-spread", "rail-aligned")
# strategy -> (slot order, group kind whose members go together)
_RECIPES: dict[str, tuple[str, str | None]] = {
    "packed": ("packed", None), "spread": ("spread", None), "tp-packed": ("packed", "tp"),
    "tp-spread": ("spread", "tp"), "rail-aligned": ("spread", "dp"),
}


@dataclass(frozen=True)
class Placement:
    """Rank -> accelerator node name, for ranks 0 .. len(devices)-1."""

    devices: tuple[str, ...]
    strategy: str = "packed"
    source: str = ""


def too_many(num_ranks: int, cluster: Cluster, source: str) -> PlacementError:
    return PlacementError(
        f"{source or 'placement'}: the workload has {num_ranks} ranks but cluster "
        f"{cluster.name!r} has {len(cluster.accelerators)} accelerators; use a larger topology "
        "(e.g. raise nodes[0].count) or a workload with fewer ranks."
    )


def group_kind(name: str) -> str:
    """``tp.d0.p1`` -> ``tp``: a group's kind is its name up to the first dot."""
    return name.split(".", 1)[0]


def slots(cluster: Cluster, order: str) -> list[str]:
    """Accelerators in ``packed`` (topology) or ``spread`` (round-robin over servers) order."""
    accs = list(cluster.accelerators)
    if order == "packed":
        return accs
    by_host: dict[str | None, list[str]] = {}
    for a in accs:
        by_host.setdefault(cluster.host_of(a), []).append(a)
    columns = list(by_host.values())
    return [col[i] for i in range(max(map(len, columns))) for col in columns if i < len(col)]


def rank_order(num_ranks: int, groups: dict[str, tuple[int, ...]], kind: str | None) -> list[int]:
    """Members of each group of ``kind`` together (groups in name order, members as listed),
    then every other rank in order."""
    order: list[int] = []
    seen: set[int] = set()
    if kind is not None:
        for name in sorted(g for g in groups if group_kind(g) == kind):
            for r in groups[name]:
                if r not in seen and 0 <= r < num_ranks:
                    seen.add(r)
                    order.append(r)
    order += [r for r in range(num_ranks) if r not in seen]
    return order


def strategy_placement(cluster: Cluster, num_ranks: int, strategy: str = "packed",
                       groups: dict[str, tuple[int, ...]] | None = None,
                       taken: Collection[str] = ()) -> Placement:
    """Place ranks by a named strategy (see the module docstring), on the accelerators not
    in ``taken`` (those of other jobs on the cluster), in the strategy's slot order.

    Raises:
        PlacementError: more ranks than (free) accelerators, or an unknown strategy.
    """
    if strategy not in _RECIPES:
        raise PlacementError(
            f"unknown placement strategy {strategy!r}; use one of {', '.join(STRATEGIES)}."
        )
    if num_ranks > len(cluster.accelerators):
        raise too_many(num_ranks, cluster, "")
    slot_order, kind = _RECIPES[strategy]
    free = [a for a in slots(cluster, slot_order) if a not in taken] if taken else slots(
        cluster, slot_order)
    if num_ranks > len(free):
        raise PlacementError(
            f"{strategy}: the job has {num_ranks} ranks but only {len(free)} of the "
            f"{len(cluster.accelerators)} accelerators of {cluster.name!r} are free (the other "
            "jobs hold the rest); use a larger topology or fewer ranks.")
    devices = [""] * num_ranks
    for slot, rank in enumerate(rank_order(num_ranks, groups or {}, kind)):
        devices[rank] = free[slot]
    return Placement(devices=tuple(devices), strategy=strategy)

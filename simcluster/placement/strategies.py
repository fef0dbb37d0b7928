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

- ``ep-packed``: for mixture-of-experts and long-context jobs. Blocks of ranks that should
  share a server (an NVLink domain) are built by priority: each tensor-parallel group
  (``tp``) is a block, then each context-parallel group (``cp``, the Ulysses all-to-alls)
  joins the blocks of its members, then each expert-parallel group (``ep``), each only if
  the joined block still fits in the largest server (a group that does not fit leaves its
  blocks as they are). Blocks, in the order of their lowest rank, go whole to the first
  server with room for them (packed), ranks inside a block in rank order; a block that fits
  no server's free room is spread over the free accelerators in topology order. Data- and
  pipeline-parallel traffic goes across servers. On a generated transformer, whose rank
  numbering already makes these groups consecutive, it places as ``packed``; it helps
  where the numbering does not (recorded jobs, other frameworks' rank orders).

- ``speed-aware``: for clusters of mixed accelerators. The ranks of each TP group stay
  together (one block each; every other rank is a block of its own), blocks with more work
  (the FLOPs of their compute ops, or their recorded time when the workload has no FLOPs)
  go to faster accelerators (dense bf16 peak, ties in topology order). Pairing the largest
  work with the fastest device minimises the largest work-over-speed ratio, the stage or
  replica that the others wait for. On one kind of accelerator it places as ``tp-packed``
  with the heaviest blocks first.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from simcluster.errors import PlacementError
from simcluster.topology.cluster import Cluster

STRATEGIES = ("packed", "spread", "tp-packed", "tp-spread", "rail-aligned", "speed-aware",
              "ep-packed")
# ep-packed: the group kinds that share a server, by priority.
_NESTED = ("tp", "cp", "ep")
# strategy -> (slot order, group kind whose members go together)
_RECIPES: dict[str, tuple[str, str | None]] = {
    "packed": ("packed", None), "spread": ("spread", None), "tp-packed": ("packed", "tp"),
    "tp-spread": ("spread", "tp"), "rail-aligned": ("spread", "dp"),
    "ep-packed": ("packed", None),  # its blocks: _NESTED
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
                       work: Sequence[float] | None = None,
                       taken: Collection[str] = ()) -> Placement:
    """Place ranks by a named strategy (see the module docstring), on the accelerators not
    in ``taken`` (those of other jobs on the cluster); ``work`` (per rank, any unit) is what
    ``speed-aware`` weighs, by default equal.

    Raises:
        PlacementError: more ranks than (free) accelerators, or an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise PlacementError(
            f"unknown placement strategy {strategy!r}; use one of {', '.join(STRATEGIES)}."
        )
    if num_ranks > len(cluster.accelerators):
        raise too_many(num_ranks, cluster, "")
    if strategy == "speed-aware":
        index = cluster.accelerator_index
        free = sorted((a for a in cluster.accelerators if a not in taken),
                      key=lambda a: (-device_speed(cluster, a), index[a]))
    else:
        slot_order, kind = _RECIPES[strategy]
        free = [a for a in slots(cluster, slot_order) if a not in taken]
    if num_ranks > len(free):
        raise PlacementError(
            f"{strategy}: the job has {num_ranks} ranks but only {len(free)} of the "
            f"{len(cluster.accelerators)} accelerators of {cluster.name!r} are free (the other "
            "jobs hold the rest); use a larger topology or fewer ranks.")
    if strategy == "speed-aware":
        return _speed_aware(free, num_ranks, groups or {},
                            list(work) if work is not None else [1.0] * num_ranks)
    if strategy == "ep-packed":
        return _ep_packed(cluster, free, num_ranks, groups or {})
    devices = [""] * num_ranks
    for slot, rank in enumerate(rank_order(num_ranks, groups or {}, kind)):
        devices[rank] = free[slot]
    return Placement(devices=tuple(devices), strategy=strategy)


def device_speed(cluster: Cluster, device: str) -> float:
    """What ``speed-aware`` ranks accelerators by: the dense bf16 peak (TFLOP/s), else the
    largest peak the spec gives."""
    peaks = cluster.specs[device].peak_tflops
    return float(peaks.get("bf16") or max(peaks.values(), default=0.0))


def _speed_aware(free: list[str], num_ranks: int, groups: dict[str, tuple[int, ...]],
                 work: list[float]) -> Placement:
    """Heaviest block (a TP group, or a lone rank) on the fastest of the ``free``
    accelerators (fastest first)."""
    order = rank_order(num_ranks, groups, "tp")
    block_of = {r: name for name in sorted(groups) if group_kind(name) == "tp"
                for r in groups[name]}
    blocks: list[list[int]] = []
    for r in order:
        if blocks and r in block_of and block_of.get(blocks[-1][0]) == block_of[r]:
            blocks[-1].append(r)
        else:
            blocks.append([r])
    devices = [""] * num_ranks
    slot = 0
    for block in sorted(blocks, key=lambda b: -sum(work[r] for r in b)):  # stable: rank order
        for r in block:
            devices[r] = free[slot]
            slot += 1
    return Placement(devices=tuple(devices), strategy="speed-aware")


def nested_blocks(num_ranks: int, groups: dict[str, tuple[int, ...]],
                  capacity: int) -> list[list[int]]:
    """The blocks of ``ep-packed``: ranks joined by TP, then CP, then EP groups (each group
    in name order) while a joined block has at most ``capacity`` ranks; blocks in the order
    of their lowest rank, members in rank order.

    Example:
        >>> groups = {"tp.0": (0, 4), "tp.1": (1, 5), "tp.2": (2, 6), "tp.3": (3, 7),
        ...           "ep.a": (0, 2), "ep.b": (1, 3)}
        >>> nested_blocks(8, groups, 4)
        [[0, 2, 4, 6], [1, 3, 5, 7]]
        >>> nested_blocks(8, groups, 2)  # an EP group's blocks would not fit: TP pairs
        [[0, 4], [1, 5], [2, 6], [3, 7]]
    """
    parent = list(range(num_ranks))
    size = [1] * num_ranks

    def root(r: int) -> int:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    for kind in _NESTED:
        for name in sorted(g for g in groups if group_kind(g) == kind):
            roots = sorted({root(r) for r in groups[name] if 0 <= r < num_ranks})
            if len(roots) < 2 or sum(size[x] for x in roots) > capacity:
                continue
            for x in roots[1:]:
                parent[x] = roots[0]
                size[roots[0]] += size[x]
    blocks: dict[int, list[int]] = {}
    for r in range(num_ranks):
        blocks.setdefault(root(r), []).append(r)
    return sorted(blocks.values(), key=lambda b: b[0])


def _ep_packed(cluster: Cluster, free: list[str], num_ranks: int,
               groups: dict[str, tuple[int, ...]]) -> Placement:
    """Each block of :func:`nested_blocks` whole on the first server with room for it (the
    ``free`` accelerators, in topology order), else over the free ones in that order."""
    room: dict[str | None, list[str]] = {}
    for a in free:
        room.setdefault(cluster.host_of(a), []).append(a)
    capacity = max(map(len, room.values()), default=0)
    devices = [""] * num_ranks
    spill: list[list[int]] = []
    for block in nested_blocks(num_ranks, groups, capacity):
        host = next((h for h, left in room.items() if len(left) >= len(block)), None)
        if host is None:
            spill.append(block)
            continue
        for r in block:
            devices[r] = room[host].pop(0)
    remaining = {a for v in room.values() for a in v}
    left = [a for a in free if a in remaining]
    for r in (r for b in spill for r in b):
        devices[r] = left.pop(0)
    return Placement(devices=tuple(devices), strategy="ep-packed")

"""Binding a workload to a cluster: a strategy (see ``strategies.py``) or a YAML file.

.. code-block:: yaml

    # either a strategy ...
    strategy: rail-aligned    # packed (default) | spread | tp-packed | tp-spread | rail-aligned
                              # | speed-aware | ep-packed
                              # | speed-aware
    # ... or an explicit map of rank -> accelerator (every rank of the workload, once each)
    ranks:
      0: node0/gpu0
      1: node1/gpu0

A placement only maps ranks to accelerators: the workload (its groups, dependencies and
sizes) stays exactly as it is.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, model_validator

from simcluster.errors import PlacementError
from simcluster.filekinds import exists
from simcluster.names import match, suggestion
from simcluster.placement.strategies import STRATEGIES, Placement, strategy_placement, too_many
from simcluster.topology.cluster import Cluster
from simcluster.workload.model import Workload
from simcluster.yamlfile import read_yaml, validate


@dataclass(frozen=True)
class Bound:
    """A workload bound to a cluster by a placement: the simulator's input."""

    workload: Workload
    cluster: Cluster
    placement: Placement


class _PlacementSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["packed", "spread", "tp-packed", "tp-spread", "rail-aligned",
                      "speed-aware", "ep-packed"] | None = None
    ranks: dict[int, str] | list[str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _PlacementSpec:
        if (self.strategy is None) == (self.ranks is None):
            raise ValueError(f"give either strategy: ({', '.join(STRATEGIES)}) or ranks: "
                             "(rank -> device)")
        return self


def load_placement(path: str | Path, cluster: Cluster, num_ranks: int,
                   groups: dict[str, tuple[int, ...]] | None = None,
                   work: Callable[[], list[float]] | None = None) -> Placement:
    """Read a placement YAML file and check it against the cluster and workload.

    ``work`` gives each rank's compute work (``rank_work``); it is called only when the file
    names the ``speed-aware`` strategy, the one that weighs it.

    Raises:
        PlacementError: bad YAML, unknown or non-accelerator devices, a device named twice,
            ranks missing or out of range, or more ranks than accelerators.
    """
    doc = read_yaml(path, PlacementError)
    spec = validate(doc, _PlacementSpec, PlacementError)
    assert isinstance(spec, _PlacementSpec)
    if spec.strategy is not None:
        try:
            weights = work() if work is not None and spec.strategy == "speed-aware" else None
            p = strategy_placement(cluster, num_ranks, spec.strategy, groups, weights)
        except PlacementError as exc:
            raise PlacementError(f"{path}: {exc}") from None
        return Placement(devices=p.devices, strategy=p.strategy, source=str(path))
    mapping = spec.ranks if isinstance(spec.ranks, dict) else dict(enumerate(spec.ranks or []))
    if num_ranks > len(cluster.accelerators):
        raise too_many(num_ranks, cluster, str(path))
    return Placement(devices=_check_mapping(doc, mapping, cluster, num_ranks),
                     strategy="file", source=str(path))


def _check_mapping(doc, mapping: dict[int, str], cluster: Cluster, num_ranks: int) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    for rank, dev in mapping.items():
        at = doc.at(("ranks", rank))
        if not 0 <= rank < num_ranks:
            raise PlacementError(
                f"{at}rank {rank} is not in the workload (ranks 0..{num_ranks - 1}); remove it."
            )
        if dev not in cluster.graph:
            close = difflib.get_close_matches(dev, cluster.accelerators, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise PlacementError(
                f"{at}unknown device {dev!r}; {hint}accelerators are named like "
                f"{cluster.accelerators[0]!r} (see `simcluster topology show`)."
            )
        if cluster.kind_of(dev) != "accelerator":
            raise PlacementError(
                f"{at}{dev!r} is a {cluster.kind_of(dev)}, not an accelerator; place ranks on "
                "accelerators."
            )
        if dev not in cluster.accelerator_index:
            raise PlacementError(
                f"{at}{dev!r} is down in {cluster.name!r}; place rank {rank} on another "
                "accelerator.")
        if dev in seen:
            raise PlacementError(
                f"{at}device {dev!r} is given to rank {seen[dev]} and rank {rank}; give each rank "
                "its own accelerator."
            )
        seen[dev] = rank
    missing = [r for r in range(num_ranks) if r not in mapping]
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
        raise PlacementError(
            f"{doc.path}: ranks: rank(s) {shown} have no device; map every rank "
            f"0..{num_ranks - 1}."
        )
    return tuple(mapping[r] for r in range(num_ranks))


def rank_work(workload: Workload) -> list[float]:
    """Each rank's compute work, what ``speed-aware`` weighs: the FLOPs of its compute ops,
    or, when the workload carries no FLOPs, their recorded duration (us).

    Example:
        >>> from simcluster.workload.generate.registry import generate
        >>> wl = generate("data-parallel", {"ranks": 2, "layers": 1, "hidden": 64,
        ...                                 "seq_len": 16, "vocab": 128})
        >>> w = rank_work(wl)
        >>> len(w), w[0] == w[1] > 0
        (2, True)
    """
    ops = workload.ops.filter(pc.equal(workload.ops["kind"], "compute"))
    out = []
    for column in ("flops", "duration_us"):
        sums = ops.group_by("rank").aggregate([(column, "sum")])
        by_rank = dict(zip(sums["rank"].to_pylist(), sums[f"{column}_sum"].to_pylist()))
        out = [float(by_rank.get(r) or 0.0) for r in range(workload.num_ranks)]
        if any(out):
            break
    return out


def _looks_like_a_file(text: str) -> bool:
    """A path that exists, or one with a folder or a YAML suffix in it."""
    p = Path(text)
    return exists(p) or p.suffix.lower() in (".yaml", ".yml") or len(p.parts) > 1


def bind(
    workload: Workload,
    cluster: Cluster,
    placement: Placement | str | Path | None = None,
) -> Bound:
    """Bind ``workload`` to ``cluster``.

    Parameters:
        placement: a Placement, a strategy name (``STRATEGIES``), a YAML file path, or None
            for ``packed``.

    Raises:
        PlacementError: the placement does not fit.
    """
    n = workload.num_ranks
    if placement is None:
        placement = strategy_placement(cluster, n)
    elif isinstance(placement, str) and match(placement, STRATEGIES):
        name = match(placement, STRATEGIES)
        placement = strategy_placement(cluster, n, name, workload.groups,
                                       rank_work(workload) if name == "speed-aware" else None)
    elif isinstance(placement, str) and not _looks_like_a_file(placement):
        raise PlacementError(
            f"placement {placement!r}: neither a strategy nor a placement file; "
            f"{suggestion(placement, STRATEGIES)}use one of {', '.join(STRATEGIES)}, or a "
            "placement YAML file (docs/formats.md).")
    elif isinstance(placement, (str, Path)):
        placement = load_placement(placement, cluster, n, workload.groups,
                                   lambda: rank_work(workload))
    if len(placement.devices) != n:
        raise PlacementError(
            f"{placement.source or 'placement'}: places {len(placement.devices)} ranks but the "
            f"workload has {n}; place every rank."
        )
    return Bound(workload=workload, cluster=cluster, placement=placement)

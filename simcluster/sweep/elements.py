"""The sweep what-ifs that name parts of the cluster, checked before any work.

- **Elements.** ``scale_link.<element>`` and ``flap.<element>`` name a link kind or role, a
  node (a switch, a NIC, a GPU), a server or a link ``A--B``; every element of a ``fail``
  value names a node, a server or a link. Each must exist in the topology of every point
  that uses it (the base's ``fail``, ``flap`` and ``scale_link`` too). The check is the
  what-if itself (``topology/transform.py``) applied to that topology, so the sweep accepts
  exactly what ``replay --fail/--flap/--scale-link`` accepts.
- **Hardware parameters.** Each ``hw.<param>`` applies to the topology of every point that
  uses it: a topology without NVLink (or NICs) has no scale-up (scale-out) bandwidth to set;
  each ``hw.scale_up_size`` value must be a domain size the topology can be rebuilt with
  (a whole divisor of its GPUs, ``topology/transform.with_scale_up_size``).
- **Partitions.** A point with failed elements must leave every group of its workload
  connected: the point's scenario is bound and checked as :meth:`Scenario.run` would
  (``placement/reach.py``), before any point is dispatched. What only a simulation can tell
  (more ranks than accelerators left, out of memory) stays a row, as for other points.

Each failure is a :class:`~simcluster.sweep.errors.SweepError` naming the spec's line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simcluster.errors import PartitionError, SimclusterError, TopologyError
from simcluster.sweep.check import WHATIF_PREFIXES
from simcluster.sweep.errors import SweepError
from simcluster.topology.cluster import Cluster
from simcluster.topology.transform import (
    fail,
    flapping,
    hardware_of,
    scale_links,
    with_hardware,
)
from simcluster.yamlfile import Loc, YamlDocument

if TYPE_CHECKING:
    from simcluster.sweep.spec import BaseSpec

#: Where point ``index``'s value of an axis is written: ``locate(index, name)``.
Locate = Callable[[int, str], Loc]

# What each kind of what-if does to a cluster with one element: raises TopologyError for a
# name it does not know (the neutral amount, so only the name is checked), or for a hardware
# parameter the cluster has no links for (a value other than the cluster's own, which is
# a no-op).
# A scale-up domain size is probed with its value: the sizes a topology takes are few.
_PROBES: dict[str, Callable[[Cluster, str, Any], Cluster]] = {
    "scale_link": lambda c, name, _: scale_links(c, {name: 1.0}),
    "flap": lambda c, name, _: flapping(c, {name: 0.0}),
    "fail": lambda c, name, _: fail(c, [name]),
    "hw": lambda c, name, value: with_hardware(c, {name: float(value) if name == SIZE
                                                   else 2.0 * (hardware_of(c)[name] or 0.5)}),
}
SIZE = "scale_up_size"
_KEYED = ("scale_link", "flap", "hw")  # axes <kind>.<name>, base mappings <kind>: {name: v}


def _named(base: BaseSpec, index: int, values: dict[str, Any],
           locate: Locate) -> Iterator[tuple[str, str, Loc, Any]]:
    """The elements point ``index`` names: (kind, element, where it is written, value)."""
    for key, value in values.items():
        kind, _, element = key.partition(".")
        if kind in _KEYED and element:
            yield kind, element, locate(index, key), value
    if "fail" in values:
        for element in values["fail"]:
            yield "fail", element, locate(index, "fail"), None
    else:
        for element in base.fail:
            yield "fail", element, ("base", "fail"), None
    for kind in _KEYED:
        for element, value in getattr(base, kind).items():
            if f"{kind}.{element}" not in values:
                yield kind, element, ("base", kind, element), value


def check_elements(doc: YamlDocument, base: BaseSpec, combos: list[dict[str, Any]],
                   clusters: dict[str, Cluster], locate: Locate) -> None:
    """Every element the points' what-ifs name is one of the point's topology.

    Raises:
        SweepError: ``file:line: loc: <kind>.<element> does not apply to topology T:`` and the
            what-if's own message (the kinds and roles there are, the closest node).
    """
    seen: set[tuple[str, str, str, str]] = set()
    for i, values in enumerate(combos):
        topo = str(values.get("topology", base.topology))
        for kind, element, loc, value in _named(base, i, values, locate):
            key = (topo, kind, element, str(value) if element == SIZE else "")
            if key in seen:
                continue
            seen.add(key)
            try:
                _PROBES[kind](clusters[topo], element, value)
            except TopologyError as exc:
                raise SweepError(f"{doc.at(loc)}{kind} {element!r} does not apply to topology "
                                 f"{topo}: {exc}") from None


def check_partitions(doc: YamlDocument, base: dict[str, Any], folder: Path,
                     combos: list[dict[str, Any]], locate: Locate) -> None:
    """No point with failed elements cuts a group of its workload apart.

    Each distinct point (its values other than price, link factors, flapping and hardware,
    which do not change routes) is bound once; a generated workload is generated for it.

    Raises:
        SweepError: ``file:line: loc:`` (the point's ``fail``) and the partition: the group,
            two ranks that no longer reach each other, and the fix.
    """
    from simcluster.placement import bind
    from simcluster.placement.reach import check_reachable
    from simcluster.sweep.point import scenario_of

    tried: set[str] = set()
    for i, values in enumerate(combos):
        if not values.get("fail", base.get("fail")):
            continue
        shape = {k: v for k, v in values.items()
                 if k != "price" and not k.startswith(WHATIF_PREFIXES)}
        key = json.dumps(shape, sort_keys=True)
        if key in tried:
            continue
        tried.add(key)
        try:
            scenario = scenario_of(values, base, folder)
            cluster, _ = scenario.target()
            check_reachable(bind(scenario.workload, cluster, scenario.placement))
        except PartitionError as exc:
            loc = locate(i, "fail") if "fail" in values else ("base", "fail")
            raise SweepError(f"{doc.at(loc)}{exc}") from None
        except SimclusterError:
            continue  # not a partition: the point's row says what it is

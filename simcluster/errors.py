"""Errors that simcluster raises for bad input or impossible simulations.

Every message names the file (when there is one), the place inside it (a YAML path such as
``nodes[2].links[0].bandwidth_GBps``, a Parquet column and row, a rank and op), what is wrong,
and how to fix it. The CLI prints the message without a traceback and exits with code 2.
"""

from __future__ import annotations


class SimclusterError(Exception):
    """Base class: bad input or a simulation that cannot complete."""


class RegistryError(SimclusterError):
    """An extension registry was asked to add a name it already holds, or to remove one it
    does not hold (a programming error in an extension, not bad input)."""


class TopologyError(SimclusterError):
    """The cluster description is malformed or inconsistent."""


class WorkloadError(SimclusterError):
    """The workload (trace) is unreadable, truncated, or inconsistent."""


class PlacementError(SimclusterError):
    """Ranks cannot be placed onto the cluster's accelerators as asked."""


class SimulationError(SimclusterError):
    """The simulation cannot complete: out of memory, deadlock, mismatched collectives."""


def where(path: object | None, location: str | None = None) -> str:
    """Format a ``file: location: `` prefix for error messages; either part may be absent."""
    parts = [str(p) for p in (path, location) if p not in (None, "")]
    return "".join(f"{p}: " for p in parts)

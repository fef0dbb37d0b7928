"""What-if changes to a built cluster: faster or slower links, other accelerators.

Each function returns a new Cluster and leaves the given one as it was.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simcluster.errors import TopologyError
from simcluster.topology import catalog
from simcluster.topology.catalog import AcceleratorSpec
from simcluster.topology.cluster import Cluster


def scale_links(cluster: Cluster, factors: dict[str, float]) -> Cluster:
    """Multiply the bandwidth of links by a factor per link kind (``ib``, ``nvlink``, ...) or
    role (``nic``, ``spine``, see ``Cluster.link_roles``).

    Raises:
        TopologyError: a name that is neither a kind nor a role of this cluster, or a factor
            that is not positive.
    """
    kinds = np.asarray(cluster.link_kind)
    roles = np.asarray(cluster.link_roles())
    scale = np.ones(cluster.num_links)
    for name, factor in factors.items():
        if not factor > 0:
            raise TopologyError(f"--scale-link {name}={factor}: the factor must be positive.")
        sel = (kinds == name) | (roles == name)
        if not sel.any():
            known = sorted(set(kinds.tolist()) | set(roles.tolist()))
            raise TopologyError(
                f"--scale-link {name}: no link of that kind or role in {cluster.name!r}; use "
                f"one of {', '.join(known)}."
            )
        scale[sel] *= factor
    return replace(cluster, bandwidth_Bpus=cluster.bandwidth_Bpus * scale,
                   capacity_Bpus=cluster.capacity_Bpus * scale,
                   name=f"{cluster.name} ({_describe(factors)})")


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


def _describe(factors: dict[str, float]) -> str:
    return ", ".join(f"{k} x{v:g}" for k, v in sorted(factors.items()))

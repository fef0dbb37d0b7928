"""What-if changes to a built cluster: faster or slower links, other accelerators, other
hardware parameters.

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


# Hardware parameters :func:`with_hardware` sets, per accelerator (units in the names): dense
# BF16 peak, HBM capacity and bandwidth, scale-up (NVLink, ICI) and scale-out (NIC)
# bandwidth per direction.
HARDWARE_PARAMS: tuple[str, ...] = ("peak_tflops", "hbm_GiB", "hbm_GBps", "scale_up_GBps",
                                    "scale_out_GBps")
SCALE_UP_LINKS: tuple[str, ...] = ("nvlink", "ici")


def hardware_of(cluster: Cluster) -> dict[str, float]:
    """The :data:`HARDWARE_PARAMS` of the cluster's first accelerator: its spec's BF16 peak
    and HBM; the summed bandwidth of its scale-up links out (GB/s); the summed bandwidth of
    the NICs' links to their first switch over the accelerators (GB/s per GPU; 0 without
    NICs).

    Example:
        >>> from simcluster.topology import load_cluster
        >>> hardware_of(load_cluster("topologies/h100-2node.yaml"))  # 16 GPUs, 16 x 50 GB/s NICs
        {'peak_tflops': 989.5, 'hbm_GiB': 80, 'hbm_GBps': 3350, 'scale_up_GBps': 450.0, \
'scale_out_GBps': 50.0}
    """
    first = cluster.accelerators[0]
    spec = cluster.specs[first]
    src = np.asarray(cluster.link_src)
    kinds = np.asarray(cluster.link_kind)
    up = (src == first) & np.isin(kinds, SCALE_UP_LINKS)
    nic_kind = np.array([cluster.graph.nodes[u]["kind"] == "nic" for u in cluster.link_src])
    out = nic_kind & (np.asarray(cluster.link_roles()) == "nic")
    return {"peak_tflops": spec.peak_tflops.get("bf16", 0.0), "hbm_GiB": spec.hbm_GiB,
            "hbm_GBps": spec.hbm_GBps,
            "scale_up_GBps": float(cluster.bandwidth_Bpus[up].sum()) / 1e3,
            "scale_out_GBps": float(cluster.bandwidth_Bpus[out].sum()) / 1e3
            / len(cluster.accelerators)}


def with_hardware(cluster: Cluster, params: dict[str, float]) -> Cluster:
    """Every accelerator gets the :data:`HARDWARE_PARAMS` in ``params`` (the others stay):
    every dtype's peak scales by the BF16 ratio, HBM as given; scale-up links (NVLink, ICI)
    and the NICs' links (role ``nic``) scale by the ratio to :func:`hardware_of`. The
    accelerator keeps its model name, so the compute model keeps its chip's calibration.

    Raises:
        TopologyError: an unknown parameter, a value that is not positive, or a bandwidth
            the cluster has no links for (scale-out without NICs, scale-up without NVLink).
    """
    unknown = sorted(set(params) - set(HARDWARE_PARAMS))
    if unknown:
        raise TopologyError(f"hardware parameter {unknown[0]!r}: use one of "
                            f"{', '.join(HARDWARE_PARAMS)}.")
    base = hardware_of(cluster)
    for name, value in params.items():
        if not value > 0 and value != base[name]:
            raise TopologyError(f"hardware parameter {name} = {value}: must be positive.")
    factors: dict[str, float] = {}
    for name, kinds in (("scale_up_GBps", set(cluster.link_kind) & set(SCALE_UP_LINKS)),
                        ("scale_out_GBps", {"nic"})):
        if name in params and params[name] != base[name]:
            if base[name] <= 0:
                raise TopologyError(f"hardware parameter {name}: {cluster.name!r} has no "
                                    "such links to scale; leave it out for this topology.")
            factors.update({k: params[name] / base[name] for k in kinds})
    cluster = scale_links(cluster, factors) if factors else cluster
    specs: dict[str, AcceleratorSpec] = {}
    for a, spec in cluster.specs.items():
        ratio = params.get("peak_tflops", base["peak_tflops"]) / base["peak_tflops"]
        specs[a] = replace(spec, peak_tflops={k: v * ratio for k, v in spec.peak_tflops.items()},
                           hbm_GiB=params.get("hbm_GiB", spec.hbm_GiB),
                           hbm_GBps=params.get("hbm_GBps", spec.hbm_GBps),
                           nvlink_GBps=params.get("scale_up_GBps", spec.nvlink_GBps))
    return replace(cluster, specs=specs, name=f"{cluster.name} ({_describe(params)})")


def _describe(factors: dict[str, float]) -> str:
    return ", ".join(f"{k} x{v:g}" for k, v in sorted(factors.items()))

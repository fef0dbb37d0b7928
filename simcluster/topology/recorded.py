"""A cluster for replaying a trace where it was recorded, built from the trace's metadata.

When a recorded trace is replayed without a topology file, the simulator needs a cluster
that matches the recording: the recorded accelerator model, as many of them as ranks, in
one server. The server's fabric follows the part's scale-up links
(``AcceleratorSpec.server_fabric``): NVSwitch for parts sold on NVSwitch baseboards or racks
(A100/H100/H200/B200 SXM, GB200), a direct all-to-all mesh for V100 SXM2 (DGX-1 and HGX-1
have no NVSwitch; ``topologies/dgx1-v100.yaml`` has the exact DGX-1 link map), AMD Infinity
Fabric, Gaudi's on-chip RoCE ports and TPU ICI (one host's chips), PCIe for PCIe cards
(NVLink bridges join only pairs) and parts without scale-up links.
"""

from __future__ import annotations

from simcluster.errors import TopologyError
from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.topology.build import build
from simcluster.topology.catalog import lookup, unknown_message
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import TopologySpec

# What the server fabric stands for, where it is not the part's own (the description).
_AS_MODELLED = {"roce": " of the on-chip RoCE ports, all-to-all",
                "ici": " of the chips' ICI links", "nvlink-bridge": "; NVLink bridges not modelled"}


def recorded_cluster(model: str | AcceleratorSpec, accelerators: int) -> Cluster:
    """One server of ``accelerators`` GPUs of ``model``: a catalog name or alias, or a spec
    (a user-defined part).

    Raises:
        TopologyError: the model is not in the catalog (the message says how to supply it).

    Example:
        >>> recorded_cluster("A100", 2).name
        'recorded-A100-SXM4-80GB-x2'
    """
    spec = model if isinstance(model, AcceleratorSpec) else lookup(model)
    if spec is None:
        raise TopologyError(f"{unknown_message(str(model))} Or give a topology file with "
                            "--topology.")
    fabric = spec.server_fabric
    name = f"recorded-{spec.model}-x{accelerators}"
    label = fabric + _AS_MODELLED.get(spec.scale_up_kind, "")
    topo = TopologySpec.model_validate({
        "name": name,
        "description": f"one server of {accelerators} {spec.model} ({label}), built from the "
                       "trace's metadata",
        "nodes": [{"name": "node", "count": 1, "accelerator": spec.model,
                   "accelerators": accelerators, "fabric": fabric,
                   "pcie": {"accelerators_per_switch": 2}}],
    })
    cluster = build(topo, source=f"<{name}>", models={spec.model: spec})
    if not cluster.accelerators:
        raise TopologyError(f"{name}: no accelerators")
    return cluster

"""A cluster for replaying a trace where it was recorded, built from the trace's metadata.

When a recorded trace is replayed without a topology file, the simulator needs a cluster
that matches the recording: the recorded accelerator model, as many of them as ranks, in
one server. The server's GPU fabric follows the model: NVSwitch for parts sold in NVSwitch
baseboards (A100, H100, H200 SXM), a direct NVLink mesh for V100 SXM2 (DGX-1 and HGX-1 have
no NVSwitch; ``topologies/dgx1-v100.yaml`` has the exact DGX-1 link map) and for AMD
Infinity Fabric parts, PCIe for parts without NVLink.
"""

from __future__ import annotations

from simcluster.errors import TopologyError
from simcluster.topology.build import build
from simcluster.topology.catalog import lookup
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import TopologySpec


def recorded_cluster(model: str, accelerators: int) -> Cluster:
    """One server of ``accelerators`` GPUs of catalog model ``model``.

    Raises:
        TopologyError: the model is not in the catalog.

    Example:
        >>> recorded_cluster("A100", 2).name
        'recorded-A100-SXM4-80GB-x2'
    """
    spec = lookup(model)
    if spec is None:
        raise TopologyError(f"accelerator {model!r} is not in the catalog; give a topology file "
                            "with --topology (it may define the model under "
                            "accelerator_models:).")
    if spec.nvlink_GBps <= 0:
        fabric = "pcie"
    elif spec.vendor == "AMD" or spec.model.startswith("V100"):
        fabric = "nvlink-mesh"
    else:
        fabric = "nvswitch"
    name = f"recorded-{spec.model}-x{accelerators}"
    topo = TopologySpec.model_validate({
        "name": name,
        "description": f"one server of {accelerators} {spec.model} ({fabric}), built from the "
                       "trace's metadata",
        "nodes": [{"name": "node", "count": 1, "accelerator": spec.model,
                   "accelerators": accelerators, "fabric": fabric,
                   "pcie": {"accelerators_per_switch": 2}}],
    })
    cluster = build(topo, source=f"<{name}>")
    if not cluster.accelerators:
        raise TopologyError(f"{name}: no accelerators")
    return cluster

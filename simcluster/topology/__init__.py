"""WHERE a workload runs: the cluster description, its graph, and routes through it."""

from __future__ import annotations

from pathlib import Path

from simcluster.errors import TopologyError
from simcluster.filekinds import hint, identify
from simcluster.topology.accelerator_file import (
    load_accelerator_file,
    load_listed,
    resolve_device,
)
from simcluster.topology.build import build
from simcluster.topology.cluster import Cluster
from simcluster.topology.fabrics import (
    Fabric,
    FabricContext,
    register_fabric,
    registered_fabric,
    unregister_fabric,
)
from simcluster.topology.routing import Route, Router
from simcluster.topology.schema import TopologySpec, json_schema
from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.yamlfile import YamlDocument, read_yaml, validate

__all__ = ["Cluster", "Fabric", "FabricContext", "Route", "Router", "TopologySpec", "build",
           "json_schema", "load_accelerator_file", "load_cluster", "load_topology",
           "register_fabric",
           "registered_fabric", "resolve_device", "unregister_fabric"]


def load_cluster(path: str | Path) -> Cluster:
    """Read, validate and build a topology YAML file.

    Parameters:
        path: the YAML file.

    Returns:
        The built Cluster.

    The accelerator files the topology lists (``accelerator_files:``) are read too, relative
    to the topology file.

    Raises:
        TopologyError: the file (or an accelerator file it lists) is missing, not YAML,
            breaks the schema, or describes an inconsistent graph; the message names the
            line, the YAML path and the fix.

    Example:
        >>> from simcluster.topology import load_cluster
        >>> c = load_cluster("topologies/h100-2node.yaml")  # doctest: +SKIP
        >>> len(c.accelerators)  # doctest: +SKIP
        16
    """
    spec, doc, models = load_topology(path)
    return build(spec, source=path, doc=doc, models=models)


def load_topology(path: str | Path) -> tuple[TopologySpec, YamlDocument,
                                             dict[str, AcceleratorSpec]]:
    """A topology file's validated spec, its YAML document (for error lines) and the
    accelerators of the files it lists: what :func:`load_cluster` builds (a what-if that
    reshapes the servers, ``transform.with_scale_up_size``, builds them changed).

    Raises:
        TopologyError: as :func:`load_cluster`, before building.
    """
    try:
        doc = read_yaml(path, TopologyError)
        spec = validate(doc, TopologySpec, TopologyError)
    except TopologyError:
        # Only on failure: is it another kind of input given in the wrong place?
        if identify(path) not in (None, "topology"):
            raise TopologyError(hint(path, "a topology file")) from None
        raise
    assert isinstance(spec, TopologySpec)
    models = load_listed(spec.accelerator_files, Path(path).parent, doc,
                         inline=spec.accelerator_models)
    return spec, doc, models

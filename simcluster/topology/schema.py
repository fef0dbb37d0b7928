"""The topology YAML schema (pydantic), with a JSON Schema export for editors.

A topology names a cluster and describes it with any mix of:

- ``nodes``: server templates (N accelerators on an NVSwitch, a direct NVLink mesh or PCIe
  switches, with host CPUs, DRAM and NICs), each repeated ``count`` times;
- ``fabric``: how the servers' NICs connect (one switch, or a two-level leaf-spine);
- ``devices`` and ``links``: explicit graph nodes and links, which may also attach to the
  template-made ones by name (``node0/nic1``);
- ``accelerator_models``: accelerators that are not in the catalog;
- ``network``: parameters of the collective model.

Bandwidths are GB/s (1e9 B/s) per direction, latencies ns, capacities GiB. See
``docs/formats.md`` for examples.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simcluster.topology.catalog import LINK_KINDS

LinkKind = Literal[LINK_KINDS]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkParams(_Strict):
    """Bandwidth and latency of a templated link; absent values take the template default."""

    bandwidth_GBps: float | None = Field(None, gt=0, description="GB/s per direction")
    latency_ns: float | None = Field(None, ge=0, description="one-way latency per hop, ns")


class PcieParams(_Strict):
    """The PCIe switches of a server: each hosts some accelerators and their NICs."""

    generation: Literal[3, 4, 5] | None = Field(
        None, description="PCIe generation (x16); default: the accelerator's"
    )
    bandwidth_GBps: float | None = Field(None, gt=0, description="override, GB/s per direction")
    latency_ns: float | None = Field(None, ge=0)
    accelerators_per_switch: int = Field(2, ge=1)


class NicParams(_Strict):
    """The server's network interfaces; NIC i serves accelerators i*A/N .. (i+1)*A/N - 1."""

    count: int = Field(0, ge=0)
    bandwidth_GBps: float = Field(50.0, gt=0, description="line rate, GB/s (400 Gb/s = 50)")
    latency_ns: float | None = Field(None, ge=0)
    kind: Literal["ib", "ethernet"] = "ib"


class HostParams(_Strict):
    """Host CPUs (sockets, which act as PCIe root complexes) and their DRAM."""

    cpus: int = Field(2, ge=1)
    memory_GiB: float = Field(1024.0, gt=0, description="DRAM per socket")
    memory_GBps: float = Field(200.0, gt=0, description="DRAM bandwidth per socket")
    socket_GBps: float = Field(60.0, gt=0, description="inter-socket link per direction")


class NodeTemplate(_Strict):
    """A server type, instantiated ``count`` times as ``<name>0``, ``<name>1``, ..."""

    name: str = Field("node", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(1, ge=1)
    accelerator: str = Field(..., description="accelerator model (catalog name or alias)")
    accelerators: int = Field(8, ge=1, description="accelerators per server")
    fabric: Literal["nvswitch", "nvlink-mesh", "pcie"] = "nvswitch"
    nvlink: LinkParams = LinkParams()
    pcie: PcieParams = PcieParams()
    nics: NicParams = NicParams()
    host: HostParams = HostParams()


class FabricSpec(_Strict):
    """How servers connect: every NIC to one switch, or NICs to leaves and leaves to spines."""

    topology: Literal["single-switch", "leaf-spine"]
    kind: Literal["ib", "ethernet"] | None = Field(None, description="default: the NICs' kind")
    link: LinkParams = LinkParams()
    nodes_per_leaf: int | None = Field(None, ge=1, description="servers per leaf (leaf-spine)")
    spines: int = Field(2, ge=1)
    spine_link: LinkParams = LinkParams()

    @model_validator(mode="after")
    def _leaf_spine_needs_size(self) -> FabricSpec:
        if self.topology == "leaf-spine" and self.nodes_per_leaf is None:
            raise ValueError("a leaf-spine fabric needs nodes_per_leaf (servers per leaf switch)")
        return self


class DeviceSpec(_Strict):
    """An explicit graph node."""

    name: str = Field(..., min_length=1)
    kind: Literal["accelerator", "switch", "nic", "cpu", "memory"]
    model: str | None = Field(None, description="accelerator model; accelerators only")
    host: str | None = Field(None, description="the server it belongs to (routing domain)")
    nic: str | None = Field(None, description="accelerators: the NIC used to leave the host")
    memory_GiB: float | None = Field(None, gt=0, description="memory nodes: capacity")

    @model_validator(mode="after")
    def _accelerator_needs_model(self) -> DeviceSpec:
        if self.kind == "accelerator" and not self.model:
            raise ValueError("an accelerator needs a model, e.g. model: H100-SXM5-80GB")
        if self.kind != "accelerator" and self.model:
            raise ValueError(f"model applies to accelerators only, not to a {self.kind}")
        return self


class ExplicitLink(_Strict):
    """An explicit link; ``duplex`` (default) makes it two directed links of equal bandwidth."""

    src: str
    dst: str
    bandwidth_GBps: float = Field(..., gt=0, description="GB/s per direction")
    latency_ns: float | None = Field(None, ge=0, description="default: by kind")
    kind: LinkKind = "custom"  # type: ignore[valid-type]
    duplex: bool = True

    @model_validator(mode="after")
    def _no_self_loop(self) -> ExplicitLink:
        if self.src == self.dst:
            raise ValueError(f"a link from {self.src!r} to itself; src and dst must differ")
        return self


class CustomAccelerator(_Strict):
    """An accelerator model defined in the topology file."""

    peak_tflops: dict[str, float] = Field(..., min_length=1, description="dense TFLOP/s by dtype")
    hbm_GiB: float = Field(..., gt=0)
    hbm_GBps: float = Field(..., gt=0)
    nvlink_GBps: float = Field(0.0, ge=0)
    pcie_gen: Literal[3, 4, 5] = 4
    launch_overhead_us: float = Field(2.0, ge=0)
    source: str = "defined in the topology file"

    @model_validator(mode="after")
    def _positive_peaks(self) -> CustomAccelerator:
        bad = [k for k, v in self.peak_tflops.items() if not v > 0]
        if bad:
            raise ValueError(f"peak_tflops for {', '.join(bad)} must be positive")
        return self


class NetworkParams(_Strict):
    """Parameters of the collective model (see docs/network.md)."""

    collective_overhead_us: float = Field(
        5.0, ge=0, description="fixed cost per collective or send/recv (launch, setup), us"
    )
    algorithm: Literal["ring"] = "ring"


class TopologySpec(_Strict):
    """A whole cluster description."""

    name: str = Field(..., min_length=1)
    description: str = ""
    accelerator_models: dict[str, CustomAccelerator] = {}
    nodes: list[NodeTemplate] = []
    fabric: FabricSpec | None = None
    devices: list[DeviceSpec] = []
    links: list[ExplicitLink] = []
    network: NetworkParams = NetworkParams()

    @model_validator(mode="after")
    def _has_accelerators(self) -> TopologySpec:
        if not self.nodes and not any(d.kind == "accelerator" for d in self.devices):
            raise ValueError(
                "the topology has no accelerators; add a nodes: template or a device of "
                "kind: accelerator"
            )
        return self


def json_schema() -> str:
    """The JSON Schema of the topology YAML, for editors (stable key order)."""
    schema = TopologySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simcluster topology"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"

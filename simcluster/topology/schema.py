"""The topology YAML schema (pydantic), with a JSON Schema export for editors.

A topology names a cluster and describes it with any mix of:

- ``nodes``: server templates (N accelerators on an NVSwitch, a direct NVLink mesh or PCIe
  switches, with host CPUs, DRAM and NICs), each repeated ``count`` times;
- ``fabric``: how the servers' NICs connect (one switch, or a two-level leaf-spine);
- ``devices`` and ``links``: explicit graph nodes and links, which may also attach to the
  template-made ones by name (``node0/nic1``);
- ``accelerator_models``: accelerators that are not in the catalog;
- ``accelerator_files``: YAML files that define more of them (``AcceleratorFileSpec``);
- ``network``: parameters of the collective model;
- ``compute``: per accelerator model, the compute model's calibration (``ComputeParams``;
  what ``simcluster calibrate`` fits on a profiler trace).

Bandwidths are GB/s (1e9 B/s) per direction, latencies ns, capacities GiB. See
``docs/formats.md`` for examples.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simcluster.topology import fabrics
from simcluster.topology.catalog import (
    DEFAULT_COLLECTIVE_OVERHEAD_US,
    DEFAULT_HOST_LAUNCH_US,
    DEFAULT_LATENCY_SCALE,
    DEFAULT_NVLS_BASE_LATENCY_US,
    DEFAULT_NVLS_CHUNK_OVERHEAD_US,
    DEFAULT_NVLS_TREE_BASE_LATENCY_US,
    DEFAULT_NVLS_EFFICIENCY,
    DEFAULT_PROTOCOL_OVERHEAD_US,
    LINK_KINDS,
    SCALE_UP_KINDS,
    SERVER_PRESETS,
)

LinkKind = Literal[LINK_KINDS]  # type: ignore[valid-type]


def _one_of(value: object, names: Sequence[str]) -> str:
    """``value`` if it is one of ``names`` (a registry's, read when validating, so that
    records registered after import count); else the error a ``Literal`` would give."""
    if isinstance(value, str) and value in names:
        return value
    listed = ", ".join(repr(n) for n in names[:-1])
    raise ValueError(f"input should be {listed + ' or ' if listed else ''}{names[-1]!r}")


def _algorithm_names() -> tuple[str, ...]:
    """``auto`` and the registered collective algorithms (``sim/algorithms.py``; imported
    when needed: the registry belongs to the simulator, downstream of topologies)."""
    from simcluster.sim.algorithms import algorithm_names

    return ("auto", *algorithm_names())


def _algorithm_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = list(_algorithm_names())


def _library_names() -> tuple[str, ...]:
    """``auto`` and the registered collective libraries (``sim/libraries.py``; imported when
    needed, as the algorithms are)."""
    from simcluster.sim.libraries import library_names

    return ("auto", *library_names())


def _library_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = list(_library_names())


def _fabric_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = list(fabrics.fabric_names())


_FABRIC_NOTE = """\
``oversubscription`` divides a leaf's (or edge/aggregation switch's) uplink bandwidth:
with 2.0, the uplinks carry half what the downlinks can."""


def _describe_fabrics(schema: dict[str, Any], cls: type) -> None:
    """The fabric section's description, listing the registered templates."""
    schema["description"] = f"How servers connect.\n\n{fabrics.fabric_list()}\n\n{_FABRIC_NOTE}"


# Size limits, checked before anything is built (a topology of a billion GPUs must fail
# fast, not exhaust memory). The accelerator total can be raised with the environment
# variable below; the per-field bounds are far beyond any real system.
MAX_ACCELERATORS = 131_072
ENV_MAX_ACCELERATORS = "SIMCLUSTER_MAX_ACCELERATORS"
_MAX_PER_SERVER = 4_096
_MAX_SWITCHES = 65_536
_MAX_GBPS = 1e12  # far beyond any link, finite: tests use 1e12 as "no bottleneck"


def max_accelerators() -> int:
    """The accelerator limit: ``SIMCLUSTER_MAX_ACCELERATORS`` where set (a whole number),
    else :data:`MAX_ACCELERATORS`."""
    text = os.environ.get(ENV_MAX_ACCELERATORS, "")
    return int(text) if text.strip().isdigit() else MAX_ACCELERATORS


class _Strict(BaseModel):
    # allow_inf_nan=False: infinite bandwidths, capacities or latencies are refused like NaN.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LinkParams(_Strict):
    """Bandwidth and latency of a templated link; absent values take the template default."""

    bandwidth_GBps: float | None = Field(None, gt=0, le=_MAX_GBPS, description="GB/s per direction")
    latency_ns: float | None = Field(None, ge=0, description="one-way latency per hop, ns")


class PcieParams(_Strict):
    """The PCIe switches of a server: each hosts some accelerators and their NICs."""

    generation: Literal[3, 4, 5] | None = Field(
        None, description="PCIe generation (x16); default: the accelerator's"
    )
    bandwidth_GBps: float | None = Field(None, gt=0, le=_MAX_GBPS,
                                         description="override, GB/s per direction")
    latency_ns: float | None = Field(None, ge=0)
    accelerators_per_switch: int = Field(2, ge=1, le=_MAX_PER_SERVER)


class NicParams(_Strict):
    """The server's network interfaces; NIC i serves accelerators i*A/N .. (i+1)*A/N - 1."""

    count: int = Field(0, ge=0, le=_MAX_PER_SERVER)
    bandwidth_GBps: float = Field(50.0, gt=0, le=_MAX_GBPS,
                                  description="line rate, GB/s (400 Gb/s = 50)")
    latency_ns: float | None = Field(None, ge=0)
    kind: Literal["ib", "ethernet"] = "ib"


class HostParams(_Strict):
    """Host CPUs (sockets, which act as PCIe root complexes) and their DRAM."""

    cpus: int = Field(2, ge=1, le=64)
    memory_GiB: float = Field(1024.0, gt=0, description="DRAM per socket")
    memory_GBps: float = Field(200.0, gt=0, description="DRAM bandwidth per socket")
    socket_GBps: float = Field(60.0, gt=0, description="inter-socket link per direction")


def _accelerator_or_preset(schema: dict[str, Any]) -> None:
    """In the JSON Schema, a server needs ``accelerator`` or a ``preset`` (which names one),
    as the model accepts."""
    required = [r for r in schema.get("required", []) if r != "accelerator"]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    schema["anyOf"] = [{"required": ["accelerator"]}, {"required": ["preset"]}]


class NodeTemplate(_Strict):
    """A server type, instantiated ``count`` times as ``<name>0``, ``<name>1``, ...

    ``preset`` (``dgx-a100``, ``dgx-h100``, ``dgx-h200``) fills in what the server's datasheet
    fixes: accelerator, count, NVSwitch, PCIe switches, NICs, host. Keys given explicitly
    override the preset's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              json_schema_extra=_accelerator_or_preset)

    name: str = Field("node", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(1, ge=1, le=MAX_ACCELERATORS)
    preset: Literal["dgx-a100", "dgx-h100", "dgx-h200"] | None = None
    accelerator: str = Field(..., description="accelerator model (catalog name or alias)")
    accelerators: int = Field(8, ge=1, le=_MAX_PER_SERVER, description="accelerators per server")
    fabric: Literal["nvswitch", "nvlink-mesh", "pcie"] = "nvswitch"
    nvlink: LinkParams = LinkParams()
    pcie: PcieParams = PcieParams()
    nics: NicParams = NicParams()
    host: HostParams = HostParams()

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: object) -> object:
        if not (isinstance(data, dict) and isinstance(data.get("preset"), str)
                and data["preset"] in SERVER_PRESETS):
            return data
        out = dict(SERVER_PRESETS[data["preset"]])
        for key, value in data.items():  # given keys win; nested mappings merge
            base = out.get(key)
            out[key] = {**base, **value} if isinstance(base, dict) and isinstance(
                value, dict) else value
        return out


class FabricSpec(_Strict):
    """How servers connect: ``topology`` names a fabric template of the registry
    (``topology/fabrics.py``, which describes each); the other keys shape it.

    ``oversubscription`` divides a leaf's (or edge/aggregation switch's) uplink bandwidth:
    with 2.0, the uplinks carry half what the downlinks can.
    """

    model_config = ConfigDict(json_schema_extra=_describe_fabrics)

    topology: str = Field(..., json_schema_extra=_fabric_enum)
    kind: Literal["ib", "ethernet"] | None = Field(None, description="default: the NICs' kind")
    link: LinkParams = LinkParams()
    nodes_per_leaf: int | None = Field(
        None, ge=1, le=MAX_ACCELERATORS,
        description="servers per leaf (leaf-spine) or per scalable unit (rail-optimized)")
    spines: int = Field(2, ge=1, le=_MAX_SWITCHES)
    spine_link: LinkParams = LinkParams()
    oversubscription: float = Field(1.0, ge=1.0, description="downlink : uplink bandwidth")
    k: int | None = Field(None, ge=2, le=256, description="fat-tree arity (even)")
    dims: list[int] | None = Field(None, min_length=1, max_length=3,
                                   description="torus dimensions, e.g. [4, 4, 4]")
    sharp: bool = Field(
        False, description="every switch of the fabric reduces in-network (InfiniBand SHARP, "
        "as on Quantum, Quantum-2 and Quantum-X800 switches); collectives use it through "
        "CollNet where network.collnet is on or an algorithm forces it")

    @field_validator("topology", mode="before")
    @classmethod
    def _known_fabric(cls, value: object) -> str:
        return _one_of(value, fabrics.fabric_names())

    @model_validator(mode="after")
    def _shape_given(self) -> FabricSpec:
        problem = fabrics.get_fabric(self.topology).check(self)
        if problem:
            raise ValueError(problem)
        if self.dims and any(d < 2 for d in self.dims):
            raise ValueError("torus dims must be at least 2 each")
        if self.sharp and not fabrics.get_fabric(self.topology).needs_nics:
            raise ValueError(f"sharp applies to fabrics of switches between NICs, not to a "
                             f"{self.topology}; remove sharp: true")
        return self


class DeviceSpec(_Strict):
    """An explicit graph node."""

    name: str = Field(..., min_length=1)
    kind: Literal["accelerator", "switch", "nic", "cpu", "memory"]
    model: str | None = Field(None, description="accelerator model; accelerators only")
    host: str | None = Field(None, description="the server it belongs to (routing domain)")
    nic: str | None = Field(None, description="accelerators: the NIC used to leave the host")
    memory_GiB: float | None = Field(None, gt=0, description="memory nodes: capacity")
    sharp: bool = Field(False, description="switches: reduces in-network (InfiniBand SHARP)")

    @model_validator(mode="after")
    def _accelerator_needs_model(self) -> DeviceSpec:
        if self.kind == "accelerator" and not self.model:
            raise ValueError("an accelerator needs a model, e.g. model: H100-SXM5-80GB")
        if self.kind != "accelerator" and self.model:
            raise ValueError(f"model applies to accelerators only, not to a {self.kind}")
        if self.sharp and self.kind != "switch":
            raise ValueError(f"sharp applies to switches only, not to a {self.kind}")
        return self


class ExplicitLink(_Strict):
    """An explicit link; ``duplex`` (default) makes it two directed links of equal bandwidth."""

    src: str
    dst: str
    bandwidth_GBps: float = Field(..., gt=0, le=_MAX_GBPS, description="GB/s per direction")
    latency_ns: float | None = Field(None, ge=0, description="default: by kind")
    kind: LinkKind = "custom"  # type: ignore[valid-type]
    duplex: bool = True

    @model_validator(mode="after")
    def _no_self_loop(self) -> ExplicitLink:
        if self.src == self.dst:
            raise ValueError(f"a link from {self.src!r} to itself; src and dst must differ")
        return self


# The dtypes a peak can be given for (the ops' ``dtype`` values that select a peak).
DTYPES: tuple[str, ...] = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "fp6", "fp4", "int8")
ScaleUp = Literal[SCALE_UP_KINDS]  # type: ignore[valid-type]


class CustomAccelerator(_Strict):
    """An accelerator model defined in a topology file or an accelerator file."""

    peak_tflops: dict[str, float] = Field(..., min_length=1, description="dense TFLOP/s by dtype")
    hbm_GiB: float = Field(..., gt=0)
    hbm_GBps: float = Field(..., gt=0)
    nvlink_GBps: float = Field(0.0, ge=0, description="scale-up bandwidth per direction, GB/s")
    pcie_gen: Literal[3, 4, 5] = 4
    launch_overhead_us: float = Field(2.0, ge=0)
    nvls: bool = Field(False, description="NVSwitch in-switch reduction (NVLink SHARP)")
    compute_units: int | None = Field(
        None, ge=1, description="SMs or compute units: with network.comm_sms, the share of "
        "them that communication takes from compute (docs/compute.md)")
    source: str = "defined in the topology file"
    vendor: str = Field("custom", min_length=1)
    aliases: list[str] = Field(
        default_factory=list,
        description="other names of the part, e.g. the name a trace or nvidia-smi prints")
    scale_up: ScaleUp | None = Field(  # type: ignore[valid-type]
        None, description="how its scale-up links join a server; default: nvswitch if "
        "nvlink_GBps > 0, else none")

    @model_validator(mode="after")
    def _positive_peaks(self) -> CustomAccelerator:
        bad = [k for k, v in self.peak_tflops.items() if not v > 0]
        if bad:
            raise ValueError(f"peak_tflops for {', '.join(bad)} must be positive")
        return self

    @field_validator("peak_tflops")
    @classmethod
    def _known_dtypes(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in value if k not in DTYPES]
        if unknown:
            raise ValueError(f"unknown dtype {', '.join(map(repr, unknown))}; use "
                             f"{', '.join(DTYPES)}")
        return value


class NetworkParams(_Strict):
    """Parameters of the collective model (see docs/network.md)."""

    collective_overhead_us: float = Field(
        DEFAULT_COLLECTIVE_OVERHEAD_US, ge=0,
        description="extra device-side cost per collective or send/recv, us",
    )
    host_launch_us: float = Field(
        DEFAULT_HOST_LAUNCH_US, ge=0,
        description="host cost to launch one collective; back-to-back calls (nccl-tests) "
        "take at least this long each, us",
    )
    algorithm: str = Field(
        "auto", description="force an algorithm where it applies; auto chooses per size",
        json_schema_extra=_algorithm_enum)
    protocol: Literal["auto", "LL", "LL128", "Simple"] = "auto"
    library: str = Field(
        "auto", description="collective library whose tuning the model follows (nccl, "
        "nccl-2.27, rccl); auto: by the accelerators' vendor (AMD: rccl, otherwise nccl)",
        json_schema_extra=_library_enum)
    pxn: bool = Field(True, description="rings leave a server on their own rail (NCCL PXN)")
    nvls: bool = Field(True, description="use in-switch reduction where the hardware has it")
    collnet: bool = Field(
        False, description="let the tuner choose in-network reduction in SHARP switches "
        "(NCCL's CollNet, NCCL_COLLNET_ENABLE=1); off by default, as in NCCL. A collnet "
        "algorithm forced by name runs on a SHARP fabric either way")
    nvls_efficiency: float = Field(
        DEFAULT_NVLS_EFFICIENCY, gt=0, le=1,
        description="achieved fraction of NVLink bandwidth for NVLS all-reduce traffic")
    latency_scale: float = Field(
        DEFAULT_LATENCY_SCALE, ge=0,
        description="multiplier on all protocol latencies (sim/protocols.py)")
    step_latency_scale: dict[Literal["LL", "LL128", "Simple"], float] = Field(
        default_factory=dict,
        description="per protocol, multiplier on NCCL's per-step latencies (default 1)")
    net_step_latency_scale: float = Field(
        1.0, ge=0,
        description="multiplier on NCCL's per-step latencies across the network (its NET "
        "rows), on top of step_latency_scale; fitted on multi-server nccl-tests logs")
    protocol_overhead_us: dict[Literal["LL", "LL128", "Simple"], float] = Field(
        default_factory=lambda: dict(DEFAULT_PROTOCOL_OVERHEAD_US),
        description="per protocol, cost added once per call to the base latency, us")
    nvls_base_latency_us: float = Field(
        DEFAULT_NVLS_BASE_LATENCY_US, ge=0,
        description="base latency of an NVLS all-reduce, us")
    nvls_tree_base_latency_us: float = Field(
        DEFAULT_NVLS_TREE_BASE_LATENCY_US, ge=0,
        description="base latency of an NVLS-tree all-reduce (across servers), us")
    nvls_chunk_overhead_us: float = Field(
        DEFAULT_NVLS_CHUNK_OVERHEAD_US, ge=0,
        description="fixed time of one NVLS chunk on one of its concurrent ops (channel x "
        "head), us: NCCL shrinks NVLS chunks from 128 KiB to 16 KiB for smaller all-reduces, "
        "which then pay it more often (sim/protocols.py, nvls_pipeline)")
    link_efficiency: dict[LinkKind, float] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="achievable fraction of line rate per link kind (overrides defaults)")
    comm_sms: float | None = Field(
        None, ge=0,
        description="SMs a running collective or send/recv takes from the compute kernels "
        "of its GPU (NCCL channels, one thread block each), which then compute at "
        "1 - comm_sms / SMs; default: 16 on DGX-class A100/H100/H200/H800, none elsewhere; "
        "0: no interference (docs/compute.md)")

    @field_validator("algorithm", mode="before")
    @classmethod
    def _known_algorithm(cls, value: object) -> str:
        return _one_of(value, _algorithm_names())

    @field_validator("library", mode="before")
    @classmethod
    def _known_library(cls, value: object) -> str:
        return _one_of(value, _library_names())

    @model_validator(mode="after")
    def _efficiencies_in_range(self) -> NetworkParams:
        bad = [k for k, v in self.link_efficiency.items() if not 0 < v <= 1]
        if bad:
            raise ValueError(f"link_efficiency for {', '.join(bad)} must be in (0, 1]")
        for name in ("step_latency_scale", "protocol_overhead_us"):
            neg = [k for k, v in getattr(self, name).items() if v < 0]
            if neg:
                raise ValueError(f"{name} for {', '.join(neg)} must be >= 0")
        return self


# Kernel families that have parameters of their own (``sim/kernel_names.py``), and which
# parameters a family may set.
COMPUTE_FAMILIES: tuple[str, ...] = ("small", "flash1", "attention", "memset", "copy",
                                     "elementwise", "reduction", "norm", "norm_2pass_fwd",
                                     "norm_2pass_bwd", "gemm_align1", "winograd")
FamilyParam = Literal["gemm_efficiency", "memory_efficiency", "fixed_us"]


class ComputeParams(_Strict):
    """The compute model's calibration of one accelerator model (docs/compute.md). A value
    left out keeps the built-in calibration of the part (a catalog part's fit, or the
    uncalibrated roofline of a user-defined one); ``families`` merge per parameter."""

    gemm_efficiency: float | None = Field(
        None, gt=0, le=1, description="fraction of the dense peak (of the op's dtype) that "
        "large GEMMs sustain")
    memory_efficiency: float | None = Field(
        None, gt=0, le=1, description="fraction of the HBM bandwidth memory-bound kernels reach")
    fixed_us: float | None = Field(None, ge=0, le=1000,
                                   description="fixed time of one kernel, us")
    sharpness: float | None = Field(
        None, ge=1, le=64, description="exponent of the smooth maximum of compute and memory "
        "time")
    families: dict[str, dict[FamilyParam, float]] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="per kernel family (small and the recorded classes below it, flash1, "
        "attention, gemm_align1, winograd), its own parameters, e.g. "
        "{small: {fixed_us: 3.2}, attention: {gemm_efficiency: 0.6}}")
    source: str = Field("", description="what it was fitted on")

    @model_validator(mode="after")
    def _family_values(self) -> ComputeParams:
        for family, values in self.families.items():
            if family not in COMPUTE_FAMILIES:
                raise ValueError(f"families: unknown kernel family {family!r}; use "
                                 f"{', '.join(COMPUTE_FAMILIES)}")
            for name, v in values.items():
                top = 1000.0 if name == "fixed_us" else 1.0
                if not (0 <= v <= top if name == "fixed_us" else 0 < v <= top):
                    raise ValueError(f"families.{family}.{name} = {v:g} is outside "
                                     f"{'[0, 1000] us' if name == 'fixed_us' else '(0, 1]'}")
        return self


class CostSpec(_Strict):
    """What the accelerators cost to rent."""

    usd_per_accelerator_hour: float | dict[str, float] = Field(
        ..., description="one price for every accelerator, or a price per model")

    @model_validator(mode="after")
    def _positive(self) -> CostSpec:
        prices = (self.usd_per_accelerator_hour.values()
                  if isinstance(self.usd_per_accelerator_hour, dict)
                  else [self.usd_per_accelerator_hour])
        if any(not p > 0 for p in prices):
            raise ValueError("prices must be positive")
        return self


class TopologySpec(_Strict):
    """A whole cluster description."""

    name: str = Field(..., min_length=1)
    description: str = ""
    accelerator_models: dict[str, CustomAccelerator] = {}
    accelerator_files: list[str] = Field(
        default_factory=list,
        description="accelerator files (paths relative to this file) whose "
        "accelerator_models this topology may use")
    nodes: list[NodeTemplate] = []
    fabric: FabricSpec | None = None
    devices: list[DeviceSpec] = []
    links: list[ExplicitLink] = []
    network: NetworkParams = NetworkParams()
    compute: dict[str, ComputeParams] = Field(
        default_factory=dict,
        description="per accelerator model (catalog name or alias, or a model of "
        "accelerator_models), the compute model's calibration; written by `simcluster "
        "calibrate` from a profiler trace")
    cost: CostSpec | None = None

    @model_validator(mode="after")
    def _has_accelerators(self) -> TopologySpec:
        if not self.nodes and not any(d.kind == "accelerator" for d in self.devices):
            raise ValueError(
                "the topology has no accelerators; add a nodes: template or a device of "
                "kind: accelerator"
            )
        total = (sum(n.count * n.accelerators for n in self.nodes)
                 + sum(d.kind == "accelerator" for d in self.devices))
        if self.fabric is not None and self.fabric.dims:
            total = max(total, math.prod(self.fabric.dims))
        limit = max_accelerators()
        if total > limit:
            raise ValueError(
                f"{total:,} accelerators is more than the limit of {limit:,} (set the "
                f"environment variable {ENV_MAX_ACCELERATORS} to raise it, if this machine "
                "has the memory)")
        return self


class AcceleratorFileSpec(_Strict):
    """A file of user-defined accelerators: ``--device-file`` on replay, or listed under a
    topology's ``accelerator_files:``."""

    description: str = ""
    accelerator_models: dict[str, CustomAccelerator] = Field(..., min_length=1)


def json_schema() -> str:
    """The JSON Schema of the topology YAML, for editors (stable key order)."""
    schema = TopologySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simcluster topology"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"

"""Accelerator and link specifications, each figure with its public source.

Units: FLOP/s as TFLOP/s (1e12), bandwidth as GB/s (1e9 B/s) per direction, capacity as GiB
(2**30 B, the unit behind the "80 GB" of an 80 GB HBM part), latency in ns and us as named.
Peak FLOP/s are dense (no structured sparsity). Figures a datasheet does not give (launch
overhead, link latencies) are marked as estimates; the network issue calibrates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 2**30


@dataclass(frozen=True)
class AcceleratorSpec:
    """What the simulator needs to know about one accelerator model.

    Attributes:
        model: catalog name, e.g. ``H100-SXM5-80GB``.
        peak_tflops: dense peak per dtype (``fp64``, ``fp32``, ``tf32``, ``fp16``, ``bf16``,
            ``fp8``, ``int8``) in TFLOP/s.
        hbm_GiB: device memory capacity in GiB.
        hbm_GBps: device memory bandwidth in GB/s.
        nvlink_GBps: aggregate NVLink (or equivalent) bandwidth per direction in GB/s, 0 if none.
        pcie_gen: PCIe generation of the host interface (x16 assumed).
        launch_overhead_us: fixed cost of one kernel launch on the device timeline, in us.
        source: where the figures come from.
    """

    model: str
    peak_tflops: dict[str, float]
    hbm_GiB: float
    hbm_GBps: float
    nvlink_GBps: float
    pcie_gen: int
    launch_overhead_us: float = 2.0
    source: str = ""
    vendor: str = "NVIDIA"
    aliases: tuple[str, ...] = field(default=())
    nvls: bool = False  # NVLink SHARP: in-switch reduction on NVSwitch (Hopper and later)

    @property
    def hbm_bytes(self) -> int:
        """Device memory capacity in bytes."""
        return int(self.hbm_GiB * GIB)

    def peak_flops_per_us(self, dtype: str | None) -> float:
        """Peak FLOP per microsecond for ``dtype`` (falls back to bf16, fp16, then fp32; tf32,
        FP32 math that may use TF32 tensor cores, to fp32 on a chip without them)."""
        for key in (dtype, "fp32") if dtype == "tf32" else (dtype, "bf16", "fp16", "fp32"):
            if key and key in self.peak_tflops:
                return self.peak_tflops[key] * 1e6
        raise KeyError(f"{self.model} has no peak FLOP/s for dtype {dtype!r}")


# Launch overhead: an estimate (2 us between back-to-back dependent kernels on one stream),
# consistent with the gaps seen in the Kineto traces under ../shared/data; calibrated later.
_LAUNCH_US = 2.0

# Dense peaks shared by the memory variants of one chip (sources in the entries below).
_V100_TFLOPS = {"fp64": 7.8, "fp32": 15.7, "fp16": 125.0}
_A100_TFLOPS = {"fp64": 19.5, "fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0,
                "int8": 624.0}
_HOPPER_TFLOPS = {"fp64": 67.0, "fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5,
                  "fp8": 1979.0, "int8": 1979.0}

ACCELERATORS: dict[str, AcceleratorSpec] = {
    spec.model: spec
    for spec in (
        # NVIDIA Tesla V100 datasheet (2018), SXM2: FP64 7.8, FP32 15.7, tensor 125 TFLOP/s,
        # HBM2 900 GB/s, NVLink 300 GB/s total (150 GB/s per direction), PCIe Gen3.
        AcceleratorSpec(
            model="V100-SXM2-32GB",
            peak_tflops=_V100_TFLOPS,
            hbm_GiB=32,
            hbm_GBps=900,
            nvlink_GBps=150,
            pcie_gen=3,
            launch_overhead_us=_LAUNCH_US,
            source="NVIDIA Tesla V100 GPU Accelerator datasheet (2018)",
            aliases=("V100", "Tesla V100-SXM2-32GB", "V100-DGXS-32GB"),
        ),
        AcceleratorSpec(
            model="V100-SXM2-16GB",
            peak_tflops=_V100_TFLOPS,
            hbm_GiB=16,
            hbm_GBps=900,
            nvlink_GBps=150,
            pcie_gen=3,
            launch_overhead_us=_LAUNCH_US,
            source="NVIDIA Tesla V100 GPU Accelerator datasheet (2018)",
            aliases=("Tesla V100-SXM2-16GB",),
        ),
        # V100 SXM3 32GB at 450 W, the GPU of the NVIDIA DGX-2H: the DGX-2H datasheet (2018)
        # gives 2.1 PFLOP/s of tensor performance for 16 GPUs (131.25 TFLOP/s each; NVIDIA's
        # Megatron-LM v1.0 note calls 62.4 TFLOP/s "48% of the theoretical peak" of one);
        # FP32/FP64 scaled by the same clock ratio over the SXM2 part; HBM2 and NVLink as V100.
        AcceleratorSpec(
            model="V100-SXM3-32GB",
            peak_tflops={"fp64": 8.2, "fp32": 16.5, "fp16": 131.25},
            hbm_GiB=32,
            hbm_GBps=900,
            nvlink_GBps=150,
            pcie_gen=3,
            launch_overhead_us=_LAUNCH_US,
            source="NVIDIA DGX-2H datasheet (2018); V100 datasheet for HBM2 and NVLink",
            aliases=("Tesla V100-SXM3-32GB", "V100-SXM3-32GB-H"),
        ),
        # NVIDIA A100 Tensor Core GPU datasheet (2021): FP64 9.7 (tensor 19.5), FP32 19.5,
        # TF32 156, BF16/FP16 312, INT8 624 TOP/s; 80 GB HBM2e 2,039 GB/s (40 GB: 1,555 GB/s);
        # NVLink 600 GB/s total (300 GB/s per direction); PCIe Gen4.
        AcceleratorSpec(
            model="A100-SXM4-80GB",
            peak_tflops=_A100_TFLOPS,
            hbm_GiB=80,
            hbm_GBps=2039,
            nvlink_GBps=300,
            pcie_gen=4,
            launch_overhead_us=_LAUNCH_US,
            source="NVIDIA A100 Tensor Core GPU datasheet (2021)",
            aliases=("A100", "A100-SXM4", "NVIDIA A100-SXM4-80GB", "A100 80GB"),
        ),
        AcceleratorSpec(
            model="A100-SXM4-40GB",
            peak_tflops=_A100_TFLOPS,
            hbm_GiB=40,
            hbm_GBps=1555,
            nvlink_GBps=300,
            pcie_gen=4,
            launch_overhead_us=_LAUNCH_US,
            source="NVIDIA A100 Tensor Core GPU datasheet (2021)",
            aliases=("NVIDIA A100-SXM4-40GB",),
        ),
        # NVIDIA H100 Tensor Core GPU datasheet (2023), SXM5: FP64 34 (tensor 67), FP32 67,
        # TF32 494.5, BF16/FP16 989.5, FP8/INT8 1,979 (datasheet lists 2x with sparsity);
        # 80 GB HBM3 3.35 TB/s; NVLink 900 GB/s total (450 per direction); PCIe Gen5.
        AcceleratorSpec(
            model="H100-SXM5-80GB",
            peak_tflops=_HOPPER_TFLOPS,
            hbm_GiB=80,
            hbm_GBps=3350,
            nvlink_GBps=450,
            pcie_gen=5,
            launch_overhead_us=_LAUNCH_US,
            source="NVIDIA H100 Tensor Core GPU datasheet (2023)",
            nvls=True,
            aliases=("H100", "H100-SXM5", "NVIDIA H100 80GB HBM3", "H100 80GB HBM3"),
        ),
        # NVIDIA H200 Tensor Core GPU datasheet (2024), SXM: compute as H100 SXM5; 141 GB
        # HBM3e at 4.8 TB/s; NVLink 900 GB/s total; PCIe Gen5.
        # AMD Instinct MI250 (OAM) datasheet: 208 CUs; FP64/FP32 vector 45.3, matrix 90.5,
        # FP16/BF16/INT8 362.1 TFLOP/s; 128 GB HBM2e at 3.2768 TB/s; PCIe Gen4. The module is
        # two graphics compute dies (GCDs) that ROCm and PyTorch show as two devices (ROCm
        # docs, "AMD Instinct MI250 microarchitecture": 104 CUs and 1.6 TB/s HBM per GCD), so
        # the entry is one GCD: half of every module figure. Infinity Fabric links run at
        # 50 GB/s per direction each (same ROCm page); 4 links join the two GCDs of a module:
        # 200 GB/s here, an estimate of what one GCD can reach.
        AcceleratorSpec(
            model="MI250-GCD",
            peak_tflops={"fp64": 45.25, "fp32": 45.25, "fp16": 181.05, "bf16": 181.05,
                         "int8": 181.05},
            hbm_GiB=64,
            hbm_GBps=1638.4,
            nvlink_GBps=200,
            pcie_gen=4,
            launch_overhead_us=_LAUNCH_US,
            source="AMD Instinct MI250 datasheet; ROCm docs, AMD Instinct MI250 "
                   "microarchitecture (one of the module's two GCDs)",
            vendor="AMD",
            aliases=("MI250", "AMD Instinct MI250", "MI250X-GCD"),
        ),
        AcceleratorSpec(
            model="H200",
            peak_tflops=_HOPPER_TFLOPS,
            hbm_GiB=141,
            hbm_GBps=4800,
            nvlink_GBps=450,
            pcie_gen=5,
            launch_overhead_us=_LAUNCH_US,
            source="NVIDIA H200 Tensor Core GPU datasheet (2024)",
            nvls=True,
            aliases=("H200-SXM-141GB", "NVIDIA H200"),
        ),
    )
}

# PCIe x16 bandwidth per direction: 8/16/32 GT/s per lane for Gen3/4/5 with 128b/130b
# encoding (PCI-SIG base specifications 3.0, 4.0, 5.0), i.e. 15.75/31.5/63.0 GB/s.
PCIE_X16_GBPS: dict[int, float] = {3: 15.75, 4: 31.5, 5: 63.0}

# Default one-way latency per link hop, in ns, by link kind. Estimates (no datasheet gives
# them): NVLink/NVSwitch port-to-port ~0.35 us, PCIe switch hop ~0.25 us, InfiniBand NDR switch
# port-to-port ~0.5 us including the NIC, RoCE/Ethernet ~1 us, host memory ~0.1 us. The network
# issue calibrates per-step latency against nccl-tests.
DEFAULT_LATENCY_NS: dict[str, float] = {
    "nvlink": 350.0,
    "pcie": 250.0,
    "ib": 500.0,
    "ethernet": 1000.0,
    "ici": 500.0,
    "socket": 150.0,
    "memory": 100.0,
    "custom": 0.0,
}

LINK_KINDS: tuple[str, ...] = tuple(DEFAULT_LATENCY_NS)

# Server presets (node templates). Sources: NVIDIA DGX A100 User Guide and datasheet (8x A100
# SXM4 80GB on 6 NVSwitches = one non-blocking switch in this model, 8x ConnectX-6 HDR
# 200 Gb/s compute NICs, 4 PCIe Gen4 switches each with 2 GPUs and 2 NICs, 2x AMD EPYC 7742,
# 2 TB DRAM); NVIDIA DGX H100 datasheet and user guide (8x H100 SXM5 80GB on 4 NVSwitches,
# 8x ConnectX-7 NDR 400 Gb/s compute NICs, PCIe Gen5 switches pairing GPUs with NICs, 2x Xeon
# 8480C, 2 TB DRAM); DGX H200 as DGX H100 with H200 GPUs.
SERVER_PRESETS: dict[str, dict[str, object]] = {
    "dgx-a100": {
        "accelerator": "A100-SXM4-80GB", "accelerators": 8, "fabric": "nvswitch",
        "pcie": {"generation": 4, "accelerators_per_switch": 2},
        "nics": {"count": 8, "bandwidth_GBps": 25.0, "kind": "ib"},
        "host": {"cpus": 2, "memory_GiB": 1024.0},
    },
    "dgx-h100": {
        "accelerator": "H100-SXM5-80GB", "accelerators": 8, "fabric": "nvswitch",
        "pcie": {"generation": 5, "accelerators_per_switch": 2},
        "nics": {"count": 8, "bandwidth_GBps": 50.0, "kind": "ib"},
        "host": {"cpus": 2, "memory_GiB": 1024.0},
    },
    "dgx-h200": {
        "accelerator": "H200", "accelerators": 8, "fabric": "nvswitch",
        "pcie": {"generation": 5, "accelerators_per_switch": 2},
        "nics": {"count": 8, "bandwidth_GBps": 50.0, "kind": "ib"},
        "host": {"cpus": 2, "memory_GiB": 1024.0},
    },
}

# Achievable fraction of a link's line rate (the network model runs links at bandwidth x this).
# - nvlink: fitted on the ND A100 v4 all-reduce plateau (ring, 231.6 GB/s busbw of 300 GB/s
#   per direction); see docs/validation.md and bench/fit_collectives.py.
# - pcie: measured host-to-device copy bandwidth (nvbandwidth): 51 of 63 GB/s on ND H100 v5
#   (Gen5 x16) and 26.3 of 31.5 GB/s on ND A100 v4 (Gen4 x16): 0.81 and 0.83.
# - ib, ethernet, ici, socket, memory: estimates (no measurement in ../shared/data): RDMA
#   write bandwidth on NDR/HDR InfiniBand is close to line rate once 64/66b encoding and
#   headers are paid; RoCE pays more per packet; UPI and DRAM sustain ~80-90 % (STREAM-like).
# - custom: 1.0, so explicit links run exactly at the bandwidth they are given.
LINK_EFFICIENCY: dict[str, float] = {
    "nvlink": 0.774,
    "pcie": 0.82,
    "ib": 0.95,
    "ethernet": 0.90,
    "ici": 0.90,
    "socket": 0.80,
    "memory": 0.90,
    "custom": 1.0,
}

# Collective model defaults (see sim/protocols.py, docs/network.md). The NVLS efficiency and
# base latency and the per-call LL128/Simple overheads were fitted, with the NVLink
# efficiency above, on the nccl-tests all-reduce curves of DGX H100, Azure ND H100 v5 and
# Azure ND A100 v4 (../shared/data/calibration/nccl_allreduce_single_node.csv) by
# bench/fit_collectives.py on 2026-11-24. The LL128 overhead ends at the top of its fitting
# range (300 us): the measured curves are better described with LL128 never chosen. LL gets
# none (the data cannot tell it). The host launch cost is per system; the default is the
# DGX H100 fit.
DEFAULT_COLLECTIVE_OVERHEAD_US = 0.0
DEFAULT_HOST_LAUNCH_US = 19.3
DEFAULT_NVLS_EFFICIENCY = 0.782
DEFAULT_NVLS_BASE_LATENCY_US = 47.7
DEFAULT_LATENCY_SCALE = 1.0
DEFAULT_PROTOCOL_OVERHEAD_US: dict[str, float] = {"LL": 0.0, "LL128": 300.0, "Simple": 86.3}

# NIC line rates: ConnectX-6 HDR 200 Gb/s = 25 GB/s, ConnectX-7 NDR 400 Gb/s = 50 GB/s
# (NVIDIA ConnectX-6/7 product briefs). Used as the template default.
DEFAULT_NIC_GBPS = 50.0

# Host DRAM bandwidth per socket: 8 channels of DDR5-4800 = 307 GB/s (JEDEC DDR5 rate x 8 B x 8
# channels); the template default is a rounder 200 GB/s of sustained bandwidth (an estimate).
DEFAULT_HOST_MEMORY_GBPS = 200.0
DEFAULT_HOST_MEMORY_GIB = 1024.0

# Inter-socket link (UPI/xGMI), per direction: an estimate of ~60 GB/s for 3-4 UPI links.
DEFAULT_SOCKET_GBPS = 60.0


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_FAMILIES = ("H200", "H100", "A100", "V100", "MI250")
_VENDOR_WORDS = ("nvidia", "tesla", "amd", "instinct")
# GPUs whose name says nothing (ROCm reports "AMD Radeon Graphics" for some datacenter
# parts), told apart by compute units per device: an MI250 GCD has 104 (ROCm docs).
_AMD_BY_COMPUTE_UNITS = {104: "MI250-GCD"}


@dataclass(frozen=True)
class Identified:
    """An accelerator recognised from a name a runtime reported, and how."""

    spec: AcceleratorSpec
    how: str


def identify(name: str, memory_bytes: int | None = None,
             compute_units: int | None = None) -> Identified | None:
    """Recognise the accelerator behind a name as drivers report it.

    Tries, in order: the catalog name or alias; the name without vendor words
    (``Tesla V100-SXM2-16GB``); a product family in the name (``A100``, ``H100``, ...),
    choosing the catalog part whose memory is closest to ``memory_bytes``; for AMD devices
    with a generic name, the number of compute units.

    Example:
        >>> identify("NVIDIA A100-PG509-200", memory_bytes=42297524224).spec.model
        'A100-SXM4-40GB'
    """
    spec = lookup(name)
    if spec is not None:
        return Identified(spec, f"catalog name {name!r}")
    words = [w for w in name.replace("-", " - ").split() if w.lower() not in _VENDOR_WORDS]
    stripped = "".join(words)
    spec = lookup(stripped)
    if spec is not None:
        return Identified(spec, f"{name!r} is {spec.model}")
    key = _normalise(name)
    for family in _FAMILIES:
        if _normalise(family) in key:
            parts = [s for s in ACCELERATORS.values() if _normalise(family) in _normalise(s.model)
                     or any(_normalise(family) in _normalise(a) for a in s.aliases)]
            if memory_bytes:
                parts.sort(key=lambda s: abs(s.hbm_bytes - memory_bytes))
            if parts:
                how = f"{name!r}: {family} family"
                if memory_bytes:
                    how += f", {memory_bytes / GIB:.1f} GiB"
                return Identified(parts[0], how)
    if "amd" in key and compute_units in _AMD_BY_COMPUTE_UNITS:
        model = _AMD_BY_COMPUTE_UNITS[compute_units]
        return Identified(ACCELERATORS[model], f"{name!r} with {compute_units} compute units")
    return None


def known_models() -> list[str]:
    """The catalog's accelerator model names, sorted."""
    return sorted(ACCELERATORS)


def lookup(model: str, extra: dict[str, AcceleratorSpec] | None = None) -> AcceleratorSpec | None:
    """Find an accelerator by model name or alias, ignoring case and punctuation.

    ``extra`` holds models defined in a topology file; they take precedence.
    """
    pool = {**ACCELERATORS, **(extra or {})}
    if model in pool:
        return pool[model]
    key = _normalise(model)
    for spec in pool.values():
        if key == _normalise(spec.model) or any(key == _normalise(a) for a in spec.aliases):
            return spec
    return None

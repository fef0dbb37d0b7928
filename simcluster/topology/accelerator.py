"""What the simulator knows about one accelerator model (:class:`AcceleratorSpec`).

Units: FLOP/s as TFLOP/s (1e12), bandwidth as GB/s (1e9 B/s) per direction, capacity as GiB
(2**30 B, the unit behind the "80 GB" of an 80 GB HBM part). Peak FLOP/s are dense (no
structured sparsity). The catalog's entries are in ``topology/parts/``, each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 2**30

# How a scale-up link connects the accelerators of one server, and the server fabric a
# one-server cluster of the part uses (``topology/recorded.py``):
# - nvswitch: every GPU to an NVSwitch (HGX/DGX baseboards, NVL72 racks);
# - nvlink-mesh: direct NVLink links between GPUs (V100 SXM2 in DGX-1/HGX-1);
# - infinity-fabric: direct AMD Infinity Fabric (xGMI) links, a full mesh on 8-GPU platforms;
# - roce: on-chip RoCE ports, all-to-all inside the server (Intel Gaudi);
# - ici: TPU inter-chip interconnect (a torus; one host's chips are modelled as a mesh);
# - nvlink-bridge: NVLink bridges joining pairs of PCIe cards (no server-wide fabric);
# - none: PCIe only.
SCALE_UP_KINDS: tuple[str, ...] = ("nvswitch", "nvlink-mesh", "infinity-fabric", "roce", "ici",
                                   "nvlink-bridge", "none")
_SERVER_FABRIC = {"nvswitch": "nvswitch", "nvlink-mesh": "nvlink-mesh",
                  "infinity-fabric": "nvlink-mesh", "roce": "nvlink-mesh", "ici": "nvlink-mesh",
                  "nvlink-bridge": "pcie", "none": "pcie"}

# Which peaks stand in for a dtype the part has no figure for, in order. TF32 is FP32 math
# that may use TF32 tensor cores: on a chip without them it runs at the FP32 peak. A part
# without an FP32 figure (TPUs; Gaudi 2 publishes none) runs FP32 at its BF16 peak, which is
# what XLA's default matmul precision does on a TPU. FP4/FP6 fall back to FP8 first.
_FALLBACK: dict[str, tuple[str, ...]] = {
    "tf32": ("fp32", "bf16", "fp16"),
    "fp4": ("fp6", "fp8", "bf16", "fp16", "fp32"),
    "fp6": ("fp8", "bf16", "fp16", "fp32"),
}
_DEFAULT_FALLBACK = ("bf16", "fp16", "fp32")


@dataclass(frozen=True)
class AcceleratorSpec:
    """What the simulator needs to know about one accelerator model.

    Attributes:
        model: catalog name, e.g. ``H100-SXM5-80GB``.
        peak_tflops: dense peak per dtype (``fp64``, ``fp32``, ``tf32``, ``fp16``, ``bf16``,
            ``fp8``, ``fp4``, ``int8``) in TFLOP/s.
        hbm_GiB: device memory capacity in GiB.
        hbm_GBps: device memory bandwidth in GB/s.
        nvlink_GBps: aggregate scale-up bandwidth per direction in GB/s (NVLink, Infinity
            Fabric, on-chip RoCE ports, ICI), 0 if none.
        pcie_gen: PCIe generation of the host interface (x16 assumed); the server templates
            build the host link from it.
        launch_overhead_us: fixed cost of one kernel launch on the device timeline, in us.
        source: where the figures come from.
        vendor: ``NVIDIA``, ``AMD``, ``Intel``, ``Google`` (``custom`` for user-defined).
        aliases: other names of the part: what ``nvidia-smi``, ``rocm-smi``, ``hl-smi`` and
            PyTorch's device properties print.
        nvls: NVLink SHARP, in-switch reduction on NVSwitch (Hopper and later).
        family: product family, the token that names it in a driver's device name
            (``h100``, ``mi300x``, ``gaudi2``); variants of one family differ in form and
            memory.
        form: form factor (``sxm``, ``pcie``, ``nvl``, ``oam``, ``gcd``, ``superchip``, ...).
        scale_up: how the part's scale-up links connect a server (:data:`SCALE_UP_KINDS`);
            empty: NVSwitch if it has scale-up bandwidth, else none.
        host_interface: the host link as the datasheet names it (``PCIe Gen5 x16``).
        compute_units: SMs or compute units per device, where it tells variants apart.
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
    nvls: bool = False
    family: str = ""
    form: str = ""
    scale_up: str = ""
    host_interface: str = ""
    compute_units: int | None = None

    @property
    def hbm_bytes(self) -> int:
        """Device memory capacity in bytes."""
        return int(self.hbm_GiB * GIB)

    @property
    def scale_up_kind(self) -> str:
        """:attr:`scale_up`, or its default: ``nvswitch`` with scale-up bandwidth, else
        ``none``."""
        if self.scale_up:
            return self.scale_up
        return "nvswitch" if self.nvlink_GBps > 0 else "none"

    @property
    def server_fabric(self) -> str:
        """The server fabric of a one-server cluster of this part: ``nvswitch``,
        ``nvlink-mesh`` (any direct all-to-all links) or ``pcie``."""
        if self.nvlink_GBps <= 0:
            return "pcie"
        return _SERVER_FABRIC.get(self.scale_up_kind, "nvswitch")

    def peak_flops_per_us(self, dtype: str | None) -> float:
        """Peak FLOP per microsecond for ``dtype``; a dtype without a figure uses the peak
        that stands in for it (module comment: tf32 -> fp32, fp4 -> fp8, else bf16, fp16,
        fp32).

        Raises:
            KeyError: no figure for the dtype nor for any stand-in.
        """
        keys = (dtype, *_FALLBACK.get(dtype or "", _DEFAULT_FALLBACK))
        for key in keys:
            if key and key in self.peak_tflops:
                return self.peak_tflops[key] * 1e6
        raise KeyError(f"{self.model} has no peak FLOP/s for dtype {dtype!r}")

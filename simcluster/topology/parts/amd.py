"""AMD Instinct parts of the catalog, each figure with its public source.

Matrix-core peaks are used (the vector figures are lower). MI200-series modules carry two
graphics compute dies (GCDs) that ROCm and PyTorch show as two devices: those entries are
one GCD, half of every module figure. ``nvlink_GBps`` holds the Infinity Fabric (xGMI)
bandwidth per direction, summed over a GPU's links to its peers.
"""

from __future__ import annotations

from simcluster.topology.parts.nvidia import LAUNCH_US
from simcluster.topology.accelerator import AcceleratorSpec

# CDNA 3 peaks (ROCm docs, "AMD Instinct MI300 series microarchitecture", table of the
# MI300X OAM): matrix FP64/FP32 163.4, TF32 653.7, FP16/BF16 1,307.4, FP8/INT8 2,614.9.
_CDNA3_TFLOPS = {"fp64": 163.4, "fp32": 163.4, "tf32": 653.7, "fp16": 1307.4, "bf16": 1307.4,
                 "fp8": 2614.9, "int8": 2614.9}
# MI300X/MI325X: 7 Infinity Fabric links to the other GPUs of an 8-GPU platform, 128 GB/s
# each (AMD lists the link bandwidth; read as bidirectional): 7 x 64 = 448 GB/s per direction
# (stas00/ml-engineering, network chapter, "Infinity Fabric / xGMI", citing AMD's platform
# pages).
_CDNA3_IF_GBPS = 448.0

ORIGINAL: tuple[AcceleratorSpec, ...] = (
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
        hbm_GiB=64, hbm_GBps=1638.4, nvlink_GBps=200, pcie_gen=4, launch_overhead_us=LAUNCH_US,
        source="AMD Instinct MI250 datasheet; ROCm docs, AMD Instinct MI250 "
               "microarchitecture (one of the module's two GCDs)",
        vendor="AMD", aliases=("MI250", "AMD Instinct MI250"),
        family="mi250", form="gcd", scale_up="infinity-fabric", host_interface="PCIe Gen4 x16",
        compute_units=104),
)

ADDED: tuple[AcceleratorSpec, ...] = (
    # MI250X, one GCD. AMD Instinct MI250X product table (as reproduced with the MI250 in
    # zexron.com's launch report): 220 CUs, FP64/FP32 vector 47.9, matrix 95.7, FP16/BF16
    # 383.0, INT8 383.0; 128 GB HBM2e at 3.2 TB/s. ROCm shows each of the two GCDs (110
    # CUs, 64 GB, 1.6384 TB/s as for MI250) as a device: half of every module figure.
    # Infinity Fabric: as the MI250 GCD entry, an estimate of 200 GB/s per GCD. PCIe Gen4.
    AcceleratorSpec(
        model="MI250X-GCD",
        peak_tflops={"fp64": 47.85, "fp32": 47.85, "fp16": 191.5, "bf16": 191.5,
                     "int8": 191.5},
        hbm_GiB=64, hbm_GBps=1638.4, nvlink_GBps=200, pcie_gen=4, launch_overhead_us=LAUNCH_US,
        source="AMD Instinct MI250X specifications (220 CUs, 95.7/383 TFLOP/s, 128 GB, "
               "3.2 TB/s), halved per GCD; Infinity Fabric as MI250-GCD (estimate)",
        vendor="AMD", aliases=("MI250X", "AMD Instinct MI250X", "AMD Instinct MI250X/MI250"),
        family="mi250x", form="gcd", scale_up="infinity-fabric",
        host_interface="PCIe Gen4 x16", compute_units=110),
    # MI210 (PCIe card, one CDNA 2 GCD). AMD specifications as tabulated by AnandTech
    # ("AMD Releases Instinct MI210", 2022): 104 CUs, FP64/FP32 vector 22.6, matrix 45.3,
    # FP16 181, INT8 181; 64 GB HBM2e, 3.2 Gbps on 4096 bits = 1.6384 TB/s; 3 Infinity Fabric
    # links (bridge of up to 4 cards) at 50 GB/s per direction each (ROCm docs, MI250
    # microarchitecture: 25 GT/s x 16 lanes): 150 GB/s; PCIe 4.0 x16.
    AcceleratorSpec(
        model="MI210",
        peak_tflops={"fp64": 45.3, "fp32": 45.3, "fp16": 181.0, "bf16": 181.0, "int8": 181.0},
        hbm_GiB=64, hbm_GBps=1638.4, nvlink_GBps=150, pcie_gen=4, launch_overhead_us=LAUNCH_US,
        source="AMD Instinct MI210 specifications (AnandTech launch table, 2022); ROCm docs "
               "MI250 microarchitecture for the Infinity Fabric link rate",
        vendor="AMD", aliases=("AMD Instinct MI210", "Instinct MI210"),
        family="mi210", form="pcie", scale_up="infinity-fabric",
        host_interface="PCIe Gen4 x16", compute_units=104),
    # MI300X: ROCm docs, "AMD Instinct MI300 series microarchitecture" (peak table above,
    # 5.3 TB/s; 8 GPUs fully connected by 7 Infinity Fabric links each; PCIe Gen5 x16 to the
    # host); 192 GB HBM3 (AMD MI300X datasheet; ROCm GPU specifications: 304 CUs).
    AcceleratorSpec(
        model="MI300X", peak_tflops=_CDNA3_TFLOPS, hbm_GiB=192, hbm_GBps=5300,
        nvlink_GBps=_CDNA3_IF_GBPS, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="ROCm docs, AMD Instinct MI300 series microarchitecture (peaks, 5.3 TB/s, "
               "links, PCIe Gen5); AMD MI300X datasheet (192 GB); Infinity Fabric 7 x 64 GB/s",
        vendor="AMD", aliases=("AMD Instinct MI300X", "MI300X-192GB", "Instinct MI300X"),
        family="mi300x", form="oam", scale_up="infinity-fabric",
        host_interface="PCIe Gen5 x16", compute_units=304),
    # MI325X: the MI300X's CDNA 3 chip (ROCm GPU specifications: gfx942, 304 CUs, 256 GiB;
    # same 2,100 MHz peak clock per stas00/ml-engineering, accelerator chapter) with 256 GB
    # HBM3E at 6 TB/s (AMD MI325X product page, as cited by the Vultr ROCm inference cookbook);
    # Infinity Fabric and PCIe Gen5 x16 as MI300X.
    AcceleratorSpec(
        model="MI325X", peak_tflops=_CDNA3_TFLOPS, hbm_GiB=256, hbm_GBps=6000,
        nvlink_GBps=_CDNA3_IF_GBPS, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="AMD MI325X product page (256 GB, 6 TB/s); ROCm GPU specifications (gfx942, "
               "304 CUs: MI300X compute); Infinity Fabric 7 x 64 GB/s",
        vendor="AMD", aliases=("AMD Instinct MI325X", "Instinct MI325X"),
        family="mi325x", form="oam", scale_up="infinity-fabric",
        host_interface="PCIe Gen5 x16", compute_units=304),
    # MI355X (CDNA 4): ROCm GPU specifications (gfx950, 256 CUs, 288 GiB); 2,400 MHz and FP32
    # vector 157.3 TF, FP64 78.6 TF (AMD launch figures as reported by svethardware.cz and
    # humeconsulting.co); ISSCC 2026 (AMD, reported by world-today-news.com): 8,192 FP8
    # FLOP/clock/CU, "five petaflops": 8192 x 256 x 2.4 GHz = 5,033 TF FP8; FP16/BF16 half and
    # MXFP4 twice that (AMD: 2.5 PF FP16, 10 PF FP4 dense); 288 GB HBM3E at 8 TB/s; Infinity
    # Fabric 7 links x 153.6 GB/s (76.5 per direction: 535.5 GB/s, stas00/ml-engineering);
    # PCIe 5.0 x16. AMD lists no TF32 for CDNA 4: tf32 runs at the FP32 peak.
    AcceleratorSpec(
        model="MI355X",
        peak_tflops={"fp64": 78.6, "fp32": 157.3, "fp16": 2516.6, "bf16": 2516.6,
                     "fp8": 5033.2, "int8": 5033.2, "fp4": 10066.3},
        hbm_GiB=288, hbm_GBps=8000, nvlink_GBps=535.5, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="ROCm GPU specifications (256 CUs); AMD MI355X launch figures (2.4 GHz, FP32 "
               "157.3, FP64 78.6, 288 GB, 8 TB/s); ISSCC 2026 (8,192 FP8 FLOP/clk/CU); "
               "Infinity Fabric 7 x 76.5 GB/s",
        vendor="AMD", aliases=("AMD Instinct MI355X", "Instinct MI355X"),
        family="mi355x", form="oam", scale_up="infinity-fabric",
        host_interface="PCIe Gen5 x16", compute_units=256),
)

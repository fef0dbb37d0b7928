"""Intel Gaudi and Google TPU parts of the catalog, each figure with its public source.

Gaudi's scale-up links are on-chip RoCE ports: 21 of a card's 24 Ethernet ports join the
other 7 cards of a server (3 each), all-to-all; ``nvlink_GBps`` is their sum per direction.
A TPU's ``nvlink_GBps`` is its inter-chip interconnect (ICI) bandwidth per direction.
"""

from __future__ import annotations

from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.topology.parts.nvidia import LAUNCH_US

ADDED: tuple[AcceleratorSpec, ...] = (
    # Gaudi 2 (HL-225): Intel Gaudi 3 AI accelerator white paper and stas00/ml-engineering
    # (accelerator chapter: MME BF16 432, FP8 865 TFLOP/s; Intel publishes no FP32 figure:
    # fp32 runs at the BF16 peak here); 96 GB HBM2e at 2.45 TB/s (Intel Gaudi 2 white
    # paper, as reported by pcguia.pt); 24 x 100 GbE RoCE v2, 21 of them to the 7 peers of
    # an HLS-Gaudi2 server: 21 x 12.5 = 262.5 GB/s per direction (HLS-Gaudi2 datasheet,
    # 10/2023); host PCIe Gen4 x16 (HL-225 datasheet).
    AcceleratorSpec(
        model="Gaudi2",
        peak_tflops={"bf16": 432.0, "fp8": 865.0},
        hbm_GiB=96, hbm_GBps=2450, nvlink_GBps=262.5, pcie_gen=4, launch_overhead_us=LAUNCH_US,
        source="Intel Gaudi 2/3 white papers (MME BF16 432, FP8 865 TF; 96 GB, 2.45 TB/s); "
               "HLS-Gaudi2 datasheet (24 x 100 GbE, 21 in-server)",
        vendor="Intel", aliases=("Intel Gaudi 2", "Gaudi 2", "GAUDI2", "HL-225", "HL-225H",
                                 "Habana Gaudi2", "HPU Gaudi2"),
        family="gaudi2", form="oam", scale_up="roce", host_interface="PCIe Gen4 x16"),
    # Gaudi 3 (HL-325L): Intel Gaudi 3 AI accelerator white paper: MME BF16/FP8 1,835,
    # FP16 and TF32 459, FP32 229 TFLOP/s (MME table as reproduced by stas00/ml-
    # engineering); 128 GB HBM2e at 3.7 TB/s; 24 x 200 GbE RoCE v2 (21 in-server: 21 x 25 =
    # 525 GB/s per direction); PCIe Gen5 x16 (The Register, 2024-04-09, Intel Vision).
    AcceleratorSpec(
        model="Gaudi3",
        peak_tflops={"fp32": 229.0, "tf32": 459.0, "fp16": 459.0, "bf16": 1835.0,
                     "fp8": 1835.0},
        hbm_GiB=128, hbm_GBps=3700, nvlink_GBps=525, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="Intel Gaudi 3 AI accelerator white paper (MME peaks, 128 GB, 3.7 TB/s, "
               "24 x 200 GbE, PCIe Gen5 x16)",
        vendor="Intel", aliases=("Intel Gaudi 3", "Gaudi 3", "GAUDI3", "HL-325L", "HL-325",
                                 "Habana Gaudi3", "HPU Gaudi3"),
        family="gaudi3", form="oam", scale_up="roce", host_interface="PCIe Gen5 x16"),
    # TPU v5p: Google Cloud docs, "TPU v5p" (docs.cloud.google.com/tpu/docs/v5p): peak BF16
    # 459 and FP8 459 TFLOP/s per chip, HBM2e 95 GB at 2,765 GB/s, bidirectional ICI
    # 1,200 GB/s per chip (600 per direction), 3D torus, 4 chips per host; INT8 918 TOP/s
    # (stas00/ml-engineering). Google publishes no FP32 peak (fp32 runs at the BF16 peak, as
    # XLA's default matmul precision does) nor the host link: PCIe Gen4 is an assumption.
    AcceleratorSpec(
        model="TPU-v5p",
        peak_tflops={"bf16": 459.0, "fp8": 459.0, "int8": 918.0},
        hbm_GiB=95, hbm_GBps=2765, nvlink_GBps=600, pcie_gen=4, launch_overhead_us=LAUNCH_US,
        source="Google Cloud TPU docs, TPU v5p (459 TF BF16/FP8, 95 GB, 2,765 GB/s, ICI "
               "1,200 GB/s bidirectional); host PCIe generation not published (Gen4 assumed)",
        vendor="Google", aliases=("TPU v5p", "TPU v5", "v5p", "TPUv5p"),
        family="v5p", form="tpu", scale_up="ici", host_interface="not published"),
    # TPU v6e (Trillium): Google Cloud docs, "TPU v6e": peak BF16 918 TFLOP/s, INT8 1,836
    # TOP/s, 32 GB HBM at 1,638 GB/s, bidirectional ICI 800 GB/s per chip (400 per
    # direction), 2D torus, 8 chips per host; host link PCIe Gen5.
    AcceleratorSpec(
        model="TPU-v6e",
        peak_tflops={"bf16": 918.0, "int8": 1836.0},
        hbm_GiB=32, hbm_GBps=1638, nvlink_GBps=400, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="Google Cloud TPU docs, TPU v6e (918 TF BF16, 32 GB, 1,638 GB/s, ICI 800 GB/s "
               "bidirectional, PCIe Gen5)",
        vendor="Google", aliases=("TPU v6e", "TPU v6 lite", "v6e", "Trillium", "TPUv6e"),
        family="v6e", form="tpu", scale_up="ici", host_interface="PCIe Gen5"),
)

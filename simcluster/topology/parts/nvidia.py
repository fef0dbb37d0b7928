"""NVIDIA parts of the catalog, each figure with its public source.

Datasheets list tensor-core peaks "with sparsity"; the entries hold dense peaks (half).
Rack and baseboard datasheets (HGX, DGX, NVL72) give totals: the entries divide by the
number of GPUs. Units as in ``topology/accelerator.py``; ``nvlink_GBps`` is per direction
(half the datasheet's bidirectional figure).
"""

from __future__ import annotations

from simcluster.topology.accelerator import AcceleratorSpec

# Launch overhead: an estimate (2 us between back-to-back dependent kernels on one stream),
# consistent with the gaps seen in the Kineto traces under ../shared/data; calibrated later.
LAUNCH_US = 2.0

# Dense peaks shared by the memory variants of one chip (sources in the entries below).
_V100_TFLOPS = {"fp64": 7.8, "fp32": 15.7, "fp16": 125.0}
_A100_TFLOPS = {"fp64": 19.5, "fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0,
                "int8": 624.0}
_HOPPER_TFLOPS = {"fp64": 67.0, "fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5,
                  "fp8": 1979.0, "int8": 1979.0}

_V100_SOURCE = "NVIDIA Tesla V100 GPU Accelerator datasheet (2018)"
_A100_SOURCE = "NVIDIA A100 Tensor Core GPU datasheet (2021)"

# Parts in the catalog before the Blackwell/MI300 additions, figures unchanged.
ORIGINAL: tuple[AcceleratorSpec, ...] = (
    # NVIDIA Tesla V100 datasheet (2018), SXM2: FP64 7.8, FP32 15.7, tensor 125 TFLOP/s,
    # HBM2 900 GB/s, NVLink 300 GB/s total (150 GB/s per direction), PCIe Gen3.
    AcceleratorSpec(
        model="V100-SXM2-32GB", peak_tflops=_V100_TFLOPS, hbm_GiB=32, hbm_GBps=900,
        nvlink_GBps=150, pcie_gen=3, launch_overhead_us=LAUNCH_US, source=_V100_SOURCE,
        aliases=("V100", "Tesla V100-SXM2-32GB", "V100-DGXS-32GB"),
        family="v100", form="sxm", scale_up="nvlink-mesh", host_interface="PCIe Gen3 x16"),
    AcceleratorSpec(
        model="V100-SXM2-16GB", peak_tflops=_V100_TFLOPS, hbm_GiB=16, hbm_GBps=900,
        nvlink_GBps=150, pcie_gen=3, launch_overhead_us=LAUNCH_US, source=_V100_SOURCE,
        aliases=("Tesla V100-SXM2-16GB",),
        family="v100", form="sxm", scale_up="nvlink-mesh", host_interface="PCIe Gen3 x16"),
    # V100 SXM3 32GB at 450 W, the GPU of the NVIDIA DGX-2H: the DGX-2H datasheet (2018)
    # gives 2.1 PFLOP/s of tensor performance for 16 GPUs (131.25 TFLOP/s each; NVIDIA's
    # Megatron-LM v1.0 note calls 62.4 TFLOP/s "48% of the theoretical peak" of one);
    # FP32/FP64 scaled by the same clock ratio over the SXM2 part; HBM2 and NVLink as V100.
    AcceleratorSpec(
        model="V100-SXM3-32GB", peak_tflops={"fp64": 8.2, "fp32": 16.5, "fp16": 131.25},
        hbm_GiB=32, hbm_GBps=900, nvlink_GBps=150, pcie_gen=3, launch_overhead_us=LAUNCH_US,
        source="NVIDIA DGX-2H datasheet (2018); V100 datasheet for HBM2 and NVLink",
        aliases=("Tesla V100-SXM3-32GB", "V100-SXM3-32GB-H"),
        family="v100", form="sxm3", scale_up="nvlink-mesh", host_interface="PCIe Gen3 x16"),
    # NVIDIA A100 Tensor Core GPU datasheet (2021): FP64 9.7 (tensor 19.5), FP32 19.5,
    # TF32 156, BF16/FP16 312, INT8 624 TOP/s; 80 GB HBM2e 2,039 GB/s (40 GB: 1,555 GB/s);
    # NVLink 600 GB/s total (300 GB/s per direction); PCIe Gen4.
    AcceleratorSpec(
        model="A100-SXM4-80GB", peak_tflops=_A100_TFLOPS, hbm_GiB=80, hbm_GBps=2039,
        nvlink_GBps=300, pcie_gen=4, launch_overhead_us=LAUNCH_US, source=_A100_SOURCE,
        aliases=("A100", "A100-SXM4", "NVIDIA A100-SXM4-80GB", "A100 80GB"),
        family="a100", form="sxm", host_interface="PCIe Gen4 x16"),
    AcceleratorSpec(
        model="A100-SXM4-40GB", peak_tflops=_A100_TFLOPS, hbm_GiB=40, hbm_GBps=1555,
        nvlink_GBps=300, pcie_gen=4, launch_overhead_us=LAUNCH_US, source=_A100_SOURCE,
        aliases=("NVIDIA A100-SXM4-40GB",),
        family="a100", form="sxm", host_interface="PCIe Gen4 x16"),
    # NVIDIA H100 Tensor Core GPU datasheet (2023), SXM5: FP64 34 (tensor 67), FP32 67,
    # TF32 494.5, BF16/FP16 989.5, FP8/INT8 1,979 (datasheet lists 2x with sparsity);
    # 80 GB HBM3 3.35 TB/s; NVLink 900 GB/s total (450 per direction); PCIe Gen5.
    AcceleratorSpec(
        model="H100-SXM5-80GB", peak_tflops=_HOPPER_TFLOPS, hbm_GiB=80, hbm_GBps=3350,
        nvlink_GBps=450, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="NVIDIA H100 Tensor Core GPU datasheet (2023)", nvls=True,
        aliases=("H100", "H100-SXM5", "NVIDIA H100 80GB HBM3", "H100 80GB HBM3"),
        family="h100", form="sxm", host_interface="PCIe Gen5 x16"),
    # NVIDIA H200 Tensor Core GPU datasheet (2024), SXM: compute as H100 SXM5; 141 GB
    # HBM3e at 4.8 TB/s; NVLink 900 GB/s total; PCIe Gen5.
    AcceleratorSpec(
        model="H200", peak_tflops=_HOPPER_TFLOPS, hbm_GiB=141, hbm_GBps=4800, nvlink_GBps=450,
        pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="NVIDIA H200 Tensor Core GPU datasheet (2024)", nvls=True,
        aliases=("H200-SXM-141GB", "NVIDIA H200"),
        family="h200", form="sxm", host_interface="PCIe Gen5 x16"),
)

_BLACKWELL_NVLINK = 900.0  # NVLink 5: 1.8 TB/s per GPU, 900 GB/s per direction (18 links)

ADDED: tuple[AcceleratorSpec, ...] = (
    # HGX B200, per GPU. nvidia.com/en-us/data-center/hgx (HGX B200 column, 8 GPUs, tensor
    # figures with sparsity): FP4 144 PF (72 dense), FP8 72 PF, INT8 72 POPS, FP16/BF16 36
    # PF, TF32 18 PF, FP32 600 TF, FP64 296 TF; NVLink 5, 1.8 TB/s GPU-to-GPU. NVIDIA DGX
    # B200 datasheet: 1,440 GB of HBM3e and 64 TB/s for 8 GPUs (180 GB, 8 TB/s each).
    # Host link PCIe Gen5 x16 (MLPerf Inference v6.0 system description "NVIDIA
    # B200-SXM-180GB", nebius_b200_n1.json).
    AcceleratorSpec(
        model="B200-SXM-180GB",
        peak_tflops={"fp64": 37.0, "fp32": 75.0, "tf32": 1125.0, "fp16": 2250.0,
                     "bf16": 2250.0, "fp8": 4500.0, "int8": 4500.0, "fp4": 9000.0},
        hbm_GiB=180, hbm_GBps=8000, nvlink_GBps=_BLACKWELL_NVLINK, pcie_gen=5,
        launch_overhead_us=LAUNCH_US,
        source="nvidia.com HGX platform specifications (HGX B200, /8, dense = sparse/2); "
               "NVIDIA DGX B200 datasheet (1,440 GB, 64 TB/s per 8 GPUs); MLPerf Inference "
               "v6.0 system description nebius_b200_n1 (PCIe Gen5 x16)",
        nvls=True, aliases=("B200", "NVIDIA B200", "B200-SXM", "HGX B200"),
        family="b200", form="sxm", host_interface="PCIe Gen5 x16"),
    # GB200 NVL72, per GPU. nvidia.com/en-us/data-center/gb200-nvl72 (72 GPUs, tensor
    # figures with sparsity): FP4 1,440 PF, FP8/FP6 720 PF, INT8 720 POPS, FP16/BF16 360 PF,
    # TF32 180 PF, FP32 5,760 TF, FP64 2,880 TF; up to 13.4 TB HBM3e at 576 TB/s; NVLink
    # 130 TB/s (1.8 TB/s per GPU). MLPerf Inference v6.1 system description
    # "GB200-NVL72_GB200-186GB" (186 GB per GPU; host interconnect NVLink-C2C to Grace).
    # The host link is NVLink-C2C, not PCIe: the templates model it as PCIe Gen5 x16, an
    # assumption (no datasheet figure for the C2C share of one GPU).
    AcceleratorSpec(
        model="GB200-186GB",
        peak_tflops={"fp64": 40.0, "fp32": 80.0, "tf32": 1250.0, "fp16": 2500.0,
                     "bf16": 2500.0, "fp8": 5000.0, "int8": 5000.0, "fp4": 10000.0},
        hbm_GiB=186, hbm_GBps=8000, nvlink_GBps=_BLACKWELL_NVLINK, pcie_gen=5,
        launch_overhead_us=LAUNCH_US,
        source="nvidia.com GB200 NVL72 specifications (/72, dense = sparse/2); MLPerf "
               "Inference v6.1 system description GB200-NVL72_GB200-186GB (186 GB, "
               "NVLink-C2C host link)",
        nvls=True, aliases=("GB200", "NVIDIA GB200", "GB200 NVL72"),
        family="gb200", form="superchip", host_interface="NVLink-C2C (Grace)"),
    # GB300 NVL72 (Blackwell Ultra), per GPU. nvidia.com/en-us/data-center/gb300-nvl72 rack
    # figures, dense: FP4 1,080 PF (1.1 EF), FP8 360 PF, FP16/BF16 180 PF; 20 TB HBM3e at
    # 576 TB/s; NVLink 130 TB/s (as summarised by G. Lockwood, glennklockwood.com/garden/
    # processors/B300, and Verda, "NVIDIA GB300 NVL72: GPU Architecture & Performance").
    # Per-GPU table of the Verda post: TF32 1.25 PF, FP32 80 TF, 279 GB, 8 TB/s. Its rack
    # table says FP32 3 PF (42 TF per GPU): the sources disagree; 80 is used. Host link as
    # GB200 (NVLink-C2C; modelled as PCIe Gen5 x16, an assumption).
    AcceleratorSpec(
        model="GB300-279GB",
        peak_tflops={"fp32": 80.0, "tf32": 1250.0, "fp16": 2500.0, "bf16": 2500.0,
                     "fp8": 5000.0, "fp4": 15000.0},
        hbm_GiB=279, hbm_GBps=8000, nvlink_GBps=_BLACKWELL_NVLINK, pcie_gen=5,
        launch_overhead_us=LAUNCH_US,
        source="nvidia.com GB300 NVL72 specifications (rack, /72) as summarised by "
               "glennklockwood.com (B300) and Verda's GB300 NVL72 post (per-GPU TF32, FP32, "
               "279 GB); FP32 sources disagree (80 vs 42 TF)",
        nvls=True, aliases=("GB300", "NVIDIA GB300", "GB300 NVL72"),
        family="gb300", form="superchip", host_interface="NVLink-C2C (Grace)"),
    # H800 SXM5: NVIDIA H800 Tensor Core GPU datasheet (2023): H100 SXM5 silicon and
    # figures except NVLink 400 GB/s total (200 per direction) and FP64 1 TF; 80 GB HBM3
    # at 3.35 TB/s; PCIe Gen5 (corroborated: philisun.com "NVIDIA H800 vs H100").
    AcceleratorSpec(
        model="H800-SXM5-80GB",
        peak_tflops={**_HOPPER_TFLOPS, "fp64": 1.0},
        hbm_GiB=80, hbm_GBps=3350, nvlink_GBps=200, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="NVIDIA H800 Tensor Core GPU datasheet (2023): H100 SXM5 figures, NVLink "
               "400 GB/s, FP64 1 TF",
        nvls=True, aliases=("H800", "NVIDIA H800", "H800-SXM5", "NVIDIA H800 80GB HBM3"),
        family="h800", form="sxm", host_interface="PCIe Gen5 x16"),
    # H20 (HGX H20): NVIDIA publishes no datasheet outside China; the figures partners
    # list (inferencebench.io/gpus/nvidia-h20, willitrunai.com/gpus/h20-96gb, concordant):
    # FP8/INT8 296, BF16/FP16 148, TF32 74, FP32 44, FP64 1 TF (dense); 96 GB HBM3 at
    # 4.0 TB/s; NVLink 900 GB/s total; PCIe Gen5 x16.
    AcceleratorSpec(
        model="H20-96GB",
        peak_tflops={"fp64": 1.0, "fp32": 44.0, "tf32": 74.0, "fp16": 148.0, "bf16": 148.0,
                     "fp8": 296.0, "int8": 296.0},
        hbm_GiB=96, hbm_GBps=4000, nvlink_GBps=450, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="NVIDIA HGX H20 figures as published by partners (inferencebench.io, "
               "willitrunai.com; no public NVIDIA datasheet)",
        nvls=True, aliases=("H20", "NVIDIA H20"),
        family="h20", form="sxm", host_interface="PCIe Gen5 x16"),
    # H100 PCIe: NVIDIA H100 Tensor Core GPU datasheet (2022, PCIe column): FP64 tensor 51,
    # FP32 51, TF32 756, BF16/FP16 1,513, FP8/INT8 3,026 (with sparsity); 80 GB HBM2e at
    # 2 TB/s; NVLink bridge 600 GB/s (pairs of cards); PCIe Gen5 128 GB/s.
    AcceleratorSpec(
        model="H100-PCIe-80GB",
        peak_tflops={"fp64": 51.0, "fp32": 51.0, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0,
                     "fp8": 1513.0, "int8": 1513.0},
        hbm_GiB=80, hbm_GBps=2000, nvlink_GBps=300, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="NVIDIA H100 Tensor Core GPU datasheet (2022), H100 PCIe",
        aliases=("H100 PCIe", "NVIDIA H100 PCIe", "H100-PCIE-80GB"),
        family="h100", form="pcie", scale_up="nvlink-bridge", host_interface="PCIe Gen5 x16"),
    # H100 NVL: NVIDIA H100 Tensor Core GPU datasheet (2023, H100 NVL column, per GPU):
    # FP64 tensor 60, FP32 60, TF32 835, BF16/FP16 1,671, FP8/INT8 3,341 (with sparsity);
    # 94 GB HBM3 at 3.9 TB/s; NVLink bridge 600 GB/s; PCIe Gen5 128 GB/s.
    AcceleratorSpec(
        model="H100-NVL-94GB",
        peak_tflops={"fp64": 60.0, "fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5,
                     "fp8": 1670.5, "int8": 1670.5},
        hbm_GiB=94, hbm_GBps=3900, nvlink_GBps=300, pcie_gen=5, launch_overhead_us=LAUNCH_US,
        source="NVIDIA H100 Tensor Core GPU datasheet (2023), H100 NVL",
        aliases=("H100 NVL", "NVIDIA H100 NVL", "H100-NVL"),
        family="h100", form="nvl", scale_up="nvlink-bridge", host_interface="PCIe Gen5 x16"),
    # A100 PCIe: NVIDIA A100 datasheet (2021, PCIe columns): compute as SXM4; 80 GB HBM2e at
    # 1,935 GB/s, 40 GB at 1,555 GB/s; NVLink bridge for 2 GPUs 600 GB/s; PCIe Gen4.
    AcceleratorSpec(
        model="A100-PCIe-80GB", peak_tflops=_A100_TFLOPS, hbm_GiB=80, hbm_GBps=1935,
        nvlink_GBps=300, pcie_gen=4, launch_overhead_us=LAUNCH_US, source=_A100_SOURCE,
        aliases=("NVIDIA A100 80GB PCIe", "A100-PCIE-80GB", "A100 80GB PCIe"),
        family="a100", form="pcie", scale_up="nvlink-bridge", host_interface="PCIe Gen4 x16"),
    AcceleratorSpec(
        model="A100-PCIe-40GB", peak_tflops=_A100_TFLOPS, hbm_GiB=40, hbm_GBps=1555,
        nvlink_GBps=300, pcie_gen=4, launch_overhead_us=LAUNCH_US, source=_A100_SOURCE,
        aliases=("NVIDIA A100-PCIE-40GB", "A100-PCIE-40GB", "A100 40GB PCIe"),
        family="a100", form="pcie", scale_up="nvlink-bridge", host_interface="PCIe Gen4 x16"),
    # L40S: NVIDIA L40S datasheet (2023): FP32 91.6, TF32 183, BF16/FP16 362.05, FP8/INT8
    # 733 (dense; 2x with sparsity); 48 GB GDDR6 at 864 GB/s; no NVLink; PCIe Gen4 x16.
    AcceleratorSpec(
        model="L40S-48GB",
        peak_tflops={"fp32": 91.6, "tf32": 183.0, "fp16": 362.05, "bf16": 362.05,
                     "fp8": 733.0, "int8": 733.0},
        hbm_GiB=48, hbm_GBps=864, nvlink_GBps=0, pcie_gen=4, launch_overhead_us=LAUNCH_US,
        source="NVIDIA L40S datasheet (2023)",
        aliases=("L40S", "NVIDIA L40S"),
        family="l40s", form="pcie", scale_up="none", host_interface="PCIe Gen4 x16"),
)

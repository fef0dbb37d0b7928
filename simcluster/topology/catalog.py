"""Accelerator and link specifications, each figure with its public source.

Units: FLOP/s as TFLOP/s (1e12), bandwidth as GB/s (1e9 B/s) per direction, capacity as GiB
(2**30 B, the unit behind the "80 GB" of an 80 GB HBM part), latency in ns and us as named.
Peak FLOP/s are dense (no structured sparsity). Figures a datasheet does not give (launch
overhead, link latencies) are marked as estimates; the network issue calibrates them.

The accelerator entries live in ``topology/parts/`` (one module per vendor, each figure with
its source); names are recognised by ``topology/identification.py``. This module is the one table
callers read: :data:`ACCELERATORS`, :func:`lookup`, :func:`identify`, :func:`known_models`.
"""

from __future__ import annotations

from collections.abc import Mapping

from simcluster.topology.accelerator import GIB, SCALE_UP_KINDS, AcceleratorSpec
from simcluster.topology.identification import Match, catalog, resolve, suggestions, unknown_message
from simcluster.topology.identification import identify as _identify

__all__ = ["ACCELERATORS", "GIB", "SCALE_UP_KINDS", "AcceleratorSpec", "Identified", "Match",
           "identify", "known_models", "lookup", "resolve", "suggestions", "unknown_message"]

ACCELERATORS: dict[str, AcceleratorSpec] = catalog()

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
# NVLS's per-chunk overhead (3.5 us per chunk and concurrent op) and base latency (4 us) were
# refitted together on the DGX H100 curve alone (NVLS forced, 2 MiB-16 GiB) once the model
# followed NCCL 2.18.5's NVLS chunk sizes and pipeline fill (``sim/protocols.py``), by
# bench/fit_nvls_chunks.py on 2026-12-07; Azure ND H100 v5 is held out (docs/network.md).
DEFAULT_COLLECTIVE_OVERHEAD_US = 0.0
DEFAULT_HOST_LAUNCH_US = 19.3
DEFAULT_NVLS_EFFICIENCY = 0.782
DEFAULT_NVLS_BASE_LATENCY_US = 4.0
DEFAULT_NVLS_CHUNK_OVERHEAD_US = 3.5
# NVLS-tree keeps the NVLS base latency of the 2026-11-24 fit (its chunks are not modelled).
DEFAULT_NVLS_TREE_BASE_LATENCY_US = 47.7
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


# Kept for callers of the earlier API: a recognised accelerator and how.
Identified = Match


def identify(name: str, memory_bytes: int | None = None, compute_units: int | None = None,
             *, extra: Mapping[str, AcceleratorSpec] | None = None) -> Match | None:
    """Recognise the accelerator behind a name as users type it and drivers print it
    (``topology/identification.py``: case, punctuation and vendor words ignored; the product
    family's variant chosen by form, compute units and memory).

    Example:
        >>> identify("NVIDIA A100-PG509-200", memory_bytes=42297524224).spec.model
        'A100-SXM4-40GB'
    """
    return _identify(name, memory_bytes, compute_units, extra=extra)


def known_models() -> list[str]:
    """The catalog's accelerator model names, sorted."""
    return sorted(ACCELERATORS)


def lookup(model: str, extra: Mapping[str, AcceleratorSpec] | None = None
           ) -> AcceleratorSpec | None:
    """Find an accelerator by model name, alias or driver name (:func:`identify`), or None.

    ``extra`` holds models defined in a topology or accelerator file; they take precedence.

    Example:
        >>> lookup("nvidia h100 nvl").model
        'H100-NVL-94GB'
    """
    found = _identify(model, extra=extra)
    return None if found is None else found.spec

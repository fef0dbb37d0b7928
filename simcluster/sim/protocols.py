"""Protocol constants of the collective model: latencies and bandwidth factors.

NCCL moves data with one of three protocols. They trade bandwidth for latency:

- ``LL`` (low latency): 8-byte stores that carry 4 bytes of data and a 4-byte flag. The
  lowest latency, a quarter of the link's bandwidth for all-reduce.
- ``LL128``: 128-byte lines with 8 bytes of flags. About 92 % of the bandwidth, medium latency.
- ``Simple``: bulk copies with a memory fence per step. Full bandwidth, highest latency.

The starting values below are NCCL's own tuning constants (``src/graph/tuning.cc`` of NCCL
2.18, the version on the measured systems): a base latency per (algorithm, protocol), a
latency per step per (algorithm, protocol, hardware class), and bandwidth factors. Facts from
that file, rewritten here. The calibration against nccl-tests keeps their structure and fits
only a global latency scale (``NetworkParams.latency_scale``); see ``docs/network.md``.

Which rows an algorithm uses and which protocols it runs are part of its record
(:class:`Tuning`, in ``sim/algorithms.py``), not tables here. :class:`Tables` bundles one
library's constants: :data:`NCCL` holds the tables below, :data:`NCCL_2_27` NCCL 2.27's
(ring LL at half the ring, capped at ``llMaxBw``); RCCL's are in ``sim/rccl.py``, and
``sim/libraries.py`` says which a cluster uses.

Units: microseconds; factors are dimensionless fractions of link bandwidth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simcluster.topology.schema import NetworkParams

PROTOCOLS: tuple[str, ...] = ("LL", "LL128", "Simple")

# Hardware class of a step: the slowest kind of link it crosses.
HW_CLASSES: tuple[str, ...] = ("nvlink", "pcie", "net")

# Base latency of one collective call, per algorithm and protocol (us). NCCL tuning.cc
# baseLat: Tree {6.8, 14.0, 0}, Ring {6.6, 14.0, 8.4}. NVLS is not in that table: its base
# is taken as Ring/Simple's.
#
# The in-network reductions (NVLS_TREE, COLLNET_DIRECT, COLLNET_CHAIN) run Simple only, as in
# NCCL; their rows are NCCL 2.18.3's (``v2.18.3-1``, src/graph/tuning.cc): baseLat CollNet
# Direct and Chain {6.8, 14.0, 0}, NVLS and NVLS Tree {0, 0, 23}. NVLS and NVLS-tree use the
# fitted ``network.nvls_base_latency_us`` instead (their algorithm records say so).
BASE_LATENCY_US: dict[str, dict[str, float]] = {
    "ring": {"LL": 6.6, "LL128": 14.0, "Simple": 8.4},
    "tree": {"LL": 6.8, "LL128": 14.0, "Simple": 0.0},
    "nvls": {"LL": 8.4, "LL128": 8.4, "Simple": 8.4},
    "nvls_tree": {"Simple": 23.0},
    "collnet_direct": {"Simple": 0.0},
    "collnet_chain": {"Simple": 0.0},
}

# Latency of one step (one hop of a ring or tree) per algorithm, hardware class and protocol
# (us). NCCL 2.18.5 (``v2.18.5-1``) src/graph/tuning.cc hwLat, NVLink / PCI / NET rows. The
# values that moved since NCCL 2.17 (ring and tree LL NVLink .47 and .52 -> .6, ring NET
# Simple 9.6 -> 14.0, tree Simple 28 / 28 / 28 -> 4 / 6 / 14) are the same in every release
# from 2.23 on; 2.19-2.22 had tree Simple back at 28 / 28 / 28.
STEP_LATENCY_US: dict[str, dict[str, dict[str, float]]] = {
    "ring": {
        "nvlink": {"LL": 0.6, "LL128": 1.9, "Simple": 3.4},
        "pcie": {"LL": 1.0, "LL128": 2.5, "Simple": 5.7},
        "net": {"LL": 2.7, "LL128": 4.0, "Simple": 14.0},
    },
    "tree": {
        "nvlink": {"LL": 0.6, "LL128": 1.25, "Simple": 4.0},
        "pcie": {"LL": 1.0, "LL128": 1.9, "Simple": 6.0},
        "net": {"LL": 5.0, "LL128": 8.5, "Simple": 14.0},
    },
    # NCCL 2.18.3 hwLat, Simple only: NVLSTree {0, 0, 19}, CollNetDirect {8.0, 8.0, 10.7},
    # CollNetChain {4.75, 8.0, 14} (NVLink, PCI, NET). NVLS keeps the ring rows (its two
    # steps inside the switch are part of the fitted NVLS latency).
    "nvls_tree": {"nvlink": {"Simple": 0.0}, "pcie": {"Simple": 0.0}, "net": {"Simple": 19.0}},
    "collnet_direct": {"nvlink": {"Simple": 8.0}, "pcie": {"Simple": 8.0},
                       "net": {"Simple": 10.7}},
    "collnet_chain": {"nvlink": {"Simple": 4.75}, "pcie": {"Simple": 8.0},
                      "net": {"Simple": 14.0}},
}

# CollNet Direct's arity serialization: a head serves the other ranks of its server one after
# the other, 0.5 us each, on the way up and on the way down (NCCL 2.18.3 tuning.cc:
# ``2 * (min(1, g-1) * intraLat + (g-1) * 0.5) + interLat``).
COLLNET_ARITY_LATENCY_US = 0.5

# NVLS-tree's network part runs at this fraction of the NIC bandwidth its tree edges get
# (NCCL 2.18.3 tuning.cc: NVLS_TREE algBw = busBw x .70 x nNodes / (2 (nNodes-1)), where
# the second factor is the bus-to-algorithm conversion that the flows model here).
NVLS_TREE_NET_FACTOR = 0.70

# Fraction of the link bandwidth a protocol delivers. NCCL tuning.cc: ring LL busBw x 1/4
# (all-reduce, or any multi-node collective; 1/3 otherwise), ring LL128 x 0.92 (120/128),
# tree busBw x 0.9 then LL x 1/3.8 and LL128 x 0.915.
# CollNet Direct busBw x .85 (NCCL 2.18.3 applies it from compute capability 9.0, Hopper; the
# model everywhere). CollNet Chain has no factor. NVLS and NVLS-tree carry theirs in their
# plans (``network.nvls_efficiency`` on the NVLink flows, NVLS_TREE_NET_FACTOR on the tree).
BANDWIDTH_FACTOR: dict[str, dict[str, float]] = {
    "ring": {"LL": 0.25, "LL128": 0.92, "Simple": 1.0},
    "tree": {"LL": 0.9 / 3.8, "LL128": 0.9 * 0.915, "Simple": 0.9},
    "nvls": {"LL": 1.0, "LL128": 1.0, "Simple": 1.0},
    "nvls_tree": {"Simple": 1.0},
    "collnet_direct": {"Simple": 0.85},
    "collnet_chain": {"Simple": 1.0},
}


# NVLS's chunk size (NCCL 2.18.5, ``v2.18.5-1``, src/enqueue.cc ``computeColl``): at most
# 128 KiB, halved to 64, 32 and 16 KiB below 64, 8 and 2 x (channels x heads x chunk) bytes,
# where an NVLS all-reduce runs on ``NCCL_NVLS_NCHANNELS`` = 16 channels (src/transport/nvls.cc)
# and, inside one server, has one head per GPU (src/graph/search.cc: "Force intra-node NVLS
# algorithm to pull evenly from all GPUs"; src/graph/connect.cc: nHeads = the NVLS graph's
# channels). With 8 GPUs: 16 KiB chunks below 8 MiB, 32 KiB below 64 MiB, 64 KiB below 1 GiB.
NVLS_CHANNELS = 16
NVLS_MAX_CHUNK_BYTES = 131072
NVLS_CHUNK_STEPS: tuple[tuple[int, int], ...] = ((64, 65536), (8, 32768), (2, 16384))


def nvls_chunk_bytes(size: float, heads: int) -> int:
    """Bytes of one NVLS chunk for an all-reduce of ``size`` bytes with ``heads`` heads."""
    concurrent = NVLS_CHANNELS * heads
    chunk = NVLS_MAX_CHUNK_BYTES
    for factor, smaller in NVLS_CHUNK_STEPS:
        if size < factor * concurrent * chunk and chunk > smaller:
            chunk = smaller
    return chunk


# An NVLS all-reduce pipelines two stages per chunk, a reduction through the switch
# (``multimem.ld_reduce``) and a multicast back (``multimem.st``): before the first result
# lands, every concurrent op (channel x head) has a chunk in each stage.
NVLS_PIPELINE_STAGES = 2


def nvls_pipeline(size: float, heads: int, chunk_overhead_us: float,
                  plateau_us_per_byte: float) -> tuple[float, float]:
    """How NVLS's chunks stretch an all-reduce of ``size`` bytes: (the factor on its time at
    the plateau rate, the pipeline's fill in us).

    The ``n = NVLS_CHANNELS x heads`` concurrent ops each move chunks of ``k`` bytes
    (:func:`nvls_chunk_bytes`), each chunk at the op's raw rate plus a fixed time ``c``
    (``network.nvls_chunk_overhead_us``). ``network.nvls_efficiency`` gives the plateau,
    where chunks are the largest (``K`` = 128 KiB): ``u`` = ``plateau_us_per_byte`` of the
    all-reduce's bytes. So an op's raw time per byte is ``n u - c / K`` and

        time = S u (1 + c (1/k - 1/K) / (n u)) + 2 (k (n u - c / K) + c),

    the second term the fill: ``NVLS_PIPELINE_STAGES`` chunks in flight before the first
    lands. A call smaller than one round of chunks (``S < n k``) takes a whole round's time:
    the fill grows by ``(n k - S) u`` times the stretch (:func:`nvls_round_bytes`). Args in
    bytes and us.
    """
    n = NVLS_CHANNELS * heads
    k = nvls_chunk_bytes(size, heads)
    c = chunk_overhead_us
    stretch = 1.0 + c * (1.0 / k - 1.0 / NVLS_MAX_CHUNK_BYTES) / (n * plateau_us_per_byte)
    fill = NVLS_PIPELINE_STAGES * (k * (n * plateau_us_per_byte - c / NVLS_MAX_CHUNK_BYTES) + c)
    short = max(0.0, n * k - size)  # n k: nvls_round_bytes, without finding k again
    return stretch, fill + short * plateau_us_per_byte * stretch


def nvls_round_bytes(size: float, heads: int) -> int:
    """Bytes of one round of NVLS chunks, one chunk per concurrent op (``n k``).

    NCCL 2.18.5 (``v2.18.5-1``, src/collectives/device/all_reduce.h, the NVLS all-reduce)
    gives chunk ``j`` of a call to channel ``j // heads``, head ``j % heads`` (``offset =
    gridOffset + bid * nHeads * chunkSize``): a call smaller than a round leaves channels idle
    instead of giving each a smaller chunk, so each busy op still moves a whole chunk and the
    call takes a round's time. On 8 GPUs (``n`` = 128, 16 KiB chunks) a round is 2 MiB: the
    ND H100 v5 log, NVLS forced, is flat at 42.0-43.0 us from 64 KiB to 1 MiB and 44.8 us at
    2 MiB.
    """
    return NVLS_CHANNELS * heads * nvls_chunk_bytes(size, heads)


@dataclass(frozen=True)
class Tuning:
    """How an algorithm's cost is looked up in NCCL's tuning tables (one per algorithm record).

    Attributes:
        table: which rows of the tables above it uses: ``ring``, ``tree``, ``nvls``,
            ``nvls_tree``, ``collnet_direct`` or ``collnet_chain`` (step latencies: the
            table's own rows where it has them, the ``ring`` rows otherwise).
        protocols: the protocols it can run, a subset of :data:`PROTOCOLS` in that order.
        base_latency: overrides the base latency of a call (us, before ``latency_scale``),
            given the topology's network parameters and the protocol; None: the table's
            base latency plus the protocol's overhead.
        pipeline: how a size-dependent chunk size stretches a phase (NVLS's), given the
            network parameters, the group's ranks, the call's bytes and the phase's time per
            byte at full rate (us): (factor on its bytes' time, fill in us before they flow);
            None: (1, 0).
    """

    table: str = "ring"
    protocols: tuple[str, ...] = PROTOCOLS
    base_latency: Callable[[NetworkParams, str], float] | None = None
    pipeline: Callable[[NetworkParams, int, float, float], tuple[float, float]] | None = None


# Point-to-point send/recv: ring rows, every protocol (NCCL tunes p2p like ring steps).
P2P = Tuning()


@dataclass(frozen=True)
class Tables:
    """One collective library's tuning constants (the tables above are NCCL's; RCCL's are in
    ``sim/rccl.py``). A table name the library lacks falls back to NCCL's rows (NVLS and
    CollNet exist only on NVIDIA hardware).

    Attributes:
        base: base latency of a call per table and protocol (us).
        step: latency of one step per table, hardware class and protocol (us).
        bandwidth: fraction of link bandwidth per table and protocol, one dict per server
            count it applies from (``{1: ..., 3: ...}``: the row of the largest key at most
            the group's server count).
        ll_other_collectives: NCCL's ring LL factor for collectives other than all-reduce and
            reduce inside one server (1/3), or None where the library has no such case.
        ll_max_busbw_GBps: per GPU architecture (:func:`nccl_arch`), the most bus bandwidth
            (GB/s) the ring and tree LL protocols get inside one server (NCCL's ``llMaxBws``
            N1 column); an architecture not listed has no cap.
        ll_max_busbw_net_GBps: the same cap across servers, per server count it applies
            from (``{2: ..., 3: ...}``: the row of the largest key at most the group's
            server count; NCCL's N2 and N4 columns of the CPU vendor's row); empty: none.
    """

    base: dict[str, dict[str, float]]
    step: dict[str, dict[str, dict[str, float]]]
    bandwidth: dict[int, dict[str, dict[str, float]]]
    ll_other_collectives: float | None = None
    ll_max_busbw_GBps: dict[str, float] = field(default_factory=dict)
    ll_max_busbw_net_GBps: dict[int, float] = field(default_factory=dict)

    def step_latency_us(self, table: str, hw: str, protocol: str) -> float:
        """Latency of one step with the ``table`` rows over hardware class ``hw``."""
        return _rows(table, self.step, STEP_LATENCY_US)[hw][protocol]

    def base_latency_us(self, table: str, protocol: str) -> float:
        """Base latency of one call with the ``table`` rows and ``protocol`` (us)."""
        return _rows(table, self.base, BASE_LATENCY_US)[protocol]

    def bandwidth_factor(self, table: str, protocol: str, collective: str,
                         n_hosts: int = 1) -> float:
        """Fraction of link bandwidth that ``protocol`` delivers for ``collective`` with the
        ``table`` rows on a group over ``n_hosts`` servers."""
        row = self.bandwidth[max(k for k in self.bandwidth if k <= max(n_hosts, 1))]
        factor = _rows(table, row, BANDWIDTH_FACTOR)[protocol]
        if (self.ll_other_collectives is not None and table == "ring" and protocol == "LL"
                and n_hosts <= 1 and collective not in ("all_reduce", "reduce")):
            factor = self.ll_other_collectives
        return factor

    def ll_cap_GBps(self, table: str, protocol: str, arch: str | None, n_hosts: int
                    ) -> float | None:
        """The bus bandwidth cap (GB/s) of ``protocol`` with the ``table`` rows on ``arch``
        over ``n_hosts`` servers, or None: NCCL caps ring and tree LL at ``llMaxBw``
        (tuning.cc: ``busBw = std::min(llMaxBw, ...)``), indexed by the GPU architecture
        inside one server and by the server count across servers."""
        if protocol != "LL" or table not in ("ring", "tree"):
            return None
        if n_hosts > 1:
            rows = [k for k in self.ll_max_busbw_net_GBps if k <= n_hosts]
            return self.ll_max_busbw_net_GBps[max(rows)] if rows else None
        return None if arch is None else self.ll_max_busbw_GBps.get(arch)


def nccl_bus_bytes(table: str, collective: str, ranks: int) -> float:
    """Bytes on NCCL's bus per byte of the call: its bus bandwidth over its algorithm
    bandwidth (tuning.cc, ``ratio``). Rings: ``nsteps / p``, with ``nsteps`` 2 (p - 1) for
    all-reduce, p - 1 for reduce-scatter and all-gather, p otherwise; trees (all-reduce
    only): 2."""
    if table == "tree":
        return 2.0
    if collective == "all_reduce":
        return 2 * (ranks - 1) / ranks
    if collective in ("reduce_scatter", "all_gather"):
        return (ranks - 1) / ranks
    return 1.0


# Architecture of a GPU family as NCCL's tuning tables index it (``compCapIndex``: Volta
# sm70, Ampere sm80, Hopper sm90, Blackwell sm100; a library version without a Blackwell
# row gives ``blackwell`` Hopper's values in its tables).
NCCL_ARCH: dict[str, str] = {
    # NCCL's compCapIndex: sm80 up to sm89 (Ada's L40S) take the Ampere rows.
    "v100": "volta", "a100": "ampere", "a800": "ampere", "l40s": "ampere",
    "h100": "hopper", "h200": "hopper",
    "h800": "hopper", "h20": "hopper", "b200": "blackwell", "gb200": "blackwell",
    "gb300": "blackwell",
}


def nccl_arch(families: Iterable[str]) -> str | None:
    """The tuning architecture of a group of GPU families: the oldest (NCCL takes the
    minimum compute capability), or None if any family is not in :data:`NCCL_ARCH`."""
    order = ("volta", "ampere", "hopper", "blackwell")
    archs = [NCCL_ARCH.get(f) for f in families]
    if not archs or None in archs:
        return None
    return min(archs, key=order.index)  # type: ignore[arg-type]


def _rows(table: str, own: dict[str, Any], nccl: dict[str, Any]) -> Any:
    """``table``'s rows: the library's own, else NCCL's, else the ring's (of either)."""
    for rows in (own, nccl):
        if table in rows:
            return rows[table]
    return own["ring"] if "ring" in own else nccl["ring"]


# NCCL's: the tables above. NCCL 2.18.5 also caps ring and tree LL at llMaxBw (``v2.18.5-1``
# src/graph/tuning.cc lines 86-90, one server: Volta 39.0, Ampere 87.7, Hopper 87.7 GB/s);
# these tables leave the cap out. Inside one server it would bind only where LL128 should
# take over (all-gather and reduce-scatter, whose LL factor is 1/3, and Blackwell), and the
# model keeps LL128 off there by its fitted 300 us overhead (topology/catalog.py), so the
# cap would move those calls onto a slower LL than NCCL runs (+20 to +108 us on the
# equivalence cases of tests/sim/equivalence.py, 2026-12-08). Ring all-reduce on H100 (87.1
# GB/s) and A100 (58 GB/s) is under it.
NCCL = Tables(base=BASE_LATENCY_US, step=STEP_LATENCY_US, bandwidth={1: BANDWIDTH_FACTOR},
              ll_other_collectives=1.0 / 3.0)

# NCCL 2.27 (``v2.27.7-1`` src/graph/tuning.cc), where it differs from 2.18.5 in the rows the
# model uses: ring LL gets half the ring's bus bandwidth for every collective (line 279:
# ``busBw = std::min(llMaxBw, busBw * .5)``; 2.18.5 had 1/4, or 1/3 for other collectives
# inside one server; the change came in 2.21.5), llMaxBw inside one server is 141.0 GB/s on
# Hopper and 282.0 on Blackwell (lines 165-169; Volta 39.0, Ampere 87.7 as in 2.18.5),
# tree Simple has a base latency of 8.4 us (line 135) and 4.0 us per PCI step (line 149).
# Across servers llMaxBw is the CPU vendor's row (lines 235-236: ``index1 = nNodes == 1 ?
# compCapIndex : cpuVendor == AMD ? 1 : 0``), N2 and N4 columns: the non-AMD row, 39.0 for
# 2 servers and 20.4 from 3 (AMD: 22.5, 19.0); topologies do not give the CPU vendor, and
# the DGX, HGX, GCP and Azure H100/B200 servers and Grace are not AMD.
# The rest (ring base and step latencies, NET rows, LL128 and tree factors) is 2.18.5's.
NCCL_2_27 = Tables(
    base={**BASE_LATENCY_US, "tree": {**BASE_LATENCY_US["tree"], "Simple": 8.4}},
    step={**STEP_LATENCY_US, "tree": {**STEP_LATENCY_US["tree"],
                                      "pcie": {**STEP_LATENCY_US["tree"]["pcie"], "Simple": 4.0}}},
    bandwidth={1: {**BANDWIDTH_FACTOR, "ring": {**BANDWIDTH_FACTOR["ring"], "LL": 0.5}}},
    ll_other_collectives=None,
    ll_max_busbw_GBps={"volta": 39.0, "ampere": 87.7, "hopper": 141.0, "blackwell": 282.0},
    ll_max_busbw_net_GBps={2: 39.0, 3: 20.4})

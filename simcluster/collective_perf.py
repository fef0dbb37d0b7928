"""nccl-tests on the simulator: time one collective per size and report algbw and busbw.

An iteration takes max(host launch cost, simulated device time): nccl-tests launches its
iterations back to back, so the host's per-call cost hides behind the device's work except
for small messages (``network.host_launch_us``).

``busbw`` follows nccl-tests' definition so the numbers compare with a user's own
``*_perf`` logs: algbw times ``2(n-1)/n`` for all_reduce, ``(n-1)/n`` for all_gather,
reduce_scatter and all_to_all, and 1 for broadcast, reduce and sendrecv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pyarrow.compute as pc

from simcluster.errors import SimclusterError
from simcluster.placement import Placement, strategy_placement
from simcluster.scenario import Scenario
from simcluster.sim.algorithms import algorithm_names
from simcluster.sim.libraries import effective_network, library_names
from simcluster.sim.protocols import PROTOCOLS
from simcluster.topology.cluster import Cluster
from simcluster.workload.generate.collective import OPS, single_collective

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "fp64": 8}
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """``1K`` -> 1024, ``8G`` -> 8 GiB, ``512`` -> 512 (binary units, as nccl-tests)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise SimclusterError(f"size {text!r}: use a number with an optional K, M, G or T, "
                              "e.g. 1K or 8G.")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def bus_factor(op: str, n: int) -> float:
    """nccl-tests' busbw / algbw for ``op`` on ``n`` ranks."""
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


@dataclass(frozen=True)
class PerfRow:
    """One size: bytes, elements, time (us), algbw and busbw (GB/s), algorithm/protocol."""

    size: int
    count: int
    time_us: float
    algbw_GBps: float
    busbw_GBps: float
    algorithm: str


def sizes(min_size: int, max_size: int, factor: int = 2) -> list[int]:
    """Sizes from ``min_size`` to ``max_size`` multiplying by ``factor`` (nccl-tests -f)."""
    if min_size <= 0 or max_size < min_size or factor < 2:
        raise SimclusterError(
            f"sizes: need 0 < min ({min_size}) <= max ({max_size}) and a factor >= 2 "
            f"({factor}).")
    out = [min_size]
    while out[-1] * factor <= max_size:
        out.append(out[-1] * factor)
    return out


def run(cluster: Cluster, op: str, sizes_bytes: list[int], ranks: int | None = None,
        algorithm: str | None = None, protocol: str | None = None, dtype: str = "fp32",
        placement: Placement | None = None, library: str | None = None) -> list[PerfRow]:
    """Simulate ``op`` at each size on the first ``ranks`` accelerators (or ``placement``).

    ``algorithm``/``protocol`` force the model's choice (``auto`` or None: the model picks
    per size, as NCCL's tuner does); ``library`` (``nccl``, ``rccl``) whose tuning it follows
    (None: the topology's ``network.library``).

    Raises:
        SimclusterError: unknown op, too many ranks, an algorithm that does not apply.
    """
    if op not in OPS:
        raise SimclusterError(f"unknown collective {op!r}; use one of {', '.join(OPS)}.")
    if algorithm not in (None, "auto", *algorithm_names()):
        raise SimclusterError(f"--algo {algorithm!r}: use auto or one of "
                              f"{', '.join(algorithm_names())}.")
    if protocol not in (None, "auto", *PROTOCOLS):
        raise SimclusterError(f"--proto {protocol!r}: use auto or one of {', '.join(PROTOCOLS)}.")
    if library not in (None, "auto", *library_names()):
        raise SimclusterError(f"--library {library!r}: use auto or one of "
                              f"{', '.join(library_names())}.")
    n = ranks or len(cluster.accelerators)
    network = cluster.network
    if algorithm and algorithm != "auto":
        network = network.model_copy(update={"algorithm": algorithm})
    if protocol and protocol != "auto":
        network = network.model_copy(update={"protocol": protocol})
    if library is not None:
        network = network.model_copy(update={"library": library})
    cluster = replace(cluster, network=network)
    placement = placement or strategy_placement(cluster, n)
    host_launch_us = effective_network(cluster).host_launch_us  # the library's default
    rows = []
    elem = DTYPE_BYTES.get(dtype, 4)
    for size in sizes_bytes:
        run_ = Scenario(single_collective(op, size, n, dtype=dtype), cluster, placement).run().run
        # nccl-tests launches its iterations back to back: the host's launch cost of the next
        # call overlaps this one on the device, so an iteration takes at least that cost.
        t = max(run_.makespan_us, host_launch_us)
        algo = pc.drop_null(run_.timeline.column("algorithm"))
        algbw = size / t / 1e3 if t > 0 else 0.0
        rows.append(PerfRow(size=size, count=size // elem, time_us=t, algbw_GBps=algbw,
                            busbw_GBps=algbw * bus_factor(op, n),
                            algorithm=algo[0].as_py() if len(algo) else "-"))
    return rows


NCCL_TYPES = {"fp32": "float", "fp16": "half", "bf16": "bfloat16", "fp8": "fp8_e4m3",
              "int8": "int8", "fp64": "double"}


def library_of(cluster: Cluster, library: str | None = None) -> str:
    """The collective library whose tuning :func:`run` follows on ``cluster`` (``library``
    if given and not ``auto``, else the topology's choice or the accelerators' vendor's)."""
    network = cluster.network
    if library is not None:
        network = network.model_copy(update={"library": library})
    return effective_network(replace(cluster, network=network)).library


def average_busbw(rows: list[PerfRow]) -> float:
    """nccl-tests' ``Avg bus bandwidth`` line: the mean busbw over the sizes (GB/s)."""
    return sum(r.busbw_GBps for r in rows) / len(rows) if rows else 0.0


def redop_root(op: str) -> tuple[str, int]:
    """nccl-tests' ``redop`` and ``root`` columns for ``op``."""
    redop = "sum" if op in ("all_reduce", "reduce_scatter", "reduce") else "none"
    return redop, (0 if op in ("broadcast", "reduce") else -1)

"""Predicted vs measured: nccl-tests bus bandwidth against the simulator.

Reads the measured all-reduce curves (``../shared/data/calibration/nccl_allreduce_single_node.csv``
format: system, gpus_per_node, nodes, collective, bytes, time_us, busbw_GBps, ...), runs the
same sizes on the matching bundled topology, and reports the error per size and the mean
absolute percentage error (MAPE) per size band.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simcluster import collective_perf
from simcluster.calibrate.logs import scan_log
from simcluster.topology.cluster import Cluster

# Measured system -> bundled topology file.
SYSTEMS: dict[str, str] = {
    "dgx-h100-8gpu": "dgx-h100.yaml",
    "azure-nd-h100-v5": "azure-nd-h100-v5.yaml",
    "azure-nd-a100-v4": "azure-nd-a100-v4.yaml",
}
# The algorithm a measured run forced (NCCL_ALGO), where its benchmark script says so; the
# others ran NCCL's tuner. Azure/AI-benchmarking-guide, Benchmarks/NVIDIA/NCCLBandwidth.py:
# ``NCCL_ALGO=NVLS ./build/all_reduce_perf -b 8 -e 8G -f 2 -g 8`` on 8 GPUs (its page: "NCCL
# AllReduce (NVLS algorithm)"). The ND A100 v4 page says the same, but NCCL 2.18.5 has no NVLS
# on A100 and no fallback when NCCL_ALGO names it alone, so that curve ran the tuner.
FORCED_ALGORITHM: dict[str, str] = {"azure-nd-h100-v5": "nvls"}
# The collective library (its version's tuning tables) a measured run used, where it is not
# NCCL 2.18 (the ``nccl`` library; both Azure pages list NCCL 2.18.5). The DGX H100 log comes
# from NVIDIA/dgxc-benchmarking's NCCL recipe, which runs in ``nvcr.io/nvidia/nemo:25.09.00``
# (its ``nccl/metadata.yaml``); the log prints no NCCL version, but every NCCL released in
# 2025 is 2.24.3 (2025-01-07) or later, and 2.21.5 to 2.28.9 have the same ring LL rows
# (``sim/protocols.py``, ``NCCL_2_27``).
LIBRARY: dict[str, str] = {"dgx-h100-8gpu": "nccl-2.27"}
# Size bands of the acceptance criteria (bytes, inclusive).
BANDS: dict[str, tuple[int, int]] = {
    "1 KiB-1 MiB": (2**10, 2**20),
    "1 MiB-16 GiB": (2**20, 2**34),
    "plateau (>= 1 GiB)": (2**30, 2**34),
}


@dataclass(frozen=True)
class Measured:
    """One measured point: size (bytes), time (us; NaN if only busbw was published), busbw."""

    size: int
    time_us: float
    busbw_GBps: float


def read_nccl_csv(path: str | Path, collective: str = "all_reduce") -> dict[str, list[Measured]]:
    """Measured points per system, sorted by size. Points with neither a time nor a positive
    busbw (below the log's two-decimal resolution) are left out."""
    out: dict[str, list[Measured]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["collective"] != collective:
                continue
            size = int(row["bytes"])
            t = float(row["time_us"]) if row.get("time_us") else float("nan")
            bus = float(row["busbw_GBps"]) if row.get("busbw_GBps") else float("nan")
            n = int(row["gpus_per_node"]) * int(row["nodes"])
            if np.isnan(t) and not bus > 0:
                continue
            if not bus > 0:  # published only as time: derive busbw as nccl-tests does
                bus = busbw_from_time(size, t, collective, n)
            out.setdefault(row["system"], []).append(Measured(size, t, bus))
    for points in out.values():
        points.sort(key=lambda m: m.size)
    return out


def busbw_from_time(size: int, time_us: float, collective: str, n: int) -> float:
    """nccl-tests' busbw (GB/s) of ``size`` bytes moved in ``time_us`` on ``n`` ranks."""
    return size / time_us / 1e3 * collective_perf.bus_factor(collective, n)


def measured_time_us(m: Measured, n: int, collective: str = "all_reduce") -> float:
    """The measured time, or the one the published busbw implies."""
    if not np.isnan(m.time_us):
        return m.time_us
    return m.size / (m.busbw_GBps / collective_perf.bus_factor(collective, n)) / 1e3


@dataclass(frozen=True)
class Comparison:
    """Predicted vs measured busbw per size for one system."""

    system: str
    sizes: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray
    algorithms: list[str]

    @property
    def error(self) -> np.ndarray:
        """Signed relative error of predicted busbw: (pred - meas) / meas."""
        return (self.predicted - self.measured) / self.measured

    def mape(self, lo: int = 0, hi: int = 2**62) -> float:
        """Mean absolute percentage error (%) over sizes in [lo, hi]."""
        sel = (self.sizes >= lo) & (self.sizes <= hi)
        return float(np.mean(np.abs(self.error[sel])) * 100) if sel.any() else float("nan")

    def mean_signed(self, lo: int = 0, hi: int = 2**62) -> float:
        """Mean signed error (%) over sizes in [lo, hi]: negative when the simulator's busbw
        is too low (its time too long)."""
        sel = (self.sizes >= lo) & (self.sizes <= hi)
        return float(np.mean(self.error[sel]) * 100) if sel.any() else float("nan")


def compare(system: str, cluster: Cluster, points: list[Measured],
            collective: str = "all_reduce") -> Comparison:
    """Simulate each measured size on ``cluster`` (all its accelerators) and compare, with
    the algorithm the run forced (:data:`FORCED_ALGORITHM`) unless the cluster forces one,
    and the library version it ran (:data:`LIBRARY`) unless the cluster names one."""
    forced = None if cluster.network.algorithm != "auto" else FORCED_ALGORITHM.get(system)
    library = None if cluster.network.library != "auto" else LIBRARY.get(system)
    rows = collective_perf.run(cluster, collective, [m.size for m in points], algorithm=forced,
                               library=library)
    return Comparison(
        system=system,
        sizes=np.array([m.size for m in points]),
        measured=np.array([m.busbw_GBps for m in points]),
        predicted=np.array([r.busbw_GBps for r in rows]),
        algorithms=[r.algorithm for r in rows],
    )


@dataclass(frozen=True)
class NcclLog:
    """What an nccl-tests log measured: its ranks (one more than the highest ``#  Rank N``
    line: ranks are numbered from 0, and published excerpts often keep only the last line;
    None if the log lists none) and per size the out-of-place time and busbw."""

    path: Path
    ranks: int | None
    points: list[Measured]


def read_nccl_log(path: str | Path) -> NcclLog:
    """Read an nccl-tests ``*_perf`` output (plain, or inside a Markdown page): every data row,
    and the rank count (:func:`~simcluster.calibrate.logs.scan_log` reads it). A busbw printed
    as 0.00 (below the log's resolution) is derived from the time, as :func:`read_nccl_csv`
    does.

    Raises:
        SimclusterError: no such file, too large, a malformed or repeated data row, or no
            nccl-tests data row in it (naming the line).
    """
    points, ranks = scan_log(path)
    return NcclLog(Path(path), ranks, [
        Measured(p.size, p.time_us, p.busbw_GBps if p.busbw_GBps > 0 else float("nan"))
        for p in points])


def compare_log(log: NcclLog, cluster: Cluster, collective: str, ranks: int,
                **options: str | None) -> Comparison:
    """Simulate every size of ``log`` on ``ranks`` accelerators of ``cluster`` and compare
    busbw (a busbw below the log's resolution is derived from its time)."""
    points = [m if m.busbw_GBps > 0 else Measured(
        m.size, m.time_us, busbw_from_time(m.size, m.time_us, collective, ranks))
        for m in log.points]
    rows = collective_perf.run(cluster, collective, [m.size for m in points], ranks=ranks,
                               **options)  # type: ignore[arg-type]
    return Comparison(system=str(log.path), sizes=np.array([m.size for m in points]),
                      measured=np.array([m.busbw_GBps for m in points]),
                      predicted=np.array([r.busbw_GBps for r in rows]),
                      algorithms=[r.algorithm for r in rows])

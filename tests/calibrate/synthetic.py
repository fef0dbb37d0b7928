"""nccl-tests logs written from the simulator: a known truth to calibrate against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simcluster import collective_perf
from simcluster.topology import load_cluster


def nccl_time(t: float) -> str:
    """A time as nccl-tests prints it (2 decimals below 100 us, 1 below 10 ms, then none)."""
    return f"{t:7.0f}" if t >= 1e4 else f"{t:7.1f}" if t >= 100 else f"{t:7.2f}"


def log_text(rows: list[tuple[int, float]], ranks: int, per_host: int,
             collective: str = "all_reduce", command: bool = True,
             rank_lines: bool = True) -> str:
    """An nccl-tests ``*_perf`` output of ``(size, time_us)`` rows on ``ranks`` ranks,
    ``per_host`` to a host (header, optional launcher line and rank lines, rows, footer)."""
    binary = "alltoall" if collective == "all_to_all" else collective
    redop, root = collective_perf.redop_root(collective)
    lines = []
    if command:
        lines.append(f"$ mpirun -np {ranks} -npernode {per_host} ./build/{binary}_perf -b 8 "
                     "-e 16G -f 2 -g 1")
    lines += [(f"# nThread 1 nGpus 1 minBytes {rows[0][0]} maxBytes {rows[-1][0]} step: "
              "2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0"), "#",
              "# Using devices"]
    if rank_lines:
        lines += [f"#  Rank {r:2d} Group  0 Pid {1000 + r:6d} on host{r // per_host} device "
                  f"{r % per_host:2d} [0000:{r:02x}:00] NVIDIA H100 80GB HBM3"
                  for r in range(ranks)]
    lines += ["#",
              ("#                                                              out-of-place  "
              "                     in-place"),
              ("#       size         count      type   redop    root     time   algbw   busbw "
              "#wrong     time   algbw   busbw #wrong"),
              ("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)  "
              "          (us)  (GB/s)  (GB/s)")]
    factor = collective_perf.bus_factor(collective, ranks)
    for size, t in rows:
        text = nccl_time(t)
        algbw = size / float(text) / 1e3 if float(text) > 0 else 0.0
        half = f"{text} {algbw:7.2f} {algbw * factor:7.2f}  {0:5d}"
        lines.append(f"{size:12d}  {size // 4:12d}     float  {redop:>6}  {root:6d}  {half}  "
                     f"{half}")
    lines += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 1.0", "#"]
    return "\n".join(lines) + "\n"


def truth_topology(base: Path, network: dict[str, Any], out: Path) -> Path:
    """``base`` topology with ``network`` set (merged into its network section)."""
    data = yaml.safe_load(base.read_text())
    data["network"] = {**(data.get("network") or {}), **network}
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def simulated_log(topology: Path, ranks: int, per_host: int, sizes: list[int], out: Path,
                  collective: str = "all_reduce", **options: bool) -> Path:
    """Simulate ``collective`` at ``sizes`` on ``topology`` and write it as an nccl-tests log."""
    rows = collective_perf.run(load_cluster(topology), collective, sizes, ranks=ranks)
    out.write_text(log_text([(r.size, r.time_us) for r in rows], ranks, per_host,
                            collective, **options))
    return out

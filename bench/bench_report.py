"""Time `simcluster report` and its peak memory on runs of three sizes.

Cases: the bundled sample (688 ops), a folded Llama-3 8B step (about 25k ops) and a folded
Llama-3 70B step with full recompute on the 1,024-GPU SuperPOD topology (about 560k ops).
Each run folder is written once; then the report of each is written ``--repeat`` times, each
in a fresh process (`python -m simcluster report`), and the median wall time and the peak
resident memory (max RSS of that process) are printed. The target (issue 16): the large
report under 15 s and 1 GB, and flat in the number of ops.

    python bench/bench_report.py [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simcluster as sc

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "sample": (ROOT / "traces" / "dp-transformer-16.parquet", {}, "h100-2node.yaml"),
    "llama3-8b (25k ops)": (None, {"preset": "llama3-8b", "tp": 2, "pp": 2, "dp": 4,
                                   "global_batch": 64}, "h100-2node.yaml"),
    "llama3-70b (560k ops)": (None, {"preset": "llama3-70b", "tp": 8, "pp": 4, "dp": 4,
                                     "global_batch": 80, "recompute": "full", "zero": 1,
                                     "sequence_parallel": True}, "dgx-h100-superpod.yaml"),
}
# A child process: write the report, print its wall time (s) and its own peak RSS (KiB).
CHILD = ("import resource, sys, time\n"
         "from simcluster.export import load_run\n"
         "from simcluster.export.report import write_report\n"
         "t = time.perf_counter()\n"
         "f = load_run(sys.argv[1])\n"
         "write_report(f.run, f.summary, f.ranks, f.critical_path, sys.argv[2], "
         "fidelity=f.fidelity, import_report=f.import_report)\n"
         "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="keep the run folders and reports here")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    print(f"# {datetime.date.today()}  {platform.machine()}  {os.cpu_count()} CPUs  Python "
          f"{platform.python_version()}  load {os.getloadavg()[0]:.2f}")
    print(f"{'case':<24} {'ops':>9} {'report s (median)':>18} {'peak RSS MB':>12} "
          f"{'page MB':>8}")
    for name, (trace, params, topo) in CASES.items():
        wl = sc.load_workload(trace) if trace else sc.generate("transformer", **params)
        folder = base / name.split(" ")[0]
        sc.replay(wl, ROOT / "topologies" / topo).write(folder)
        times, peaks = [], []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD, str(folder),
                                  str(folder / "report.html")],
                                 capture_output=True, text=True, check=True).stdout.split()
            times.append(float(out[0]))
            peaks.append(int(out[1]) / 1024)
        size = (folder / "report.html").stat().st_size / 1e6
        print(f"{name:<24} {wl.num_ops:>9,} {statistics.median(times):>18.2f} "
              f"{max(peaks):>12.0f} {size:>8.1f}", flush=True)
    print(f"# finished {time.strftime('%H:%M:%S')}, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

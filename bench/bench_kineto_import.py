"""Import speed and peak memory of the Kineto importer on a large synthetic trace.

The trace imitates a data-parallel training rank as torch.profiler records it: per layer a
``cpu_op`` holding a ``cudaLaunchKernel`` and its kernel (linked by ``correlation`` and an
``ac2g`` flow pair), a ``cudaEventRecord``, every fourth layer an all-reduce (``c10d::``,
``record_param_comms``, ``nccl:all_reduce``, an NCCL kernel on its own stream after a
``cudaStreamWaitEvent``), and a ``cudaStreamSynchronize`` at the end of each
``ProfilerStep#N``. Events are written one by one, so generating it takes little memory.

Each measurement runs in a fresh process, so its peak RSS is its own:

- ``baseline``: Python with simcluster and its dependencies imported, nothing read;
- ``import``: ``simcluster.workload.kineto.import_kineto`` on the file (streamed parse,
  dependency rebuild, validation);
- ``json.load``: the standard library reading the same file whole, for comparison.

Usage::

    python bench/bench_kineto_import.py --size-mb 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KERNELS = ("volta_sgemm_128x64_nn", "void at::native::vectorized_elementwise_kernel<4>",
           "void at::native::reduce_kernel<512, 1>", "ampere_bf16_s16816gemm_bf16_128x128")


def write_trace(path: Path, size_mb: float) -> int:
    """Write a synthetic single-rank trace of about ``size_mb`` MB; return its event count."""
    target = size_mb * 1e6
    corr = 0
    n = 0
    t = 1_700_000_000_000_000.0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"schemaVersion": 1, "distributedInfo": {"backend": "nccl", "rank": 0, '
                 '"world_size": 8}, "deviceProperties": [{"id": 0, "name": '
                 '"NVIDIA H100 80GB HBM3", "totalGlobalMem": 85520809984, "numSms": 132}], '
                 '"traceEvents": [\n')
        first = True
        step = 0

        def emit(ev: dict) -> None:
            nonlocal first, n
            fh.write(("" if first else ",\n") + json.dumps(ev, separators=(",", ":")))
            first = False
            n += 1

        while fh.tell() < target:
            step_start = t
            layers = 400
            for layer in range(layers):
                corr += 1
                ts = t + 2.0
                emit({"ph": "X", "cat": "cpu_op", "name": "aten::linear", "pid": 1, "tid": 1,
                      "ts": ts, "dur": 20.0, "args": {"External id": corr, "Record function id":
                                                      corr, "Sequence number": layer,
                                                      "Input Dims": [[8, 1024], [1024, 1024]],
                                                      "Input type": ["float", "float"]}})
                emit({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1,
                      "tid": 1, "ts": ts + 5, "dur": 6.0,
                      "args": {"External id": corr, "cbid": 211, "correlation": corr}})
                emit({"ph": "s", "id": corr, "pid": 1, "tid": 1, "ts": ts + 5, "cat": "ac2g",
                      "name": "ac2g"})
                emit({"ph": "X", "cat": "kernel", "name": KERNELS[layer % 4], "pid": 0,
                      "tid": 7, "ts": ts + 12, "dur": 25.0,
                      "args": {"External id": corr, "queued": 0, "device": 0, "context": 1,
                               "stream": 7, "correlation": corr, "registers per thread": 128,
                               "shared memory": 0, "grid": [132, 1, 1],
                               "block": [256, 1, 1], "est. achieved occupancy %": 50}})
                emit({"ph": "f", "id": corr, "pid": 0, "tid": 7, "ts": ts + 12, "cat": "ac2g",
                      "name": "ac2g", "bp": "e"})
                corr += 1
                emit({"ph": "X", "cat": "cuda_runtime", "name": "cudaEventRecord", "pid": 1,
                      "tid": 1, "ts": ts + 14, "dur": 1.0,
                      "args": {"External id": corr, "cbid": 135, "correlation": corr}})
                if layer % 4 == 3:
                    corr += 1
                    emit({"ph": "X", "cat": "cpu_op", "name": "c10d::allreduce_", "pid": 1,
                          "tid": 1, "ts": ts + 16, "dur": 30.0,
                          "args": {"External id": corr}})
                    emit({"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1,
                          "tid": 1, "ts": ts + 17, "dur": 28.0,
                          "args": {"External id": corr, "Collective name": "allreduce",
                                   "In msg nelems": 1 << 20, "Out msg nelems": 1 << 20,
                                   "dtype": "Float", "Group size": 8,
                                   "Process Group Name": "0",
                                   "Process Group Ranks": "[0, 1, 2, 3, 4, 5, 6, 7]"}})
                    emit({"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamWaitEvent",
                          "pid": 1, "tid": 1, "ts": ts + 18, "dur": 2.0,
                          "args": {"External id": corr, "cbid": 147, "correlation": corr}})
                    corr += 1
                    emit({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel",
                          "pid": 1, "tid": 1, "ts": ts + 22, "dur": 8.0,
                          "args": {"External id": corr, "cbid": 211, "correlation": corr}})
                    emit({"ph": "X", "cat": "kernel",
                          "name": "ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgs)",
                          "pid": 0, "tid": 20, "ts": ts + 40, "dur": 60.0,
                          "args": {"External id": corr, "device": 0, "stream": 20,
                                   "correlation": corr}})
                t += 40.0
            corr += 1
            emit({"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "pid": 1,
                  "tid": 1, "ts": t, "dur": 50.0,
                  "args": {"External id": corr, "cbid": 131, "correlation": corr}})
            t += 60.0
            emit({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": 1,
                  "tid": 1, "ts": step_start, "dur": t - step_start,
                  "args": {"External id": 0}})
            step += 1
        fh.write("\n]}\n")
    return n


_CHILD = """
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
import simcluster.workload.kineto as k
from simcluster.workload.kineto import KinetoOptions
ops = 0
if mode == "import":
    t0 = time.perf_counter()
    wl = k.import_kineto(path, KinetoOptions(workers=1))
    ops = wl.num_ops
elif mode == "json.load":
    t0 = time.perf_counter()
    with open(path) as fh:
        doc = json.load(fh)
    ops = len(doc["traceEvents"])
elapsed = time.perf_counter() - t0 if mode != "baseline" else 0.0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"mode": mode, "seconds": elapsed, "peak_rss_mb": rss_mb, "ops": ops}))
"""


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=float, default=200.0)
    ap.add_argument("--skip-json-load", action="store_true",
                    help="do not measure json.load (it needs several GB for 200 MB)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rank-0.json"
        t0 = time.perf_counter()
        events = write_trace(path, args.size_mb)
        size = path.stat().st_size
        print(f"synthetic trace: {size / 1e6:.1f} MB, {events:,} events, written in "
              f"{time.perf_counter() - t0:.1f} s")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}")
        rows = [measure("baseline", path), measure("import", path)]
        if not args.skip_json_load:
            rows.append(measure("json.load", path))
        print(f"{'mode':<10} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'ops':>10}")
        for r in rows:
            rate = size / 1e6 / r["seconds"] if r["seconds"] else float("nan")
            print(f"{r['mode']:<10} {r['seconds']:>8.2f} {rate:>7.1f} {r['peak_rss_mb']:>12.0f} "
                  f"{r['ops']:>10,}")


if __name__ == "__main__":
    main()

"""Start-up and topology-build costs (issue 19): two rows of its table.

1. Whole-process start-up of ``simcluster collectives -t topologies/dgx-h100.yaml --ranks 8``:
   wall and CPU seconds (user + system) of the whole process, its peak RSS, and the CPU
   seconds spent importing modules in it (measured inside the process around every
   outermost import); also the CPU of ``import simcluster.cli`` alone (what ``--help``
   pays before printing).
2. Building the rail-optimized 16,384-GPU SuperPOD of ``bench_collectives.py`` (its
   ``build_s``): CPU and wall seconds of ``build`` only (validation of the spec and the
   imports excluded), in a fresh process each run.

Every figure is the median of ``--repeat`` fresh processes (default 5), with the load
average beside it. ``--before DIR`` runs the same measurements, alternated run by run, with
the package in DIR on ``PYTHONPATH`` (e.g. ``git -C /work/main archive HEAD | tar -x -C
DIR``), so that the two trees share the machine's load.

    python bench/bench_startup.py [--repeat 5] [--before /tmp/startup-before]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMAND = ["collectives", "-t", "topologies/dgx-h100.yaml", "--ranks", "8"]

# Runs the console script's entry point with a hook that adds up the CPU time of every
# outermost import (``import`` statements and ``importlib.import_module``).
_CLI_CHILD = r"""
import builtins, importlib, sys, time
state = {"depth": 0, "cpu": 0.0}
def timed(f):
    def wrapper(*a, **k):
        if state["depth"] == 0:
            t = time.process_time()
        state["depth"] += 1
        try:
            return f(*a, **k)
        finally:
            state["depth"] -= 1
            if state["depth"] == 0:
                state["cpu"] += time.process_time() - t
    return wrapper
builtins.__import__ = timed(builtins.__import__)
importlib.import_module = timed(importlib.import_module)
sys.argv = ["simcluster", *sys.argv[1:]]
try:
    from simcluster_entry import main
    main()
except SystemExit:
    pass
finally:
    sys.stderr.write("IMPORT_CPU %.6f\n" % state["cpu"])
    sys.stderr.write("PACKAGE %s\n" % sys.modules["simcluster"].__file__)
"""

_IMPORT_CHILD = r"""
import sys, time
t = time.process_time()
import simcluster.cli
sys.stderr.write("IMPORT_CPU %.6f\n" % (time.process_time() - t))
"""

_BUILD_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[:1]
from bench_collectives import superpod
def timed_build(*a, **k):
    c0, w0 = time.process_time(), time.perf_counter()
    out = real(*a, **k)
    timed_build.cpu, timed_build.wall = time.process_time() - c0, time.perf_counter() - w0
    return out
import bench_collectives
real, bench_collectives.build = bench_collectives.build, timed_build
cluster = superpod(16384)
sys.stderr.write("BUILD %s\n" % json.dumps({"cpu": timed_build.cpu, "wall": timed_build.wall,
    "links": cluster.num_links, "accelerators": len(cluster.accelerators)}))
"""


def _env(tree: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    else:
        env.pop("PYTHONPATH", None)
    return env


def _run(args: list[str], tree: Path | None) -> tuple[float, float, float, str]:
    """Run ``python args`` in the root of ``tree`` (None: this repository; ``python -c``
    puts its working folder first on ``sys.path``); returns wall s, CPU s (user + system),
    peak RSS MiB, and its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=tree or ROOT, env=_env(tree),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed ({proc.returncode}):\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, err


def _tagged(err: str, tag: str) -> str:
    return next(line.split(" ", 1)[1] for line in err.splitlines() if line.startswith(tag))


def measure(tree: Path | None) -> dict[str, float]:
    """One fresh process of each measurement with the package of ``tree`` (None: this one)."""
    wall, cpu, rss, err = _run(["-c", _CLI_CHILD, *COMMAND], tree)
    package = Path(_tagged(err, "PACKAGE"))
    if package.parent.parent != (tree or ROOT):
        raise SystemExit(f"measured {package}, not the package of {tree or ROOT}")
    out = {"cli_wall_s": wall, "cli_cpu_s": cpu, "cli_rss_MiB": rss,
           "cli_import_cpu_s": float(_tagged(err, "IMPORT_CPU"))}
    _, _, _, err = _run(["-c", _IMPORT_CHILD], tree)
    out["import_cli_cpu_s"] = float(_tagged(err, "IMPORT_CPU"))
    _, _, rss, err = _run(["-c", _BUILD_CHILD, str((tree or ROOT) / "bench")], tree)
    build = json.loads(_tagged(err, "BUILD"))
    out.update(build_cpu_s=build["cpu"], build_wall_s=build["wall"], build_rss_MiB=rss,
               build_links=build["links"])
    return out


ROWS = [
    ("cli_cpu_s", "collectives, 8 ranks: whole-process CPU s (user+sys)"),
    ("cli_wall_s", "collectives, 8 ranks: whole-process wall s"),
    ("cli_import_cpu_s", "collectives, 8 ranks: CPU s in imports"),
    ("cli_rss_MiB", "collectives, 8 ranks: peak RSS MiB"),
    ("import_cli_cpu_s", "import simcluster.cli: CPU s"),
    ("build_cpu_s", "topology build, 16,384 GPUs: CPU s"),
    ("build_wall_s", "topology build, 16,384 GPUs: wall s"),
    ("build_rss_MiB", "topology build, 16,384 GPUs: process peak RSS MiB"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per figure")
    ap.add_argument("--before", type=Path, help="a tree to compare with (on PYTHONPATH)")
    args = ap.parse_args()
    trees: dict[str, Path | None] = {"after": None}
    if args.before is not None:
        trees = {"before": args.before.resolve(), "after": None}
    print(f"# load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.repeat):
        for name, tree in trees.items():  # alternated, so both see the same load
            runs[name].append(measure(tree))
    print(f"# median of {args.repeat} fresh processes each; python {sys.version.split()[0]}")
    print(f"{'figure':<58}" + "".join(f"{name:>10}" for name in trees))
    for key, label in ROWS:
        print(f"{label:<58}" + "".join(
            f"{statistics.median(r[key] for r in runs[name]):>10.3f}" for name in trees))
    print(f"# load average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""CPU time of the network side of one data-parallel replay (``bench_replay.py``'s setup).

Times compile + run of one step with ``time.process_time`` (CPU time of this process, less
sensitive to a shared machine's load than wall time), and within it the CPU time spent in
collective planning (``CommModel.resolved``: plans, routes, merging, isolated unit times),
the flow network's rate updates (``FlowNetwork._update``) and, inside those, the merge of
new flows' (flow, link) pairs (``FlowNetwork._add_pairs``). The simulated step is printed so
that two versions of the code can be checked to give the same result.

    python bench/network_sections.py --ranks 4096 16384
    PYTHONPATH=/tmp/before python bench/network_sections.py --ranks 4096   # another version
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from bench_replay import cluster, once  # bench/bench_replay.py: run as python bench/...
from simcluster.placement import bind
from simcluster.sim import comm, network
from simcluster.workload.generate import DataParallelConfig, data_parallel

_SECTIONS = ((comm.CommModel, "resolved"), (network.FlowNetwork, "_update"),
             (network.FlowNetwork, "_add_pairs"))


def _timed(f: Callable[..., Any], name: str, spent: dict[str, float]) -> Callable[..., Any]:
    """``f``, adding its CPU seconds (with what it calls) to ``spent[name]``."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.process_time() - t
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="*", default=[4096])
    args = ap.parse_args()
    spent: dict[str, float] = {}
    for cls, name in _SECTIONS:
        setattr(cls, name, _timed(getattr(cls, name), name, spent))
    print(f"# code: {network.__file__}")
    print(f"{'ranks':>6} {'load':>5} {'cpu_s':>7} {'planning_s':>10} {'updates_s':>9} "
          f"{'add_pairs_s':>11} {'step_ms':>20}")
    for n in args.ranks:
        bound = bind(data_parallel(DataParallelConfig(ranks=n)), cluster(n))
        spent.clear()
        t = time.process_time()
        run = once(bound)
        cpu = time.process_time() - t
        print(f"{n:>6} {os.getloadavg()[0]:>5.1f} {cpu:>7.2f} {spent.get('resolved', 0):>10.2f} "
              f"{spent.get('_update', 0):>9.2f} {spent.get('_add_pairs', 0):>11.2f} "
              f"{run['step_ms']!r:>20}", flush=True)


if __name__ == "__main__":
    main()

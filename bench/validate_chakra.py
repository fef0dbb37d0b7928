"""Chakra microbenchmarks: simulated times against the network model's own collective times.

Each ASTRA-sim microbenchmark (``../shared/data/chakra/microbenchmarks``: one 1 MiB
collective per rank, 4, 8 or 16 ranks) is imported with ``simcluster.workload.chakra`` and
replayed on ``topologies/h100-2node.yaml`` (ranks packed on the first GPUs). The same
collective, written directly as a workload, is replayed on the same cluster: the two times
must be equal, since the importer only translates. (``tests/workload/test_chakra.py`` also
checks the all-reduces against the ring formula ``overhead + 2(p-1)/p * S/B + 2(p-1) * alpha``
on a one-switch topology.) At 16 ranks the ring crosses the two servers' 50 GB/s NICs.

Usage::

    python bench/validate_chakra.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa

from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology import load_cluster
from simcluster.workload.chakra import import_chakra
from simcluster.workload.model import OPS_SCHEMA, WorkloadMeta
from simcluster.workload.validate import make_workload

ROOT = Path(__file__).resolve().parents[1]


def direct(collective: str, size: int, p: int):
    rows = [{"rank": r, "op_id": 0, "name": collective, "kind": "collective", "stream": "comm",
             "collective": collective, "comm_bytes": size, "group": "g"} for r in range(p)]
    table = pa.Table.from_pylist([{f.name: row.get(f.name) for f in OPS_SCHEMA} for row in rows],
                                 schema=OPS_SCHEMA)
    return make_workload(table, {"g": list(range(p))}, WorkloadMeta(name="direct"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    cluster = load_cluster(ROOT / "topologies" / "h100-2node.yaml")
    print("| microbenchmark | ranks | bytes | Chakra replay (us) | same collective, direct (us) "
          "| equal |")
    print("|---|---:|---:|---:|---:|---|")
    for coll in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all"):
        for p in (4, 8, 16):
            wl = import_chakra(args.data / "chakra" / "microbenchmarks" / coll / f"{p}npus_1MB")
            size = wl.ops.column("comm_bytes")[0].as_py()
            t_chakra = simulate(bind(wl, cluster)).makespan_us
            t_direct = simulate(bind(direct(coll, size, p), cluster)).makespan_us
            print(f"| {coll} | {p} | {size:,} | {t_chakra:.3f} | {t_direct:.3f} | "
                  f"{'yes' if t_chakra == t_direct else 'NO'} |")


if __name__ == "__main__":
    main()

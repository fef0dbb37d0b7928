"""Cases whose results must not change when the engine gets faster, and their digests.

Each case is a small or medium simulation: every collective algorithm forced on the
bundled fabrics it can run on, the bundled sample trace, a folded transformer. A case's
digest is the step time (``repr`` of the float) and a SHA-256 of every output table of the
Run, so two engines agree on a case only if they produce the same bytes.

``tests/sim/data/equivalence.json`` holds the digests the engine of ``main`` produced before
the speed work of issue 19 (at 732ca46: ``python -m tests.sim.equivalence > tests/sim/data/
equivalence.json``, run with that engine); ``tests/sim/test_equivalence.py`` recomputes them.
A later change that is meant to change results (a new algorithm choice, a calibration) makes
new digests the same way, with the engine just before it. The bundled torus is left out: its
collectives were being reworked (issue 14) while these digests were made.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from simcluster.errors import SimulationError
from simcluster.placement import bind
from simcluster.sim import Run, simulate
from simcluster.topology.accelerator_file import load_listed
from simcluster.topology.build import build
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import TopologySpec
from simcluster.workload import load_workload
from simcluster.workload.model import OpsBuilder, Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("timeline", "links", "memory", "flows", "attribution", "link_load")
# Bundled fabrics, and how many of their ranks the collective cases use.
FABRICS = {"h100-2node": 16, "dgx-h100-superpod": 64, "fat-tree-k8": 32,
           "dgx1-v100": 8, "gb200-nvl72-x2": 32, "azure-nd-h100-v5": 8}
# The algorithms registered when the digests were made (one registered later is not a case:
# it has no digest from the engine before).
ALGORITHMS = ("ring", "tree", "hierarchical", "nvls", "nvls-tree", "collnet-direct",
              "collnet-chain", "chain", "direct", "pairwise")


@cache
def _doc(fabric: str) -> dict[str, Any]:
    import yaml
    return yaml.safe_load((ROOT / "topologies" / f"{fabric}.yaml").read_text())


def cluster(fabric: str, algorithm: str = "auto") -> Cluster:
    """A bundled topology with its collectives forced to ``algorithm`` (``auto``: its own
    choice)."""
    doc = copy.deepcopy(_doc(fabric))
    doc.setdefault("network", {})["algorithm"] = algorithm
    spec = TopologySpec.model_validate(doc)
    path = ROOT / "topologies" / f"{fabric}.yaml"
    models = load_listed(spec.accelerator_files, path.parent, None,
                         inline=spec.accelerator_models)
    return build(spec, source=str(path), models=models)


def collectives(ranks: int) -> Workload:
    """Every collective over all ranks, two halves at once, a small latency-bound one."""
    ops = OpsBuilder()
    half = ranks // 2
    groups = {"world": list(range(ranks)), "lo": list(range(half)),
              "hi": list(range(half, ranks))}
    for r in range(ranks):
        def coll(op: str, size: int, group: str = "world", root: int | None = None) -> None:
            ops.add(r, op, "collective", "comm", collective=op, comm_bytes=size, group=group,
                    dtype="bf16", root=root)
        coll("all_reduce", 64 << 20)
        coll("all_gather", 8 << 20, "lo" if r < half else "hi")
        ops.add(r, "gemm", "compute", "compute", duration_us=50.0 + 3 * (r % 5))
        coll("reduce_scatter", 1 << 20)
        coll("all_to_all", 4 << 20)
        coll("broadcast", 2 << 20, root=0)
        coll("all_reduce", 4096)
    meta = WorkloadMeta(name="collectives", source="equivalence", world_size=ranks)
    return make_workload(ops.table(), groups, meta, source="collectives")


def _collective_case(fabric: str, algorithm: str) -> Callable[[], Run]:
    return lambda: simulate(bind(collectives(FABRICS[fabric]), cluster(fabric, algorithm)))


def _sample() -> Run:
    wl = load_workload(ROOT / "traces" / "dp-transformer-16.parquet")
    return simulate(bind(wl, cluster("h100-2node")))


def _folded() -> Run:
    from simcluster.workload.generate.presets import ModelSpec
    from simcluster.workload.generate.transformer import TransformerConfig, transformer
    gpt = ModelSpec("toy-gpt", layers=4, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256,
                    seq_len=32)
    wl = transformer(TransformerConfig(model=gpt, tp=2, pp=2, dp=8, micro_batch=1,
                                       global_batch=32, schedule="1f1b-interleaved:2",
                                       sequence_parallel=True, zero=1, fold=True))
    return simulate(bind(wl, cluster("dgx-h100-superpod")))


def cases() -> dict[str, Callable[[], Run]]:
    """Every case by name."""
    out: dict[str, Callable[[], Run]] = {"sample": _sample, "folded-transformer": _folded}
    for fabric in FABRICS:
        for algorithm in ("auto", *ALGORITHMS):
            out[f"{fabric}/{algorithm}"] = _collective_case(fabric, algorithm)
    return out


def _table_digest(table: pa.Table) -> str:
    return hashlib.sha256(repr(table.to_pydict()).encode()).hexdigest()


def digest(make: Callable[[], Run]) -> dict[str, Any]:
    """The step time and each table's SHA-256, or the error class a case raises."""
    try:
        run = make()
    except SimulationError as e:
        return {"error": type(e).__name__}
    out: dict[str, Any] = {"makespan_us": repr(run.makespan_us)}
    out.update({name: _table_digest(getattr(run, name)) for name in TABLES})
    out["info"] = _table_digest(pa.table({"k": list(map(str, run.info)),
                                          "v": list(map(repr, run.info.values()))}))
    return out


if __name__ == "__main__":
    print(json.dumps({name: digest(make) for name, make in cases().items()}, indent=1,
                     sort_keys=True))

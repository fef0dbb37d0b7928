"""Shared helpers: tiny clusters and workloads built in code, and the path to ../shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.sim.result import Run
from simcluster.topology.build import build
from simcluster.topology.cluster import Cluster
from simcluster.topology.schema import TopologySpec
from simcluster.workload.model import Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# A test accelerator with round numbers: 100 TFLOP/s bf16, 1000 GB/s HBM, 1 GiB.
TEST_ACCEL = {"peak_tflops": {"bf16": 100.0}, "hbm_GiB": 1.0, "hbm_GBps": 1000.0,
              "launch_overhead_us": 0.0}


def cluster_from(spec: dict[str, Any]) -> Cluster:
    """Build a cluster from a topology dict (as the YAML would give)."""
    return build(TopologySpec.model_validate(spec), source="test.yaml")


def star(n: int, bandwidth_GBps: float = 100.0, latency_ns: float = 0.0,
         overhead_us: float = 0.0, latency_scale: float = 0.0,
         **network: Any) -> Cluster:
    """``n`` test accelerators a0..a{n-1}, each with a duplex link to switch ``sw``.

    The collective model runs ring with no protocol latency unless told otherwise, so that
    times are the bandwidth terms plus ``overhead_us``."""
    return cluster_from({
        "name": f"star{n}",
        "accelerator_models": {"T": TEST_ACCEL},
        "devices": [{"name": f"a{i}", "kind": "accelerator", "model": "T"} for i in range(n)]
        + [{"name": "sw", "kind": "switch"}],
        "links": [{"src": f"a{i}", "dst": "sw", "bandwidth_GBps": bandwidth_GBps,
                   "latency_ns": latency_ns} for i in range(n)],
        "network": {"collective_overhead_us": overhead_us, "latency_scale": latency_scale,
                    "algorithm": "ring", **network},
    })


def dumbbell_spec(per_side: int = 2, bottleneck_GBps: float = 100.0) -> dict[str, Any]:
    """The topology dict of ``2 * per_side`` test accelerators: a0.. on switch s0, the
    others on switch s1 (1,000 GB/s each), and s0 -- s1 at ``bottleneck_GBps``: every flow
    from one side to the other crosses that one link. No latencies, no overheads."""
    n = 2 * per_side
    access = [{"src": f"a{i}", "dst": f"s{i // per_side}", "bandwidth_GBps": 1000.0,
               "latency_ns": 0.0} for i in range(n)]
    return {
        "name": "dumbbell",
        "accelerator_models": {"T": TEST_ACCEL},
        "devices": [{"name": f"a{i}", "kind": "accelerator", "model": "T"} for i in range(n)]
        + [{"name": "s0", "kind": "switch"}, {"name": "s1", "kind": "switch"}],
        "links": [*access, {"src": "s0", "dst": "s1", "bandwidth_GBps": bottleneck_GBps,
                            "latency_ns": 0.0}],
        "network": {"collective_overhead_us": 0.0, "latency_scale": 0.0, "algorithm": "ring"},
    }


def one_send(nbytes: int = 10**9) -> Workload:
    """Two ranks: rank 0 sends ``nbytes`` to rank 1."""
    return workload([{"rank": 0, "kind": "send", "peer": 1, "comm_bytes": nbytes},
                     {"rank": 1, "kind": "recv", "peer": 0, "comm_bytes": nbytes}], world=2)


def servers(count: int, gpus: int, nic_GBps: float = 25.0) -> Cluster:
    """``count`` template servers of ``gpus`` test accelerators on an NVSwitch (400 GB/s),
    with host memory and one NIC per GPU on one switch: for workloads with host copies."""
    spec: dict[str, Any] = {
        "name": f"servers{count}x{gpus}",
        "accelerator_models": {"T": {**TEST_ACCEL, "hbm_GiB": 80.0}},
        "nodes": [{"name": "n", "count": count, "accelerator": "T", "accelerators": gpus,
                   "nvlink": {"bandwidth_GBps": 400.0},
                   "nics": {"count": gpus, "bandwidth_GBps": nic_GBps}}],
    }
    if count > 1:
        spec["fabric"] = {"topology": "single-switch"}
    return cluster_from(spec)


def fold_cluster() -> Cluster:
    """4 servers of 4 GPUs (100 TFLOP/s bf16, 1,000 GB/s HBM), NVLink 200 GB/s, one
    25 GB/s NIC per GPU on one switch: data-parallel replicas span servers (fold tests)."""
    return cluster_from({
        "name": "s", "accelerator_models": {"T": {"peak_tflops": {"bf16": 100.0},
                                                  "hbm_GiB": 80.0, "hbm_GBps": 1000.0}},
        "nodes": [{"name": "n", "count": 4, "accelerator": "T", "accelerators": 4,
                   "nvlink": {"bandwidth_GBps": 200.0},
                   "nics": {"count": 4, "bandwidth_GBps": 25.0}}],
        "fabric": {"topology": "single-switch"}})


def timeline(wl: Workload, cluster: Cluster) -> tuple[Run, dict[tuple[int, int],
                                                                tuple[float, float]]]:
    """The run of ``wl`` on ``cluster`` and each op's (start, end) by (rank, op_id)."""
    run = simulate(bind(wl, cluster))
    t = run.timeline
    return run, {(r, o): (s, e) for r, o, s, e in zip(
        t["rank"].to_pylist(), t["op_id"].to_pylist(), t["start_us"].to_pylist(),
        t["end_us"].to_pylist())}


def workload(rows: list[dict[str, Any]], groups: dict[str, list[int]] | None = None,
             world: int = 0) -> Workload:
    """A validated workload from op rows (``stream`` defaults to ``s``, op_id to the row's
    position within its rank)."""
    counters: dict[int, int] = {}
    full = []
    for r in rows:
        r = dict(r)
        r.setdefault("stream", "s")
        if "op_id" not in r:
            r["op_id"] = counters.get(r["rank"], 0)
        counters[r["rank"]] = max(counters.get(r["rank"], 0), r["op_id"]) + 1
        r.setdefault("name", f"op{r['op_id']}")
        full.append(r)
    from simcluster.workload.model import OPS_SCHEMA

    table = pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in OPS_SCHEMA} for r in full], schema=OPS_SCHEMA)
    return make_workload(table, groups or {}, WorkloadMeta(name="test", world_size=world))


def replay(wl: Workload, cluster: Cluster, placement: Any = None) -> Run:
    return simulate(bind(wl, cluster, placement))


def ends(run: Run) -> dict[tuple[int, int], tuple[float, float]]:
    """(rank, op_id) -> (start_us, end_us)."""
    t = run.timeline
    return {
        (r, o): (s, e)
        for r, o, s, e in zip(t["rank"].to_pylist(), t["op_id"].to_pylist(),
                              t["start_us"].to_pylist(), t["end_us"].to_pylist())
    }


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ``../shared/data``; skips when it is absent (a user's checkout)."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED


@pytest.fixture(scope="session")
def dask_client():
    """A Dask client on one in-process worker with two threads (sweeps and searches)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def cli_exit_2(argv: list[str], out: Path, capsys) -> str:
    """Run the CLI on ``argv``, check it ends with exit code 2 and writes nothing at ``out``;
    return what it printed on stderr."""
    from simcluster.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and not out.exists()
    return capsys.readouterr().err


def bench_module(name: str):
    """The bench script ``bench/<name>.py`` as a module (registered under ``name``, as
    dataclasses look their module up)."""
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod

"""simcluster: a discrete-event simulator of ML training clusters.

The public API does what the CLI does::

    import simcluster as sc

    workload = sc.load_workload("traces/dp-transformer-16.parquet")
    cluster = sc.load_cluster("topologies/h100-2node.yaml")
    run = sc.simulate(sc.bind(workload, cluster))          # placement: packed by default
    print(run.makespan_us)
    sc.write_run(run, "run/")                              # timeline/links/ranks Parquet + summary

Data flows one way: workload + cluster + placement -> bind -> simulate -> Run -> analysis /
export.
"""

from __future__ import annotations

from simcluster.analysis import rank_breakdown, step_times, summarize
from simcluster.errors import (
    PlacementError,
    SimclusterError,
    SimulationError,
    TopologyError,
    WorkloadError,
)
from simcluster.export import write_run
from simcluster.placement import Bound, Placement, bind
from simcluster.sim import ComputeModel, Run, SimOptions, simulate
from simcluster.topology import Cluster, load_cluster
from simcluster.workload import Workload, load_workload, write_workload

__version__ = "0.1.0"

__all__ = [
    "Bound",
    "Cluster",
    "ComputeModel",
    "Placement",
    "PlacementError",
    "Run",
    "SimOptions",
    "SimclusterError",
    "SimulationError",
    "TopologyError",
    "Workload",
    "WorkloadError",
    "bind",
    "load_cluster",
    "load_workload",
    "rank_breakdown",
    "simulate",
    "step_times",
    "summarize",
    "write_run",
    "write_workload",
]

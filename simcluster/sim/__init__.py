"""HOW it runs: the discrete-event model. Only this package knows SimPy."""

from simcluster.sim.algorithms import (
    Algorithm,
    PlanOptions,
    register_algorithm,
    registered_algorithm,
    unregister_algorithm,
)
from simcluster.sim.compute import ComputeModel
from simcluster.sim.engine import SimOptions, simulate
from simcluster.sim.result import Run

__all__ = ["Algorithm", "ComputeModel", "PlanOptions", "Run", "SimOptions", "register_algorithm",
           "registered_algorithm", "simulate", "unregister_algorithm"]

"""HOW it runs: the discrete-event model. Only this package knows SimPy."""

from simcluster.sim.compute import ComputeModel
from simcluster.sim.engine import SimOptions, simulate
from simcluster.sim.result import Run

__all__ = ["ComputeModel", "Run", "SimOptions", "simulate"]

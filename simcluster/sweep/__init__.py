"""Sweeps: many what-ifs of one base configuration, run on Dask."""

from simcluster.sweep.runner import SweepResult, merge, run_sweep
from simcluster.sweep.spec import Point, Sweep, SweepError, load_sweep

__all__ = ["Point", "Sweep", "SweepError", "SweepResult", "load_sweep", "merge", "run_sweep"]

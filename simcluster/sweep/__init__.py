"""Sweeps: many what-ifs of one base configuration, run on Dask."""

from typing import TYPE_CHECKING

from simcluster.lazy import lazy_exports

if TYPE_CHECKING:
    from simcluster.sweep.runner import SweepResult, merge, run_sweep
    from simcluster.sweep.spec import Point, Sweep, SweepError, load_sweep

# Imported on first use: the command line reads ``limits`` without the runner and the spec.
__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(("SweepResult", "merge", "run_sweep"), "simcluster.sweep.runner"),
    **dict.fromkeys(("Point", "Sweep", "SweepError", "load_sweep"), "simcluster.sweep.spec"),
})

__all__ = ["Point", "Sweep", "SweepError", "SweepResult", "load_sweep", "merge", "run_sweep"]

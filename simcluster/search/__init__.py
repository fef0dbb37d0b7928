"""Search for the fastest or cheapest parallel configuration of a transformer on a GPU budget:
analytic memory pruning and estimate, then successive halving over simulations; with a
hardware file, the accelerator's parameters are searched with it (co-search)."""

from simcluster.search.cosearch import CoSearchReport, Limit, cosearch
from simcluster.search.driver import SearchError, SearchOptions, SearchReport, Trial, search
from simcluster.search.estimate import Estimate, Estimator
from simcluster.search.hardware import HardwareError, HardwareSpec, load_hardware
from simcluster.search.space import SearchSpace, candidates

__all__ = ["CoSearchReport", "Estimate", "Estimator", "HardwareError", "HardwareSpec", "Limit",
           "SearchError", "SearchOptions", "SearchReport", "SearchSpace", "Trial",
           "candidates", "cosearch", "load_hardware", "search"]

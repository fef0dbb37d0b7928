"""Search for the fastest or cheapest parallel configuration of a transformer on a GPU budget:
analytic memory pruning and estimate, then successive halving over simulations."""

from simcluster.search.driver import SearchError, SearchOptions, SearchReport, Trial, search
from simcluster.search.estimate import Estimate, Estimator
from simcluster.search.space import SearchSpace, candidates

__all__ = ["Estimate", "Estimator", "SearchError", "SearchOptions", "SearchReport",
           "SearchSpace", "Trial", "candidates", "search"]

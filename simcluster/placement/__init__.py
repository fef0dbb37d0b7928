"""Placement: which accelerator each rank runs on (strategies or a file), and binding a
workload to a cluster."""

from simcluster.placement.bind import Bound, bind, load_placement
from simcluster.placement.strategies import STRATEGIES, Placement, strategy_placement

__all__ = ["STRATEGIES", "Bound", "Placement", "bind", "load_placement", "strategy_placement"]

"""Synthetic workloads generated from a model description."""

from simcluster.workload.generate.data_parallel import (
    DataParallelConfig,
    TransformerDims,
    data_parallel,
)

__all__ = ["DataParallelConfig", "TransformerDims", "data_parallel"]

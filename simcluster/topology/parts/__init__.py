"""The catalog's accelerator entries, one module per vendor (figures and sources there).

``PARTS`` lists them in catalog order: the parts of the original catalog first (their
figures are unchanged), then the additions.
"""

from __future__ import annotations

from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.topology.parts import amd, nvidia, others

PARTS: tuple[AcceleratorSpec, ...] = (
    *nvidia.ORIGINAL, *amd.ORIGINAL, *nvidia.ADDED, *amd.ADDED, *others.ADDED,
)

__all__ = ["PARTS"]

"""Record training steps of unmodified PyTorch code without a GPU (``simcluster record``).

The script runs on this machine's CPU with fake tensors (shapes, no data) as rank 0 of a
fake process group of any world size; what it asks the GPUs to do (kernels with FLOPs,
bytes and dtype; collectives with size and group; host-to-device copies; memory allocated
and freed) becomes a native workload that ``simcluster replay`` runs on any cluster.
``docs/record.md`` says what is supported and what is not.

Needs the optional extra: ``pip install 'simcluster[record]'`` (PyTorch). This package
imports torch only when a recording starts; :mod:`.log` and :mod:`.work` need none.
"""

from __future__ import annotations

from simcluster.workload.record.recorder import (
    Recorder,
    RecordOptions,
    memory_breakdown,
    record_function,
    record_script,
    summary,
)

__all__ = ["RecordOptions", "Recorder", "memory_breakdown", "record_function", "record_script", "summary"]

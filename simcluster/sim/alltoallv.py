"""Uneven all-to-allv: the per-pair bytes of each all_to_all that carries ``splits``.

An op's ``splits`` (``docs/formats.md``) lists the bytes its rank sends to each member of its
group, in the group's rank order. The ranks of one collective (one ``(group, seq)``) make a
``p x p`` matrix, sender by receiver, which :meth:`~simcluster.sim.comm.CommModel.collective`
turns into one flow per pair of its own size. A member whose op has no ``splits`` sends
``comm_bytes`` evenly (``comm_bytes / p`` to each member), as an even all_to_all does.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from simcluster.workload.model import Workload


def split_matrices(workload: Workload) -> dict[tuple[str, int], np.ndarray]:
    """``(group, seq) -> p x p`` bytes (float64) of the all_to_alls that carry ``splits``.

    Example:
        >>> import pyarrow as pa
        >>> from simcluster.workload.model import OpsBuilder, WorkloadMeta
        >>> from simcluster.workload.validate import make_workload
        >>> ops = OpsBuilder()
        >>> for r, row in enumerate(([0, 30], [10, 0])):
        ...     _ = ops.add(r, "a2a", "collective", "comm", collective="all_to_all",
        ...                 comm_bytes=30, group="g", splits=row)
        >>> wl = make_workload(ops.table(), {"g": [0, 1]}, WorkloadMeta())
        >>> split_matrices(wl)[("g", 0)].tolist()
        [[0.0, 30.0], [10.0, 0.0]]
    """
    t = workload.ops
    has = pc.invert(pc.is_null(t.column("splits")))
    if not pc.any(has).as_py():
        return {}
    rows = t.filter(has)
    rank = rows.column("rank").to_pylist()
    group = rows.column("group").to_pylist()
    seq = rows.column("seq").to_pylist()
    size = rows.column("comm_bytes").to_pylist()
    splits = rows.column("splits").to_pylist()
    out: dict[tuple[str, int], np.ndarray] = {}
    position: dict[str, dict[int, int]] = {}
    for r, g, k, s, row in zip(rank, group, seq, size, splits):
        m = out.get((g, k))
        if m is None:  # the ranks of a collective agree on comm_bytes (the engine checks)
            p = len(workload.groups[g])
            m = out[(g, k)] = np.full((p, p), s / p)
        if g not in position:
            position[g] = {x: i for i, x in enumerate(workload.groups[g])}
        m[position[g][r]] = row
    return out

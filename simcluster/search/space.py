"""The configurations a search considers, and which of them fit in memory.

A configuration is a set of transformer generator parameters (``workload/generate/
registry.py``): the model (``preset`` and overrides) and global batch, which stay fixed, and
the parallel layout and training settings, which vary:

- ``tp`` in ``space.tp`` (at most the accelerators of one server: tensor parallelism across
  servers is never competitive), ``pp`` in ``space.pp``, ``dp = world / (tp * pp)``;
- ``world``: every accelerator of the budget, or (``space.fewer_gpus``) also a half and a
  quarter of it, for cost searches where fewer GPUs may be cheaper per token;
- ``micro_batch``, ``recompute`` (``selective`` only without flash attention: with it, the
  attention core stores nothing to recompute and ``selective`` equals ``none``), ``zero``
  (ZeRO stage, only with data parallelism; the generator refuses 2 and 3 with pipelines),
  the schedule (``1f1b`` and, with pipelines, ``1f1b-interleaved:V``), sequence
  parallelism on whenever ``tp > 1``.

A configuration the generator refuses (heads not divisible by ``tp``, a batch that does not
split) is left out; one that does not fit in memory by the analytic model
(``transformer.memory_fit``) is kept with the reason and never simulated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.workload.generate.registry import transformer_config
from simcluster.workload.generate.transformer import memory_fit


@dataclass(frozen=True)
class SearchSpace:
    """Values each setting may take (module docstring)."""

    tp: tuple[int, ...] = (1, 2, 4, 8)
    pp: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    micro_batch: tuple[int, ...] = (1, 2, 4, 8)
    recompute: tuple[str, ...] = ("none", "selective", "full")
    zero: tuple[int, ...] = (0, 1)
    interleave: tuple[int, ...] = (1, 2)
    fewer_gpus: bool = False


@dataclass(frozen=True)
class Candidate:
    """One configuration: its generator parameters, and why it cannot run (None: it fits)."""

    params: dict[str, Any]
    infeasible: str | None


def _worlds(gpus: int, fewer: bool) -> list[int]:
    out = [gpus]
    if fewer:
        out += [w for w in (gpus // 2, gpus // 4) if w >= 1 and w * 4 >= gpus]
    return sorted(set(out), reverse=True)


def candidates(fixed: dict[str, Any], gpus: int, per_server: int, capacity_bytes: int,
               space: SearchSpace = SearchSpace()) -> list[Candidate]:
    """Every configuration of ``space`` for the model and batch in ``fixed`` on a budget of
    ``gpus`` accelerators (``per_server`` per server, ``capacity_bytes`` of memory each), in
    a deterministic order."""
    out = []
    for world, tp, pp, mb, rc, zero, v in itertools.product(
            _worlds(gpus, space.fewer_gpus), space.tp, space.pp, space.micro_batch,
            space.recompute, space.zero, space.interleave):
        if tp > per_server or world % (tp * pp) or (v > 1 and pp == 1):
            continue
        if rc == "selective" and fixed.get("flash_attention", True) and "none" in space.recompute:
            continue  # with flash attention, selective recompute is the same as none
        if zero and world == tp * pp and 0 in space.zero:
            continue  # one replica: nothing to shard, ZeRO is the same as none
        params = {**fixed, "tp": tp, "pp": pp, "dp": world // (tp * pp), "micro_batch": mb,
                  "recompute": rc, "zero": zero, "sequence_parallel": tp > 1,
                  "schedule": "1f1b" if v == 1 else f"1f1b-interleaved:{v}"}
        try:
            cfg = transformer_config(params).padded()
            cfg.check()
        except WorkloadError:
            continue
        out.append(Candidate(params, memory_fit(cfg, capacity_bytes)))
    return out

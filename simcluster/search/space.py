"""The configurations a search considers, and which of them fit in memory.

A configuration is a set of transformer generator parameters (``workload/generate/
registry.py``): the model (``preset`` and overrides) and global batch, which stay fixed, and
the parallel layout and training settings, which vary:

- ``tp`` in ``space.tp`` (at most the accelerators of one server: tensor parallelism across
  servers is never competitive), ``pp`` in ``space.pp``, ``dp = world / (tp * pp)``;
- ``world``: every accelerator of the budget, or (``space.fewer_gpus``) also a half and a
  quarter of it, for cost searches where fewer GPUs may be cheaper per token; or the GPU
  counts of ``space.worlds`` within the budget (a restart on the GPUs that remain:
  ``search/restart.py``);
- ``micro_batch``, ``recompute`` (``selective`` only without flash attention: with it, the
  attention core stores nothing to recompute and ``selective`` equals ``none``), ``zero``
  (ZeRO stage, only with data parallelism; the generator refuses 2 and 3 with pipelines),
  the schedule (``1f1b`` and, with pipelines, ``1f1b-interleaved:V``), sequence
  parallelism on whenever ``tp > 1``;
- ``cp`` in ``space.cp`` (context parallelism; default 1 only, so a search explores it only
  when asked), then ``dp = world / (tp * cp * pp)``;
- for a mixture-of-experts model, ``ep`` in ``space.ep`` (None: every divisor of the
  experts), with the experts split over TP as the dense MLP is (``expert_tp = tp``,
  Megatron-Core's default) unless the model's parameters fix ``expert_tp``: the generator's
  own check (``moe.check_moe``) keeps the ``ep`` that divide ``dp x cp`` and are multiples
  of ``cp``.

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
    cp: tuple[int, ...] = (1,)
    ep: tuple[int, ...] | None = None
    worlds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Candidate:
    """One configuration: its generator parameters, and why it cannot run (None: it fits)."""

    params: dict[str, Any]
    infeasible: str | None


def _worlds(gpus: int, fewer: bool, worlds: tuple[int, ...] | None = None) -> list[int]:
    """The GPU counts to lay configurations out on, largest first.

    >>> _worlds(16, True), _worlds(16, False, (8, 12, 32))
    ([16, 8, 4], [12, 8])
    """
    if worlds is not None:
        return sorted({w for w in worlds if 1 <= w <= gpus}, reverse=True)
    out = [gpus]
    if fewer:
        out += [w for w in (gpus // 2, gpus // 4) if w >= 1 and w * 4 >= gpus]
    return sorted(set(out), reverse=True)


def _eps(fixed: dict[str, Any], space: SearchSpace) -> tuple[int, ...]:
    """Expert-parallel sizes to try: ``space.ep``, or every divisor of the experts of a
    mixture-of-experts model; ``(0,)`` (no ``ep`` setting) for a dense one."""
    experts = transformer_config(fixed).model.experts
    if not experts:
        return (0,)
    return space.ep or tuple(k for k in range(1, experts + 1) if experts % k == 0)


def layout(fixed: dict[str, Any], world: int, tp: int, pp: int, cp: int, ep: int
           ) -> dict[str, Any] | None:
    """The parallel sizes of one configuration (None: ``tp x cp x pp`` does not divide
    ``world``); ``cp`` is set only above 1 and ``ep`` (with ``expert_tp``) only for a
    mixture of experts (``ep`` 0: a dense model), so a dense search without CP has the settings it
    always had.

    >>> layout({}, 16, 2, 2, 2, 0)
    {'tp': 2, 'pp': 2, 'dp': 2, 'cp': 2}
    >>> layout({}, 16, 2, 2, 1, 4)
    {'tp': 2, 'pp': 2, 'dp': 4, 'ep': 4, 'expert_tp': 2}
    """
    if world % (tp * cp * pp):
        return None
    out: dict[str, Any] = {"tp": tp, "pp": pp, "dp": world // (tp * cp * pp)}
    if cp > 1:
        out["cp"] = cp
    if ep:
        out.update(ep=ep, expert_tp=fixed.get("expert_tp", tp))
    return out


def world_of(params: dict[str, Any]) -> int:
    """Accelerators a configuration's parameters use: ``tp x cp x pp x dp``.

    >>> world_of({"tp": 2, "pp": 2, "dp": 2, "cp": 2})
    16
    """
    return params["tp"] * params["pp"] * params["dp"] * params.get("cp", 1)


def candidates(fixed: dict[str, Any], gpus: int, per_server: int, capacity_bytes: int,
               space: SearchSpace = SearchSpace()) -> list[Candidate]:
    """Every configuration of ``space`` for the model and batch in ``fixed`` on a budget of
    ``gpus`` accelerators (``per_server`` per server, ``capacity_bytes`` of memory each), in
    a deterministic order."""
    out = []
    for world, tp, pp, cp, ep, mb, rc, zero, v in itertools.product(
            _worlds(gpus, space.fewer_gpus, space.worlds), space.tp, space.pp, space.cp,
            _eps(fixed, space), space.micro_batch, space.recompute, space.zero,
            space.interleave):
        sizes = layout(fixed, world, tp, pp, cp, ep)
        if tp > per_server or sizes is None or (v > 1 and pp == 1):
            continue
        if rc == "selective" and fixed.get("flash_attention", True) and "none" in space.recompute:
            continue  # with flash attention, selective recompute is the same as none
        if zero and world == tp * pp and 0 in space.zero:
            continue  # one replica: nothing to shard, ZeRO is the same as none
        params = {**fixed, **sizes, "micro_batch": mb,
                  "recompute": rc, "zero": zero, "sequence_parallel": tp > 1,
                  "schedule": "1f1b" if v == 1 else f"1f1b-interleaved:{v}"}
        try:
            cfg = transformer_config(params).padded()
            cfg.check()
        except WorkloadError:
            continue
        out.append(Candidate(params, memory_fit(cfg, capacity_bytes)))
    return out

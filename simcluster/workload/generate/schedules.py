"""Pipeline schedules: the order in which one pipeline stage runs its forward and backward
passes of micro-batches (and of model chunks, for the interleaved schedule).

A schedule is a list of :class:`Unit` per stage. Communication follows from it: the forward
of virtual stage ``c p + i`` (chunk ``c`` on stage ``i``) needs the activation of virtual
stage ``c p + i - 1``, and its backward the gradient of virtual stage ``c p + i + 1``.

- ``1f1b`` (PipeDream-Flush, Narayanan et al. 2021 section 2.2.1): stage ``i`` of ``p`` runs
  ``min(p - i - 1, m)`` warm-up forwards, then alternates one forward and one backward, then
  drains the remaining backwards. With uniform stages its bubble is ``(p-1)/(m+p-1)`` of the
  step.
- ``interleaved`` (section 2.2.2): each stage holds ``v`` chunks of layers; forwards walk the
  chunks in groups of ``p`` micro-batches, backwards in reverse chunk order. Warm-up is
  ``(p - i - 1) * 2 + (v - 1) * p`` units (as Megatron-LM). The bubble shrinks by ``v``; it
  needs ``m`` to be a multiple of ``p``.
- ``gpipe``: all forwards, then all backwards (for comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("1f1b", "interleaved", "gpipe")


@dataclass(frozen=True)
class Unit:
    """One pass of one micro-batch through one model chunk of a stage."""

    forward: bool
    micro_batch: int
    chunk: int


def parse_schedule(text: str) -> tuple[str, int]:
    """``1f1b``, ``gpipe``, ``interleaved:V`` or ``1f1b-interleaved:V`` -> (name, chunks)."""
    name, _, arg = text.strip().lower().partition(":")
    if name in ("1f1b-interleaved", "interleaved"):
        try:
            v = int(arg or "2")
        except ValueError:
            raise ValueError(f"schedule {text!r}: the chunk count after ':' must be an integer, "
                             "e.g. 1f1b-interleaved:2") from None
        if v < 1:
            raise ValueError(f"schedule {text!r}: the chunk count must be at least 1")
        return ("interleaved", v) if v > 1 else ("1f1b", 1)
    if name in ("1f1b", "gpipe") and not arg:
        return name, 1
    raise ValueError(f"unknown schedule {text!r}; use 1f1b, gpipe or 1f1b-interleaved:V")


def _virtual_order(m: int, p: int, v: int, forward: bool) -> list[tuple[int, int]]:
    """(micro_batch, chunk) of the k-th forward (or backward) unit of any stage."""
    out = []
    for k in range(m * v):
        group, pos = divmod(k, p * v)
        chunk = (k // p) % v
        if not forward:
            chunk = v - 1 - chunk
        out.append((group * p + pos % p, chunk))
    return out


def stage_units(name: str, stage: int, stages: int, micro_batches: int,
                chunks: int = 1) -> list[Unit]:
    """The units of ``stage`` (0-based) in execution order.

    Raises:
        ValueError: the interleaved schedule with ``micro_batches`` not a multiple of stages.
    """
    p, m, v = stages, micro_batches, chunks
    if name == "gpipe":
        return ([Unit(True, b, 0) for b in range(m)]
                + [Unit(False, b, 0) for b in range(m)])
    if name == "1f1b":
        v = 1
    elif name == "interleaved":
        if m % p:
            raise ValueError(f"the interleaved schedule needs the number of micro-batches ({m}) "
                             f"to be a multiple of the pipeline stages ({p})")
    else:
        raise ValueError(f"unknown schedule {name!r}")
    total = m * v
    fwd = _virtual_order(m, p, v, True) if v > 1 else [(b, 0) for b in range(m)]
    bwd = _virtual_order(m, p, v, False) if v > 1 else [(b, 0) for b in range(m)]
    warm = (p - stage - 1) * 2 + (v - 1) * p if v > 1 else p - stage - 1
    warm = min(warm, total)
    units = [Unit(True, *fwd[k]) for k in range(warm)]
    for k in range(total - warm):
        units.append(Unit(True, *fwd[warm + k]))
        units.append(Unit(False, *bwd[k]))
    units.extend(Unit(False, *bwd[k]) for k in range(total - warm, total))
    return units

"""Collective algorithms as phases of concurrent flows.

A collective on p ranks becomes a short list of phases. Each phase is a set of flows that run
concurrently on the network model plus a number of sequential latency steps. A pipelined ring
moves its data as p neighbour flows at once, so its cost is O(p) flows, never per chunk.

Sizes follow nccl-tests: ``S`` is the per-rank buffer of all_reduce, broadcast and reduce,
the full output of all_gather, the full input of reduce_scatter, and for all_to_all the bytes
each rank sends in total (its own share included).

Ring formulas (B the bottleneck neighbour bandwidth, alpha the largest neighbour-hop latency):

===============  ===================  ======================  ===========================
collective       bytes per flow       flows                   latency steps
===============  ===================  ======================  ===========================
all_reduce       2 (p-1)/p * S        p ring neighbours       2 (p-1)
all_gather       (p-1)/p * S          p ring neighbours       p-1
reduce_scatter   (p-1)/p * S          p ring neighbours       p-1
broadcast        S                    p-1, chain from root    p-1
reduce           S                    p-1, chain to root      p-1
all_to_all       S/p                  p (p-1) direct pairs    1
barrier          0                    none                    2 (p-1)
send/recv        S                    1                       1
===============  ===================  ======================  ===========================

so an isolated ring all_reduce takes ``overhead + 2(p-1)/p * S/B + 2(p-1) * alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Phase:
    """Flows that run at once (positions in the ring order), then ``latency_steps`` hops.

    ``coupled``: the flows are the hops of one pipeline (ring or chain), which advances at the
    pace of its slowest hop, so they share one rate.
    """

    src: np.ndarray
    dst: np.ndarray
    nbytes: np.ndarray
    latency_steps: int
    coupled: bool = True


def _ring(p: int) -> tuple[np.ndarray, np.ndarray]:
    src = np.arange(p)
    return src, (src + 1) % p


def plan(collective: str, size: int, p: int, root: int = 0) -> list[Phase]:
    """Phases of ``collective`` of ``size`` bytes over ``p`` ranks in ring order.

    Parameters:
        collective: one of ``COLLECTIVES``.
        size: bytes, nccl-tests convention (module docstring).
        p: number of ranks.
        root: ring position of the root (broadcast, reduce).

    Returns:
        The phases, in order; empty flows are omitted, latency steps kept.

    Example:
        >>> [ (len(ph.src), ph.nbytes[0], ph.latency_steps) for ph in plan("all_reduce", 800, 4)]
        [(4, 1200.0, 6)]
    """
    if p <= 1:
        return []
    s = float(size)
    if collective in ("all_reduce", "barrier"):
        src, dst = _ring(p)
        per = 2.0 * (p - 1) / p * s if collective == "all_reduce" else 0.0
        return [Phase(src, dst, np.full(p, per), 2 * (p - 1))]
    if collective in ("all_gather", "reduce_scatter"):
        src, dst = _ring(p)
        return [Phase(src, dst, np.full(p, (p - 1) / p * s), p - 1)]
    if collective in ("broadcast", "reduce"):
        # broadcast: root, root+1, ..., root-1; reduce flows the other way round, ending at root.
        first = root if collective == "broadcast" else root + 1
        chain = (first + np.arange(p)) % p
        return [Phase(chain[:-1], chain[1:], np.full(p - 1, s), p - 1)]
    if collective == "all_to_all":
        i, j = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        off = i != j
        return [Phase(i[off], j[off], np.full(int(off.sum()), s / p), 1, coupled=False)]
    raise ValueError(f"unknown collective {collective!r}")

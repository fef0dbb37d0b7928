"""Compute slowed by communication on the same GPU (``docs/compute.md``, "Compute slowed
by communication").

**The model.** NCCL runs each channel of a collective or send/recv as one thread block, and
its blocks do not share an SM with compute kernels (NCCL's maintainer in NVIDIA/nccl#689:
"NCCL CTAs won't share an SM with compute kernels"; "on DGX with 8 NICs ... it would use 16
SMs"). While at least one communication kernel runs on a GPU with ``S`` SMs and takes ``c``
of them, the compute kernels on that GPU progress at the rate

    rate = 1 - c / S                      (work per us, against 1 when no communication runs)

Processor sharing: a kernel's remaining work is re-timed whenever communication starts or
stops on its GPU, so its end time is exact, not an estimate after the fact. Several
communication kernels at once count once (they share the same channels' SMs in this model).
Only compute ops whose duration the compute model gives are slowed: a recorded duration was
measured with whatever overlap the recording had. Host ops, copies and the communication
itself keep their model.

**Defaults.** ``c`` = 16 SMs on the DGX-class NVIDIA parts below (8 NICs per server; the
figure above), ``S`` from NVIDIA's architecture whitepapers. A100: 16/108, compute at 0.852
(17.4 % longer); H100 SXM: 16/132, 0.879 (13.8 % longer): the order of the 18.9 % average
compute slowdown under overlap that Lee et al. measured on 4 x A100/H100 (arXiv 2507.03114,
2025). Other parts have no default (no interference) unless ``network.comm_sms`` is set; a
part that gives ``compute_units`` (AMD) uses them as ``S``.

**The clock.** Every compute op on a GPU runs at the same rate, so one virtual clock per GPU
(:class:`GpuClock`: work done at full rate, a piecewise-linear function of time) times them
all: an op that starts at virtual time ``v`` with work ``w`` ends when the clock reaches
``v + w``. A sleeping stream is woken by one event at the real time the clock will reach its
target at the current rate. When the rate changes, the wake-up's time is recomputed and given
the next event id, as a new event would be, but a heap entry is pushed only if the wake-up
moved earlier than the entry already in SimPy's heap; otherwise that entry becomes an alarm
that, when it fires (no later than the wake-up), pushes the wake-up with its time and id. The
heap holds the same wake-ups under the same (time, priority, id) keys as if each change had
pushed one, so every result is the same, without an entry per change left in the heap (a
communication kernel's start and end each changed the rate: 1.40 heap entries per op in the
data-parallel replay; ``docs/performance.md``). A compute op that others wait for ends its
fused batch (its end is known only when it happens). With the interference off (``comm_sms``
0, or parts without a default) none of this runs and every result is as before.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import partial
from heapq import heappush
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.compute as pc
from simpy.events import NORMAL, Event

from simcluster.errors import SimulationError
from simcluster.topology.catalog import AcceleratorSpec

if TYPE_CHECKING:
    import simpy

    from simcluster.placement import Bound

# SMs per device: NVIDIA A100 Tensor Core GPU Architecture whitepaper (108 SMs), NVIDIA H100
# Tensor Core GPU Architecture whitepaper (132 SMs SXM5, 114 PCIe); H200 and H800 are the
# H100 SXM5 chip; V100: NVIDIA Tesla V100 GPU Architecture whitepaper (80 SMs).
SM_COUNT: dict[str, int] = {
    "A100-SXM4-80GB": 108, "A100-SXM4-40GB": 108, "A100-PCIe-80GB": 108,
    "A100-PCIe-40GB": 108, "H100-SXM5-80GB": 132, "H200": 132, "H800-SXM5-80GB": 132,
    "H100-PCIe-80GB": 114, "V100-SXM2-32GB": 80, "V100-SXM2-16GB": 80, "V100-SXM3-32GB": 80,
}

# SMs an active communication kernel takes where the topology does not say
# (``network.comm_sms``): NCCL's 16 channels on 8-NIC DGX-class servers (NVIDIA/nccl#689).
DEFAULT_COMM_SMS = 16.0
DEFAULT_COMM_SMS_MODELS = frozenset({
    "A100-SXM4-80GB", "A100-SXM4-40GB", "H100-SXM5-80GB", "H200", "H800-SXM5-80GB"})


def compute_rate(spec: AcceleratorSpec, comm_sms: float | None) -> float:
    """Rate (work per us) of compute ops on ``spec`` while communication runs on it.

    ``comm_sms`` is the topology's ``network.comm_sms`` (None: the part's default, 16 on the
    DGX-class parts of :data:`DEFAULT_COMM_SMS_MODELS`, else none).

    Raises:
        SimulationError: communication would take every SM (no compute could progress).

    Example:
        >>> from simcluster.topology.catalog import lookup
        >>> round(compute_rate(lookup("H100"), None), 4), compute_rate(lookup("H100"), 0)
        (0.8788, 1.0)
    """
    sms = SM_COUNT.get(spec.model) or spec.compute_units
    taken = comm_sms if comm_sms is not None else (
        DEFAULT_COMM_SMS if spec.model in DEFAULT_COMM_SMS_MODELS else 0.0)
    if not taken or not sms:
        return 1.0
    if taken >= sms:
        raise SimulationError(
            f"network.comm_sms = {taken:g}: communication would take all {sms} SMs of "
            f"{spec.model}, leaving none to compute; use fewer (NCCL uses 16 on DGX-class "
            "servers), or 0 for no interference.")
    return 1.0 - taken / sms


class GpuClock:
    """The virtual clock of one GPU's compute ops (module docstring).

    Attributes:
        slow: rate while communication runs (< 1).
        active: communication kernels running now.
        rate: the rate now (1 or ``slow``).
        changes: rate changes so far.
        unpushed: event ids given to wake-ups that were never pushed on the heap (a rate
            change that moved a wake-up later, then another change before it was due).
    """

    __slots__ = ("env", "slow", "active", "rate", "changes", "unpushed", "_t", "_v", "_r",
                 "_sleepers")

    def __init__(self, env: simpy.Environment, slow: float) -> None:
        self.env = env
        self.slow = slow
        self.active = 0
        self.rate = 1.0
        self.changes = 0
        self.unpushed = 0
        # Breakpoints: from time _t[k] the clock reads _v[k] and runs at _r[k].
        self._t: list[float] = [0.0]
        self._v: list[float] = [0.0]
        self._r: list[float] = [1.0]
        # Per sleeping stream: [target (us of work), the event on the heap, its (time, id),
        # the wake-up's (time, id), the stream's callbacks while that event is an alarm, else
        # None (the event on the heap is the wake-up itself)].
        self._sleepers: dict[int, list[Any]] = {}

    def virtual(self, now: float) -> float:
        """Work done at full rate by time ``now`` (>= the last change)."""
        return self._v[-1] + self._r[-1] * (now - self._t[-1])

    def real(self, v: float) -> float:
        """The time at which the clock reads ``v`` (us)."""
        k = max(bisect_right(self._v, v) - 1, 0)
        return self._t[k] + (v - self._v[k]) / self._r[k]

    def comm_started(self) -> None:
        """A communication kernel starts on this GPU now."""
        self.active += 1
        if self.active == 1:
            self._set_rate(self.slow)

    def comm_ended(self) -> None:
        """A communication kernel ends on this GPU now."""
        self.active -= 1
        if self.active == 0:
            self._set_rate(1.0)

    def sleep(self, key: int, target: float, when: float) -> simpy.Event:
        """An event for the stream ``key`` that fires when the clock reads ``target``;
        ``when`` is that time at the current rate (computed by the caller, so that without a
        rate change it is exactly the sum of the durations)."""
        wake = (when, next(self.env._eid))  # type: ignore[attr-defined]
        ev = self._push(wake)
        self._sleepers[key] = [target, ev, wake, wake, None]
        return ev

    def woke(self, key: int) -> None:
        """Stream ``key`` has woken: forget its wait."""
        del self._sleepers[key]

    def _push(self, wake: tuple[float, int]) -> Event:
        """A triggered event on the heap at ``wake`` (time in us, event id)."""
        ev = Event(self.env)
        ev._ok = True
        ev._value = None
        heappush(self.env._queue, (wake[0], NORMAL, wake[1], ev))  # type: ignore[attr-defined]
        return ev

    def _set_rate(self, rate: float) -> None:
        now = self.env.now
        v = self.virtual(now)
        if not self._sleepers:  # no batch in flight reads the past
            self._t, self._v, self._r = [now], [v], [rate]
        elif self._t[-1] == now:
            self._r[-1] = rate
        else:
            self._t.append(now)
            self._v.append(v)
            self._r.append(rate)
        self.rate = rate
        self.changes += 1
        eid = self.env._eid  # type: ignore[attr-defined]
        for key, entry in self._sleepers.items():
            target, held, at, _, callbacks = entry
            wake = entry[3] = (now + max(target - v, 0.0) / rate, next(eid))
            if wake < at:  # due before the event on the heap: push it, drop that one
                new = entry[1] = self._push(wake)
                entry[2] = wake
                if callbacks is None:
                    new.callbacks, held.callbacks = held.callbacks, []
                else:
                    new.callbacks, held.callbacks, entry[4] = callbacks, [], None
            else:  # the event on the heap fires first: it becomes (or stays) an alarm
                self.unpushed += 1
                if callbacks is None:
                    entry[4], held.callbacks = held.callbacks, [partial(self._alarm, key)]

    def _alarm(self, key: int, _: Event) -> None:
        """The alarm of stream ``key`` fired (at or before its wake-up): push the wake-up."""
        entry = self._sleepers[key]
        wake = entry[3]
        new = entry[1] = self._push(wake)
        new.callbacks, entry[2], entry[4] = entry[4], wake, None
        self.unpushed -= 1


def gpu_clocks(env: simpy.Environment, bound: Bound) -> dict[int, GpuClock]:
    """Per rank of ``bound`` that has compute ops, the clock of its compute ops, where
    communication slows them (rate below 1); none when the interference is off.

    Raises:
        SimulationError: ``network.comm_sms`` at least a device's SM count.
    """
    cluster, ops = bound.cluster, bound.workload.ops
    rates = {id(s): compute_rate(s, cluster.network.comm_sms) for s in cluster.specs.values()}
    if all(rate == 1.0 for rate in rates.values()):
        return {}
    computing = set(pc.unique(pc.filter(ops.column("rank"), pc.equal(
        ops.column("kind"), "compute"))).to_pylist())
    specs = [cluster.specs[d] for d in bound.placement.devices]
    return {r: GpuClock(env, rates[id(s)]) for r, s in enumerate(specs)
            if r in computing and rates[id(s)] < 1.0}


def heap_entries(env: simpy.Environment, clocks: dict[int, GpuClock]) -> int:
    """Entries pushed on ``env``'s event heap so far: the event ids given out, less those the
    GPU clocks gave to wake-ups that were never pushed (:attr:`GpuClock.unpushed`). Reads
    SimPy's id counter, so call it once, after the run."""
    return next(env._eid) - sum(c.unpushed for c in clocks.values())  # type: ignore[attr-defined]


def slowed_ranks(clocks: dict[int, GpuClock], ranks: int) -> np.ndarray | None:
    """Per rank, whether it has a clock (None: no rank has one)."""
    if not clocks:
        return None
    out = np.zeros(ranks, dtype=bool)
    out[list(clocks)] = True
    return out

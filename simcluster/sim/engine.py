"""The discrete-event engine: one SimPy process per (rank, stream) replaying its ops.

Replay semantics (``../shared/DESIGN.md``):

- a stream runs its ops in op_id order; an op starts when the previous op on its stream has
  finished and all its ``deps`` have finished;
- compute and host ops take their duration (recorded, or from the compute model);
- a collective starts when every rank of its group has reached it (matched by group and seq);
  it then runs its algorithm's phases as flows on the network model; every rank's op ends
  when the collective ends, and ``wait_us`` records how long the rank waited for its peers;
- a send and its recv (matched by sender, receiver and seq) run as one flow once both are
  posted; a host<->device memcpy is a flow between the device and its host's memory;
- ``alloc_bytes`` are taken when an op starts, ``free_bytes`` returned when it ends;
- when no event is left but ops are unfinished, the run is deadlocked, and the error names
  the ranks, their ops, and what each waits for.

Per op the engine does O(1) SimPy events (one timeout for a timed op; a dependency that is
not yet met costs one more); per collective O(ranks) work.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from heapq import heappush
from dataclasses import dataclass, field
from typing import Any

import simpy
from simpy.events import NORMAL

from simcluster.collector import COLLECTOR as _COLLECTOR
from simcluster.errors import (
    CollectiveMismatchError,
    DeadlockError,
    TopologyError,
)
from simcluster.placement import Bound
from simcluster.sim.alltoallv import split_matrices
from simcluster.sim.comm import CommModel, Schedule
from simcluster.sim.compile import _COPY_FLOW, _P2P, _SLOWED, _TIMED, compile_program
from simcluster.sim.interference import GpuClock, gpu_clocks, slowed_ranks
from simcluster.sim.memory import MemoryLedger
from simcluster.sim.network import FlowNetwork, FlowTag
from simcluster.sim.options import SimOptions
from simcluster.sim.result import Records, Run, assemble_run
from simcluster.topology.routing import Route, Router



class _Environment(simpy.Environment):
    """A SimPy environment that can also fire an event at an absolute time.

    ``timeout(t - now)`` lands at ``now + (t - now)``, which can differ from ``t`` in the
    last bit; firing at ``t`` itself keeps fused and unfused replays bit-identical.
    """

    def succeed_at(self, event: simpy.Event, when: float) -> None:
        """Trigger ``event`` (value None) at time ``when`` >= now."""
        event._ok = True
        event._value = None
        heappush(self._queue, (when, NORMAL, next(self._eid), event))

    def until(self, when: float) -> simpy.Event:
        """An event that fires at time ``when`` >= now."""
        event = simpy.Event(self)
        self.succeed_at(event, when)
        return event


@dataclass
class _Rendezvous:
    """Ranks that have reached one collective (or one send/recv pair) so far."""

    size: int
    done: simpy.Event
    arrived: list[int] = field(default_factory=list)
    started: float = 0.0


class Engine:
    """Compiles a Bound workload into flat per-op arrays, then runs it on SimPy."""

    def __init__(self, bound: Bound, options: SimOptions | None = None) -> None:
        self.bound = bound
        self.options = options or SimOptions()
        self.cluster = bound.cluster
        self.devices = bound.placement.devices
        self.router = Router(bound.cluster)
        self.env = _Environment()
        self.net = FlowNetwork(self.env, self.cluster.capacity_Bpus)
        self.groups = bound.workload.groups
        self.comm = CommModel(self.cluster, self.router, self.devices, self.groups)
        self.splits = split_matrices(bound.workload)  # uneven all-to-allv, by (group, seq)
        self._rv: dict[Any, _Rendezvous] = {}
        # Per rank, the clock of its compute ops where communication slows them.
        self.clocks = gpu_clocks(self.env, bound)
        prog = compile_program(bound, self.options, slowed_ranks(self.clocks, len(self.devices)))
        self.n, self.rank, self.names, self.op_ids = prog.n, prog.rank, prog.names, prog.op_ids
        self.streams, self.order, self.stream_names = prog.streams, prog.order, prog.stream_names
        self._deps_of, self.comm_bytes, self.copy_dir = prog.deps, prog.comm_bytes, prog.copy_dir
        self.key, self.key_size = prog.key, prog.key_size
        self.collective, self.root = prog.collective, prog.root
        n = self.n
        self.done_at: list[float | None] = [None] * n
        self.waiters: dict[int, simpy.Event] = {}
        self.wait = [0.0] * n
        self.algorithm: list[str | None] = [None] * n
        self.starts: list[list[float]] = [[] for _ in self.streams]
        self.ends: list[list[float]] = [[] for _ in self.streams]
        devices, specs = self.devices, self.cluster.specs
        self.ledger = MemoryLedger(
            [specs[d].hbm_bytes for d in devices],
            [f"rank {r} (device {d}, {specs[d].model})" for r, d in enumerate(devices)],
        )

    # -- communication ------------------------------------------------------------------------

    def _run(self, rv: _Rendezvous, sched: Schedule, tag: FlowTag
             ) -> Generator[simpy.Event, Any, None]:
        """Run a schedule: fixed cost, then each phase's flows and latency steps."""
        env = self.env
        rv.started = env.now
        label = sched.label
        for i in rv.arrived:
            self.algorithm[i] = label
        clocks = [c for i in rv.arrived if (c := self.clocks.get(self.rank[i])) is not None
                  ] if self.clocks else []
        for clock in clocks:
            clock.comm_started()
        if sched.fixed_us > 0:
            yield env.timeout(sched.fixed_us)
        for k, ph in enumerate(sched.phases):
            yield self.net.transfer(ph.routes, ph.nbytes, coupled=ph.coupled, weights=ph.weights,
                                    tag=FlowTag(tag.kind, tag.name, tag.group, tag.seq, label, k),
                                    counts=ph.counts)
            if ph.latency_us > 0:
                yield env.timeout(ph.latency_us)
        for clock in clocks:
            clock.comm_ended()
        rv.done.succeed()

    def _run_collective(self, rv: _Rendezvous) -> Generator[simpy.Event, Any, None]:
        first = rv.arrived[0]
        self._check_match(rv)
        group, seq = self.key[first]
        name = self.collective[first]
        sched = self.comm.collective(group, name, self.comm_bytes[first], self.root[first],
                                     splits=self.splits.get((group, seq)))
        yield from self._run(rv, sched, FlowTag("collective", name, group, seq))

    def _run_p2p(self, rv: _Rendezvous) -> Generator[simpy.Event, Any, None]:
        a, b = rv.arrived
        if self.comm_bytes[a] != self.comm_bytes[b]:
            _, src, dst, seq = self.key[a]
            raise CollectiveMismatchError(
                f"send/recv sizes differ: {self._describe(a)} moves {self.comm_bytes[a]} B but "
                f"{self._describe(b)} moves {self.comm_bytes[b]} B; a send and its recv must "
                "have the same comm_bytes.",
                group=f"{src}->{dst}", seq=seq, ops=(self._describe(a), self._describe(b)))
        _, src, dst, seq = self.key[a]
        sched = self.comm.p2p(self.devices[src], self.devices[dst], self.comm_bytes[a])
        yield from self._run(rv, sched, FlowTag("send", "send", f"{src}->{dst}", seq))

    def _check_match(self, rv: _Rendezvous) -> None:
        """All ranks at one (group, seq) must call the same collective with the same size."""
        first = rv.arrived[0]
        want = (self.collective[first], self.comm_bytes[first], self.root[first])
        for i in rv.arrived[1:]:
            if (self.collective[i], self.comm_bytes[i], self.root[i]) != want:
                group, seq = self.key[i]
                raise CollectiveMismatchError(
                    f"mismatched collective in group {group!r} (seq {seq}): "
                    f"{self._describe(first)} is {self.collective[first]} of "
                    f"{self.comm_bytes[first]} B but {self._describe(i)} is "
                    f"{self.collective[i]} of {self.comm_bytes[i]} B. The ranks of a group must "
                    "issue the same collectives, with the same sizes, in the same order.",
                    group=group, seq=seq, ops=(self._describe(first), self._describe(i)))

    def _copy_route(self, i: int) -> Route:
        """Route of a host<->device copy: between the device and its nearest host memory."""
        dev = self.devices[self.rank[i]]
        mem = self.router.nearest(dev, "memory")
        if mem is None:
            raise TopologyError(
                f"{self.cluster.source}: {self._describe(i)} copies between host and device but "
                f"no memory node is reachable from {dev!r}; add a device of kind memory linked "
                "to it (templates have one per CPU)."
            )
        if self.copy_dir[i] == "H2D":
            return self.router.route(mem, dev)
        return self.router.route(dev, mem)

    def _copy(self, i: int) -> Generator[simpy.Event, Any, None]:
        route = self._copy_route(i)
        tag = FlowTag("memcpy", self.copy_dir[i], f"rank {self.rank[i]}")
        yield self.net.transfer([route.links], [self.comm_bytes[i]], tag=tag)
        if route.latency_us > 0:
            yield self.env.timeout(route.latency_us)

    # -- the stream process -------------------------------------------------------------------

    def _stream(self, sid: int) -> Generator[simpy.Event, Any, None]:
        # The hot loop: locals only. ``now`` is this process's clock, equal to SimPy's after
        # every yield; a run of fused timed ops costs one wake-up at its exact end time.
        env = self.env
        event, until, succeed_at = env.event, env.until, env.succeed_at
        done_at, waiters, wait = self.done_at, self.waiters, self.wait
        keys, key_size, rvs = self.key, self.key_size, self._rv
        ledger, clocks = self.ledger, self.clocks
        items = self.streams[sid]
        push_start, push_end = self.starts[sid].append, self.ends[sid].append
        slot = self.rank[items[0][0]]
        now = env.now
        for i, c, a, f, notify, deps, batch in items:
            if deps:
                for x in deps:
                    t = done_at[x]
                    if t is None:
                        ev = waiters.get(x)
                        if ev is None:
                            ev = waiters[x] = event()
                        yield ev
                    elif t > now:
                        yield until(t)
                    now = env.now
            if c == _TIMED:
                # The batch: this op and the ops fused after it, back to back from now.
                t = now
                last_free = 0
                for j, dj, aj, fj, nj in batch:
                    if last_free:
                        ledger.free(slot, last_free)
                    push_start(t)
                    if aj and not ledger.alloc(slot, aj):
                        raise ledger.oom(slot, aj, self._describe(j))
                    t += dj
                    push_end(t)
                    if nj:
                        done_at[j] = t
                        ev = waiters.pop(j, None)
                        if ev is not None:
                            succeed_at(ev, t)
                    last_free = fj
                if t > now:
                    yield until(t)
                    now = t
                if last_free:
                    ledger.free(slot, last_free)
                continue
            if c == _SLOWED:
                # On the rank's compute clock (``sim/interference.py``): one wake-up when the
                # clock reaches the batch's work; the times are the sums, as for a timed
                # batch, unless the rate changed meanwhile (then read off the clock).
                clock = clocks[slot]
                v0, changes, rate = clock.virtual(now), clock.changes, clock.rate
                work, t, last_free = 0.0, now, 0
                for j, dj, aj, fj, _ in batch:
                    if last_free:
                        ledger.free(slot, last_free)
                    if aj and not ledger.alloc(slot, aj):
                        raise ledger.oom(slot, aj, self._describe(j))
                    push_start(t)
                    work += dj
                    t += dj / rate
                    push_end(t)
                    last_free = fj
                if work > 0:
                    yield clock.sleep(sid, v0 + work, t)
                    now = env.now
                    clock.woke(sid)
                    if clock.changes != changes:
                        self._reclock(sid, clock, batch, v0, now)
                if last_free:
                    ledger.free(slot, last_free)
                if batch[-1][4]:
                    self._done(batch[-1][0], now)
                continue
            push_start(now)
            if a and not ledger.alloc(slot, a):
                raise ledger.oom(slot, a, self._describe(i))
            if c == _COPY_FLOW:
                yield from self._copy(i)
            else:
                key = keys[i]
                rv = rvs.get(key)
                if rv is None:
                    rv = rvs[key] = _Rendezvous(size=key_size[i], done=event())
                rv.arrived.append(i)
                if len(rv.arrived) == rv.size:
                    del rvs[key]
                    if c == _P2P:
                        yield from self._run_p2p(rv)
                    else:
                        yield from self._run_collective(rv)
                else:
                    yield rv.done
                wait[i] = rv.started - now
            now = env.now
            push_end(now)
            if f:
                ledger.free(slot, f)
            if notify:
                self._done(i, now)

    def _done(self, op: int, now: float) -> None:
        """Op ``op`` ended at ``now`` (us): record it and wake the stream waiting on it."""
        self.done_at[op] = now
        ev = self.waiters.pop(op, None)
        if ev is not None:
            ev.succeed()

    def _reclock(self, sid: int, clock: GpuClock, batch: tuple[tuple[Any, ...], ...], v0: float,
                 end: float) -> None:
        """Re-time a slowed batch whose clock changed rate while it ran: each op's start and
        end (us) read off the clock from the batch's virtual start ``v0``; the last ends at
        ``end``, when the batch woke."""
        starts, ends = self.starts[sid], self.ends[sid]
        k = len(ends) - len(batch)
        real, v = clock.real, v0
        for m, op in enumerate(batch, k):
            starts[m] = real(v)
            v += op[1]
            ends[m] = real(v)
        ends[-1] = end

    # -- run ----------------------------------------------------------------------------------

    def ops_done(self) -> int:
        """Ops finished so far."""
        return sum(map(len, self.ends))

    def run(self) -> Run:
        """Run to completion and return the Run.

        Raises:
            OutOfMemoryError, CollectiveMismatchError, DeadlockError (all
                SimulationError).
        """
        t0 = time.perf_counter()
        for sid in range(len(self.streams)):
            self.env.process(self._stream(sid))
        progress = self.options.progress
        env = self.env
        try:
            if progress is None:
                env.run()
            else:
                step, every = env.step, self.options.progress_every
                while True:
                    for _ in range(every):
                        step()
                    progress(self.ops_done(), self.n)
        except simpy.core.EmptySchedule:
            pass
        done = self.ops_done()
        if progress is not None:
            progress(done, self.n)
        if done < self.n:
            raise self._deadlock(done)
        return assemble_run(self.bound, Records(
            order=self.order, starts=self.starts, ends=self.ends, wait=self.wait,
            algorithm=self.algorithm, streams=len(self.streams), net=self.net,
            ledger=self.ledger, wall_s=time.perf_counter() - t0))

    def _describe(self, i: int) -> str:
        return f"rank {self.rank[i]} op {self.op_ids[i].as_py()} {self.names[i].as_py()!r}"

    def _stuck(self, sid: int) -> str | None:
        """What stream ``sid`` waits for, if it did not finish."""
        ended = len(self.ends[sid])
        ops = [op[0] for item in self.streams[sid] for op in (item[6] or (item,))]
        if ended == len(ops):
            return None
        i = ops[ended]
        deps = self._deps_of[i]
        rank, stream = self.stream_names[sid]
        where = f"rank {rank} stream {stream!r}: {self._describe(i)}"
        if len(self.starts[sid]) == ended:  # not started: a dependency is unmet
            x = next(x for x in deps if self.done_at[x] is None)
            return f"{where} waits for op {self.op_ids[x].as_py()} {self.names[x].as_py()!r}"
        key = self.key[i]
        rv = self._rv.get(key)
        here = {self.rank[j] for j in rv.arrived} if rv else set()
        if key[0] == "p2p":
            _, src, dst, seq = key
            other, what = (dst, "recv") if rank == src else (src, "send")
            return f"{where} waits for rank {other} to post the matching {what} (seq {seq})"
        group, seq = key
        absent = sorted(set(self.groups[group]) - here)
        shown = ", ".join(map(str, absent[:8])) + (", ..." if len(absent) > 8 else "")
        return (f"{where} waits in {self.collective[i]} (group {group!r}, seq {seq}) for "
                f"rank(s) {shown}, which never reach it")

    def _deadlock(self, done: int) -> DeadlockError:
        """The error for a run that stopped with ops unfinished: every stuck stream."""
        stuck = [(sid, s) for sid in range(len(self.streams))
                 if (s := self._stuck(sid)) is not None]
        lines = [s for _, s in stuck]
        body = "; ".join(lines[:6]) + (f"; ... and {len(lines) - 6} more" if len(lines) > 6 else "")
        return DeadlockError(
            f"deadlock: the simulation stopped with {self.n - done} of {self.n} ops "
            f"unfinished. {body}. Check that every rank of each group issues the same "
            "collectives in the same order, that sends match recvs, and that deps do not "
            "form a cycle.", unfinished=self.n - done, total=self.n, stuck=lines,
            ranks=sorted({int(self.stream_names[sid][0]) for sid, _ in stuck}))


def simulate(bound: Bound, options: SimOptions | None = None) -> Run:
    """Simulate a bound workload.

    Parameters:
        bound: from :func:`simcluster.placement.bind`.
        options: compute model, progress reporting, what-if slowdowns and ``freeze_gc``
            (:class:`SimOptions`).

    Returns:
        The Run.

    Raises:
        OutOfMemoryError: a device's memory would exceed its capacity.
        CollectiveMismatchError: ranks meet at one collective but disagree on it.
        DeadlockError: ops are left that can never start.
        SimulationError: another impossible simulation (a bad ``slowdown``, a forced
            algorithm that cannot run a collective, ``network.comm_sms`` that takes every
            SM).
        TopologyError: an op needs a route the cluster does not have.
    """
    options = options or SimOptions()
    if not options.freeze_gc:
        return Engine(bound, options).run()
    with _COLLECTOR.running():
        with _COLLECTOR.compiling():
            engine = Engine(bound, options)
        _COLLECTOR.freeze()  # the compiled engine too
        return engine.run()

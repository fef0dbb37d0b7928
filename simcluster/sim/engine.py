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

import contextlib
import gc
import time
from collections.abc import Generator, Iterator
from heapq import heappush
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import simpy
from simpy.events import NORMAL

from simcluster.errors import (
    CollectiveMismatchError,
    DeadlockError,
    SimulationError,
    TopologyError,
)
from simcluster.placement import Bound
from simcluster.sim.comm import CommModel, Schedule
from simcluster.sim.compute import resolve_durations
from simcluster.sim.memory import MemoryLedger
from simcluster.sim.network import FlowNetwork, FlowTag
from simcluster.sim.options import SimOptions
from simcluster.sim.result import Records, Run, assemble_run
from simcluster.topology.routing import Route, Router

# Op execution classes.
_TIMED, _COPY_FLOW, _COLLECTIVE, _P2P = 0, 1, 2, 3


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


def _col(table: pa.Table, name: str, fill: Any) -> np.ndarray:
    return table.column(name).fill_null(fill).to_numpy(zero_copy_only=False)


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
        self._rv: dict[Any, _Rendezvous] = {}
        self._compile()

    # -- compile ------------------------------------------------------------------------------

    def _compile(self) -> None:
        t = self.bound.workload.ops
        self.n = n = t.num_rows
        rank = _col(t, "rank", 0).astype(np.int64)
        kind = _col(t, "kind", "")
        self.rank = rank.tolist()
        self.names = t.column("name")
        self.op_ids = t.column("op_id")
        cls, dur = self._classify(t, rank, kind)
        sid, order, bounds = self._streams(t, rank)
        deps, notify = self._deps(t, rank, sid, order, bounds)
        self._deps_of = deps
        self._comm_keys(t, rank, kind, cls)

        alloc = _col(t, "alloc_bytes", 0).astype(np.int64)
        free = _col(t, "free_bytes", 0).astype(np.int64)
        self.streams = self._items(order, bounds, sid, rank, cls, dur, alloc, free, notify, deps,
                                   self.options.fuse_timed_ops)
        self.order = order
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

    def _classify(self, t: pa.Table, rank: np.ndarray, kind: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Execution class and duration (us; 0 for flows) of every op."""
        specs: list[Any] = []
        slot: dict[int, int] = {}
        rank_spec = np.empty(len(self.devices), dtype=np.int64)
        for r, dev in enumerate(self.devices):
            spec = self.cluster.specs[dev]
            rank_spec[r] = slot.setdefault(id(spec), len(specs))
            if rank_spec[r] == len(specs):
                specs.append(spec)
        recorded = t.column("duration_us").to_numpy(zero_copy_only=False).astype(np.float64)
        comm_bytes = _col(t, "comm_bytes", 0).astype(np.int64)
        copy_kind = _col(t, "copy_kind", "")
        dtype = t.column("dtype").fill_null("").dictionary_encode().combine_chunks()
        dur = resolve_durations(
            kind=kind, recorded=recorded, flops=_col(t, "flops", 0.0).astype(np.float64),
            nbytes=_col(t, "bytes_accessed", 0).astype(np.float64),
            comm_bytes=comm_bytes.astype(np.float64), copy_kind=copy_kind,
            dtype_code=dtype.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            dtype_names=dtype.dictionary.to_pylist(), spec_index=rank_spec[rank], specs=specs,
            model=self.options.compute,
        )
        cls = np.full(len(kind), _TIMED, dtype=np.int64)
        flow_copy = (kind == "memcpy") & (copy_kind != "D2D") & (comm_bytes > 0)
        cls[flow_copy] = _COPY_FLOW
        cls[kind == "collective"] = _COLLECTIVE
        cls[(kind == "send") | (kind == "recv")] = _P2P
        # A memcpy without a size replays its recorded duration.
        timed_copy = (kind == "memcpy") & ~flow_copy & np.isnan(dur)
        dur[timed_copy] = np.nan_to_num(recorded[timed_copy])
        # fixed_duration: the recorded duration, whatever the kind (e.g. a collective whose
        # peers are not in the workload); it runs as a timed op, with no rendezvous or flow.
        fixed = _col(t, "fixed_duration", False).astype(bool)
        cls[fixed] = _TIMED
        dur[fixed] = recorded[fixed]
        for r, factor in self.options.slowdown.items():
            if not (0 <= r < len(self.devices)) or not factor > 0:
                raise SimulationError(
                    f"--slow-rank {r}={factor}: need a rank in 0..{len(self.devices) - 1} and "
                    "a positive factor.")
            dur[(rank == r) & ((kind == "compute") | (kind == "host"))] *= factor
        self.comm_bytes = comm_bytes.tolist()
        self.copy_dir = copy_kind.tolist()
        return cls, np.nan_to_num(dur)

    @staticmethod
    def _items(order: np.ndarray, bounds: np.ndarray, sid: np.ndarray, rank: np.ndarray,
               cls: np.ndarray, dur: np.ndarray, alloc: np.ndarray, free: np.ndarray,
               notify: np.ndarray, deps: list[tuple[int, ...]], fuse: bool = True
               ) -> list[list[tuple[Any, ...]]]:
        """Per stream, its items in order: ``(index, class, alloc, free, notify, deps,
        batch)``, one per op that starts a batch.

        For a timed op, ``batch`` holds ``(index, duration, alloc, free, notify)`` of the op
        itself and of the timed ops fused after it: those that no one else can observe
        starting (no deps of their own, and memory effects ordered the same whenever they
        apply, because the rank touches memory from this stream only). The engine runs a
        batch with one wake-up, not one per op. Other items have an empty batch.
        """
        o = order
        c, d, a, f, nt = cls[o], dur[o], alloc[o], free[o], notify[o]
        s = sid[o]
        no_deps = np.fromiter((not deps[i] for i in o.tolist()), dtype=bool, count=len(o))
        # Ranks whose memory ops all sit on one stream.
        mem = (alloc > 0) | (free > 0)
        mem_streams = np.zeros(int(rank.max()) + 1 if len(rank) else 0, dtype=np.int64)
        pairs = np.unique(np.stack([rank[mem], sid[mem]]), axis=1) if mem.any() else (
            np.zeros((2, 0), dtype=np.int64))
        np.add.at(mem_streams, pairs[0], 1)
        quiet = ~mem[o] | (mem_streams[rank[o]] <= 1)
        timed = c == _TIMED
        joins = np.zeros(len(o), dtype=bool)
        joins[1:] = (timed[1:] & timed[:-1] & no_deps[1:] & quiet[1:] & quiet[:-1]
                     & (s[1:] == s[:-1]) & fuse)
        ol = o.tolist()
        heads = np.flatnonzero(~joins)
        cl = c.tolist()
        rows = list(zip(ol, cl, a.tolist(), f.tolist(), nt.tolist(), [deps[i] for i in ol]))
        tails = list(zip(ol, d.tolist(), a.tolist(), f.tolist(), nt.tolist()))
        hl = heads.tolist()
        items = [(*rows[h], tuple(tails[h:nh]) if cl[h] == _TIMED else ())
                 for h, nh in zip(hl, hl[1:] + [len(o)])]
        # Heads per stream: a stream's first op is always a head.
        cuts = np.searchsorted(heads, bounds).tolist()
        return [items[cuts[k]:cuts[k + 1]] for k in range(len(cuts) - 1)]

    def _streams(self, t: pa.Table, rank: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stream id per op, ops sorted by stream (op_id order within), stream bounds."""
        stream = t.column("stream").dictionary_encode().combine_chunks()
        scode = stream.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        uniq, sid = np.unique(rank * (len(stream.dictionary) + 1) + scode, return_inverse=True)
        order = np.argsort(sid, kind="stable")
        bounds = np.searchsorted(sid[order], np.arange(len(uniq) + 1))
        first = order[bounds[:-1]]
        names = stream.dictionary.to_pylist()
        self.stream_names = list(zip(rank[first].tolist(), [names[c] for c in scode[first]]))
        return sid, order, bounds

    def _deps(self, t: pa.Table, rank: np.ndarray, sid: np.ndarray, order: np.ndarray,
              bounds: np.ndarray) -> tuple[list[tuple[int, ...]], np.ndarray]:
        """Per op, the deps that stream order does not already guarantee (global indices),
        and whether other ops wait on it."""
        n = len(rank)
        deps: list[tuple[int, ...]] = [()] * n
        notify = np.zeros(n, dtype=bool)
        col = t.column("deps").combine_chunks()
        lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
        if not lengths.sum():
            return deps, notify
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n) - bounds[sid[order]]
        flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int64)
        owner = np.repeat(np.arange(n), lengths)
        keys = rank * (1 << 40) + _col(t, "op_id", 0).astype(np.int64)
        target = np.searchsorted(keys, rank[owner] * (1 << 40) + flat)
        cross = (sid[target] != sid[owner]) | (pos[target] > pos[owner])
        owner, target = owner[cross], target[cross]
        notify[target] = True
        if owner.size:
            cut = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            targets = target.tolist()
            for o, a, b in zip(owner[cut].tolist(), cut.tolist(),
                               np.r_[cut[1:], owner.size].tolist()):
                deps[o] = tuple(targets[a:b])
        return deps, notify

    def _comm_keys(self, t: pa.Table, rank: np.ndarray, kind: np.ndarray,
                   cls: np.ndarray) -> None:
        """Matching key, rendezvous size, collective name and root of communication ops."""
        n = len(rank)
        group = _col(t, "group", "")
        seq = _col(t, "seq", -1).astype(np.int64)
        peer = _col(t, "peer", -1).astype(np.int64)
        coll = _col(t, "collective", "")
        self.root = _col(t, "root", -1).astype(np.int64).tolist()
        self.key: list[Any] = [None] * n
        self.key_size = [0] * n
        self.collective: list[str] = [""] * n
        sizes = {g: len(r) for g, r in self.groups.items()}
        for i in np.flatnonzero(cls == _COLLECTIVE).tolist():
            self.key[i] = (group[i], int(seq[i]))
            self.key_size[i] = sizes[group[i]]
            self.collective[i] = coll[i]
        for i in np.flatnonzero(cls == _P2P).tolist():
            send = kind[i] == "send"
            src, dst = (rank[i], peer[i]) if send else (peer[i], rank[i])
            self.key[i] = ("p2p", int(src), int(dst), int(seq[i]))
            self.key_size[i] = 2
            self.collective[i] = str(kind[i])

    # -- communication ------------------------------------------------------------------------

    def _run(self, rv: _Rendezvous, sched: Schedule, tag: FlowTag
             ) -> Generator[simpy.Event, Any, None]:
        """Run a schedule: fixed cost, then each phase's flows and latency steps."""
        env = self.env
        rv.started = env.now
        label = sched.label
        for i in rv.arrived:
            self.algorithm[i] = label
        if sched.fixed_us > 0:
            yield env.timeout(sched.fixed_us)
        for k, ph in enumerate(sched.phases):
            yield self.net.transfer(ph.routes, ph.nbytes, coupled=ph.coupled, weights=ph.weights,
                                    tag=replace(tag, algorithm=label, phase=k))
            if ph.latency_us > 0:
                yield env.timeout(ph.latency_us)
        rv.done.succeed()

    def _run_collective(self, rv: _Rendezvous) -> Generator[simpy.Event, Any, None]:
        first = rv.arrived[0]
        self._check_match(rv)
        group, seq = self.key[first]
        name = self.collective[first]
        sched = self.comm.collective(group, name, self.comm_bytes[first], self.root[first])
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
        ledger = self.ledger
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
                done_at[i] = now
                ev = waiters.pop(i, None)
                if ev is not None:
                    ev.succeed()

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

@contextlib.contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the cyclic garbage collector from rescanning the millions of long-lived objects
    a large replay holds (op tuples, route arrays, graph dicts): a full collection over them
    costs ~0.1 s each at 4096 ranks. ``gc.freeze`` parks the objects that exist now in a
    permanent generation; reference counting still frees them as usual. Unfrozen on exit
    unless the caller had frozen objects itself.
    """
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if frozen_before == 0:
            gc.unfreeze()


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
            algorithm that cannot run a collective).
        TopologyError: an op needs a route the cluster does not have.
    """
    options = options or SimOptions()
    if not options.freeze_gc:
        return Engine(bound, options).run()
    with _long_lived_objects_frozen():
        engine = Engine(bound, options)
        gc.freeze()  # the compiled engine too
        return engine.run()

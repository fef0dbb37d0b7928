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

Per op the engine does O(1) SimPy events; per collective O(ranks) work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import simpy

from simcluster.errors import SimulationError, TopologyError
from simcluster.placement import Bound
from simcluster.sim import collectives
from simcluster.sim.compute import ComputeModel, resolve_durations
from simcluster.sim.memory import MemoryLedger
from simcluster.sim.network import FlowNetwork
from simcluster.sim.result import Run
from simcluster.topology.routing import Router

# Op execution classes.
_TIMED, _COPY_FLOW, _COLLECTIVE, _P2P = 0, 1, 2, 3


@dataclass(frozen=True)
class SimOptions:
    """Knobs of one simulation.

    Attributes:
        compute: the roofline used for ops without a recorded duration.
        progress: called as ``progress(ops_done, ops_total)`` every ``progress_every`` events.
        progress_every: events between progress calls.
    """

    compute: ComputeModel = field(default_factory=ComputeModel)
    progress: Callable[[int, int], None] | None = None
    progress_every: int = 50_000


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
        self.router = Router(bound.cluster)
        self.env = simpy.Environment()
        self.net = FlowNetwork(self.env, self.cluster.bandwidth_Bpus)
        self._compile()

    # -- compile ------------------------------------------------------------------------------

    def _compile(self) -> None:
        wl = self.bound.workload
        t = wl.ops
        n = t.num_rows
        self.n = n
        cluster = self.cluster
        devices = self.bound.placement.devices
        self.devices = devices
        rank = _col(t, "rank", 0).astype(np.int64)
        kind = _col(t, "kind", "")
        self.rank = rank.tolist()

        # Accelerator spec per op, as an index into a small list of distinct specs.
        spec_list: list[Any] = []
        spec_slot: dict[int, int] = {}
        rank_spec = np.empty(len(devices), dtype=np.int64)
        for r, dev in enumerate(devices):
            spec = cluster.specs[dev]
            rank_spec[r] = spec_slot.setdefault(id(spec), len(spec_list))
            if rank_spec[r] == len(spec_list):
                spec_list.append(spec)
        recorded = t.column("duration_us").to_numpy(zero_copy_only=False).astype(np.float64)
        comm_bytes = _col(t, "comm_bytes", 0).astype(np.int64)
        copy_kind = _col(t, "copy_kind", "")
        dur = resolve_durations(
            kind=kind, recorded=recorded, flops=_col(t, "flops", 0.0).astype(np.float64),
            nbytes=_col(t, "bytes_accessed", 0).astype(np.float64),
            comm_bytes=comm_bytes.astype(np.float64), copy_kind=copy_kind,
            dtype=_col(t, "dtype", ""), spec_index=rank_spec[rank], specs=spec_list,
            model=self.options.compute,
        )

        # Execution class per op.
        cls = np.full(n, _TIMED, dtype=np.int64)
        flow_copy = (kind == "memcpy") & (copy_kind != "D2D") & (comm_bytes > 0)
        cls[flow_copy] = _COPY_FLOW
        cls[kind == "collective"] = _COLLECTIVE
        cls[(kind == "send") | (kind == "recv")] = _P2P
        timed_copy = (kind == "memcpy") & ~flow_copy
        dur[timed_copy & np.isnan(dur)] = np.nan_to_num(recorded[timed_copy & np.isnan(dur)])
        self.cls = cls.tolist()
        self.dur = np.nan_to_num(dur).tolist()
        self.comm_bytes = comm_bytes.tolist()
        self.alloc = _col(t, "alloc_bytes", 0).astype(np.int64).tolist()
        self.free = _col(t, "free_bytes", 0).astype(np.int64).tolist()
        self.names = t.column("name")
        self.op_ids = t.column("op_id")

        # Streams: ops of one (rank, stream) in op_id order (rows are sorted by rank, op_id).
        stream = t.column("stream").dictionary_encode().combine_chunks()
        scode = stream.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        skey = rank * (len(stream.dictionary) + 1) + scode
        uniq, sid = np.unique(skey, return_inverse=True)
        order = np.argsort(sid, kind="stable")
        bounds = np.searchsorted(sid[order], np.arange(len(uniq) + 1))
        self.streams = [order[bounds[s]:bounds[s + 1]].tolist() for s in range(len(uniq))]
        self.stream_names = [
            (int(rank[ops[0]]), str(stream.dictionary[int(scode[ops[0]])])) for ops in self.streams
        ]
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n) - bounds[sid[order]]

        # Dependencies that stream order does not already guarantee.
        self.deps: list[tuple[int, ...]] = [()] * n
        deps_col = t.column("deps").combine_chunks()
        lengths = pc.list_value_length(deps_col).fill_null(0).to_numpy(zero_copy_only=False)
        needs_event = np.zeros(n, dtype=bool)
        if lengths.sum():
            flat = pc.list_flatten(deps_col).to_numpy(zero_copy_only=False).astype(np.int64)
            owner = np.repeat(np.arange(n), lengths)
            op_id = _col(t, "op_id", 0).astype(np.int64)
            keys = rank * (1 << 40) + op_id
            target = np.searchsorted(keys, rank[owner] * (1 << 40) + flat)
            cross = (sid[target] != sid[owner]) | (pos[target] > pos[owner])
            owner, target = owner[cross], target[cross]
            needs_event[target] = True
            if owner.size:
                cut = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
                for a, b in zip(cut, np.r_[cut[1:], owner.size]):
                    self.deps[int(owner[a])] = tuple(target[a:b].tolist())
        self.done: list[simpy.Event | None] = [
            self.env.event() if e else None for e in needs_event.tolist()
        ]

        # Communication matching keys.
        group = _col(t, "group", "")
        seq = _col(t, "seq", -1).astype(np.int64)
        peer = _col(t, "peer", -1).astype(np.int64)
        coll = _col(t, "collective", "")
        root = _col(t, "root", -1).astype(np.int64)
        self.key: list[Any] = [None] * n
        self.collective: list[str] = [""] * n
        self.root = root.tolist()
        for i in np.flatnonzero(cls == _COLLECTIVE).tolist():
            self.key[i] = (group[i], int(seq[i]))
            self.collective[i] = coll[i]
        for i in np.flatnonzero(cls == _P2P).tolist():
            send = kind[i] == "send"
            src, dst = (rank[i], peer[i]) if send else (peer[i], rank[i])
            self.key[i] = ("p2p", int(src), int(dst), int(seq[i]))
            self.collective[i] = str(kind[i])
        self.copy_dir: list[str] = copy_kind.tolist()

        self.groups = wl.groups
        self.ring_order: dict[str, tuple[int, ...]] = {}
        self._routes_cache: dict[tuple[Any, ...], list[tuple[list[np.ndarray], float]]] = {}
        self._rv: dict[Any, _Rendezvous] = {}
        self.start = [0.0] * n
        self.end = [0.0] * n
        self.wait = [0.0] * n
        self.ops_done = 0
        self.waiting: list[tuple[int, str, Any] | None] = [None] * len(self.streams)

        capacity = [cluster.specs[d].hbm_bytes for d in devices]
        labels = [f"rank {r} (device {d}, {cluster.specs[d].model})" for r, d in enumerate(devices)]
        self.ledger = MemoryLedger(capacity, labels)
        self.overhead = float(cluster.network.collective_overhead_us)

    # -- communication ------------------------------------------------------------------------

    def _ring(self, group: str) -> tuple[int, ...]:
        """Ranks of ``group`` in ring order: by accelerator topology order, so a ring runs
        through a server before it leaves it (NCCL-style)."""
        hit = self.ring_order.get(group)
        if hit is None:
            idx = self.cluster.accelerator_index
            hit = tuple(sorted(self.groups[group], key=lambda r: idx[self.devices[r]]))
            self.ring_order[group] = hit
        return hit

    def _phase_routes(
        self, key: tuple[Any, ...], ranks: tuple[int, ...], phases: list[collectives.Phase]
    ) -> list[tuple[list[np.ndarray], float]]:
        """Per phase: the flows' routes and the latency of one step (slowest hop, us)."""
        hit = self._routes_cache.get(key)
        if hit is None:
            hit = []
            for ph in phases:
                routes = [
                    self.router.route(self.devices[ranks[s]], self.devices[ranks[d]])
                    for s, d in zip(ph.src.tolist(), ph.dst.tolist())
                ]
                alpha = max((r.latency_us for r in routes), default=0.0)
                hit.append(([r.links for r in routes], alpha))
            self._routes_cache[key] = hit
        return hit

    def _run_collective(self, first: int, rv: _Rendezvous) -> Generator[simpy.Event, Any, None]:
        env = self.env
        rv.started = env.now
        group = self.key[first][0]
        name = self.collective[first]
        ranks = self._ring(group)
        root_rank = self.root[first]
        root = ranks.index(root_rank) if root_rank in ranks else 0
        phases = collectives.plan(name, self.comm_bytes[first], len(ranks), root)
        if self.overhead > 0:
            yield env.timeout(self.overhead)
        routes = self._phase_routes((group, name, root), ranks, phases)
        for ph, (links, alpha) in zip(phases, routes):
            yield self.net.transfer(links, ph.nbytes, tag=(group, self.key[first][1]),
                                    coupled=ph.coupled)
            if ph.latency_steps and alpha > 0:
                yield env.timeout(ph.latency_steps * alpha)
        rv.done.succeed()

    def _run_p2p(self, rv: _Rendezvous) -> Generator[simpy.Event, Any, None]:
        env = self.env
        rv.started = env.now
        i = rv.arrived[0]
        _, src, dst, _ = self.key[i]
        route = self.router.route(self.devices[src], self.devices[dst])
        if self.overhead > 0:
            yield env.timeout(self.overhead)
        yield self.net.transfer([route.links], [self.comm_bytes[i]], tag=self.key[i])
        if route.latency_us > 0:
            yield env.timeout(route.latency_us)
        rv.done.succeed()

    def _check_match(self, rv: _Rendezvous) -> None:
        """All ranks at one (group, seq) must call the same collective with the same size."""
        first = rv.arrived[0]
        for i in rv.arrived[1:]:
            if (self.collective[i], self.comm_bytes[i], self.root[i]) != (
                self.collective[first], self.comm_bytes[first], self.root[first]
            ):
                raise SimulationError(
                    f"mismatched collective in group {self.key[i][0]!r} (seq {self.key[i][1]}): "
                    f"{self._describe(first)} is {self.collective[first]} of "
                    f"{self.comm_bytes[first]} B but {self._describe(i)} is "
                    f"{self.collective[i]} of {self.comm_bytes[i]} B. The ranks of a group must "
                    "issue the same collectives, with the same sizes, in the same order."
                )

    def _comm(self, i: int, sid: int) -> Generator[simpy.Event, Any, None]:
        key = self.key[i]
        rv = self._rv.get(key)
        if rv is None:
            size = 2 if self.cls[i] == _P2P else len(self.groups[key[0]])
            rv = self._rv[key] = _Rendezvous(size=size, done=self.env.event())
        rv.arrived.append(i)
        arrived_at = self.env.now
        if len(rv.arrived) == rv.size:
            del self._rv[key]
            if self.cls[i] == _P2P:
                self._check_pair(rv)
                yield from self._run_p2p(rv)
            else:
                self._check_match(rv)
                yield from self._run_collective(rv.arrived[0], rv)
        else:
            self.waiting[sid] = (i, "comm", key)
            yield rv.done
            self.waiting[sid] = None
        self.wait[i] = rv.started - arrived_at

    def _check_pair(self, rv: _Rendezvous) -> None:
        a, b = rv.arrived
        if self.comm_bytes[a] != self.comm_bytes[b]:
            raise SimulationError(
                f"send/recv sizes differ: {self._describe(a)} moves {self.comm_bytes[a]} B but "
                f"{self._describe(b)} moves {self.comm_bytes[b]} B; a send and its recv must "
                "have the same comm_bytes."
            )

    def _copy(self, i: int) -> Generator[simpy.Event, Any, None]:
        dev = self.devices[self.rank[i]]
        mem = self.router.nearest(dev, "memory")
        if mem is None:
            raise TopologyError(
                f"{self.cluster.source}: {self._describe(i)} copies between host and device but "
                f"no memory node is reachable from {dev!r}; add a device of kind memory linked "
                "to it (templates have one per CPU)."
            )
        src, dst = (mem, dev) if self.copy_dir[i] == "H2D" else (dev, mem)
        route = self.router.route(src, dst)
        yield self.net.transfer([route.links], [self.comm_bytes[i]], tag=("copy", i))
        if route.latency_us > 0:
            yield self.env.timeout(route.latency_us)

    # -- the stream process -------------------------------------------------------------------

    def _stream(self, sid: int, ops: list[int]) -> Generator[simpy.Event, Any, None]:
        env = self.env
        cls, dur, deps, done = self.cls, self.dur, self.deps, self.done
        start, end, alloc, free = self.start, self.end, self.alloc, self.free
        ledger = self.ledger
        slot = self.rank[ops[0]]
        for i in ops:
            for d in deps[i]:
                ev = done[d]
                if not ev.triggered:  # type: ignore[union-attr]
                    self.waiting[sid] = (i, "dep", d)
                    yield ev  # type: ignore[misc]
            self.waiting[sid] = None
            start[i] = env.now
            if alloc[i] and not ledger.alloc(slot, alloc[i]):
                raise ledger.oom(slot, alloc[i], self._describe(i))
            c = cls[i]
            if c == _TIMED:
                if dur[i] > 0:
                    yield env.timeout(dur[i])
            elif c == _COPY_FLOW:
                yield from self._copy(i)
            else:
                yield from self._comm(i, sid)
            end[i] = env.now
            if free[i]:
                ledger.free(slot, free[i])
            ev = done[i]
            if ev is not None:
                ev.succeed()
            self.ops_done += 1

    # -- run ----------------------------------------------------------------------------------

    def _describe(self, i: int) -> str:
        return f"rank {self.rank[i]} op {self.op_ids[i].as_py()} {self.names[i].as_py()!r}"

    def run(self) -> Run:
        """Run to completion and return the Run.

        Raises:
            SimulationError: out of memory, mismatched collectives, or a deadlock.
        """
        t0 = time.perf_counter()
        for sid, ops in enumerate(self.streams):
            self.env.process(self._stream(sid, ops))
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
                    progress(self.ops_done, self.n)
        except simpy.core.EmptySchedule:
            pass
        if progress is not None:
            progress(self.ops_done, self.n)
        if self.ops_done < self.n:
            raise SimulationError(self._deadlock_report())
        return self._result(time.perf_counter() - t0)

    def _deadlock_report(self) -> str:
        lines = []
        for sid, w in enumerate(self.waiting):
            if w is None:
                continue
            i, what, arg = w
            rank, stream = self.stream_names[sid]
            if what == "dep":
                lines.append(f"rank {rank} stream {stream!r}: {self._describe(i)} waits for "
                             f"op {self.op_ids[arg].as_py()} {self.names[arg].as_py()!r}")
                continue
            rv = self._rv.get(arg)
            here = {self.rank[j] for j in rv.arrived} if rv else set()
            if arg[0] == "p2p":
                _, src, dst, seq = arg
                other = dst if rank == src else src
                lines.append(f"rank {rank} stream {stream!r}: {self._describe(i)} waits for rank "
                             f"{other} to post the matching {'recv' if rank == src else 'send'} "
                             f"(seq {seq})")
            else:
                group, seq = arg
                absent = sorted(set(self.groups[group]) - here)
                shown = ", ".join(map(str, absent[:8])) + (", ..." if len(absent) > 8 else "")
                lines.append(f"rank {rank} stream {stream!r}: {self._describe(i)} waits in "
                             f"{self.collective[i]} (group {group!r}, seq {seq}) for rank(s) "
                             f"{shown}, which never reach it")
        total = len(lines)
        body = "; ".join(lines[:6]) + (f"; ... and {total - 6} more" if total > 6 else "")
        return (f"deadlock: the simulation stopped with {self.n - self.ops_done} of "
                f"{self.n} ops unfinished. {body}. Check that every rank of each group issues "
                "the same collectives in the same order, that sends match recvs, and that deps "
                "do not form a cycle.")

    def _result(self, wall_s: float) -> Run:
        t = self.bound.workload.ops
        rank = t.column("rank")
        devices = pa.array(self.devices, pa.string())
        start = np.asarray(self.start)
        end = np.asarray(self.end)
        timeline = pa.table({
            "rank": rank,
            "stream": t.column("stream"),
            "op_id": t.column("op_id"),
            "name": t.column("name"),
            "kind": t.column("kind"),
            "device": devices.take(rank),
            "step": t.column("step"),
            "start_us": pa.array(start),
            "end_us": pa.array(end),
            "wait_us": pa.array(np.asarray(self.wait)),
            "flops": t.column("flops"),
            "bytes_accessed": t.column("bytes_accessed"),
            "comm_bytes": t.column("comm_bytes"),
            "collective": t.column("collective"),
            "group": t.column("group"),
        })
        makespan = float(end.max()) if self.n else 0.0
        net = self.net
        bw = self.cluster.bandwidth_Bpus
        links = self.cluster.links_table()
        util = net.link_bytes / (bw * makespan) if makespan > 0 else np.zeros_like(bw)
        for name, arr in (
            ("bytes", np.rint(net.link_bytes).astype(np.int64)),
            ("busy_us", net.link_busy_us),
            ("utilization", util),
            ("saturated_us", net.link_saturated_us),
            ("max_flows", net.link_max_flows),
        ):
            links = links.append_column(name, pa.array(arr))
        led = self.ledger
        memory = pa.table({
            "rank": pa.array(np.arange(len(self.devices), dtype=np.int32)),
            "device": devices,
            "model": pa.array([self.cluster.specs[d].model for d in self.devices]),
            "capacity_bytes": pa.array(led.capacity, pa.int64()),
            "peak_bytes": pa.array(led.peak, pa.int64()),
        })
        wl = self.bound.workload
        info = {
            "workload": wl.meta.name,
            "cluster": self.cluster.name,
            "ranks": wl.num_ranks,
            "ops": self.n,
            "streams": len(self.streams),
            "flows": net.flows_started,
            "rate_recomputations": net.recomputes,
            "placement": self.bound.placement.strategy,
        }
        return Run(timeline=timeline, links=links, memory=memory, makespan_us=makespan,
                   info=info, wall_s=wall_s)


def simulate(bound: Bound, options: SimOptions | None = None) -> Run:
    """Simulate a bound workload.

    Parameters:
        bound: from :func:`simcluster.placement.bind`.
        options: compute model and progress reporting.

    Returns:
        The Run.

    Raises:
        SimulationError: out of memory, mismatched collectives, or a deadlock.
        TopologyError: an op needs a route the cluster does not have.
    """
    return Engine(bound, options).run()

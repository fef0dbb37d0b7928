"""The communication model: which algorithm and protocol a collective uses, and its flows.

For a group, :class:`CommModel` builds the :class:`~simcluster.sim.collectives.Layout`
(ranks by server, rails, NVLS switches, SHARP aggregation trees). Per (group, collective,
algorithm) it builds the plan once and resolves its routes: PXN waypoints become
concatenated routes. It then computes each phase's *isolated* time per byte, from the
max-min rates its flows would get alone on the network (the flows of a pipelined phase
weighted by their shares, so that they move them at one pace). A collective of ``S`` bytes
with algorithm ``a`` and protocol ``q`` then costs, in isolation,

    overhead + scale * (base[a][q] + sum over phases of steps x step[a][hw][q])
             + sum over phases of unit_time x S / (bandwidth_factor[a][q] x efficiency)

and the model picks the (algorithm, protocol) with the least cost, as NCCL's tuner does, unless
the topology or the caller forces them, or the cluster's collective library fixes them for
that size (RCCL's MSCCL windows). The tables (``base``, ``step``, ``bandwidth_factor``), the
protocols and those windows are the library's (``sim/libraries.py``: NCCL's, or RCCL's per
architecture). The candidates, their plans and their table rows
(``a``'s ``Tuning``) come from the algorithm registry, ``sim/algorithms.py``. The engine then
runs the chosen :class:`Schedule` on the flow network, where contention with other traffic can
make it slower than the estimate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from simcluster.errors import SimulationError
from simcluster.sim import algorithms as algs
from simcluster.sim import collectives as coll
from simcluster.sim import libraries
from simcluster.sim import protocols as proto
from simcluster.sim.aggregation import aggregation_trees
from simcluster.sim.network import maxmin_rates
from simcluster.sim.torus import torus_grid
from simcluster.topology.cluster import Cluster
from simcluster.topology.routing import Router

_NET_KINDS = frozenset({"ib", "ethernet"})
_PCIE_KINDS = frozenset({"pcie", "socket", "memory"})
# Schedules kept for reuse: up to this many flows each, and this many in all.
_MEMO_FLOWS = 4096
_MEMO_SCHEDULES = 1 << 16


@dataclass(frozen=True)
class ScheduledPhase:
    """A phase ready to run: flows' routes, bytes and weights (how much rate each gets under
    max-min sharing: the identical flows it stands for, scaled in a coupled phase by its
    share over the largest), then the latency to wait (us); ``counts``: the identical flows
    each stands for, where they differ from the weights."""

    routes: list[np.ndarray]
    nbytes: np.ndarray
    latency_us: float
    coupled: bool
    weights: np.ndarray | None = None
    counts: np.ndarray | None = None


@dataclass(frozen=True)
class Schedule:
    """What one collective (or send/recv) does on the network."""

    algorithm: str
    protocol: str
    fixed_us: float
    phases: list[ScheduledPhase]
    estimate_us: float

    @property
    def label(self) -> str:
        return f"{self.algorithm}/{self.protocol}"


@dataclass(frozen=True)
class _ResolvedPhase:
    routes: list[np.ndarray]
    share: np.ndarray  # per flow it stands for
    weight: np.ndarray  # identical flows merged into each
    coupled: bool
    efficiency: float
    intra_steps: int
    inter_steps: int
    intra_hw: str
    unit_us: float  # isolated time per byte of S at full protocol bandwidth
    pace: np.ndarray  # max-min weight: ``weight``, times share / max share when coupled
    latency_us: float = 0.0  # beyond the steps, before latency_scale


def _pace(share: np.ndarray, weight: np.ndarray, coupled: bool) -> np.ndarray:
    """Max-min weights under which the flows of a coupled phase move their shares at one
    pace: a flow with half the largest share needs half the rate (equal shares: ``weight``)."""
    if not coupled or not len(share) or share.min() == share.max():
        return weight
    return weight * share / share.max()


def _merge(routes: list[np.ndarray], share: np.ndarray, counts: list[int] | None = None
           ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Merge flows with the same route and share into one weighted flow (exact under
    weighted max-min sharing; the channels of a ring repeat most hops inside servers).
    ``counts``: how many flows each given one already stands for (default one each)."""
    index: dict[tuple[bytes, float], int] = {}
    out_routes: list[np.ndarray] = []
    out_share: list[float] = []
    weight: list[int] = []
    for k, (route, sh) in enumerate(zip(routes, share.tolist())):
        key = (route.tobytes(), sh)
        c = 1 if counts is None else counts[k]
        j = index.get(key)
        if j is None:
            index[key] = len(out_routes)
            out_routes.append(route)
            out_share.append(sh)
            weight.append(c)
        else:
            weight[j] += c
    return out_routes, np.array(out_share), np.array(weight, dtype=np.float64)


def _distinct_paths(paths: list[tuple[str, ...]], share: np.ndarray
                    ) -> tuple[list[tuple[str, ...]], np.ndarray, list[int]]:
    """The distinct (path, share) pairs of a plan's flows, in order of first appearance,
    and how many flows each stands for: a path is routed once, not once per channel or tree
    that repeats it (the same path has the same route, so :func:`_merge` of the distinct
    ones with these counts gives what it gives for all the flows)."""
    # A Counter keeps its keys in order of first appearance and counts in C.
    seen = Counter(zip(paths, share.tolist()))
    return [p for p, _ in seen], np.array([sh for _, sh in seen]), list(seen.values())


class CommModel:
    """Plans, costs and schedules collectives and send/recv on one cluster."""

    def __init__(self, cluster: Cluster, router: Router, devices: tuple[str, ...],
                 groups: dict[str, tuple[int, ...]]) -> None:
        self.cluster = cluster
        self.router = router
        self.devices = devices
        self.groups = groups
        self.library = libraries.library_for(cluster)
        self.profile = self.library.profile(cluster.specs.values())
        self.tables = self.profile.tables
        self.params = libraries.effective_network(cluster, self.library)
        self.capacity = cluster.capacity_Bpus
        self._layouts: dict[str, coll.Layout] = {}
        self._resolved: dict[tuple[Any, ...], list[_ResolvedPhase]] = {}
        self._pairs: dict[tuple[Any, ...], list[tuple[list[np.ndarray], np.ndarray,
                                                      np.ndarray]] | None] = {}
        # Schedules already made, by their arguments: a training step repeats the same
        # collectives and sends (GPT-3 on 1,024 GPUs: 93k collectives, 35k sends).
        self._schedules: dict[tuple[Any, ...], Schedule] = {}
        self._sharp = any(bool(a.get("sharp")) for _, a in cluster.graph.nodes(data=True))

    # -- layouts ------------------------------------------------------------------------------

    def layout(self, group: str) -> coll.Layout:
        """The group's ranks in topology order, grouped by server."""
        hit = self._layouts.get(group)
        if hit is None:
            hit = self.layout_of([self.devices[r] for r in self.groups[group]])
            self._layouts[group] = hit
        return hit

    def layout_of(self, devices: list[str]) -> coll.Layout:
        """Layout of arbitrary accelerators (ordered by topology order)."""
        c = self.cluster
        order = sorted(devices, key=c.accelerator_index.__getitem__)
        hosts: dict[str | None, list[int]] = {}
        for pos, dev in enumerate(order):
            # Host-less explicit accelerators count as one server together.
            hosts.setdefault(c.host_of(dev), []).append(pos)
        rails = []
        for dev in order:
            nic = c.graph.nodes[dev].get("nic")
            host = c.host_of(dev)
            rails.append(nic[len(host) + 1:] if nic and host and nic.startswith(host + "/")
                         else nic)
        switches = tuple(self._nvls_switch([order[i] for i in h]) for h in hosts.values())
        rings = tuple(self._mesh_rings([order[i] for i in h], h) for h in hosts.values())
        layout = coll.Layout(devices=tuple(order), hosts=tuple(tuple(h) for h in hosts.values()),
                             rails=tuple(rails), nvls_switch=switches,
                             rings=rings if any(rings) else (),
                             torus=torus_grid(c, order))
        if self._sharp:
            layout = replace(layout, sharp=aggregation_trees(c, self.router, layout))
        return layout

    def _mesh_rings(self, devices: list[str], positions: list[int]
                    ) -> tuple[tuple[int, ...], ...] | None:
        """The server's rings over direct accelerator links (as positions), if its ranks have
        such links and a ring closes over them; None otherwise (a switch, or PCIe only)."""
        local = {d: k for k, d in enumerate(devices)}
        arcs = tuple(sorted(
            (k, local[v], float(self.capacity[e["id"]]))
            for k, d in enumerate(devices) for v, e in self.cluster.graph.succ[d].items()
            if v in local))
        if not arcs:
            return None
        rings = coll.mesh_rings(len(devices), arcs)
        return tuple(tuple(positions[k] for k in r) for r in rings) or None

    def _nvls_switch(self, devices: list[str]) -> str | None:
        """An NVSwitch every device links to directly, if all support in-switch reduction."""
        c = self.cluster
        if not self.params.nvls or not all(c.specs[d].nvls for d in devices):
            return None
        g = c.graph
        common = None
        for d in devices:
            sw = {n for n in g.succ[d] if g.nodes[n].get("role") == "nvswitch"}
            common = sw if common is None else common & sw
        return min(common) if common else None

    # -- planning -----------------------------------------------------------------------------

    def _route(self, path: tuple[str, ...]) -> np.ndarray:
        if len(path) == 2:
            return self.router.route(path[0], path[1]).links
        return np.concatenate([self.router.route(a, b).links for a, b in zip(path, path[1:])])

    def _hw(self, routes: list[np.ndarray]) -> str:
        """Hardware class of the intra-server steps: ``pcie`` if any route crosses PCIe."""
        kinds = self.cluster.link_kind
        for r in routes:
            ks = {kinds[i] for i in r.tolist()}
            if ks & _NET_KINDS:
                continue
            if ks & _PCIE_KINDS:
                return "pcie"
        return "nvlink"

    def resolved(self, key: tuple[Any, ...], layout: coll.Layout, algorithm: str,
                 collective: str, root: int = 0) -> list[_ResolvedPhase]:
        """The plan's phases with routes and isolated time per byte (cached under ``key``)."""
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        phases = algs.plan(algorithm, collective, layout, root=root, pxn=self.params.pxn,
                           nvls_efficiency=self.params.nvls_efficiency)
        out = []
        for ph in phases:
            paths, share, counts = _distinct_paths(ph.paths, ph.share)
            routes, share, weight = _merge([self._route(p) for p in paths], share, counts)
            pace = _pace(share, weight, ph.coupled)
            out.append(_ResolvedPhase(
                routes=routes, share=share, weight=weight, coupled=ph.coupled,
                efficiency=ph.efficiency, intra_steps=ph.intra_steps, inter_steps=ph.inter_steps,
                intra_hw=self._hw(routes), pace=pace, latency_us=ph.latency_us,
                unit_us=self._unit_time(routes, share, ph.coupled, weight, pace),
            ))
        self._resolved[key] = out
        return out

    def _unit_time(self, routes: list[np.ndarray], share: np.ndarray, coupled: bool,
                   weight: np.ndarray, pace: np.ndarray) -> float:
        """Time (us) per byte of S for the phase's flows alone on the network."""
        keep = [k for k, r in enumerate(routes) if len(r) and share[k] > 0]
        if not keep:
            return 0.0
        rs = [routes[k] for k in keep]
        lengths = np.fromiter(map(len, rs), dtype=np.int64, count=len(rs))
        pair_link = np.concatenate(rs).astype(np.int64)
        pair_flow = np.repeat(np.arange(len(rs)), lengths)
        coupling = np.zeros(len(rs), dtype=np.int64) if coupled else None
        rates = maxmin_rates(pair_flow, pair_link, len(rs), self.capacity, coupling, pace[keep])
        return float(np.max(share[keep] * weight[keep] / rates))

    # -- costing and scheduling ---------------------------------------------------------------

    def _protocols(self, tuning: proto.Tuning, phases: list[_ResolvedPhase]
                   ) -> tuple[str, ...]:
        # The library's protocols (RCCL: no LL128); an algorithm it cannot run otherwise keeps
        # its own.
        allowed = tuple(q for q in tuning.protocols if q in self.profile.protocols) or (
            tuning.protocols)
        # LL128 runs only where the steps inside servers are NVLink (NCCL enables it there).
        if any(ph.intra_steps and ph.intra_hw != "nvlink" for ph in phases):
            allowed = tuple(q for q in allowed if q != "LL128")
        forced = self.params.protocol
        if forced != "auto":
            return (forced,) if forced in allowed else allowed[-1:]
        return allowed

    def _latency(self, tuning: proto.Tuning, protocol: str, ph: _ResolvedPhase) -> float:
        s = self.params.latency_scale * self.params.step_latency_scale.get(protocol, 1.0)
        lat = ph.intra_steps * self.tables.step_latency_us(tuning.table, ph.intra_hw, protocol)
        lat += (ph.inter_steps * self.params.net_step_latency_scale
                * self.tables.step_latency_us(tuning.table, "net", protocol))
        return s * (lat + ph.latency_us)

    def _base(self, tuning: proto.Tuning, protocol: str) -> float:
        """Fixed cost of a call: the system's overhead plus the algorithm's base latency."""
        base = (tuning.base_latency(self.params, protocol) if tuning.base_latency is not None
                else self.tables.base_latency_us(tuning.table, protocol)
                + self.params.protocol_overhead_us.get(protocol, 0.0))
        return self.params.collective_overhead_us + self.params.latency_scale * base

    def _pipeline(self, tuning: proto.Tuning, ph: _ResolvedPhase, bw: float, size: float,
                  ranks: int) -> tuple[float, float]:
        """(Factor on the phase's bytes, fill in us) of the algorithm's chunking."""
        if tuning.pipeline is None:
            return 1.0, 0.0
        return tuning.pipeline(self.params, ranks, size, ph.unit_us / (bw * ph.efficiency))

    def bandwidth(self, tuning: proto.Tuning, protocol: str, phases: list[_ResolvedPhase],
                  collective: str, n_hosts: int, ranks: int) -> float:
        """The table's bandwidth factor, lowered where NCCL caps the protocol (LL's
        ``llMaxBw``) so that the call moves ``S x proto.nccl_bus_bytes`` bytes at most at
        the cap's GB/s (1e3 bytes per us)."""
        bw = self.tables.bandwidth_factor(tuning.table, protocol, collective, n_hosts)
        cap = self.tables.ll_cap_GBps(tuning.table, protocol, self.profile.arch, n_hosts)
        if cap is None or ranks < 2:
            return bw
        per_byte = sum(ph.unit_us / (bw * ph.efficiency) for ph in phases)
        capped = proto.nccl_bus_bytes(tuning.table, collective, ranks) / (cap * 1e3)
        return bw if per_byte <= 0 else min(bw, bw * per_byte / capped)

    def estimate_us(self, tuning: proto.Tuning, protocol: str, phases: list[_ResolvedPhase],
                    collective: str, size: float, n_hosts: int, ranks: int) -> float:
        """Isolated cost of a plan with ``protocol`` for ``size`` bytes (us), with an
        algorithm's ``tuning``, on a group of ``ranks`` over ``n_hosts`` servers."""
        bw = self.bandwidth(tuning, protocol, phases, collective, n_hosts, ranks)
        t = self._base(tuning, protocol)
        for ph in phases:
            stretch, fill = self._pipeline(tuning, ph, bw, size, ranks)
            t += self._latency(tuning, protocol, ph) + fill
            t += ph.unit_us * size * stretch / (bw * ph.efficiency)
        return t

    def _candidates(self, collective: str, layout: coll.Layout, forced: str | None
                    ) -> list[str]:
        if forced and forced != "auto":
            if not algs.applicable(forced, collective, layout):
                needs = algs.get_algorithm(forced).needs
                raise SimulationError(
                    f"algorithm {forced!r} cannot run {collective} on {layout.p} ranks over "
                    f"{layout.n_hosts} server(s){f' (it needs {needs})' if needs else ''}; "
                    f"use one of {', '.join(self._applicable(collective, layout))} or auto."
                )
            return [forced]
        return [a for a in self._applicable(collective, layout)
                if algs.get_algorithm(a).automatic(self.params)]

    @staticmethod
    def _applicable(collective: str, layout: coll.Layout) -> list[str]:
        """The registered algorithms that can run ``collective`` on ``layout``, in order."""
        return [a for a in algs.algorithms_for(collective)
                if algs.applicable(a, collective, layout)]

    def collective(self, group: str, collective: str, size: int, root_rank: int = -1,
                   algorithm: str | None = None, splits: np.ndarray | None = None) -> Schedule:
        """Schedule ``collective`` of ``size`` bytes on ``group``.

        ``algorithm`` overrides the topology's choice (``network.algorithm``) when given.
        ``splits`` (an all_to_all's ``p x p`` bytes, sender by receiver in the group's rank
        order: an uneven all-to-allv) gives each pair its own bytes; the algorithm and
        protocol are still chosen by ``size``.
        The even schedule depends on nothing but the other arguments, so each is made once
        (``_keep``); splits only re-weigh its flows.
        """
        key = ("c", group, collective, size, root_rank, algorithm)
        sched = self._schedules.get(key) or self._keep(
            key, self._collective(group, collective, size, root_rank, algorithm))
        if splits is None or collective != "all_to_all" or size <= 0:
            return sched
        layout = self.layout(group)
        pairs = self._pair_plan(group, layout, sched.algorithm)
        return sched if pairs is None else self._per_pair(group, layout, sched, pairs,
                                                          splits, size)

    def _keep(self, key: tuple[Any, ...], sched: Schedule) -> Schedule:
        """Remember ``sched`` under ``key``, unless it has more flows than ``_MEMO_FLOWS``
        (big schedules are rare and hold large arrays) or the memo is full."""
        flows = sum(len(ph.routes) for ph in sched.phases)
        if flows <= _MEMO_FLOWS and len(self._schedules) < _MEMO_SCHEDULES:
            self._schedules[key] = sched
        return sched

    def _collective(self, group: str, collective: str, size: int, root_rank: int,
                    algorithm: str | None) -> Schedule:
        layout = self.layout(group)
        root = 0
        if root_rank >= 0:
            root = layout.devices.index(self.devices[root_rank])
        return self.schedule_on(layout, ("g", group), collective, size, root,
                                algorithm or self._topology_algorithm(collective))

    def _pair_plan(self, group: str, layout: coll.Layout, algorithm: str
                   ) -> list[tuple[list[np.ndarray], np.ndarray, np.ndarray]] | None:
        """Per phase of ``algorithm``'s all_to_all plan: each flow's route and its sender's
        and receiver's positions in the group (cached per group and algorithm); None for a
        plan whose flows are not one per (sender, receiver) pair and phase (it runs even)."""
        key = ("pairs", group, algorithm)
        if key in self._pairs:
            return self._pairs[key]
        where = {self.devices[r]: k for k, r in enumerate(self.groups[group])}
        hit: list[tuple[list[np.ndarray], np.ndarray, np.ndarray]] | None = []
        for ph in algs.plan(algorithm, "all_to_all", layout, pxn=self.params.pxn,
                            nvls_efficiency=self.params.nvls_efficiency):
            ends = [(where.get(path[0]), where.get(path[-1])) for path in ph.paths]
            if None in {x for pair in ends for x in pair} or len(set(ends)) < len(ends):
                hit = None
                break
            src, dst = (np.array(x, dtype=np.int64) for x in zip(*ends)) if ends else (
                np.zeros(0, np.int64), np.zeros(0, np.int64))
            hit.append(([self._route(path) for path in ph.paths], src, dst))
        self._pairs[key] = hit
        return hit

    def _per_pair(self, group: str, layout: coll.Layout, sched: Schedule,
                  pairs: list[tuple[list[np.ndarray], np.ndarray, np.ndarray]],
                  splits: np.ndarray, size: int) -> Schedule:
        """``sched`` with each flow carrying its (sender, receiver) pair's bytes of
        ``splits``, where the even all_to_all gives every pair ``size / p``; a pair with no
        bytes sends nothing. Even splits give the even schedule's flows bit for bit."""
        tuning = algs.get_algorithm(sched.algorithm).tuning
        resolved = self.resolved(("g", group, sched.algorithm, "all_to_all", 0),
                                 layout, sched.algorithm, "all_to_all")
        bw = self.bandwidth(tuning, sched.protocol, resolved, "all_to_all", layout.n_hosts,
                            layout.p)
        phases = []
        for (routes, src, dst), ph, even in zip(pairs, resolved, sched.phases):
            share = splits[src, dst] / size  # the pair's bytes per byte of the size
            keep = np.flatnonzero(share > 0)
            phases.append(ScheduledPhase(
                routes=[routes[k] for k in keep.tolist()],
                nbytes=share[keep] * (size / (bw * ph.efficiency)),
                latency_us=even.latency_us, coupled=ph.coupled,
                weights=np.ones(len(keep)), counts=None))
        return replace(sched, phases=phases)

    def _topology_algorithm(self, collective: str) -> str | None:
        forced = self.params.algorithm
        return forced if forced in algs.algorithms_for(collective) else None

    def schedule_on(self, layout: coll.Layout, key: tuple[Any, ...], collective: str, size: int,
                    root: int = 0, algorithm: str | None = None) -> Schedule:
        """Schedule a collective on a layout; ``key`` names the layout for caching."""
        best: tuple[float, str, proto.Tuning, str, list[_ResolvedPhase]] | None = None
        n_hosts = layout.n_hosts
        rule = (self.profile.rule(collective, layout, size)
                if algorithm in (None, "auto") and self.params.protocol == "auto" else None)
        if rule is not None and not algs.applicable(rule.algorithm, collective, layout):
            rule = None
        candidates = [rule.algorithm] if rule else self._candidates(collective, layout, algorithm)
        for algo in candidates:
            tuning = algs.get_algorithm(algo).tuning
            phases = self.resolved((*key, algo, collective, root), layout, algo, collective, root)
            for q in (rule.protocol,) if rule else self._protocols(tuning, phases):
                t = self.estimate_us(tuning, q, phases, collective, size, n_hosts, layout.p)
                if best is None or t < best[0]:
                    best = (t, algo, tuning, q, phases)
        assert best is not None
        t, algo, tuning, q, phases = best
        bw = self.bandwidth(tuning, q, phases, collective, n_hosts, layout.p)
        scheduled = []
        for ph in phases:
            stretch, fill = self._pipeline(tuning, ph, bw, size, layout.p)
            scheduled.append(ScheduledPhase(
                routes=ph.routes,
                nbytes=ph.share * ph.weight * (size * stretch / (bw * ph.efficiency)),
                latency_us=self._latency(tuning, q, ph) + fill, coupled=ph.coupled,
                weights=ph.pace, counts=None if ph.pace is ph.weight else ph.weight))
        return Schedule(algorithm=algo, protocol=q, fixed_us=self._base(tuning, q),
                        phases=scheduled, estimate_us=t)

    def p2p(self, src: str, dst: str, size: int) -> Schedule:
        """Schedule a send/recv of ``size`` bytes from ``src`` to ``dst`` (made once per
        arguments, as collectives are)."""
        key = ("p", src, dst, size)
        hit = self._schedules.get(key)
        if hit is not None:
            return hit
        return self._keep(key, self._p2p(src, dst, size))

    def _p2p(self, src: str, dst: str, size: int) -> Schedule:
        route = self.router.route(src, dst)
        cross = any(self.cluster.link_kind[i] in _NET_KINDS for i in route.links.tolist())
        one = np.ones(1)
        ph = _ResolvedPhase(
            routes=[route.links], share=one, weight=one, coupled=False, efficiency=1.0,
            intra_steps=0 if cross else 1, inter_steps=1 if cross else 0,
            intra_hw=self._hw([route.links]), pace=one,
            unit_us=self._unit_time([route.links], one, False, one, one),
        )
        best: tuple[float, str] | None = None
        for q in self._protocols(proto.P2P, [ph]):
            t = self.estimate_us(proto.P2P, q, [ph], "send", size, 2 if cross else 1, 2)
            if best is None or t < best[0]:
                best = (t, q)
        assert best is not None
        t, q = best
        bw = self.tables.bandwidth_factor(proto.P2P.table, q, "send", 2 if cross else 1)
        return Schedule(
            algorithm="p2p", protocol=q, fixed_us=self._base(proto.P2P, q),
            phases=[ScheduledPhase([route.links], np.array([size / bw]),
                                   self._latency(proto.P2P, q, ph), False)],
            estimate_us=t,
        )

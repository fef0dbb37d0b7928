"""What calibration fits, and the model's prediction of an nccl-tests curve.

A :class:`Knob` is one physical parameter under a topology's ``network:`` section (a link
kind's efficiency, an overhead in us, a latency scale) with the range searched and the kind
of log that identifies it. :class:`Predictor` gives the time nccl-tests would measure on the
cluster under other values of the knobs: ``max(host_launch_us, estimate)``, where the
estimate is :class:`~simcluster.sim.comm.CommModel`'s isolated cost of the collective, which
the simulator reproduces exactly for a lone collective (``collective_perf``). Only the link
capacities and the network parameters change between two predictions; the routes are
computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from simcluster.calibrate.logs import Curve
from simcluster.errors import CalibrationError
from simcluster.placement import strategy_placement
from simcluster.sim.comm import CommModel
from simcluster.topology import catalog
from simcluster.topology.cluster import Cluster
from simcluster.topology.routing import Router
from simcluster.topology.schema import NetworkParams

# Which logs identify a knob: inside one server, across servers, or any.
SERVER, NETWORK, ANY = "server", "network", "any"
SERVER_LINK_KINDS = ("nvlink", "pcie")
NETWORK_LINK_KINDS = ("ib", "ethernet")
_DICTS = ("link_efficiency", "protocol_overhead_us")


@dataclass(frozen=True)
class Knob:
    """One fitted parameter.

    Attributes:
        name: its path under ``network:`` (``host_launch_us``, ``link_efficiency.nvlink``,
            ``protocol_overhead_us.Simple``).
        lo, hi: the range searched, in its unit.
        scope: which logs identify it: ``server`` (logs inside one server), ``network``
            (logs across servers) or ``any``.
        unit: ``us``, or empty for a fraction or a factor.
        decimals: the written value is rounded to this many decimals.
        meaning: one line, for reports.
        keep: where the logs cannot tell two knobs apart (their effects on the predicted
            times are nearly proportional), the one with the lower ``keep`` is held at its
            value and the other fitted.
    """

    name: str
    lo: float
    hi: float
    scope: str
    unit: str
    decimals: int
    meaning: str
    keep: int = 0

    def value(self, network: NetworkParams) -> float:
        """The knob's value in ``network`` (the catalog default where it is not set)."""
        head, _, key = self.name.partition(".")
        if head == "link_efficiency":
            return float(network.link_efficiency.get(key, catalog.LINK_EFFICIENCY[key]))
        if head == "protocol_overhead_us":
            return float(network.protocol_overhead_us.get(key, 0.0))  # type: ignore[call-overload]
        return float(getattr(network, head))


def knobs_for(cluster: Cluster) -> list[Knob]:
    """The knobs of ``cluster``'s network model, in report order: the efficiency of each
    link kind it has that collectives cross, NVLS, protocol overheads, the host launch cost,
    the network's per-step latency."""
    kinds = set(cluster.link_kind)
    # On an NVLS server the all-reduce plateau fixes only NVLink efficiency x NVLS
    # efficiency: the NVLS one is fitted (keep 6), the ring's NVLink efficiency held (0).
    out = [Knob(f"link_efficiency.{k}", 0.3, 1.0, SERVER, "", 4,
                f"fraction of {k} line rate a collective sustains", keep=0)
           for k in SERVER_LINK_KINDS if k in kinds]
    out += [Knob(f"link_efficiency.{k}", 0.3, 1.0, NETWORK, "", 4,
                 f"fraction of {k} line rate a collective sustains across servers", keep=1)
            for k in NETWORK_LINK_KINDS if k in kinds]
    return out + [
        Knob("nvls_efficiency", 0.3, 1.0, SERVER, "", 4,
             "fraction of NVLink capacity NVLS all-reduce traffic moves at", keep=6),
        Knob("nvls_base_latency_us", 0.0, 100.0, SERVER, "us", 2, "NVLS base latency",
             keep=5),
        Knob("protocol_overhead_us.LL128", 0.0, 300.0, SERVER, "us", 2,
             "per-call cost of LL128 beyond NCCL's base latency", keep=3),
        Knob("protocol_overhead_us.Simple", 0.0, 300.0, SERVER, "us", 2,
             "per-call cost of Simple beyond NCCL's base latency", keep=4),
        Knob("host_launch_us", 0.0, 300.0, ANY, "us", 2,
             "host cost per call; back-to-back calls take at least this long", keep=7),
        Knob("net_step_latency_scale", 0.0, 50.0, NETWORK, "", 4,
             "multiplier on NCCL's per-step latencies across the network", keep=2),
    ]


def with_values(network: NetworkParams, values: dict[str, float]) -> NetworkParams:
    """``network`` with the knobs named in ``values`` set (dictionaries merged, so a
    protocol or link kind not named keeps its value)."""
    update: dict[str, object] = {}
    for name, v in values.items():
        head, _, key = name.partition(".")
        if head in _DICTS:
            merged = dict(update.get(head) or getattr(network, head))  # type: ignore[call-overload]
            merged[key] = float(v)
            update[head] = merged
        else:
            update[head] = float(v)
    return network.model_copy(update=update)


def capacities(cluster: Cluster, network: NetworkParams) -> np.ndarray:
    """Per link, bytes/us: line rate x its kind's efficiency under ``network`` (what
    ``topology.build`` computes from the same values)."""
    eff = {k: network.link_efficiency.get(k, catalog.LINK_EFFICIENCY[k])
           for k in set(cluster.link_kind)}
    return cluster.bandwidth_Bpus * np.array([eff[k] for k in cluster.link_kind])


def buffer_bytes(collective: str, size: int, ranks: int) -> int:
    """Device memory nccl-tests allocates per GPU for ``size`` (send and receive buffers)."""
    if collective == "all_gather":
        return size // ranks + size
    if collective == "reduce_scatter":
        return size + size // ranks
    return 2 * size


@dataclass(frozen=True)
class Prediction:
    """Per size of a curve: the predicted time (us) and the (algorithm/protocol) chosen."""

    time_us: np.ndarray
    labels: tuple[str, ...]


class Predictor:
    """Predicted nccl-tests times of ``curves`` on ``cluster`` (ranks placed packed, as
    ``simcluster collectives`` places them).

    Raises:
        CalibrationError: a curve with more ranks than the cluster has accelerators, ranks
            spread over hosts unlike the log's, or a size whose buffers exceed device memory.
    """

    def __init__(self, cluster: Cluster, curves: Sequence[Curve]) -> None:
        self.cluster = cluster
        self.curves = tuple(curves)
        self.router = Router(cluster)
        self.devices = [self._devices(c) for c in self.curves]
        self.hosts = [self._check(c, d) for c, d in zip(self.curves, self.devices)]

    def _devices(self, curve: Curve) -> tuple[str, ...]:
        n_acc = len(self.cluster.accelerators)
        if curve.ranks > n_acc:
            raise CalibrationError(
                f"{curve.source}{_at(curve.ranks_line)}: {curve.ranks} ranks, but "
                f"{self.cluster.name} has {n_acc} accelerators; give the topology the log "
                "was measured on.")
        return strategy_placement(self.cluster, curve.ranks).devices

    def _check(self, curve: Curve, devices: tuple[str, ...]) -> int:
        """The number of servers the curve's ranks span; checks hosts and buffer sizes."""
        model = CommModel(self.cluster, self.router, devices, {"world": tuple(range(len(
            devices)))})
        layout = model.layout("world")
        mine = tuple(sorted((len(h) for h in layout.hosts), reverse=True))
        if curve.hosts and curve.hosts != mine:
            raise CalibrationError(
                f"{curve.source}{_at(curve.ranks_line)}: the log ran {_hosts(curve.hosts)}, "
                f"but {self.cluster.name} places {curve.ranks} ranks as {_hosts(mine)}; give "
                "the topology the log was measured on.")
        capacity = min(self.cluster.specs[d].hbm_bytes for d in devices)
        for p in curve.points:
            need = buffer_bytes(curve.collective, p.size, curve.ranks)
            if need > capacity:
                raise CalibrationError(
                    f"{curve.source}{_at(p.line)}: {curve.collective} of {p.size} B needs "
                    f"{need / 2**30:.1f} GiB of buffers per GPU, more than the "
                    f"{capacity / 2**30:.1f} GiB of {self.cluster.name}'s accelerators; give "
                    "the topology the log was measured on.")
        return len(layout.hosts)

    def predict(self, network: NetworkParams, sizes: Sequence[np.ndarray] | None = None,
                labels: bool = False) -> list[Prediction]:
        """Per curve, the times (us) at ``sizes`` (default: every measured size) under
        ``network``; with ``labels``, the algorithm/protocol of each."""
        cluster = replace(self.cluster, network=network,
                          capacity_Bpus=capacities(self.cluster, network))
        out = []
        for k, (curve, devices) in enumerate(zip(self.curves, self.devices)):
            wanted = sizes[k] if sizes is not None else [p.size for p in curve.points]
            model = CommModel(cluster, self.router, devices,
                              {"world": tuple(range(len(devices)))})
            root = 0 if curve.collective in ("broadcast", "reduce") else -1
            scheds = [model.collective("world", curve.collective, int(s), root)
                      for s in wanted]
            times = np.array([max(s.estimate_us, model.params.host_launch_us)
                              for s in scheds])
            out.append(Prediction(times, tuple(s.label for s in scheds) if labels else ()))
        return out


def _at(line: int) -> str:
    return f":{line}" if line else ""


def _hosts(sizes: tuple[int, ...]) -> str:
    if len(set(sizes)) == 1:
        return f"{len(sizes)} host(s) x {sizes[0]} ranks"
    return "hosts of " + ", ".join(str(s) for s in sizes) + " ranks"

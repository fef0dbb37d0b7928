"""The collective library registry: whose tuning a cluster's collectives follow (NCCL, RCCL).

A :class:`CollectiveLibrary` says, for the accelerators of a cluster, which tuning tables
cost the algorithms (:class:`~simcluster.sim.protocols.Tables`), which protocols it runs,
which fixed (algorithm, protocol) windows override its tuner (RCCL's MSCCL all-reduce), and
which ``network`` parameters it sets where the topology leaves them out (the per-call costs
fitted on NVIDIA systems do not apply to RCCL). ``network.library`` names one; ``auto`` (the
default) takes the library whose ``vendors`` include the vendor of every accelerator, else
the first registered (NCCL). Everything that lists libraries (the schema's enum, the docs)
reads this table; a new one is one call::

    register_library(CollectiveLibrary("mine", "...", vendors=("X",), profile=my_profile))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from simcluster.errors import TopologyError
from simcluster.registry import Registry
from simcluster.sim import rccl
from simcluster.sim.protocols import NCCL, NCCL_2_27, PROTOCOLS, Tables, nccl_arch

if TYPE_CHECKING:
    from simcluster.sim.collectives import Layout
    from simcluster.topology.catalog import AcceleratorSpec
    from simcluster.topology.cluster import Cluster
    from simcluster.topology.schema import NetworkParams


@dataclass(frozen=True)
class SizeRule:
    """A fixed (algorithm, protocol) for a window of sizes, taken instead of the tuner's
    choice on a group of ``ranks`` ranks in one server (RCCL's MSCCL algorithms).

    Attributes:
        collective: the collective it applies to.
        ranks: the group size it applies to.
        min_bytes, max_bytes: the window (inclusive, bytes as nccl-tests counts them).
        algorithm, protocol: what runs there.
    """

    collective: str
    ranks: int
    min_bytes: int
    max_bytes: int
    algorithm: str
    protocol: str

    def matches(self, collective: str, layout: Layout, size: int) -> bool:
        """Whether the rule decides ``collective`` of ``size`` bytes on ``layout``."""
        return (collective == self.collective and layout.n_hosts == 1
                and layout.p == self.ranks and self.min_bytes <= size <= self.max_bytes)


@dataclass(frozen=True)
class Profile:
    """What a library does on one kind of accelerator.

    Attributes:
        tables: the tuning constants that cost each algorithm and protocol.
        protocols: the protocols it runs (a subset of :data:`PROTOCOLS`).
        rules: windows that override the tuner, first match wins.
        label: which of its tunings this is, for messages and docs.
        arch: the GPUs' architecture as the tables index it (``protocols.nccl_arch``), or
            None: no per-architecture limit applies.
    """

    tables: Tables
    protocols: tuple[str, ...] = PROTOCOLS
    rules: tuple[SizeRule, ...] = ()
    label: str = ""
    arch: str | None = None

    def rule(self, collective: str, layout: Layout, size: int) -> SizeRule | None:
        """The first rule that decides this collective, or None (the tuner decides)."""
        return next((r for r in self.rules if r.matches(collective, layout, size)), None)


@dataclass(frozen=True)
class CollectiveLibrary:
    """One collective communication library.

    Attributes:
        name: what ``network.library`` calls it.
        description: one line, for help texts and docs.
        vendors: accelerator vendors it is the default for (``auto``).
        profile: ``profile(specs)``: its tuning on these accelerators.
        network_defaults: ``network`` parameters it sets where the topology does not.
    """

    name: str
    description: str
    vendors: tuple[str, ...]
    profile: Callable[[Iterable[AcceleratorSpec]], Profile]
    network_defaults: dict[str, Any] = field(default_factory=dict)


REGISTRY: Registry[CollectiveLibrary] = Registry("collective library", TopologyError)
register_library = REGISTRY.register
unregister_library = REGISTRY.unregister
registered_library = REGISTRY.registered
get_library = REGISTRY.get
library_names = REGISTRY.names


def library_for(cluster: Cluster) -> CollectiveLibrary:
    """The library that runs the cluster's collectives: ``network.library``, or for ``auto``
    the first whose vendors include every accelerator's vendor (else the first registered)."""
    name = cluster.network.library
    if name != "auto":
        return get_library(name)
    vendors = {s.vendor for s in cluster.specs.values()}
    records = REGISTRY.records()
    return next((r for r in records if vendors and vendors <= set(r.vendors)), records[0])


def effective_network(cluster: Cluster, library: CollectiveLibrary | None = None
                      ) -> NetworkParams:
    """The cluster's ``network`` parameters with its library's defaults where the topology
    (or a caller's ``model_copy``) left them out, and ``library`` resolved (``library``: the
    cluster's, when the caller has already looked it up)."""
    library = library or library_for(cluster)
    network = cluster.network
    unset = {k: dict(v) if isinstance(v, dict) else v  # a copy: never the registry's own
             for k, v in library.network_defaults.items() if k not in network.model_fields_set}
    return network.model_copy(update={**unset, "library": library.name})


def _nccl_profile(tables: Tables, label: str, specs: Iterable[AcceleratorSpec]) -> Profile:
    """An NCCL version's profile: its ``tables``, with the GPUs' architecture for their
    per-architecture limits (registered per version with ``partial``)."""
    return Profile(tables=tables, label=label, arch=nccl_arch(s.family for s in specs))


def _rccl_profile(specs: Iterable[AcceleratorSpec]) -> Profile:
    """gfx942 parts (MI300X, MI300A, MI325X): tuning model 5 and MSCCL's all-pairs windows on
    8 GPUs; every other part: tuning model 0, no MSCCL."""
    if {s.family for s in specs} <= rccl.GFX942_FAMILIES:
        rules = tuple(SizeRule("all_reduce", 8, lo, hi, "allpairs", q)
                      for lo, hi, q in rccl.MSCCL_ALLREDUCE_8)
        return Profile(tables=rccl.MODEL_5, protocols=("LL", "Simple"), rules=rules,
                       label="RCCL tuning_model_5 + MSCCL all-pairs (gfx942)")
    return Profile(tables=rccl.MODEL_0, protocols=("LL", "Simple"), label="RCCL tuning_model_0")


register_library(CollectiveLibrary(
    "nccl", "NVIDIA NCCL: NCCL 2.18's tuning tables, per-call costs fitted on H100/A100",
    vendors=("NVIDIA",), profile=partial(_nccl_profile, NCCL, "NCCL 2.18 tuning.cc")))
register_library(CollectiveLibrary(
    "rccl", "AMD RCCL: RCCL's tuning tables per architecture, MSCCL all-pairs all-reduce "
    "on 8 x MI300-series", vendors=("AMD",), profile=_rccl_profile,
    # The per-call costs of the defaults were fitted on NVIDIA systems; RCCL's base
    # latencies are its own per-call cost.
    network_defaults={"protocol_overhead_us": {}, "host_launch_us": 0.0}))
register_library(CollectiveLibrary(
    "nccl-2.27", "NVIDIA NCCL 2.21 and later (2.27's tables): ring LL at half the ring's "
    "bandwidth, LL capped at 141 GB/s on Hopper inside a server; otherwise as nccl",
    vendors=("NVIDIA",), profile=partial(_nccl_profile, NCCL_2_27, "NCCL 2.27 tuning.cc")))

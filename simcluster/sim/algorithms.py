"""The collective algorithm registry: one record per algorithm.

An :class:`Algorithm` says which collectives it runs, on which group layouts it applies, how
it plans a collective as phases of flows (the plan functions live in ``collectives.py``) and
how NCCL's tuning tables cost it (:class:`~simcluster.sim.protocols.Tuning`). Everything that
lists algorithms reads this table: the candidates :class:`~simcluster.sim.comm.CommModel`
considers per collective (in registration order, which breaks ties in the cost), the names
``network.algorithm`` accepts in a topology, the JSON Schema and the CLI's ``--algo``.

Adding an algorithm is one call::

    register_algorithm(Algorithm(name="mine", collectives=("all_reduce",), plan=my_plan))

where ``my_plan(layout, collective, options)`` returns the phases. Tests use
:func:`registered_algorithm`, which takes it out again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simcluster.errors import SimulationError
from simcluster.registry import Registry
from simcluster.sim import collectives as coll
from simcluster.sim import in_network
from simcluster.sim import protocols as proto
from simcluster.sim import torus
from simcluster.sim.collectives import Layout, Phase
from simcluster.sim.protocols import Tuning

if TYPE_CHECKING:
    from simcluster.topology.schema import NetworkParams


@dataclass(frozen=True)
class PlanOptions:
    """What a plan may depend on besides the layout and the collective.

    Attributes:
        root: position of the root in the layout (broadcast, reduce).
        pxn: rings leave a server through the rank on their rail (``network.pxn``).
        nvls_efficiency: bandwidth factor of in-switch reduction (``network.nvls_efficiency``).
    """

    root: int = 0
    pxn: bool = True
    nvls_efficiency: float = 1.0


PlanFn = Callable[[Layout, str, PlanOptions], list[Phase]]


def everywhere(layout: Layout) -> bool:
    """An algorithm that applies to every layout."""
    return True


def always(network: NetworkParams) -> bool:
    """An algorithm the tuner considers whatever the network parameters."""
    return True


@dataclass(frozen=True)
class Algorithm:
    """One collective algorithm.

    Attributes:
        name: what ``network.algorithm`` and ``--algo`` call it.
        collectives: the collectives it can run.
        plan: ``plan(layout, collective, options)``: the phases of flows of one collective
            on a group of at least two ranks; independent of the size (shares scale it).
        applies: whether it can run on a layout (e.g. only across servers).
        tuning: its rows in NCCL's tuning tables and its protocols.
        description: one line, for help texts.
        automatic: whether the tuner considers it by itself under these network parameters
            (CollNet: only with ``network.collnet``, as NCCL needs NCCL_COLLNET_ENABLE);
            forced by name, it runs wherever it applies.
        needs: what it needs where it does not apply, for the error of a forced choice.
    """

    name: str
    collectives: tuple[str, ...]
    plan: PlanFn
    applies: Callable[[Layout], bool] = everywhere
    tuning: Tuning = field(default_factory=Tuning)
    description: str = ""
    automatic: Callable[[NetworkParams], bool] = always
    needs: str = ""


REGISTRY: Registry[Algorithm] = Registry("collective algorithm", SimulationError)


# The extension point's API is the registry's own (``registry.Registry``): register (after
# those already there; ``replace=True`` to swap one), unregister, a ``with`` block that
# registers for its duration, look-up by name (an unknown name lists the known ones),
# and the names in registration order.
register_algorithm = REGISTRY.register
unregister_algorithm = REGISTRY.unregister
registered_algorithm = REGISTRY.registered
get_algorithm = REGISTRY.get
algorithm_names = REGISTRY.names


def algorithms_for(collective: str) -> tuple[str, ...]:
    """The algorithms that can run ``collective``, in registration order (the first wins a
    tie in cost)."""
    return tuple(a.name for a in REGISTRY.records() if collective in a.collectives)


def applicable(name: str, collective: str, layout: Layout) -> bool:
    """Whether algorithm ``name`` can run ``collective`` on ``layout`` (False for an unknown
    name)."""
    if name not in REGISTRY:
        return False
    algorithm = REGISTRY.get(name)
    return collective in algorithm.collectives and algorithm.applies(layout)


def plan(name: str, collective: str, layout: Layout, *, root: int = 0, pxn: bool = True,
         nvls_efficiency: float = 1.0) -> list[Phase]:
    """The phases of ``collective`` with algorithm ``name`` on ``layout`` (none for one rank).

    Raises:
        ValueError: the algorithm does not apply (see :func:`applicable`).
    """
    if not applicable(name, collective, layout):
        raise ValueError(f"{name} cannot run {collective} on this group")
    if layout.p <= 1:
        return []
    options = PlanOptions(root=root, pxn=pxn, nvls_efficiency=nvls_efficiency)
    return REGISTRY.get(name).plan(layout, collective, options)


# -- the built-in algorithms (registration order is tie-break order) ---------------------------

def _across_servers(layout: Layout) -> bool:
    return layout.n_hosts >= 2


def _across_uniform_servers(layout: Layout) -> bool:
    return layout.n_hosts >= 2 and layout.uniform


# NCCL turns NVLS off where a communicator has at most 2 GPUs in a node (src/transport/
# nvls.cc, ncclNvlsInit: ``gpuCount <= 2``); NVLS-tree needs NVLS in every node.
_NVLS_MIN_RANKS = 3


def _one_nvls_domain(layout: Layout) -> bool:
    """At least 3 ranks, all under one NVLS NVSwitch: one server (an NVLink domain of any
    size)."""
    return (layout.n_hosts == 1 and layout.nvls_switch[0] is not None
            and layout.p >= _NVLS_MIN_RANKS)


def _nvls_domains(layout: Layout) -> bool:
    """Several servers, each with at least 3 ranks under its own NVLS NVSwitch."""
    return layout.n_hosts >= 2 and all(
        s is not None and len(h) >= _NVLS_MIN_RANKS
        for s, h in zip(layout.nvls_switch, layout.hosts))


def _sharp_fabric(layout: Layout) -> bool:
    """Several servers whose channels' NICs meet on SHARP switches."""
    return layout.n_hosts >= 2 and bool(layout.sharp)


def _collnet_enabled(network: NetworkParams) -> bool:
    return network.collnet


def _nvls_base_latency(network: NetworkParams, protocol: str) -> float:
    """NVLS is not in NCCL 2.18's tables as the other algorithms are (its base is 23 us, its
    NVLink steps 0): a fitted topology parameter instead, beside its chunks' fill."""
    return network.nvls_base_latency_us


def _nvls_tree_base_latency(network: NetworkParams, protocol: str) -> float:
    """NVLS-tree's fitted base latency (its chunks and fill are not modelled)."""
    return network.nvls_tree_base_latency_us


def _nvls_pipeline(network: NetworkParams, ranks: int, size: float, us_per_byte: float
                   ) -> tuple[float, float]:
    """NVLS's chunks and fill (one server: one head per rank)."""
    return proto.nvls_pipeline(size, ranks, network.nvls_chunk_overhead_us, us_per_byte)


def _ring(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return coll.plan_ring(layout, collective, options.pxn)


def _tree(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return coll.plan_tree(layout)


def _hierarchical(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return coll.plan_hierarchical(layout, options.pxn)


def _nvls(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return in_network.plan_nvls(layout, options.nvls_efficiency)


def _nvls_tree(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return in_network.plan_nvls_tree(layout, options.nvls_efficiency, proto.NVLS_TREE_NET_FACTOR)


def _collnet_direct(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return in_network.plan_collnet_direct(layout, proto.COLLNET_ARITY_LATENCY_US)


def _collnet_chain(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return in_network.plan_collnet_chain(layout)


def _torus(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return torus.plan_torus(layout, collective)


def _no_base_latency(network: NetworkParams, protocol: str) -> float:
    """A torus collective is not NCCL: no table base latency nor protocol overhead (the
    topology's ``collective_overhead_us`` still applies); its latency is its ICI hops."""
    return 0.0


def _one_server(layout: Layout) -> bool:
    return layout.n_hosts == 1


def _never(network: NetworkParams) -> bool:
    """Not a tuner candidate: a library's size rule (``sim/libraries.py``) or a user picks it."""
    return False


def _allpairs(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return coll.plan_allpairs(layout)


def _chain(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return coll.plan_chain(layout, options.root, options.pxn, to_root=collective == "reduce")


def _direct(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return coll.plan_all_to_all(layout, pairwise=False)


def _pairwise(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    return coll.plan_all_to_all(layout, pairwise=True)


for _algorithm in (
    Algorithm("ring", ("all_reduce", "all_gather", "reduce_scatter", "barrier"), _ring,
              description="NCCL-style rings, rail-aligned across servers"),
    Algorithm("tree", ("all_reduce",), _tree, applies=_across_servers,
              tuning=Tuning(table="tree"),
              description="double binary tree across servers, chains inside"),
    Algorithm("hierarchical", ("all_reduce",), _hierarchical, applies=_across_uniform_servers,
              description="reduce-scatter inside servers, all-reduce across, all-gather"),
    Algorithm("nvls", ("all_reduce",), _nvls, applies=_one_nvls_domain,
              tuning=Tuning(table="nvls", protocols=("Simple",),
                            base_latency=_nvls_base_latency, pipeline=_nvls_pipeline),
              description="in-switch reduction in one NVLink domain's NVSwitch",
              needs="3 or more ranks in one server whose NVSwitch reduces (nvls "
              "accelerators, network.nvls)"),
    Algorithm("nvls-tree", ("all_reduce",), _nvls_tree, applies=_nvls_domains,
              tuning=Tuning(table="nvls_tree", protocols=("Simple",),
                            base_latency=_nvls_tree_base_latency),
              description="NVLS in each NVLink domain, a tree of heads across them",
              needs="3 or more ranks in each server, whose NVSwitches reduce (nvls "
              "accelerators, network.nvls)"),
    Algorithm("collnet-direct", ("all_reduce",), _collnet_direct, applies=_sharp_fabric,
              tuning=Tuning(table="collnet_direct", protocols=("Simple",)),
              description="every rank to its server's heads, SHARP switches across servers",
              automatic=_collnet_enabled,
              needs="servers on a fabric with sharp: true"),
    Algorithm("collnet-chain", ("all_reduce",), _collnet_chain, applies=_sharp_fabric,
              tuning=Tuning(table="collnet_chain", protocols=("Simple",)),
              description="a chain to the head in each server, SHARP switches across",
              automatic=_collnet_enabled,
              needs="servers on a fabric with sharp: true"),
    Algorithm("torus", ("all_reduce", "all_gather", "reduce_scatter"), _torus,
              applies=torus.on_sub_torus,
              tuning=Tuning(protocols=("Simple",), base_latency=_no_base_latency),
              description="dimension-ordered bidirectional rings on a torus (TPU ICI)",
              needs="ranks that fill whole rings of a torus fabric (every spanned "
              "dimension complete)"),
    Algorithm("allpairs", ("all_reduce",), _allpairs, applies=_one_server,
              tuning=Tuning(table="msccl", protocols=("LL", "Simple")),
              description="direct reduce-scatter and all-gather between every pair in one "
              "server (RCCL's MSCCL all-pairs)", automatic=_never,
              needs="all ranks in one server"),
    Algorithm("chain", ("broadcast", "reduce"), _chain,
              description="pipelined chain along the ring from (or to) the root"),
    Algorithm("direct", ("all_to_all",), _direct, description="all pairs at once"),
    Algorithm("pairwise", ("all_to_all",), _pairwise, description="p-1 rounds of i -> i+k"),
):
    register_algorithm(_algorithm)
del _algorithm

"""Toy extensions, each added through its registry alone (nothing else in simcluster changes).

- ``gather-scatter``: an all_reduce in two phases: every rank sends its whole buffer ``S`` to
  the first rank, which sends ``S`` back to every rank. On ``p`` ranks behind one link each
  of ``B``, each phase drains ``(p-1) S`` through the first rank's link: ``2 (p-1) S / B``.
- ``line``: a fabric of one switch per server, the switches in a line (server ``h``'s NICs
  on ``fabric/sw<h>``, ``sw<h>`` linked to ``sw<h+1>`` at ``spine_link.bandwidth_GBps``).
- ``opslines``: a text trace format: a first line ``#opslines``, then one op per line as
  ``key=value`` pairs of the ops columns; a collective's group holds the ranks that name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from simcluster.sim.algorithms import Algorithm, PlanOptions
from simcluster.sim.collectives import Layout, Phase
from simcluster.sim.protocols import Tuning
from simcluster.topology.fabrics import Fabric, FabricContext
from simcluster.topology.schema import FabricSpec
from simcluster.workload.formats import TraceFormat
from simcluster.workload.model import OPS_SCHEMA, Workload, WorkloadMeta
from simcluster.workload.validate import make_workload

# -- a collective algorithm ------------------------------------------------------------------------


def plan_gather_scatter(layout: Layout, collective: str, options: PlanOptions) -> list[Phase]:
    """Everyone -> the first rank, then the first rank -> everyone; ``S`` per flow."""
    first, rest = layout.devices[0], layout.devices[1:]
    cross = int(layout.n_hosts > 1)
    phases = []
    for paths in (tuple((d, first) for d in rest), tuple((first, d) for d in rest)):
        phases.append(Phase(paths, np.ones(len(paths)), 1 - cross, cross, coupled=False))
    return phases


def at_most_four(layout: Layout) -> bool:
    return layout.p <= 4


GATHER_SCATTER = Algorithm(
    name="gather-scatter", collectives=("all_reduce",), plan=plan_gather_scatter,
    applies=at_most_four, tuning=Tuning(table="ring", protocols=("Simple",)),
    description="toy: all to the first rank and back")


# -- a fabric template ----------------------------------------------------------------------------


def build_line(ctx: FabricContext) -> None:
    """One switch per server, in a line."""
    switches = [ctx.switch(f"sw{h}", "leaf") for h in range(len(ctx.hosts))]
    for host, switch in zip(ctx.hosts, switches):
        for nic in ctx.nics[host]:
            ctx.attach(nic, switch)
    bw = ctx.spec.spine_link.bandwidth_GBps or 0.0
    for a, b in zip(switches, switches[1:]):
        ctx.uplink(a, b, bw)


def check_line(spec: FabricSpec) -> str | None:
    if spec.spine_link.bandwidth_GBps is None:
        return "a line fabric needs spine_link.bandwidth_GBps (between neighbouring switches)"
    return None


LINE = Fabric(name="line", build=build_line, check=check_line,
              description="toy: one switch per server, the switches in a line")


# -- a trace format -------------------------------------------------------------------------------

_TYPES = {f.name: f.type for f in OPS_SCHEMA}


def _value(key: str, text: str) -> Any:
    kind = _TYPES[key]
    if pa.types.is_integer(kind):
        return int(text)
    if pa.types.is_floating(kind):
        return float(text)
    return text


def is_opslines(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(10) == b"#opslines\n"


def load_opslines(path: Path, **options: Any) -> Workload:
    """Ops from ``key=value`` lines; op_id counts each rank's ops; stream defaults to ``s``."""
    rows: list[dict[str, Any]] = []
    count: dict[int, int] = {}
    for line in path.read_text().splitlines()[1:]:
        if not line.strip():
            continue
        row = {k: _value(k, v) for k, v in (item.split("=", 1) for item in line.split())}
        row.setdefault("op_id", count.get(row["rank"], 0))
        row.setdefault("stream", "s")
        row.setdefault("name", f"op{row['op_id']}")
        count[row["rank"]] = row["op_id"] + 1
        rows.append(row)
    groups: dict[str, list[int]] = {}
    for row in rows:
        if row.get("group") and row["rank"] not in groups.setdefault(row["group"], []):
            groups[row["group"]].append(row["rank"])
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in OPS_SCHEMA} for r in rows],
                                 schema=OPS_SCHEMA)
    return make_workload(table, groups, WorkloadMeta(name=path.stem), source=str(path))


OPSLINES = TraceFormat(name="opslines", sniff=is_opslines, load=load_opslines,
                       description="op lines (#opslines)")

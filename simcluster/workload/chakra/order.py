"""The order a rank's Chakra nodes become ops in, and the dependencies kept.

Ops are numbered in a topological order of the data dependencies (ties by start time, then
node id), so stream order never contradicts one. Dependencies on absent nodes or on the node
itself are dropped and counted; control dependencies that go against the order are dropped
and counted (converted PyTorch traces link an op and its kernel both ways).
"""

from __future__ import annotations

import heapq
from collections import Counter
from pathlib import Path

from simcluster.errors import WorkloadError
from simcluster.workload.chakra.etfile import EtNode
from simcluster.workload.importing import ImportReport


def _present_deps(node: EtNode, ids: list[int], by_id: dict[int, EtNode],
                  report: ImportReport) -> list[int]:
    """``ids`` without duplicates, the node itself and nodes absent from the trace (counted)."""
    keep = []
    for d in dict.fromkeys(ids):
        if d == node.id:
            report.skipped["dependency of a node on itself"] += 1
        elif d not in by_id:
            report.skipped["dependency on a node not in the trace"] += 1
        else:
            keep.append(d)
    return keep


def _topological(nodes: list[EtNode], path: Path, report: ImportReport
                 ) -> tuple[list[EtNode], dict[int, list[int]]]:
    """Nodes in an order that respects their data dependencies (ties: start time, then id),
    and each node's dependencies.

    Data dependencies must be acyclic (a cycle is an error). Control dependencies are kept
    when they agree with that order; converted PyTorch traces have control dependencies
    that point both ways between an op and its kernel, and those are dropped and counted.
    """
    by_id = {n.id: n for n in nodes}
    if len(by_id) != len(nodes):
        dup = Counter(n.id for n in nodes).most_common(1)[0][0]
        raise WorkloadError(f"{path}: node id {dup} is used twice; node ids must be unique.")
    data = {n.id: _present_deps(n, list(n.data_deps), by_id, report) for n in nodes}
    waiting = {i: len(d) for i, d in data.items()}
    children: dict[int, list[int]] = {i: [] for i in by_id}
    for i, d in data.items():
        for x in d:
            children[x].append(i)

    def key(i: int) -> tuple[float, int]:
        s = by_id[i].start_us
        return (s if s is not None else 0.0, i)

    ready = [key(i) for i, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    order: list[EtNode] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(by_id[i])
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, key(c))
    if len(order) < len(nodes):
        stuck = sorted(i for i, w in waiting.items() if w > 0)
        raise WorkloadError(
            f"{path}: the data dependencies of node(s) {', '.join(map(str, stuck[:6]))} form "
            "a cycle; a trace's data dependencies must be acyclic."
        )
    position = {n.id: k for k, n in enumerate(order)}
    deps = {}
    for n in nodes:
        ctrl = [d for d in _present_deps(n, list(n.ctrl_deps), by_id, report)
                if d not in data[n.id]]
        backward = [d for d in ctrl if position[d] < position[n.id]]
        if len(backward) < len(ctrl):
            report.skipped["control dependencies against the data-dependency order"] += (
                len(ctrl) - len(backward))
        deps[n.id] = data[n.id] + backward
    return order, deps

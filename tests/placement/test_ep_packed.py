"""``ep-packed``: TP, then CP, then EP groups inside servers, on 2 servers of 4 GPUs
(``tests/conftest.py::servers``: NVSwitch inside, one NIC per GPU on one switch)."""

from __future__ import annotations

import pytest

from simcluster.placement import bind
from simcluster.placement.strategies import strategy_placement
from simcluster.sim import simulate
from tests.conftest import servers, workload

N0 = [f"n0/gpu{i}" for i in range(4)]
N1 = [f"n1/gpu{i}" for i in range(4)]
# TP pairs numbered apart (0 with 4, ...), EP groups over even and odd ranks.
TP_APART = {"tp.0": (0, 4), "tp.1": (1, 5), "tp.2": (2, 6), "tp.3": (3, 7)}
EP = {"ep.a": (0, 2, 4, 6), "ep.b": (1, 3, 5, 7)}


def _place(groups: dict[str, tuple[int, ...]], ranks: int = 8) -> list[str]:
    return list(strategy_placement(servers(2, 4), ranks, "ep-packed", groups).devices)


def test_an_ep_group_with_its_tp_groups_shares_a_server() -> None:
    # Blocks {0, 2, 4, 6} and {1, 3, 5, 7}: server n0 takes the first in rank order.
    assert _place({**TP_APART, "ep.a": (0, 2), "ep.b": (1, 3)}) == [
        N0[0], N1[0], N0[1], N1[1], N0[2], N1[2], N0[3], N1[3]]


def test_context_parallel_groups_come_before_expert_parallel_ones() -> None:
    # CP pairs {0,1} .. {6,7} first; an EP group would then join all 8 ranks (more than a
    # server): it is left out, and the pairs are packed in order.
    cp = {"cp.0": (0, 1), "cp.1": (2, 3), "cp.2": (4, 5), "cp.3": (6, 7)}
    assert _place({**cp, **EP}) == N0 + N1
    # Without the CP groups the EP groups share servers.
    assert _place(EP) == [N0[0], N1[0], N0[1], N1[1], N0[2], N1[2], N0[3], N1[3]]


def test_blocks_go_whole_to_the_first_server_with_room() -> None:
    # {0,1,2} on n0; {3,4,5} does not fit n0's last GPU: n1; {6} takes n0's last GPU.
    tp = {"tp.0": (0, 1, 2), "tp.1": (3, 4, 5)}
    assert _place(tp, 7) == [N0[0], N0[1], N0[2], N1[0], N1[1], N1[2], N0[3]]
    # {6, 7} fits neither server's one free GPU: spread over them in topology order.
    assert _place({**tp, "tp.2": (6, 7)}) == [N0[0], N0[1], N0[2], N1[0], N1[1], N1[2],
                                              N0[3], N1[3]]


def test_the_expert_all_to_all_stays_off_the_network() -> None:
    """One 1 GB all-to-all on each EP group: with ep-packed no byte crosses a NIC; packed
    (rank i on the i-th GPU) sends half of every rank's bytes across the fabric."""
    rows = [{"rank": r, "kind": "collective", "collective": "all_to_all",
             "comm_bytes": 10**9, "group": "ep.a" if r % 2 == 0 else "ep.b"}
            for r in range(8)]
    wl = workload(rows, {**TP_APART, **EP})
    cluster = servers(2, 4)

    def network_bytes(strategy: str) -> int:
        run = simulate(bind(wl, cluster, strategy))
        links = run.links.to_pydict()
        return sum(b for b, k in zip(links["bytes"], links["kind"]) if k == "ib")

    assert network_bytes("ep-packed") == 0
    # Each rank sends 2 of its 4 shares (250 MB) to the other server: 8 x 500 MB, each
    # crossing its NIC's uplink and the receiver's downlink.
    assert network_bytes("packed") == pytest.approx(2 * 8 * 5 * 10**8)

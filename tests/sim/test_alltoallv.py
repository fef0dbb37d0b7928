"""Uneven all-to-allv: each (sender, receiver) pair moves its own bytes (``splits``).

The dumbbell (``tests/conftest.py``): a0, a1 on switch s0, a2, a3 on s1, 1,000 GB/s access
links and one 100 GB/s link each way between the switches (1e5 B/us), no latencies or
overheads, so that a time is bytes over shared bandwidth.
"""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.errors import WorkloadError
from tests.conftest import cluster_from, dumbbell_spec, replay, workload

GB = 10**9
GROUP = {"g": [0, 1, 2, 3]}


def _rows(splits: list[list[int] | None], size: int) -> list[dict[str, Any]]:
    return [{"rank": r, "kind": "collective", "collective": "all_to_all", "comm_bytes": size,
             "group": "g", "splits": s} for r, s in enumerate(splits)]


def _run(splits: list[list[int] | None], size: int, algorithm: str = "auto") -> Any:
    spec = dumbbell_spec()
    spec["network"]["algorithm"] = algorithm
    return replay(workload(_rows(splits, size), GROUP), cluster_from(spec))


def test_each_pair_moves_its_own_bytes_over_the_shared_link() -> None:
    # s0 -> s1 carries 0->2 (1 GB), 0->3 (2 GB), 1->3 (1 GB): a third of 1e5 B/us each until
    # the 1 GB flows end at 3e4 us, then 0->3's last GB alone: 1e4 us more. s1 -> s0 carries
    # 2->0 (1 GB) alone: 1e4 us. Rank 3 sends nothing.
    splits = [[0, 0, GB, 2 * GB], [0, 0, 0, GB], [GB, 0, 0, 0], [0, 0, 0, 0]]
    run = _run(splits, 3 * GB)
    assert run.makespan_us == pytest.approx(4e4, rel=1e-12)
    assert run.flows.column("flows").to_pylist() == [4]  # pairs without bytes send nothing
    moved = {(s, d): b for s, d, b in zip(*(run.links.column(c).to_pylist()
                                             for c in ("src", "dst", "bytes")))}
    assert moved[("s0", "s1")] == 4 * GB and moved[("s1", "s0")] == GB
    assert moved[("a0", "s0")] == 3 * GB and moved[("a3", "s1")] == 0


def test_pairwise_rounds_carry_the_pairs_bytes() -> None:
    # Round k sends i -> i+k. k=1: 0->1, 1->2 (2 GB), 2->3, 3->0 (1 GB): 1->2 alone on
    # s0 -> s1, 3->0 alone on s1 -> s0: 2e4 us. k=2: 0->2 (1 GB), 2->0 (1 GB): 1e4 us.
    # k=3: 0->3 (1 GB): 1e4 us.
    splits = [[0, 0, GB, GB], [0, 0, 2 * GB, 0], [GB, 0, 0, 0], [GB, 0, 0, 0]]
    run = _run(splits, 2 * GB, algorithm="pairwise")
    assert run.makespan_us == pytest.approx(4e4, rel=1e-12)


def test_even_splits_are_the_even_all_to_all_exactly() -> None:
    size = 3 * GB
    even = _run([None] * 4, size)
    split = _run([[size // 4] * 4] * 4, size)
    assert split.makespan_us == even.makespan_us
    for table in ("timeline", "links", "flows"):
        assert getattr(split, table).equals(getattr(even, table)), table


@pytest.mark.parametrize(("splits", "size", "column_problem"), [
    ([[1, 1, 1]] * 4, 4, "one byte count per member"),
    ([[2, -1, 1, 1]] * 4, 4, "negative"),
    ([[2, 2, 2, 2]] * 4, 4, "more than comm_bytes"),
])
def test_bad_splits_are_named(splits: list[list[int]], size: int, column_problem: str) -> None:
    with pytest.raises(WorkloadError, match=f"splits: .*{column_problem}"):
        workload(_rows(splits, size), GROUP)


def test_splits_only_on_an_all_to_all() -> None:
    rows = [{"rank": r, "kind": "collective", "collective": "all_reduce", "comm_bytes": 4,
             "group": "g", "splits": [1, 1, 1, 1]} for r in range(4)]
    with pytest.raises(WorkloadError, match="only an all_to_all"):
        workload(rows, GROUP)

"""The plain-Python max-min solver for small problems gives the numpy solver's bits."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.sim import maxmin as mm


def _problem(seed: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray | None,
                                 np.ndarray | None]:
    """A random problem with ties: capacities, weights and routes from small sets."""
    rng = np.random.default_rng(seed)
    flows, links = int(rng.integers(1, 7)), int(rng.integers(1, 6))
    pair_flow, pair_link = [], []
    for f in range(flows):
        hops = rng.choice(links, size=int(rng.integers(1, links + 1)), replace=False)
        pair_flow += [f] * len(hops)
        pair_link += sorted(hops.tolist())
    capacity = rng.choice([10.0, 20.0, 30.0, 7.5], size=links)
    weight = rng.choice([1.0, 2.0, 0.5], size=flows) if seed % 2 else None
    coupling = np.sort(rng.integers(0, flows, size=flows)) if seed % 3 else None
    return (np.array(pair_flow), np.array(pair_link), flows, capacity, coupling, weight)


@pytest.mark.parametrize("seed", range(200))
def test_small_solver_matches_the_numpy_solver_bit_for_bit(seed: int,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    pf, local, flows, capacity, coupling, weight = _problem(seed)
    small = mm._maxmin_small(pf, local, flows, capacity, coupling, weight)
    monkeypatch.setattr(mm, "_SMALL_PAIRS", -1)  # force the numpy rounds
    big = mm.maxmin_compact(pf, local, flows, capacity, coupling, weight)
    assert small[0].tobytes() == big[0].tobytes()
    assert small[1].tolist() == big[1].tolist()


def test_small_solver_shares_by_hand() -> None:
    # f0 on l0 (100) and l1 (30), f1 on l0 only, f2 on l1 only: l1 fills at 15 each
    # (f0, f2 frozen there), f1 takes the rest of l0: 85.
    rate, limit = mm._maxmin_small(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1]), 3,
                                   np.array([100.0, 30.0]), None, None)
    assert rate.tolist() == [15.0, 85.0, 15.0]
    assert limit.tolist() == [1, 0, 1]

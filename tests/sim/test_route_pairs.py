"""The two link merges of new flows' pairs give the same links and slots."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.sim.route_pairs import merge_dense, merge_sorted


def test_new_links_before_between_and_after_the_old_ones() -> None:
    """Old links 3, 7 (pairs at slots 1, 0, 1); new pairs on links 1, 7, 9, 5: merged links
    1, 3, 5, 7, 9; the old slots move to 3, 1, 3."""
    links, slots, new = merge_sorted(np.array([3, 7]), np.array([1, 0, 1]),
                                     np.array([1, 7, 9, 5]))
    assert links.tolist() == [1, 3, 5, 7, 9]
    assert slots.tolist() == [3, 1, 3]
    assert new.tolist() == [0, 3, 4, 2]


@pytest.mark.parametrize("seed", range(20))
def test_dense_and_sorted_merges_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    links = np.unique(rng.integers(0, n, size=int(rng.integers(0, n + 1))))
    slots = rng.integers(0, max(len(links), 1), size=len(links) * 2) if len(links) else \
        np.zeros(0, dtype=np.int64)
    new_link = rng.integers(0, n, size=int(rng.integers(1, 150)))
    a = merge_sorted(links, slots, new_link)
    b = merge_dense(links, slots, new_link, n)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert (a[0][a[2]] == new_link).all()
    assert (a[0][a[1]] == links[slots]).all()

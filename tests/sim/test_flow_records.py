"""Limit totals: the same sums, bit for bit and in the same key order, as a dict updated
per key at every fold (what the flow network kept before)."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.sim import flow_records
from simcluster.sim.flow_records import LimitTotals


def _reference(folds: list[tuple[np.ndarray, np.ndarray]], num_links: int
               ) -> dict[tuple[int, int], float]:
    """Per fold: sum per key in the order given, then add to the totals in key order."""
    limit: dict[tuple[int, int], float] = {}
    for keys, values in folds:
        sums: dict[int, float] = {}
        for k, v in zip(keys.tolist(), values.tolist()):
            sums[k] = sums.get(k, 0.0) + v
        for k in sorted(sums):
            key = divmod(k, num_links)
            limit[key] = limit.get(key, 0.0) + sums[k]
    return limit


def _folds(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of 1 to 600 flows over 40 keys, values spanning 12 orders of magnitude (so
    that the order of additions shows in the bits)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(300):
        n = int(rng.choice([1, 2, 5, 30, 600]))
        keys = rng.integers(0, 40, size=n) * 7 + rng.integers(0, 7, size=n)
        out.append((keys.astype(np.int64), 10.0 ** rng.uniform(-6, 6, size=n)))
    return out


@pytest.mark.parametrize(("add_numpy", "pending", "merge_at"),
                         [(256, 1 << 16, 1 << 20), (0, 1 << 16, 1 << 20),
                          (10**9, 3, 50), (256, 7, 1)])
def test_totals_equal_a_dict_updated_per_key(monkeypatch: pytest.MonkeyPatch, add_numpy: int,
                                             pending: int, merge_at: int) -> None:
    monkeypatch.setattr(flow_records, "_ADD_NUMPY", add_numpy)
    monkeypatch.setattr(flow_records, "_PENDING", pending)
    folds = _folds(seed=add_numpy % 97 + pending)
    lim = LimitTotals(num_links=7)
    lim._merge_at = merge_at
    for k, (keys, values) in enumerate(folds):
        lim.add(keys, values)
        if k == 150:  # totals read halfway, then more folds (as ``limits()`` may be)
            assert list(lim.totals().items()) == list(_reference(folds[:151], 7).items())
    assert list(lim.totals().items()) == list(_reference(folds, 7).items())
    assert list(lim.totals().items()) == list(_reference(folds, 7).items())  # idempotent


def test_no_folds_no_totals() -> None:
    assert LimitTotals(num_links=3).totals() == {}

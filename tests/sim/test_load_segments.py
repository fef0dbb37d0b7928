"""Per-link load segments: unchanged rates extend a segment, anything else closes it."""

from __future__ import annotations

import numpy as np
import pytest

from simcluster.sim.load_segments import LoadSegments


def _rows(s: LoadSegments) -> list[tuple[int, float, float, float]]:
    return list(zip(*(a.tolist() for a in s.segments())))


def test_a_hand_sequence() -> None:
    """Links 0 and 1 at 5 B/us over [0, 2]; then link 1 at 7 over [2, 3] (link 0 unchanged);
    then link 1 alone over [3, 4]; nothing over [4, 5]; link 0 at 1 over [5, 6]."""
    s = LoadSegments()
    s.extend(0.0, 2.0, np.array([0, 1]), np.array([5.0, 5.0]))
    s.extend(2.0, 3.0, np.array([0, 1]), np.array([5.0, 7.0]))
    s.extend(3.0, 4.0, np.array([1]), np.array([7.0]))
    s.extend(5.0, 6.0, np.array([0]), np.array([1.0]))
    assert _rows(s) == [(0, 0.0, 3.0, 5.0), (1, 0.0, 2.0, 5.0), (1, 2.0, 4.0, 7.0),
                        (0, 5.0, 6.0, 1.0)]


def _reference(steps: list[tuple[float, float, np.ndarray, np.ndarray]]
               ) -> list[tuple[int, float, float, float]]:
    """One segment per run of intervals in which a link's rate is the same and the
    intervals touch, built link by link."""
    open_: dict[int, list[float]] = {}
    rows = []
    for t0, t1, links, rates in steps:
        for link, (start, end, rate) in list(open_.items()):
            now = dict(zip(links.tolist(), rates.tolist()))
            if end != t0 or now.get(link) != rate:
                rows.append((link, start, end, rate))
                del open_[link]
        for link, rate in zip(links.tolist(), rates.tolist()):
            if link in open_:
                open_[link][1] = t1
            else:
                open_[link] = [t0, t1, rate]
    rows += [(link, s, e, r) for link, (s, e, r) in open_.items()]
    return sorted(rows, key=lambda r: (r[1], r[0]))


@pytest.mark.parametrize("seed", range(30))
def test_random_sequences_match_a_link_by_link_reference(seed: int) -> None:
    """Random loaded-link sets over 6 links, often the same set as before (the fast path),
    rates from 3 values, and gaps now and then."""
    rng = np.random.default_rng(seed)
    steps = []
    t = 0.0
    links = np.array([0, 2])
    for _ in range(20):
        if rng.random() < 0.4:
            links = np.flatnonzero(rng.random(6) < 0.5)
        rates = rng.choice([1.0, 2.0, 3.0], size=len(links))
        t0 = t + (1.0 if rng.random() < 0.2 else 0.0)
        t = t0 + float(rng.integers(1, 4))
        steps.append((t0, t, links, rates))
    s = LoadSegments()
    for step in steps:
        s.extend(*step)
    assert _rows(s) == _reference(steps)

"""The memo of solved sharing problems: exact keys, bounded size, and its use by the flow
network (a repeated problem is not solved again and gives the same times)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from simcluster.sim.network import FlowNetwork
from simcluster.sim.rate_cache import RateCache, problem_key

GB = 1e9


def test_keys_differ_when_the_split_between_arrays_differs() -> None:
    a = problem_key(np.array([1, 2], dtype=np.int64), np.array([3], dtype=np.int64))
    b = problem_key(np.array([1], dtype=np.int64), np.array([2, 3], dtype=np.int64))
    assert a != b
    assert a == problem_key(np.array([1, 2], dtype=np.int64), np.array([3], dtype=np.int64))


def test_stored_arrays_are_read_only() -> None:
    cache = RateCache()
    (rate,) = cache.put(b"k", (np.array([1.0, 2.0]),))
    with pytest.raises(ValueError):
        rate[0] = 5.0


def test_least_recently_used_entry_goes_first_past_the_budget() -> None:
    # Each entry: a 1-byte key and 16 bytes of array = 17 bytes; the budget holds two.
    cache = RateCache(budget_bytes=34)
    cache.put(b"a", (np.zeros(2),))
    cache.put(b"b", (np.zeros(2),))
    assert cache.get(b"a") is not None  # "a" is now the most recent
    cache.put(b"c", (np.zeros(2),))  # over budget: "b" goes
    assert (cache.get(b"b"), len(cache)) == (None, 2)
    assert cache.get(b"a") is not None and cache.get(b"c") is not None
    assert (cache.hits, cache.misses) == (3, 1)


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache = RateCache(budget_bytes=8)
    value = cache.put(b"k", (np.zeros(4),))
    assert value[0].tolist() == [0.0] * 4
    assert len(cache) == 0


def _finish(env: simpy.Environment, net: FlowNetwork, starts: list[float]) -> list[float]:
    """Start one 1 GB flow over link 0 and one 0.5 GB flow over links 0-1 at each time."""
    done: list[float] = []

    def pair(t: float) -> object:
        yield env.timeout(t)
        yield net.transfer([np.array([0]), np.array([0, 1])], [1 * GB, 0.5 * GB])
        done.append(env.now)

    for t in starts:
        env.process(pair(t))
    env.run()
    return done


def test_a_repeated_problem_is_solved_once_and_gives_the_same_times() -> None:
    # Link 0: 100 GB/s, link 1: 25 GB/s. The second flow is held to 25 GB/s by link 1, the
    # first gets the other 75 GB/s and ends at 1 GB / 75 GB/s = 13.33 ms; the second has
    # 0.5 - 0.3333 = 0.1667 GB left and, alone, still runs at 25 GB/s: 6.67 ms more, 20 ms.
    # The same pair again at 100 ms ends at 120 ms.
    env = simpy.Environment()
    net = FlowNetwork(env, np.array([100.0, 25.0]) * 1e3)
    assert _finish(env, net, [0.0, 100_000.0]) == pytest.approx([20_000.0, 120_000.0],
                                                                  rel=1e-12)
    # Problems: {both flows}, {the second alone}; each twice. Four recomputations, two solved.
    assert net.recomputes == 4
    assert (net.rate_cache.misses, net.rate_cache.hits) == (2, 2)
    # The peak count of flows per link is kept although the repeats were not solved.
    assert net.link_max_flows.tolist() == [2, 1]

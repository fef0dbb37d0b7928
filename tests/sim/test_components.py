"""Rate updates that solve only the components a change touches (``sim/components.py``):
exact rates and finish times on hand-computable cases, and on random ones the same rates
as a solve from scratch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simcluster.sim import components as comp
from simcluster.sim.maxmin import maxmin_compact
from simcluster.sim.network import FlowNetwork
from simcluster.sim.rate_cache import RateCache

GB = 1e9


def _labels_both(pf: list[int], slot: list[int], coupling: list[int],
                 monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Labels by the plain-Python union-find and by the numpy propagation; they agree."""
    args = (np.array(pf), np.array(slot), np.array(coupling), max(slot) + 1)
    small = comp.component_labels(*args)
    with monkeypatch.context() as m:
        m.setattr(comp, "_SMALL_PAIRS", -1)
        big = comp.component_labels(*args)
    assert small.tolist() == big.tolist()
    return small.tolist()


def test_labels_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    # f0 on l0; f1 on l1, l2; f2 on l2; f3 on l3; f4 on l4 coupled with f3; f5 on l0.
    pf = [0, 1, 1, 2, 3, 4, 5]
    slot = [0, 1, 2, 2, 3, 4, 0]
    assert _labels_both(pf, slot, [0, 1, 2, 3, 3, 5], monkeypatch) == [0, 1, 1, 3, 3, 0]
    # Uncoupled, f4 is alone.
    assert _labels_both(pf, slot, [0, 1, 2, 3, 4, 5], monkeypatch) == [0, 1, 1, 3, 4, 0]


def test_labels_of_a_long_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    # f_i on links i and i+1: one component however long (needs many propagation rounds).
    n = 200
    pf = [f for f in range(n) for _ in (0, 1)]
    slot = [f + h for f in range(n) for h in (0, 1)]
    assert _labels_both(pf, slot, list(range(n)), monkeypatch) == [0] * n


@pytest.mark.parametrize("seed", range(100))
def test_labels_numpy_equals_union_find(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    flows, links = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    pf, slot = [], []
    for f in range(flows):
        hops = sorted(rng.choice(links, size=min(links, int(rng.integers(1, 4))),
                                       replace=False).tolist())
        pf += [f] * len(hops)
        slot += hops
    coupling = np.sort(rng.integers(0, flows, size=flows)).tolist()
    _labels_both(pf, slot, coupling, monkeypatch)


# -- the flow network ---------------------------------------------------------------------


def _net(capacities_GBps: list[float], component_pairs: int
         ) -> tuple[simpy.Environment, FlowNetwork]:
    env = simpy.Environment()
    return env, FlowNetwork(env, np.array(capacities_GBps) * 1e3,
                            component_pairs=component_pairs)


def _run(capacities_GBps: list[float], component_pairs: int,
         starts: list[tuple[float, list[list[int]], list[float], bool]]
         ) -> tuple[list[float], FlowNetwork, list[tuple[float, np.ndarray]]]:
    """Start each (time, routes, sizes in GB, coupled) batch; return each batch's finish
    time (us), the network, and the rates after every update (time, rates)."""
    env, net = _net(capacities_GBps, component_pairs)
    seen: list[tuple[float, np.ndarray]] = []
    update = net._update

    def spy() -> None:
        update()
        seen.append((env.now, net._rate.copy()))

    net._update = spy  # type: ignore[method-assign]
    done = [np.nan] * len(starts)

    def batch(i: int, t: float, routes: list[list[int]], sizes: list[float],
              coupled: bool) -> object:
        yield env.timeout(t)
        yield net.transfer([np.array(r) for r in routes], [s * GB for s in sizes],
                           coupled=coupled)
        done[i] = env.now

    for i, (t, routes, sizes, coupled) in enumerate(starts):
        env.process(batch(i, t, routes, sizes, coupled))
    env.run()
    return done, net, seen


def test_a_change_in_one_component_leaves_the_other_alone() -> None:
    # Component A: link 0 (100 GB/s), two 1 GB flows from t=0. Component B: links 1 (50 GB/s)
    # and 2 (20 GB/s), a 1 GB flow on both (20 GB/s, limited by link 2: 50 ms) and a 0.6 GB
    # flow on link 1 (the other 30 GB/s: 20 ms). A third 0.5 GB flow joins A at 5 ms: A's
    # flows had 0.75 GB left each; from then on 33.3 GB/s each, the new one done at 20 ms
    # with the others (0.75 - 0.5 = 0.25 GB left, alone at 50 GB/s: 25 ms).
    b_only = [(0.0, [[1, 2], [1]], [1.0, 0.6], False)]
    with_a = [(0.0, [[0], [0]], [1.0, 1.0], False), *b_only,
              (5_000.0, [[0]], [0.5], False)]
    done_b, _, _ = _run([100.0, 50.0, 20.0], 0, b_only)
    done, net, seen = _run([100.0, 50.0, 20.0], 0, with_a)
    assert done == pytest.approx([25_000.0, 50_000.0, 20_000.0], rel=1e-12)
    # B's finish time is the same bits with or without A's changes.
    assert done[1] == done_b[0]
    # B's rates (flows 2 and 3 in admission order) never moved: 20 and 30 GB/s until 20 ms.
    at_5ms = next(r for t, r in seen if t == 5_000.0)
    assert at_5ms.tolist()[2:4] == [20e3, 30e3]
    assert at_5ms.tolist()[:2] == pytest.approx([100e3 / 3] * 2, rel=1e-12)
    # Look-ups: at each of 0, 5, 20 and 25 ms the whole problem (four misses); at 0 ms the
    # set {A, B} (a miss), then A and B; at 5 ms the set {A} and A (B kept its rates, not
    # looked up); at 20 ms the set {A, B} (both touched; a miss: A has two flows, B one),
    # then A (its problem of 0 ms: a hit) and B; at 25 ms, when A ends whole, nothing more.
    assert (net.rate_cache.misses, net.rate_cache.hits) == (11, 1)


def test_completion_order_is_the_same_as_the_whole_problem_solved_at_once() -> None:
    starts = [(0.0, [[0], [0]], [1.0, 1.0], False), (0.0, [[1, 2], [1]], [1.0, 0.6], False),
              (5_000.0, [[0]], [0.5], False), (7_000.0, [[2, 3]], [0.1], False)]
    by_parts, _, _ = _run([100.0, 50.0, 20.0, 80.0], 0, starts)
    whole, _, _ = _run([100.0, 50.0, 20.0, 80.0], 10**9, starts)
    assert np.argsort(by_parts, kind="stable").tolist() == np.argsort(whole,
                                                                     kind="stable").tolist()
    assert by_parts == pytest.approx(whole, rel=1e-12)


def test_a_flow_that_joins_two_components() -> None:
    # A: link 0 (100 GB/s), one 1 GB flow. B: link 1 (40 GB/s), one 1 GB flow. At 5 ms a
    # 0.3 GB flow on links 0 and 1 joins them: link 1 fills first at 20 GB/s each (B and
    # the new one), A takes the other 80 GB/s of link 0. At 5 ms A has 0.5 GB left, B 0.8.
    # The new flow ends at 5 + 15 = 20 ms; then A has 0.5 - 1.2 < 0: A ended before, at
    # 5 + 0.5/80 s = 11.25 ms; after that the new flow and B still share link 1 (20 each)
    # until 20 ms; B then has 0.8 - 0.3 = 0.5 GB left, alone at 40 GB/s: 32.5 ms.
    starts = [(0.0, [[0]], [1.0], False), (0.0, [[1]], [1.0], False),
              (5_000.0, [[0, 1]], [0.3], False)]
    done, _, seen = _run([100.0, 40.0], 0, starts)
    assert done == pytest.approx([11_250.0, 32_500.0, 20_000.0], rel=1e-12)
    at_5ms = next(r for t, r in seen if t == 5_000.0)
    assert at_5ms.tolist() == [80e3, 20e3, 20e3]


def test_coupled_flows_on_disjoint_links_are_one_component() -> None:
    # A coupled pair on links 0 (100) and 1 (40) runs at 40 each; a second flow on link 1
    # shares it: 20 each, and so the coupled flow on link 0 runs at 20 too.
    starts = [(0.0, [[0], [1]], [1.0, 1.0], True), (0.0, [[1]], [0.2], False)]
    done, _, seen = _run([100.0, 40.0], 0, starts)
    assert seen[0][1].tolist() == [20e3, 20e3, 20e3]
    # The second ends at 10 ms; the pair then has 0.8 GB each left at 40 GB/s: 30 ms.
    assert done == pytest.approx([30_000.0, 10_000.0], rel=1e-12)


# -- random problems: the same rates as a solve from scratch -------------------------------


def _from_scratch(net: FlowNetwork) -> tuple[np.ndarray, np.ndarray]:
    """Rates of the network's active flows solved from scratch: by components (fresh
    cache) and as one problem."""
    coupling = comp.runs(net._group_of)
    by_parts = comp.solve_components(net._pair_flow, net._pair_slot, net._links,
                                     net.capacity, coupling, net._weight, RateCache(),
                                     np.zeros(len(net.capacity), dtype=np.int64))[0]
    whole = maxmin_compact(net._pair_flow, net._pair_slot, len(net._size),
                           net.capacity[net._links], coupling, net._weight)[0]
    return by_parts, whole


_BATCH = st.tuples(
    st.integers(0, 6),  # start time, ms
    st.lists(st.lists(st.integers(0, 7), min_size=1, max_size=3, unique=True),
             min_size=1, max_size=4),  # routes over 8 links
    st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(_BATCH, min_size=1, max_size=8),
       st.lists(st.integers(1, 8), min_size=8, max_size=8),
       st.integers(1, 9))
def test_updates_give_the_rates_of_a_solve_from_scratch(
        batches: list[tuple[int, list[list[int]], bool]], caps: list[int], size: int) -> None:
    env, net = _net([10.0 * c for c in caps], 0)
    checked: list[int] = []
    update: Callable[[], None] = net._update

    def check() -> None:
        update()
        if len(net._size):
            by_parts, whole = _from_scratch(net)
            # Solved by components in this update or an earlier one: the same bits.
            assert net._rate.tobytes() == by_parts.tobytes()
            # One progressive filling over all: the same rates but for rounding.
            np.testing.assert_allclose(net._rate, whole, rtol=1e-12, atol=0)
            checked.append(len(net._size))

    net._update = check  # type: ignore[method-assign]

    def batch(t: int, routes: list[list[int]], coupled: bool, k: int) -> object:
        yield env.timeout(1_000.0 * t)
        yield net.transfer([np.array(sorted(r)) for r in routes],
                           [0.1 * GB * (1 + (k * size + h) % 5) for h in range(len(routes))],
                           coupled=coupled)

    for k, (t, routes, coupled) in enumerate(batches):
        env.process(batch(t, routes, coupled, k))
    env.run()
    assert checked


@settings(max_examples=40, deadline=None)
@given(st.lists(_BATCH, min_size=1, max_size=8),
       st.lists(st.integers(1, 8), min_size=8, max_size=8))
def test_finish_times_equal_those_of_the_whole_problem(
        batches: list[tuple[int, list[list[int]], bool]], caps: list[int]) -> None:
    starts = [(1_000.0 * t, [sorted(r) for r in routes],
               [0.1 * (1 + h) for h in range(len(routes))], coupled)
              for t, routes, coupled in batches]
    by_parts, net, _ = _run([10.0 * c for c in caps], 0, starts)
    whole, ref, _ = _run([10.0 * c for c in caps], 10**9, starts)
    assert by_parts == pytest.approx(whole, rel=1e-12)
    assert net.link_max_flows.tolist() == ref.link_max_flows.tolist()
    assert net.link_bytes == pytest.approx(ref.link_bytes, rel=1e-12)


def test_a_whole_problem_seen_before_keeps_its_components() -> None:
    # The case above, then again from 100 ms: the whole problem at 100 ms is that of 0 ms
    # (taken from the memo with its partition), and the flow joining A at 105 ms must still
    # leave B alone. Every finish time is the first run's plus 100 ms, to the bit.
    first = [(0.0, [[0], [0]], [1.0, 1.0], False), (0.0, [[1, 2], [1]], [1.0, 0.6], False),
             (5_000.0, [[0]], [0.5], False)]
    again = [(t + 100_000.0, routes, sizes, coupled) for t, routes, sizes, coupled in first]
    done, net, seen = _run([100.0, 50.0, 20.0], 0, first + again)
    assert done[3:] == [t + 100_000.0 for t in done[:3]]
    rates = [r.tolist() for t, r in seen]
    assert rates[-len(rates) // 2:] == rates[:len(rates) // 2]
    at_105ms = next(r for t, r in seen if t == 105_000.0)
    assert at_105ms.tolist()[2:4] == [20e3, 30e3]

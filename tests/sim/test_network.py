"""Exact timings of the flow-level network model on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from simcluster.sim.maxmin import maxmin_rates
from simcluster.sim.network import FlowNetwork

GB = 1e9


def _net(*capacities_GBps: float) -> tuple[simpy.Environment, FlowNetwork]:
    env = simpy.Environment()
    return env, FlowNetwork(env, np.array(capacities_GBps) * 1e3)


def _finish_times(env: simpy.Environment, events: list[simpy.Event]) -> list[float]:
    times: list[float] = [np.nan] * len(events)
    for i, ev in enumerate(events):
        ev.callbacks.append(lambda _e, i=i: times.__setitem__(i, env.now))
    env.run()
    return times


def test_one_flow_moves_1GB_over_100GBps_in_10ms() -> None:
    env, net = _net(100.0)
    (t,) = _finish_times(env, [net.transfer([np.array([0])], [1 * GB])])
    assert t == pytest.approx(10_000.0, rel=1e-12)


def test_two_flows_share_a_link_equally() -> None:
    env, net = _net(100.0)
    ev = [net.transfer([np.array([0])], [1 * GB]), net.transfer([np.array([0])], [1 * GB])]
    assert _finish_times(env, ev) == pytest.approx([20_000.0, 20_000.0], rel=1e-12)


def test_flow_through_100_then_50_hop_runs_at_50() -> None:
    env, net = _net(100.0, 50.0)
    (t,) = _finish_times(env, [net.transfer([np.array([0, 1])], [1 * GB])])
    assert t == pytest.approx(20_000.0, rel=1e-12)


def test_rates_recomputed_when_a_flow_joins_and_leaves() -> None:
    # A starts alone at 0 (100 GB/s). B (0.5 GB) joins at 5 ms: both at 50 GB/s.
    # A has 0.5 GB left at 5 ms, B 0.5 GB: both finish at 5 + 10 = 15 ms.
    env, net = _net(100.0)
    a = net.transfer([np.array([0])], [1 * GB])
    b = env.event()

    def late() -> object:
        yield env.timeout(5_000.0)
        inner = net.transfer([np.array([0])], [0.5 * GB])
        yield inner
        b.succeed()

    env.process(late())
    assert _finish_times(env, [a, b]) == pytest.approx([15_000.0, 15_000.0], rel=1e-12)


def test_short_flow_leaves_and_long_one_speeds_up() -> None:
    # 1 GB and 0.25 GB start together at 50 GB/s each; the short one ends at 5 ms,
    # the long one has 0.75 GB left and finishes alone at 100 GB/s: 5 + 7.5 = 12.5 ms.
    env, net = _net(100.0)
    ev = [net.transfer([np.array([0])], [1 * GB]), net.transfer([np.array([0])], [0.25 * GB])]
    assert _finish_times(env, ev) == pytest.approx([12_500.0, 5_000.0], rel=1e-12)


def test_batch_event_waits_for_all_flows_and_counts_link_bytes() -> None:
    env, net = _net(100.0, 100.0)
    ev = net.transfer([np.array([0]), np.array([1])], [1 * GB, 0.5 * GB])
    (t,) = _finish_times(env, [ev])
    assert t == pytest.approx(10_000.0)
    assert net.link_bytes == pytest.approx([1 * GB, 0.5 * GB])
    assert net.link_busy_us == pytest.approx([10_000.0, 5_000.0])
    assert net.link_saturated_us == pytest.approx([10_000.0, 5_000.0])


def _segments(net: FlowNetwork) -> list[float]:
    """Load segments, flattened: link, start (ms), end (ms), GB/s for each in turn."""
    links, starts, ends, rates = net.load_segments()
    return [x for seg in zip(links.tolist(), starts / 1e3, ends / 1e3, rates / 1e3)
            for x in seg]


def test_load_segments_merge_intervals_whose_rate_did_not_change() -> None:
    # Link 0: A (1 GB) alone at 100 GB/s for 10 ms. Link 1: B (0.1 GB) from 2 to 3 ms.
    # B's start and end recompute rates, but link 0's rate never changes: one segment.
    # Link 0 later (at 20 ms) carries C after an idle gap: a new segment, not merged.
    env, net = _net(100.0, 100.0)
    net.transfer([np.array([0])], [1 * GB])

    def later() -> object:
        yield env.timeout(2_000.0)
        yield net.transfer([np.array([1])], [0.1 * GB])
        yield env.timeout(17_000.0)
        yield net.transfer([np.array([0])], [0.5 * GB])

    env.process(later())
    env.run()
    assert _segments(net) == pytest.approx([0, 0.0, 10.0, 100.0, 1, 2.0, 3.0, 100.0,
                                            0, 20.0, 25.0, 100.0])


def test_load_segments_split_where_the_rate_changes() -> None:
    # Link 0 carries A (1 GB) and B (0.25 GB) at 50 GB/s each until B ends at 5 ms, then A
    # alone at 100 GB/s: the link's total rate is 100 GB/s throughout, so one segment; link 1
    # (A only, 200 GB/s) sees A's rate go from 50 to 100 GB/s: two segments.
    env, net = _net(100.0, 200.0)
    net.transfer([np.array([0, 1])], [1 * GB])
    net.transfer([np.array([0])], [0.25 * GB])
    env.run()
    assert _segments(net) == pytest.approx([0, 0.0, 12.5, 100.0, 1, 0.0, 5.0, 50.0,
                                            1, 5.0, 12.5, 100.0])


def test_empty_route_and_zero_bytes_finish_immediately() -> None:
    env, net = _net(100.0)
    ev = net.transfer([np.array([], dtype=np.int32), np.array([0])], [1 * GB, 0])
    assert _finish_times(env, [ev]) == [0.0]
    assert net.flows_started == 0


def test_maxmin_bottleneck_and_leftover() -> None:
    # Flows 0,1 share link 0 (90); flow 1 also uses link 1 (30): flow 1 gets 30, flow 0 60.
    r = maxmin_rates(np.array([0, 1, 1]), np.array([0, 0, 1]), 2, np.array([90.0, 30.0]))
    assert r.tolist() == pytest.approx([60.0, 30.0])


def test_maxmin_three_levels() -> None:
    # Link caps 10, 40, 100. f0 on l0; f1 on l0,l1; f2 on l1,l2; f3 on l2.
    # Fill: f0=f1=5 (l0 full); f2 then rises to 35 (l1 full); f3 takes the rest of l2: 65.
    pf = np.array([0, 1, 1, 2, 2, 3])
    pl = np.array([0, 0, 1, 1, 2, 2])
    r = maxmin_rates(pf, pl, 4, np.array([10.0, 40.0, 100.0]))
    assert r.tolist() == pytest.approx([5.0, 5.0, 35.0, 65.0])


def test_coupled_flows_run_at_the_slowest_pace_and_leave_room_for_others() -> None:
    # A coupled pair: f0 on l0 (100), f1 on l1 (20); f2 independent on l0.
    # The pair freezes at 20 when l1 fills; f2 takes the rest of l0: 80.
    r = maxmin_rates(np.array([0, 1, 2]), np.array([0, 1, 0]), 3, np.array([100.0, 20.0]),
                     coupling=np.array([0, 0, 2]))
    assert r.tolist() == pytest.approx([20.0, 20.0, 80.0])


def test_coupled_transfer_finishes_together() -> None:
    env, net = _net(100.0, 50.0)
    ev = net.transfer([np.array([0]), np.array([1])], [1 * GB, 1 * GB], coupled=True)
    (t,) = _finish_times(env, [ev])
    assert t == pytest.approx(20_000.0)
    # The fast link carried its bytes at the slow link's pace: busy all along, never saturated.
    assert net.link_busy_us == pytest.approx([20_000.0, 20_000.0])
    assert net.link_saturated_us == pytest.approx([0.0, 20_000.0])


def _attribution(monkeypatch: pytest.MonkeyPatch, fold_numpy: int) -> dict:
    """Limiting flow-time per (batch, link) of 300 flows of varied sizes on 6 links."""
    from simcluster.sim import flow_records

    monkeypatch.setattr(flow_records, "_ADD_NUMPY", fold_numpy)
    rng = np.random.default_rng(7)
    env, net = _net(100.0, 50.0, 25.0, 80.0, 40.0, 10.0)
    for _ in range(3):  # three batches of 100 flows at once
        routes = [np.unique(rng.integers(0, 6, size=rng.integers(1, 4))) for _ in range(100)]
        net.transfer(routes, rng.uniform(0.1, 1.0, size=100) * GB)
    env.run()
    return net.limits()


def test_flow_time_is_folded_with_the_same_bits_by_numpy_and_plain_python(
        monkeypatch: pytest.MonkeyPatch) -> None:
    by_numpy = _attribution(monkeypatch, 0)
    by_python = _attribution(monkeypatch, 10**9)
    assert len(by_numpy) > 6
    assert list(by_numpy.items()) == list(by_python.items())


@pytest.mark.parametrize("seed", range(40))
def test_dense_and_sorted_link_merges_give_the_same_links_and_slots(seed: int) -> None:
    """The table merge (many new pairs) and the sort-and-search merge (few) leave the same
    used links and the same slots for old and new pairs, on random routes that overlap the
    active ones, miss some, or add nothing new."""
    rng = np.random.default_rng(seed)
    n_links = int(rng.integers(1, 300))
    results = []
    for merge in ("_merge_links_sorted", "_merge_links_dense"):
        env, net = _net(*([100.0] * n_links))
        r = np.random.default_rng(seed)
        for _ in range(3):
            routes = [r.choice(n_links, size=int(r.integers(1, min(n_links, 6) + 1)),
                               replace=False) for _ in range(int(r.integers(1, 30)))]
            new_link = np.concatenate(routes).astype(np.int64)
            old_links = net._links.copy()
            slot = getattr(net, merge)(new_link)
            assert (net._links[slot] == new_link).all()
            assert (np.diff(net._links) > 0).all()
            assert set(old_links) <= set(net._links)
            n_flow = len(net._pair_flow)
            net._pair_slot = np.concatenate([net._pair_slot, slot])
            net._pair_flow = np.concatenate([net._pair_flow, np.arange(len(slot)) + n_flow])
        results.append((net._links, net._pair_slot))
    (links_a, slots_a), (links_b, slots_b) = results
    assert links_a.tolist() == links_b.tolist()
    assert slots_a.tolist() == slots_b.tolist()


def test_a_large_batch_takes_the_dense_merge_and_finishes_as_computed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """5,000 one-hop flows, two per link over 2,500 links of 100 GB/s (more pairs than the
    dense threshold and than a quarter of the links): each link carries two flows of 1 GB,
    so each runs at 50 GB/s and all finish at 20 ms."""
    env, net = _net(*([100.0] * 2500))
    calls: list[int] = []
    dense = net._merge_links_dense
    monkeypatch.setattr(net, "_merge_links_dense", lambda x: calls.append(len(x)) or dense(x))
    routes = [np.array([k % 2500]) for k in range(5000)]
    ev = net.transfer(routes, [1 * GB] * 5000)
    (t,) = _finish_times(env, [ev])
    assert t == pytest.approx(20_000.0, rel=1e-12)
    assert net.link_max_flows.tolist() == [2] * 2500
    assert calls == [5000]

"""The GPU clock's wake-ups on SimPy's heap (``sim/interference.py``, "The clock").

A compute op of 1,000 us of work sleeps on a clock whose rate is 0.8 while communication
runs. A rate change gives the wake-up a new time and event id; a heap entry is pushed only
when the wake-up moves earlier than the entry on the heap. Counts are of heap entries
(every entry is popped once when the run ends), hand-computed.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from simcluster.placement import bind
from simcluster.sim import SimOptions
from simcluster.sim.engine import Engine
from simcluster.sim.interference import GpuClock, heap_entries
from tests.conftest import workload
from tests.sim.test_interference import compute, sms_cluster

WORK = 1000.0  # us at full rate
SLOW = 0.8


def sleeper(env: simpy.Environment, clock: GpuClock, woke: list[float]
            ) -> Generator[simpy.Event, Any, None]:
    """Sleep until the clock has done WORK from now, as a stream's batch does."""
    v0 = clock.virtual(env.now)
    yield clock.sleep(0, v0 + WORK, env.now + WORK / clock.rate)
    clock.woke(0)
    woke.append(env.now)


def comms(env: simpy.Environment, clock: GpuClock, k: int, gap: float, length: float
          ) -> Generator[simpy.Event, Any, None]:
    """``k`` communication kernels of ``length`` us, each after ``gap`` us."""
    for _ in range(k):
        yield env.timeout(gap)
        clock.comm_started()
        yield env.timeout(length)
        clock.comm_ended()


def pops(env: simpy.Environment) -> tuple[int, int]:
    """Run to the end; (heap entries popped, of which stale: a clock's event that no one
    waits for)."""
    n = stale = 0
    while env._queue:  # type: ignore[attr-defined]
        ev = env._queue[0][3]  # type: ignore[attr-defined]
        stale += type(ev) is simpy.Event and not ev.callbacks
        env.step()
        n += 1
    return n, stale


def overlap(k: int, gap: float) -> tuple[tuple[int, int], list[float], GpuClock, int]:
    """An op sleeping from 0 and ``k`` communications of 100 us, each after ``gap`` us: the
    (entries, stale) popped, the wake-up times, the clock and the event ids given out."""
    env = simpy.Environment()
    clock, woke = GpuClock(env, SLOW), []
    env.process(sleeper(env, clock, woke))
    env.process(comms(env, clock, k, gap, 100.0))
    counts = pops(env)
    return counts, woke, clock, next(env._eid)  # type: ignore[attr-defined]


def test_four_communications_inside_one_sleep_push_one_wake_up() -> None:
    # Communication over [50, 150], [200, 300], [350, 450], [500, 600]: 20 us lost in each,
    # so the op ends at 1,080. The first entry (1,000) fires as an alarm and pushes the
    # wake-up once. Entries: 2 process starts, 8 timeouts, the sleep, the alarm's push, 2
    # process ends = 14, none stale; 8 event ids went to wake-ups, 7 never pushed (one entry
    # per change would have made 21 entries, 8 of them stale).
    counts, woke, clock, ids = overlap(4, 50.0)
    assert counts == (14, 0)
    assert woke == [1080.0]
    assert clock.changes == 8 and clock.unpushed == 7
    assert ids == 21  # the event ids, as with one entry per change


def test_a_wake_up_that_moves_earlier_is_pushed_at_once() -> None:
    # Communication over [0, 100] when the op starts: first due at 1,250; at 100 it has done
    # 80 us, so it is due at 1,020, before the entry on the heap: a new entry, the old one
    # stale. Entries after the communication started: the sleeper's start, the sleep, the
    # 100 us timeout, the push at 100, 2 ends = 6, one stale.
    env = simpy.Environment()
    clock, woke = GpuClock(env, SLOW), []
    env.process(comms(env, clock, 1, 0.0, 100.0))
    env.step()  # the communication's process starts: timeout(0)
    env.step()  # ... fires: communication runs from 0
    env.process(sleeper(env, clock, woke))
    assert pops(env) == (6, 1)
    assert woke == [1020.0]
    assert clock.unpushed == 0


def test_an_alarm_due_when_the_rate_rises_costs_an_entry_per_change_as_before() -> None:
    # Communication over [900, 1000]. At 900 the op is due at 1,025: the entry at 1,000
    # stays, an alarm. At 1,000 the alarm fires first (its id is older than the timeout's)
    # and pushes 1,025; then the communication ends: due at 1,020, earlier, so a new entry
    # and the 1,025 one stale. 3 entries of the clock, as one per change: 2 starts, 2
    # timeouts, the sleep, 2 pushes, 2 ends = 9.
    counts, woke, clock, ids = overlap(1, 900.0)
    assert counts == (9, 1)
    assert woke == [1020.0]
    assert clock.unpushed == 0 and ids == 9


def test_the_engine_slows_by_each_communication_with_one_wake_up() -> None:
    # Two ranks, each a compute op of 1,000 us and four 100 us all-reduces (1e7 B on the
    # 2-rank ring at 100 GB/s), each after 50 us of host time: as the first test, per rank.
    rows: list[dict[str, Any]] = []
    for r in (0, 1):
        rows.append(compute(r))
        for _ in range(4):
            rows += [{"rank": r, "stream": "m", "kind": "host", "duration_us": 50.0},
                     {"rank": r, "stream": "m", "kind": "collective",
                      "collective": "all_reduce", "comm_bytes": 10**7, "group": "dp"}]
    calls: list[int] = []
    engine = Engine(bind(workload(rows, {"dp": [0, 1]}), sms_cluster(20.0)),
                    SimOptions(progress=lambda done, total: calls.append(done),
                               progress_every=1))
    run = engine.run()
    t = run.timeline
    compute_ends = [e for k, e in zip(t["kind"].to_pylist(), t["end_us"].to_pylist())
                    if k == "compute"]
    assert compute_ends == [1080.0, 1080.0]
    assert [(c.changes, c.unpushed) for c in engine.clocks.values()] == [(8, 7), (8, 7)]
    # One progress call per event popped, and one at the end: every entry pushed was popped.
    assert heap_entries(engine.env, engine.clocks) == len(calls) - 1

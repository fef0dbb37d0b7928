"""A flow whose remaining time is below the clock's resolution still finishes."""

from __future__ import annotations

import numpy as np
import simpy

from simcluster.sim.network import FlowNetwork


def test_a_flow_finishing_below_the_clock_resolution_terminates() -> None:
    # At t = 1.68e7 us one float64 ulp is ~3.7e-9 us: a flow that needs 1.5e-9 us more would
    # wake up at `now` again and again without advancing (seen in a 1,536-GPU replay).
    env = simpy.Environment(initial_time=16787282.646618888)
    net = FlowNetwork(env, np.array([1000.0]))  # 1000 B/us
    done = net.transfer([np.array([0])], [1000.0 * 1.5e-9])
    for _ in range(1000):
        if done.processed:
            break
        env.step()
    assert done.processed and env.now - 16787282.646618888 < 1e-6

"""The host timeline (simcluster/workload/host.py): launches in program order, GPU ops after
their launch, the host blocking at sync points; the generator's ``host_us`` and CUDA graphs;
the host model measured on the real traces."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import numpy as np
import pyarrow.compute as pc
import pytest

from simcluster.workload.generate.presets import ModelSpec
from simcluster.workload.generate.transformer import TransformerConfig, transformer
from simcluster.workload.generate.transformer.host import graph_keys
from simcluster.workload.host import EAGER, HostModel, add_host_timeline
from simcluster.workload.validate import make_workload
from tests.conftest import ROOT, ends, replay, star, workload


def _hosted(durations: list[float], host_us: float, sync: list[bool] | None = None):
    """One rank's kernels of ``durations`` on one stream, each launched at ``host_us``."""
    wl = workload([{"rank": 0, "kind": "compute", "duration_us": d} for d in durations])
    table, pos = add_host_timeline(wl.ops, np.full(len(durations), host_us),
                                   np.array(sync or [False] * len(durations)))
    return make_workload(table, {}, wl.meta), pos.tolist()


def test_short_kernels_wait_for_their_launches() -> None:
    # 3 kernels of 2 us, 10 us to launch each: the GPU waits; step = 3 x 10 + 2.
    wl, pos = _hosted([2.0, 2.0, 2.0], 10.0)
    run = replay(wl, star(1))
    t = ends(run)
    assert [t[(0, p)] for p in pos] == [(10.0, 12.0), (20.0, 22.0), (30.0, 32.0)]
    assert run.makespan_us == 32.0


def test_long_kernels_hide_the_host_after_the_first_launch() -> None:
    # Kernels of 50 us: only the first launch shows; step = 10 + 3 x 50.
    wl, pos = _hosted([50.0, 50.0, 50.0], 10.0)
    run = replay(wl, star(1))
    assert [ends(run)[(0, p)] for p in pos] == [(10.0, 60.0), (60.0, 110.0), (110.0, 160.0)]
    assert run.makespan_us == 160.0


def test_a_sync_point_drains_the_gpu_before_the_next_launch() -> None:
    # The host issues k0, k1 (ahead of the GPU), then waits for k1 (ends at 110) before
    # launching k2: its launch runs 110-120, k2 120-170.
    wl, pos = _hosted([50.0, 50.0, 50.0], 10.0, [False, False, True])
    t = ends(replay(wl, star(1)))
    assert t[(0, pos[2] - 1)] == (110.0, 120.0)
    assert t[(0, pos[2])] == (120.0, 170.0)


def test_zero_cost_ops_get_no_launch_and_deps_are_renumbered() -> None:
    wl = workload([{"rank": 0, "kind": "compute", "duration_us": 1.0},
                   {"rank": 0, "kind": "compute", "duration_us": 1.0, "stream": "b",
                    "deps": [0]}])
    table, pos = add_host_timeline(wl.ops, np.array([0.0, 5.0]), np.array([False, False]))
    assert pos.tolist() == [0, 2]
    assert table.column("deps").to_pylist() == [None, None, [0, 1]]
    assert table.column("kind").to_pylist() == ["compute", "host", "compute"]


def test_host_model_cost() -> None:
    assert HostModel(launch_us=4.0, dispatch_us=2.5).cost(aten_ops=2) == 9.0


def _toy(**kw) -> TransformerConfig:
    m = ModelSpec("toy", layers=2, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=128,
                  seq_len=32)
    return TransformerConfig(model=m, tp=2, dp=2, global_batch=4, **kw)


def _rank0(wl):
    return wl.ops.filter(pc.equal(wl.ops.column("rank"), 0))


def test_generated_workload_launches_every_gpu_op_once() -> None:
    plain, hosted = transformer(_toy()), transformer(_toy(host_us=20.0))
    kinds = Counter(_rank0(hosted).column("kind").to_pylist())
    assert kinds["host"] == _rank0(plain).num_rows
    # The mirror replicas of the fold get no host ops.
    assert hosted.num_ops - plain.num_ops == kinds["host"] * 2  # ranks 0 and 1 (tp 2)


def test_generated_host_bound_step_is_at_least_the_launches() -> None:
    # 1 ms per launch dwarfs the toy's kernels: the step is the host's launches and the
    # GPU's tail after the last one.
    hosted = transformer(_toy(host_us=1000.0))
    launches = Counter(_rank0(hosted).column("kind").to_pylist())["host"]
    run = replay(hosted, star(4))
    assert launches * 1000.0 <= run.makespan_us < (launches + 1) * 1000.0
    assert replay(transformer(_toy()), star(4)).makespan_us < 1000.0


def test_cuda_graphs_launch_a_layer_pass_once() -> None:
    names = _rank0(transformer(_toy())).column("name").to_pylist()
    keys = graph_keys(names)
    expected = sum(1 for k, p in zip(keys, [None] + keys[:-1]) if not k or k != p)
    graphed = _rank0(transformer(_toy(host_us=20.0, cuda_graphs=True)))
    costs = graphed.filter(pc.equal(graphed.column("kind"), "host")).column("duration_us")
    assert pc.sum(pc.greater(costs, 0.0)).as_py() == expected < len(names)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("host_overhead",
                                                  ROOT / "bench" / "host_overhead.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["host_overhead"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_real_trace_launches_are_counted(bench, shared_data) -> None:
    data = shared_data / "kineto"
    t = bench.measure(data / "dlrm-v100-8rank" / "rank-0.json.gz", "dlrm-v100-8rank/rank-0",
                      100.0)
    assert t.launches == 245  # the README's cudaLaunchKernel count of that rank
    assert 0 < t.kept < t.launches


def test_default_host_model_is_the_fit_on_the_real_traces(bench, shared_data) -> None:
    data = shared_data / "kineto"
    fitted = [bench.measure(data / f"{k}.json.gz", k, 100.0) for k in bench.FIT]
    launch_us, dispatch_us = bench.fit(fitted)
    assert (round(launch_us, 2), round(dispatch_us, 2)) == (EAGER.launch_us, EAGER.dispatch_us)


def test_a_negative_host_cost_is_a_configuration_error() -> None:
    from simcluster.errors import WorkloadError

    with pytest.raises(WorkloadError, match="host_us -1"):
        transformer(_toy(host_us=-1.0))

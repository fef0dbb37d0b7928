"""Kineto import on random traces: a Workload or a WorkloadError, never another exception;
and what imports replays to the end or stops with a SimulationError, never a hang."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcluster.errors import SimulationError, WorkloadError
from simcluster.placement import bind
from simcluster.sim import simulate
from simcluster.topology.recorded import recorded_cluster
from simcluster.workload.kineto import import_kineto

CATS = ["cpu_op", "user_annotation", "cuda_runtime", "kernel", "gpu_memcpy", "gpu_memset",
        "cuda_sync", "Kernel", "Runtime", "ac2g", "weird", None]
NAMES = ["ProfilerStep#1", "ProfilerStep#2", "cudaLaunchKernel", "cudaDeviceSynchronize",
         "cudaStreamSynchronize", "cudaEventRecord", "cudaStreamWaitEvent", "cudaMemcpyAsync",
         "Memcpy HtoD (Pinned -> Device)", "record_param_comms", "nccl:all_reduce",
         "ncclKernel_AllReduce_RING_LL_Sum_float", "ncclDevKernel_SendRecv", "gemm", ""]
numbers = st.one_of(st.integers(-5, 400), st.floats(-5, 400, allow_nan=False), st.text(max_size=3),
                    st.none())
args = st.fixed_dictionaries({}, optional={
    "correlation": st.integers(0, 6), "stream": st.one_of(st.integers(0, 3), st.text(max_size=3)),
    "device": st.integers(0, 1), "bytes": numbers, "Collective name": st.sampled_from(
        ["allreduce", "all_to_allv", "bogus"]), "In msg nelems": numbers, "Out msg nelems":
    numbers, "dtype": st.sampled_from(["Float", "Half", "nope"]), "Input Dims": st.one_of(
        st.just([[4, 2]]), st.just([[]]), st.just("x")), "Input type": st.one_of(
        st.just(["float"]), st.just([None])), "Process Group Ranks": st.sampled_from(
        ["[0, 1]", "[0]", "bad", [0, 1]]), "wait_on_stream": st.integers(-1, 3),
    "wait_on_cuda_event_record_corr_id": st.integers(-1, 6), "cuda_sync_kind": st.sampled_from(
        ["Stream Wait Event", "Event Sync", "Context Sync"])})
event = st.fixed_dictionaries({"ph": st.sampled_from(["X", "X", "X", "i", "s", "M", "B"]),
                               "cat": st.sampled_from(CATS), "name": st.sampled_from(NAMES),
                               "ts": numbers, "dur": numbers, "tid": st.integers(0, 2),
                               "pid": st.integers(0, 1), "args": st.one_of(args, st.just([]))})
top = st.fixed_dictionaries({"traceEvents": st.lists(event, max_size=25)}, optional={
    "distributedInfo": st.one_of(st.fixed_dictionaries({"rank": st.integers(0, 1),
                                                         "world_size": st.integers(1, 2)}),
                                 st.just("x")),
    "deviceProperties": st.one_of(st.just([{"id": 0, "name": "NVIDIA A100-SXM4-80GB"}]),
                                  st.just([{"name": 5}]), st.just({}))})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(top, min_size=1, max_size=2))
def test_random_traces_import_or_fail_cleanly(docs: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for k, doc in enumerate(docs):
            (Path(tmp) / f"rank-{k}.json").write_text(json.dumps(doc))
        try:
            wl = import_kineto(tmp)
        except WorkloadError:
            return
        assert wl.num_ops > 0
        try:
            run = simulate(bind(wl, recorded_cluster("A100", wl.num_ranks)))
        except SimulationError:
            return
        assert run.timeline.num_rows == wl.num_ops

"""Kineto import on handmade traces: exact dependency graphs and simulated times."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from simcluster.analysis.fidelity import step_fidelity
from simcluster.errors import WorkloadError
from simcluster.topology.recorded import recorded_cluster
from simcluster.workload.kineto import KinetoOptions, import_kineto
from simcluster.workload.model import Workload
from tests.conftest import ends, replay, star
from tests.workload.kinetotrace import KTrace

B = 1_000_000.0  # an absolute time base: the importer works relative to the trace start


def _graph(wl: Workload, rank: int = 0) -> list[tuple[str, str, list[int] | None]]:
    return [(r["name"], r["stream"], r["deps"]) for r in wl.ops.to_pylist()
            if r["rank"] == rank]


def _one(tmp_path: Path, t: KTrace, **opts) -> Workload:
    return import_kineto(t.write(tmp_path / "rank-0.json"), KinetoOptions(**opts))


def _a100() -> object:
    return recorded_cluster("A100-SXM4-80GB", 1)


def test_launches_and_stream_order(tmp_path: Path) -> None:
    t = KTrace()
    t.step(1, B, 100)
    t.launch(B + 10, 5, B + 16, 30)           # kernel 16-46
    t.launch(B + 20, 5, B + 46, 10, name="relu")  # queued behind it: 46-56
    wl = _one(tmp_path, t)
    assert _graph(wl) == [
        ("ProfilerStep#1", "cpu:1", None), ("cpu", "cpu:1", None),
        ("cudaLaunchKernel", "cpu:1", None), ("cpu", "cpu:1", None),
        ("gemm", "cuda:7", [2]), ("cudaLaunchKernel", "cpu:1", None), ("cpu", "cpu:1", None),
        ("relu", "cuda:7", [5]), ("ProfilerStep#1 end", "cpu:1", None)]
    run = replay(wl, _a100())
    t_ = ends(run)
    # A kernel waits for its launch call to return (15), then for its stream (45).
    assert t_[(0, 4)] == (15.0, 45.0) and t_[(0, 7)] == (45.0, 55.0)
    # GPU side: recorded kernels 16-56 (40 us), simulated 15-55 (40 us).
    assert step_fidelity(run, wl).to_pylist() == [
        {"rank": 0, "step": 1, "recorded_us": 100.0, "simulated_us": 100.0, "error": 0.0,
         "recorded_gpu_us": 40.0, "simulated_gpu_us": 40.0, "gpu_error": 0.0}]
    starts = dict(zip(wl.ops.column("name").to_pylist(),
                      wl.ops.column("recorded_start_us").to_pylist()))
    assert starts["relu"] - starts["gemm"] == 30.0  # kept as recorded: 46 - 16
    assert wl.meta.recorded_device == "A100-SXM4-80GB"


def test_device_synchronize_waits_for_the_gpu(tmp_path: Path) -> None:
    t = KTrace()
    t.step(1, B, 130)
    t.launch(B + 10, 5, B + 16, 100)                     # kernel 16-116
    t.runtime("cudaDeviceSynchronize", B + 30, 90)       # returns at 120, 4 us after it
    wl = _one(tmp_path, t)
    assert _graph(wl) == [
        ("ProfilerStep#1", "cpu:1", None), ("cpu", "cpu:1", None),
        ("cudaLaunchKernel", "cpu:1", None), ("cpu", "cpu:1", None), ("gemm", "cuda:7", [2]),
        ("cudaDeviceSynchronize", "cpu:1", [4]), ("cpu", "cpu:1", None),
        ("ProfilerStep#1 end", "cpu:1", None)]
    sync = wl.ops.to_pylist()[5]
    assert sync["duration_us"] == 4.0  # the wake-up after the kernel, not the 90 us wait
    t_ = ends(replay(wl, _a100()))
    assert t_[(0, 5)] == (115.0, 119.0) and t_[(0, 7)] == (129.0, 129.0)
    # The wait is a dependency, not a recorded time: a kernel twice as long delays the host.
    kind = wl.ops.column("kind")
    dur = pc.if_else(pc.equal(kind, "compute"), pc.multiply(wl.ops.column("duration_us"), 2.0),
                     wl.ops.column("duration_us"))
    slow = Workload(wl.ops.set_column(wl.ops.schema.get_field_index("duration_us"),
                                      "duration_us", dur), wl.groups, wl.meta)
    assert ends(replay(slow, _a100()))[(0, 5)] == (215.0, 219.0)


def _two_streams(t: KTrace, record_wait: bool, cuda_sync: bool) -> None:
    t.step(1, B, 200)
    t.launch(B + 10, 5, B + 16, 50)                      # k1 on stream 7: 16-66
    if record_wait:
        rec = t.runtime("cudaEventRecord", B + 20, 2)
        wait = t.runtime("cudaStreamWaitEvent", B + 25, 2)
        if cuda_sync:
            t.cuda_sync("Stream Wait Event", wait, B + 25, stream=20, wait_on_stream=7,
                        wait_on_cuda_event_record_corr_id=rec)
    t.launch(B + 30, 5, B + 66, 20, name="k2", stream=20)  # k2 on stream 20: waits for k1


@pytest.mark.parametrize("record_wait,cuda_sync,how", [
    (True, True, "cross-stream waits from cuda_sync events: 1"),
    (True, False, "cross-stream waits from event record/wait pairs: 1"),
    (False, False, "cross-stream waits inferred from timing: 1"),
])
def test_cross_stream_wait(tmp_path: Path, record_wait: bool, cuda_sync: bool,
                           how: str) -> None:
    t = KTrace()
    _two_streams(t, record_wait, cuda_sync)
    wl = _one(tmp_path, t)
    assert _graph(wl) == [
        ("ProfilerStep#1", "cpu:1", None), ("cpu", "cpu:1", None),
        ("cudaLaunchKernel", "cpu:1", None), ("cpu", "cpu:1", None), ("gemm", "cuda:7", [2]),
        ("cudaLaunchKernel", "cpu:1", None), ("cpu", "cpu:1", None), ("k2", "cuda:20", [4, 5]),
        ("ProfilerStep#1 end", "cpu:1", None)]
    assert how in wl.meta.extra["import"]["notes"]
    assert ends(replay(wl, _a100()))[(0, 7)] == (65.0, 85.0)


def test_synchronous_copy_blocks_the_host(tmp_path: Path) -> None:
    t = KTrace()
    t.step(1, B, 60)
    corr = t.runtime("cudaMemcpyAsync", B + 10, 40)                  # returns at 50
    t.gpu("Memcpy DtoH (Device -> Pageable)", B + 20, 25, corr, cat="gpu_memcpy", bytes=1000)
    wl = _one(tmp_path, t)
    rows = wl.ops.to_pylist()
    assert [(r["name"], r["duration_us"], r["deps"]) for r in rows[2:5]] == [
        ("cudaMemcpyAsync", 10.0, None),
        ("Memcpy DtoH (Device -> Pageable)", 25.0, [2]),
        ("cudaMemcpyAsync (wait)", 5.0, [3])]
    assert (rows[3]["kind"], rows[3]["copy_kind"], rows[3]["comm_bytes"],
            rows[3]["fixed_duration"]) == ("memcpy", "D2H", 1000, True)
    t_ = ends(replay(wl, _a100()))
    assert t_[(0, 3)] == (20.0, 45.0) and t_[(0, 4)] == (45.0, 50.0)
    # --model-copies: the copy is a flow on the PCIe path instead (1000 B: latency-bound).
    modelled = _one(tmp_path, t, model_copies=True)
    assert modelled.ops.to_pylist()[3]["fixed_duration"] is None


def test_call_that_outlasts_its_gpu_op_start_is_split(tmp_path: Path) -> None:
    t = KTrace()
    t.step(1, B, 70)
    corr = t.runtime("cudaMemcpyAsync", B + 10, 40)                  # returns at 50
    t.gpu("Memcpy HtoD (Pageable -> Device)", B + 12, 48, corr, cat="gpu_memcpy", bytes=10)
    wl = _one(tmp_path, t)
    assert [(r["name"], r["duration_us"], r["deps"]) for r in wl.ops.to_pylist()[2:5]] == [
        ("cudaMemcpyAsync", 2.0, None), ("Memcpy HtoD (Pageable -> Device)", 48.0, [2]),
        ("cudaMemcpyAsync (return)", 38.0, None)]
    assert ends(replay(wl, _a100()))[(0, 3)] == (12.0, 60.0)


def _nccl(t: KTrace, kernel: str, at: float, kernel_args: dict | None = None,
          annotations: tuple[tuple[str, dict], ...] = (), tid: int = 1,
          dur: float = 50.0) -> None:
    for k, (name, args) in enumerate(annotations):
        t.cpu(name, at - 3 + k, 10 - 2 * k, tid=tid, **args)
    t.launch(at, 2, at + 3, dur, name=kernel, stream=30, tid=tid, **(kernel_args or {}))


NEW_ARGS = {"Collective name": "allreduce", "In msg nelems": 1000, "Out msg nelems": 1000,
            "dtype": "Float", "Group size": 2, "Process Group Name": "0",
            "Process Group Ranks": "[0, 1]"}
AR = "ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)"


@pytest.mark.parametrize("kernel,kargs,annotations,expect", [
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)", NEW_ARGS, (),
     ("all_reduce", 4000, "0", "kernel args")),
    (AR, None, (("record_param_comms", NEW_ARGS),), ("all_reduce", 4000, "0",
                                                     "record_param_comms")),
    (AR, None, (("c10d::allreduce_", {}),
                ("record_param_comms", {"Input Dims": [[1000], []],
                                        "Input type": ["float", "Scalar"]})),
     ("all_reduce", 4000, "world", "record_param_comms")),
    (AR, None, (("record_param_comms", {"Input Dims": [[], []],
                                        "Input type": ["TensorList", "Scalar"]}),
                ("nccl:all_reduce", {"Input Dims": [[1000]], "Input type": ["float"]})),
     ("all_reduce", 4000, "world", "nccl annotation")),
    ("ncclKernel_AllGather_RING_LL_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)", None,
     (("nccl:_all_gather_base", {"Input Dims": [[250]], "Input type": ["c10::BFloat16"]}),),
     ("all_gather", 1000, "world", "nccl annotation")),
    ("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)",
     None, (), ("all_to_all", None, "world", None)),
])
def test_collective_info_from_every_trace_version(tmp_path: Path, kernel, kargs, annotations,
                                                  expect) -> None:
    t = KTrace(world=2)
    t.step(1, B, 100)
    _nccl(t, kernel, B + 10, kargs, annotations)
    wl = _one(tmp_path, t)
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    assert [(r["collective"], r["comm_bytes"], r["group"]) for r in coll] == [expect[:3]]
    # Rank 1 of the job is not in the import: the collective keeps its recorded time.
    assert coll[0]["fixed_duration"] is True and coll[0]["duration_us"] == 50.0
    notes = " ".join(wl.meta.extra["import"]["notes"] + wl.meta.extra["import"]["warnings"])
    if expect[3] is None:
        assert "have no size in the trace" in notes and "cannot be retargeted" in notes
    else:
        assert f"collective sizes from: {expect[3]} (1)" in notes


def _ranked(rank: int, launch_at: float, kernel_dur: float, n: int = 1) -> KTrace:
    t = KTrace(rank=rank, world=2)
    t.step(1, B, 100)
    args = {**NEW_ARGS, "In msg nelems": 250_000, "Out msg nelems": 250_000}  # 1 MB
    for k in range(n):
        _nccl(t, AR, B + launch_at + 30 * k, args, dur=kernel_dur)
    return t


def test_two_ranks_collective_on_the_network_model(tmp_path: Path) -> None:
    _ranked(0, 10, 38).write(tmp_path / "rank-0.json")
    _ranked(1, 30, 18).write(tmp_path / "rank-1.json.gz", gz=True)
    wl = import_kineto(tmp_path)
    assert wl.num_ranks == 2 and wl.groups["0"] == (0, 1)
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    assert [(r["rank"], r["comm_bytes"], r["fixed_duration"]) for r in coll] == [
        (0, 1_000_000, None), (1, 1_000_000, None)]
    # Launches return at 12 and 32; all-reduce of 1 MB on 2 ranks at 100 GB/s: 10 us.
    t_ = ends(replay(wl, star(2)))
    i0 = next(r["op_id"] for r in coll if r["rank"] == 0)
    i1 = next(r["op_id"] for r in coll if r["rank"] == 1)
    assert t_[(0, i0)] == pytest.approx((12.0, 42.0)) and t_[(1, i1)] == pytest.approx((32.0, 42.0))
    # Alone, rank 1's collective replays at its recorded 18 us.
    alone = import_kineto(tmp_path / "rank-1.json.gz")
    assert [r["fixed_duration"] for r in alone.ops.to_pylist() if r["kind"] == "collective"] == [
        True]


def test_ranks_start_at_their_recorded_times(tmp_path: Path) -> None:
    a, b = KTrace(rank=0, world=2), KTrace(rank=1, world=2)
    a.step(3, B, 50)
    b.step(3, B + 20, 50)
    a.write(tmp_path / "rank-0.json")
    b.write(tmp_path / "rank-1.json")
    wl = import_kineto(tmp_path)
    assert [(r["name"], r["stream"], r["deps"]) for r in wl.ops.to_pylist() if r["rank"] == 1
            ][:2] == [("untraced (until 20.000 us)", "untraced", None),
                      ("ProfilerStep#3", "cpu:1", [0])]
    run = replay(wl, recorded_cluster("A100", 2))
    assert step_fidelity(run, wl).column("simulated_us").to_pylist() == [50.0, 50.0]
    assert ends(run)[(1, 1)] == (20.0, 20.0)


def test_step_selection(tmp_path: Path) -> None:
    t = KTrace()
    t.step(1, B, 100)
    t.step(2, B + 100, 50)
    t.launch(B + 10, 5, B + 16, 30)
    t.launch(B + 110, 5, B + 116, 30, name="second")
    wl = _one(tmp_path, t, step=2)
    names = wl.ops.column("name").to_pylist()
    assert "second" in names and "gemm" not in names
    assert wl.meta.extra["kineto"]["ranks"]["0"]["steps"] == {"2": 50.0}
    all_steps = _one(tmp_path, t)
    assert sorted(set(all_steps.ops.column("step").to_pylist())) == [1, 2]
    with pytest.raises(WorkloadError, match="no ProfilerStep#7 \\(steps in the trace: 1, 2\\)"):
        _one(tmp_path, t, step=7)


def test_unknown_categories_are_counted_not_fatal(tmp_path: Path) -> None:
    t = KTrace()
    t.step(1, B, 10)
    t.events += [{"ph": "X", "cat": "mystery", "name": "x", "ts": B, "dur": 1},
                 {"ph": "s", "cat": "ac2g", "id": 1, "ts": B}, 17,
                 {"ph": "i", "name": "[memory]", "ts": B}]
    doc = t.doc()
    doc["newKey"] = {"a": 1}
    (tmp_path / "t.json").write_text(json.dumps(doc))
    rep = import_kineto(tmp_path / "t.json").meta.extra["import"]
    assert rep["unknown"] == {"category 'mystery'": 1, "events that are not JSON objects": 1,
                              "top-level key 'newKey'": 1}
    assert rep["skipped"]["memory allocation events (not modelled)"] == 1


# -- bad input ---------------------------------------------------------------------------------

def _two_rank_dir(tmp_path: Path) -> Path:
    _ranked(0, 10, 38).write(tmp_path / "rank-0.json")
    _ranked(1, 30, 18).write(tmp_path / "rank-1.json")
    return tmp_path


def test_truncated_json(tmp_path: Path) -> None:
    p = _ranked(0, 10, 38).write(tmp_path / "rank-0.json")
    p.write_text(p.read_text()[: len(p.read_text()) // 2])
    with pytest.raises(WorkloadError, match="rank-0.json: not valid JSON at character .*"
                                            "truncated"):
        import_kineto(p)


def test_truncated_gzip(tmp_path: Path) -> None:
    p = _ranked(0, 10, 38).write(tmp_path / "rank-0.json.gz", gz=True)
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(WorkloadError, match="rank-0.json.gz: .*truncated"):
        import_kineto(p)


def test_non_trace_json(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"hello": [1, 2, 3]}')
    with pytest.raises(WorkloadError, match="x.json: JSON without traceEvents"):
        import_kineto(tmp_path)
    (tmp_path / "x.json").write_text('{"schema": "1.0.1", "nodes": []}')
    with pytest.raises(WorkloadError, match="a PyTorch execution trace.*--et"):
        import_kineto(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps([1, 2]))
    with pytest.raises(WorkloadError, match="not valid JSON.*expected a JSON object"):
        import_kineto(tmp_path)


def test_ranks_from_different_runs(tmp_path: Path) -> None:
    _ranked(0, 10, 38).write(tmp_path / "rank-0.json")
    t = _ranked(1, 30, 18)
    t.world = 4
    t.write(tmp_path / "rank-1.json")
    with pytest.raises(WorkloadError, match="disagree on the world size \\(rank-0.json \\(rank 0 "
                                            "of 2\\), rank-1.json \\(rank 1 of 4\\)\\)"):
        import_kineto(tmp_path)
    _ranked(0, 10, 38).write(tmp_path / "rank-1.json")
    with pytest.raises(WorkloadError, match="rank-0.json and rank-1.json are both rank 0"):
        import_kineto(tmp_path)


def test_collective_on_only_some_ranks(tmp_path: Path) -> None:
    _ranked(0, 10, 38, n=2).write(tmp_path / "rank-0.json")
    _ranked(1, 30, 18, n=1).write(tmp_path / "rank-1.json")
    with pytest.raises(WorkloadError, match="group '0': rank\\(s\\) 1 issue 1 collective\\(s\\) "
                                            "but rank\\(s\\) 0 issue 2.*only some ranks"):
        import_kineto(tmp_path)


def test_ranks_with_different_steps(tmp_path: Path) -> None:
    _ranked(0, 10, 38).write(tmp_path / "rank-0.json")
    t = _ranked(1, 30, 18)
    t.events[0]["name"] = "ProfilerStep#9"
    t.write(tmp_path / "rank-1.json")
    with pytest.raises(WorkloadError, match="recorded different ProfilerSteps \\(rank 0: 1; "
                                            "rank 1: 9\\)"):
        import_kineto(tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no .json or .json.gz trace files"):
        import_kineto(tmp_path)


def test_gz_and_plain_give_the_same_workload(tmp_path: Path) -> None:
    t = _ranked(0, 10, 38)
    a = import_kineto(t.write(tmp_path / "a.json"))
    b = import_kineto(t.write(tmp_path / "b.json.gz", gz=True))
    assert a.ops.equals(b.ops)



def test_files_parse_in_parallel_processes(tmp_path: Path, monkeypatch) -> None:
    import simcluster.workload.kineto as k

    d = tmp_path / "t"
    d.mkdir()
    _ranked(0, 10, 38).write(d / "rank-0.json")
    _ranked(1, 30, 18).write(d / "rank-1.json")
    serial = import_kineto(d, KinetoOptions(workers=1))
    monkeypatch.setattr(k, "_PARALLEL_MIN_BYTES", 0)
    parallel = import_kineto(d, KinetoOptions(workers=2))
    assert parallel.ops.equals(serial.ops)


def _et(path: Path, numel: int, splits: list[int] | None = None) -> None:
    tensor = [7, 8, 0, numel, 4, "cuda:0"]
    path.write_text(json.dumps({"schema": "1.0.1", "nodes": [
        {"id": 5, "name": "record_param_comms", "rf_id": 3,
         "inputs": [9, 0, 0, "wait", [], []], "outputs": []},
        {"id": 6, "name": "record_param_comms", "rf_id": 4,
         "inputs": [tensor, 1, 0, 0, "all_to_allv", splits or [], splits or []],
         "outputs": [tensor]}]}))


def _sendrecv_traces(tmp_path: Path, splits: list[int] | None = None) -> tuple[Path, Path]:
    """Two ranks' Kineto traces of one SendRecv kernel without sizes, and their execution
    traces: an all_to_allv of 1000 floats (``splits``: its input split sizes)."""
    d, et = tmp_path / "k", tmp_path / "et"
    d.mkdir()
    et.mkdir()
    sendrecv = "ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)"
    for r in range(2):
        t = KTrace(rank=r, world=2)
        t.step(1, B, 100)
        t.launch(B + 10, 2, B + 13, 40, name=sendrecv, stream=30)
        t.write(d / f"rank-{r}.json")
        _et(et / f"eg_{r}.json", 1000, splits)
    return d, et


def test_execution_traces_supply_missing_sizes(tmp_path: Path) -> None:
    d, et = _sendrecv_traces(tmp_path)
    alone = import_kineto(d)
    assert [r["fixed_duration"] for r in alone.ops.to_pylist() if r["kind"] == "collective"] == [
        True, True]
    wl = import_kineto(d, KinetoOptions(et=et))
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    assert [(r["collective"], r["comm_bytes"], r["fixed_duration"]) for r in coll] == [
        ("all_to_all", 4000, None)] * 2
    assert "collective sizes from: execution trace (2)" in wl.meta.extra["import"]["notes"]
    with pytest.raises(WorkloadError, match="no execution trace for rank 1"):
        (et / "eg_1.json").unlink()
        import_kineto(d, KinetoOptions(et=et))


A2A = "ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)"


def test_all_to_allv_split_sizes_become_per_pair_bytes(tmp_path: Path) -> None:
    """Rank 0 sends 400 floats split [1, 3] (100 and 300 elements): 400 and 1200 B; rank 1
    sends 200 split [2, 0]: 800 and 0 B. The ranks' sizes differ (1600 vs 800 B), so both
    take the largest send or receive total, 1600 B (rank 1 receives 1200)."""
    for r, (n, split) in enumerate([(400, "[1, 3]"), (200, "[2, 0]")]):
        t = KTrace(rank=r, world=2)
        t.step(1, B, 100)
        args = {**NEW_ARGS, "Collective name": "all_to_allv", "In msg nelems": n,
                "Out msg nelems": n, "In split size": split}
        _nccl(t, A2A, B + 10, None, (("record_param_comms", args),))
        t.write(tmp_path / f"rank-{r}.json")
    wl = import_kineto(tmp_path)
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    assert [(r["collective"], r["comm_bytes"], r["splits"]) for r in coll] == [
        ("all_to_all", 1600, [400, 1200]), ("all_to_all", 1600, [800, 0])]
    assert any("1 of them replay each pair's own bytes" in n
               for n in wl.meta.extra["import"]["notes"])


def test_execution_trace_split_sizes(tmp_path: Path) -> None:
    d, et = _sendrecv_traces(tmp_path, [250, 750])
    wl = import_kineto(d, KinetoOptions(et=et))
    coll = [r for r in wl.ops.to_pylist() if r["kind"] == "collective"]
    # Each sends 4000 B as 1000 + 3000; rank 1 receives 6000 B: the size.
    assert [(r["comm_bytes"], r["splits"]) for r in coll] == [(6000, [1000, 3000])] * 2


@pytest.mark.parametrize("keep", [True, False])
def test_unexplained_gpu_wait_is_kept_relative_to_its_causes(tmp_path: Path, keep: bool) -> None:
    t = KTrace()
    t.step(1, B, 200)
    t.launch(B + 10, 5, B + 16, 30)                   # gemm 16-46
    t.launch(B + 20, 5, B + 100, 10, name="relu")     # ready at 46, starts at 100: 54 us unexplained
    wl = _one(tmp_path, t, unexplained_waits=keep)
    graph = _graph(wl)
    notes = wl.meta.extra["import"]["notes"]
    assert "GPU ops that started late for no visible reason: 1" in notes
    if keep:
        assert ("unexplained GPU wait", "idle:cuda:7", [4, 5]) in graph
        wait = graph.index(("unexplained GPU wait", "idle:cuda:7", [4, 5]))
        assert wl.ops.column("duration_us")[wait].as_py() == 54.0
        assert ("relu", "cuda:7", [5, wait]) in graph
    else:
        assert all(name != "unexplained GPU wait" for name, _, _ in graph)
    t_ = ends(replay(wl, _a100()))
    relu = next(i for i, (name, _, _) in enumerate(graph) if name == "relu")
    # The gemm runs 15-45 (its launch returns at 15); the wait starts when the gemm ends.
    assert t_[(0, relu)] == ((99.0, 109.0) if keep else (45.0, 55.0))
    # Relative, not pinned to its recorded time: a gemm twice as long moves the wait along.
    dur = pc.if_else(pc.equal(wl.ops.column("name"), "gemm"),
                     pc.multiply(wl.ops.column("duration_us"), 2.0), wl.ops.column("duration_us"))
    slow = Workload(wl.ops.set_column(wl.ops.schema.get_field_index("duration_us"),
                                      "duration_us", dur), wl.groups, wl.meta)
    assert ends(replay(slow, _a100()))[(0, relu)] == ((129.0, 139.0) if keep else (75.0, 85.0))

"""Recording unmodified PyTorch code: a nanoGPT-style DDP script at world size 8, counted by
hand; and the code the recorder cannot stand in for."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

torch = pytest.importorskip("torch")

import simcluster as sc  # noqa: E402
from simcluster.errors import (  # noqa: E402
    OutOfMemoryError,
    UnsupportedOperationError,
    WorkloadError,
)
from simcluster.workload.record import (  # noqa: E402
    RecordOptions,
    memory_breakdown,
    record_function,
    record_script,
)

SCRIPT = Path(__file__).with_name("nanogpt_train.py")
TOPOLOGIES = Path(__file__).parents[3] / "topologies"
# layers, hidden, heads, vocab, seq_len, micro_batch, accumulation
L, H, A, V, S, B, ACC = 2, 64, 4, 256, 32, 2, 2
ARGS = ["--layers", str(L), "--hidden", str(H), "--heads", str(A), "--vocab", str(V),
        "--seq-len", str(S), "--micro-batch", str(B), "--accum", str(ACC)]
# Parameters: token and position embeddings (the LM head is tied), per layer 12h^2 + 13h
# (QKV, projection, MLP with biases, two LayerNorms), the final LayerNorm.
N = V * H + S * H + L * (12 * H * H + 13 * H) + 2 * H


def _rank(wl, rank):
    return wl.ops.filter(pc.equal(wl.ops["rank"], rank)).to_pylist()


@pytest.fixture(scope="module")
def recorded():
    return record_script(SCRIPT, ARGS, RecordOptions(world_size=8))


def test_flops_per_step_are_the_analytic_count(recorded) -> None:
    tokens = B * S
    # Forward per micro-batch: GEMMs 24 T h^2 per layer, attention core 4 b s^2 h per layer,
    # LM head 2 T h V; backward twice that. Elementwise ops count no FLOPs.
    forward = L * (24 * tokens * H * H + 4 * B * S * S * H) + 2 * tokens * H * V
    flops = pc.sum(recorded.ops["flops"]).as_py()
    assert flops == 3 * forward * ACC


def test_parameter_gradient_and_optimizer_memory_are_exact(recorded) -> None:
    mem = memory_breakdown(recorded)
    # fp32 weights and gradients; AdamW's two moments (its step counters stay on the host)
    assert (mem["parameters"], mem["gradients"], mem["optimizer"]) == (4 * N, 4 * N, 8 * N)
    assert mem["other"] > 0     # activations, DDP's bucket, temporaries


def test_ddp_all_reduces_once_per_step_and_the_others_mirror_it(recorded) -> None:
    r0 = _rank(recorded, 0)
    colls = [o for o in r0 if o["kind"] == "collective"]
    # gradient accumulation: no_sync on the first micro-batch; one bucket (4N < 25 MB)
    assert [(o["collective"], o["comm_bytes"], o["group"], o["stream"]) for o in colls] == [
        ("all_reduce", 4 * N, "world", "comm")]
    ar = colls[0]
    # after the compute op recorded last, and after its own launch on the host thread
    assert ar["deps"] == [ar["op_id"] - 2, ar["op_id"] - 1]
    assert [r0[i]["kind"] for i in ar["deps"]] == ["compute", "host"]
    readers = [o for o in r0 if o["deps"] and ar["op_id"] in o["deps"]]
    assert [o["name"] for o in readers] == ["aten::copy_"]   # the bucket back into the grads
    assert recorded.groups["world"] == tuple(range(8))
    for rank in range(1, 8):
        assert [(o["collective"], o["comm_bytes"]) for o in _rank(recorded, rank)] == [
            ("all_reduce", 4 * N)]
    copies = [o for o in r0 if o["kind"] == "memcpy"]
    assert [o["comm_bytes"] for o in copies] == [8 * B * S] * (2 * ACC)   # x and y, int64


def test_the_host_launches_every_op_and_waits_at_the_scripts_synchronize() -> None:
    # Two steps: torch.cuda.synchronize() ends each iteration of the script, so the first
    # launch of step 1 waits for the last op of every stream of step 0; AdamW's .item() on
    # its step counters (host tensors) makes no launch wait.
    wl = record_script(SCRIPT, ARGS, RecordOptions(world_size=8, steps=2))
    r0 = _rank(wl, 0)
    launches = [o for o in r0 if o["kind"] == "host"]
    assert len(launches) == len(r0) // 2
    for o in r0:   # each op right after its own launch, and waiting for it
        if o["kind"] != "host":
            assert r0[o["op_id"] - 1]["kind"] == "host" and o["op_id"] - 1 in o["deps"]
    waiting = [o for o in launches if o["deps"]]
    assert len(waiting) == 1 and waiting[0]["step"] == 1
    step0 = [o for o in r0 if o["step"] == 0 and o["kind"] != "host"]
    last = {o["stream"]: o["op_id"] for o in step0}
    assert waiting[0]["deps"] == sorted(last.values())


def test_world_size_64_records_the_same_step_with_63_mirrors(recorded) -> None:
    wl = record_script(SCRIPT, ARGS, RecordOptions(world_size=64))
    assert wl.num_ranks == 64 and wl.groups["world"] == tuple(range(64))
    assert pc.sum(wl.ops["flops"]).as_py() == pc.sum(recorded.ops["flops"]).as_py()
    assert memory_breakdown(wl) == memory_breakdown(recorded)
    assert [len(_rank(wl, r)) for r in range(1, 64)] == [1] * 63


def test_recorded_workload_replays_with_rank_zero_as_the_only_full_rank(recorded) -> None:
    result = sc.replay(recorded, TOPOLOGIES / "dgx-h100.yaml")
    assert result.breakdown.num_rows == 1
    assert result.step_time_us > 0


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text("import torch\n" + body)
    return path


def test_a_data_dependent_operator_names_itself_and_the_script_line(tmp_path: Path) -> None:
    path = _script(tmp_path, "x = torch.ones(4).cuda()\n\n"
                             "idx = torch.nonzero(x)\n")
    with pytest.raises(UnsupportedOperationError) as err:
        record_script(path, options=RecordOptions(world_size=2))
    assert err.value.operator == "aten.nonzero.default"
    assert err.value.location == f"{path.resolve()}:4"


def test_an_operator_without_a_shape_rule_is_named(tmp_path: Path) -> None:
    path = _script(tmp_path, (
        "lib = torch.library.Library('myext', 'DEF')\n"
        "lib.define('fused(Tensor x) -> Tensor')\n"
        "lib.impl('fused', lambda x: x * 2, 'CPU')\n"
        "y = torch.ops.myext.fused(torch.ones(4).cuda())\n"))
    with pytest.raises(UnsupportedOperationError) as err:
        record_script(path, options=RecordOptions(world_size=2))
    assert err.value.operator == "myext.fused.default"
    assert err.value.location.endswith("train.py:5")


def test_an_error_of_the_script_is_bad_input_with_its_line(tmp_path: Path) -> None:
    path = _script(tmp_path, "x = torch.ones(4).cuda()\nraise ValueError('no data dir')\n")
    with pytest.raises(WorkloadError) as err:
        record_script(path, options=RecordOptions(world_size=2))
    assert str(err.value).startswith(f"{path.resolve()}:3: the code raised ValueError: "
                                     "no data dir")


@pytest.mark.parametrize("move", ['.to("cuda")', '.to(torch.device("cuda:0"))',
                                  '.to(device="cuda")'])
def test_a_module_moved_with_to_records_as_one_moved_with_cuda(tmp_path: Path, move: str
                                                                ) -> None:
    body = ("m = torch.nn.Linear(64, 32){move}\n"
            "opt = torch.optim.AdamW(m.parameters())\n"
            "m(torch.randn(8, 64, device='cuda')).sum().backward()\n"
            "opt.step()\n")
    ops = {}
    for how in (".cuda()", move):
        path = _script(tmp_path, body.format(move=how))
        wl = record_script(path, options=RecordOptions(world_size=1, warmup=0))
        ops[how] = wl.ops.select(["name", "kind", "flops", "bytes_accessed"]).to_pylist()
    assert ops[move] == ops[".cuda()"] and any(o["name"] == "aten::addmm" for o in ops[move])


def test_reading_an_integer_value_back_is_an_error() -> None:
    def step() -> None:
        n = torch.randint(0, 5, (1,)).cuda().sum()
        for _ in range(n.item()):
            pass

    with pytest.raises(UnsupportedOperationError) as err:
        record_function(step, options=RecordOptions(world_size=1))
    assert err.value.operator == "Tensor.item"


def test_a_step_that_does_not_fit_the_gpu_is_an_out_of_memory_on_replay() -> None:
    def step() -> None:
        model = torch.nn.Linear(1024, 1024).cuda()
        opt = torch.optim.AdamW(model.parameters())
        for _ in range(2):
            big = torch.empty(90 * 2**30, dtype=torch.uint8, device="cuda")  # 90 GiB
            model(torch.ones(8, 1024, device="cuda") + big[:1].float()).sum().backward()
            opt.step()

    wl = record_function(step, options=RecordOptions(world_size=1))
    mem = memory_breakdown(wl)
    weights = 4 * (1024 * 1024 + 1024)
    assert (mem["parameters"], mem["gradients"], mem["optimizer"]) == (
        weights, weights, 2 * weights)
    assert mem["peak"] > 90 * 2**30
    with pytest.raises(OutOfMemoryError):
        sc.replay(wl, TOPOLOGIES / "dgx-h100.yaml")


def test_fsdp_gathers_each_block_twice_and_reduce_scatters_its_gradients() -> None:
    wl = record_script(SCRIPT.with_name("fsdp_train.py"), options=RecordOptions(world_size=8))
    block = 64 * 256 + 256 + 256 * 64 + 64          # parameters of one block
    r0 = _rank(wl, 0)
    colls = [(o["collective"], o["comm_bytes"], o["group"]) for o in r0
             if o["kind"] == "collective"]
    # forward: all-gather blocks 0, 1, 2; backward: all-gather them again (resharded after
    # forward) in reverse and reduce-scatter each block's gradients (fp32: 4 bytes each)
    assert sorted(set(colls)) == [("all_gather", 4 * block, "world"),
                                  ("reduce_scatter", 4 * block, "world")]
    kinds = [c for c, _, _ in colls]
    assert kinds[:3] == ["all_gather"] * 3
    assert kinds.count("all_gather") == 6 and kinds.count("reduce_scatter") == 3
    assert kinds[-1] == "reduce_scatter"
    mem = memory_breakdown(wl)
    shard = 4 * 3 * block // 8                      # each rank holds 1/8 of every block
    assert (mem["parameters"], mem["gradients"], mem["optimizer"]) == (shard, shard, 2 * shard)
    assert [len(_rank(wl, r)) for r in range(1, 8)] == [9] * 7


def test_torch_cuda_answers_as_the_target_machine() -> None:
    seen = {}

    def step() -> None:
        seen["count"] = torch.cuda.device_count()
        seen["name"] = torch.cuda.get_device_name(0)
        seen["hbm"] = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_device("cuda:3")
        seen["current"] = torch.cuda.current_device()
        before = torch.cuda.memory_allocated()
        x = torch.empty(1024, 1024, device="cuda")          # 4 MiB of fp32
        seen["grew"] = torch.cuda.memory_allocated() - before
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        with torch.cuda.stream(torch.cuda.Stream()):
            (x @ x).sum()
        end.record()
        torch.cuda.synchronize()
        seen["elapsed"] = start.elapsed_time(end)

    wl = record_function(step, options=RecordOptions(world_size=1, gpus_per_node=4,
                                                     device="H100", warmup=0))
    assert seen == {"count": 4, "name": "H100-SXM5-80GB", "hbm": 80 * 2**30, "current": 3,
                    "grew": 4 * 2**20, "elapsed": 0.0}
    mm = [o for o in _rank(wl, 0) if o["name"] == "aten::mm"]
    assert [(o["flops"], o["dtype"]) for o in mm] == [(2.0 * 1024**3, "fp32")]
    assert not torch.cuda.is_available.__module__.startswith("simcluster")  # restored


def test_recording_twice_gives_byte_identical_files(recorded, tmp_path: Path) -> None:
    from simcluster.workload import write_workload

    again = record_script(SCRIPT, ARGS, RecordOptions(world_size=8))
    a, b = write_workload(recorded, tmp_path / "a.parquet"), write_workload(again,
                                                                            tmp_path / "b.parquet")
    assert a.read_bytes() == b.read_bytes()


def test_unfolded_every_rank_runs_and_replays_as_the_fold_does(recorded) -> None:
    folded = record_script(SCRIPT, ARGS, RecordOptions(world_size=2))
    full = record_script(SCRIPT, ARGS, RecordOptions(world_size=2, fold=False))
    r0, r1 = _rank(full, 0), _rank(full, 1)
    assert [o["name"] for o in r1] == [o["name"] for o in r0] == [
        o["name"] for o in _rank(folded, 0)]
    assert pc.sum(full.ops["flops"]).as_py() == 2 * pc.sum(folded.ops["flops"]).as_py()
    topology = TOPOLOGIES / "dgx-h100.yaml"
    assert sc.replay(full, topology).step_time_us == sc.replay(folded, topology).step_time_us


def test_an_in_place_operator_without_a_rule_reads_and_writes_what_its_schema_writes() -> None:
    def step() -> None:
        model = torch.nn.Linear(256, 512, bias=False).cuda()
        opt = torch.optim.AdamW(model.parameters(), fused=True)
        for _ in range(2):
            model(torch.ones(64, 256, device="cuda")).sum().backward()
            opt.step()

    ops = _rank(record_function(step, options=RecordOptions(world_size=1)), 0)
    weights = 256 * 512 * 4
    # _fused_adamw_(Tensor(a!)[] self, Tensor(b!)[] grads, Tensor(c!)[] exp_avgs,
    # Tensor(d!)[] exp_avg_sqs, ..., Tensor[] state_steps): four lists read and written
    # (grads too: the schema lets it unscale them), the fp32 step counter read
    assert (ops[-1]["name"], ops[-1]["bytes_accessed"]) == ("aten::_fused_adamw_",
                                                            8 * weights + 4)

"""Recording pipeline and tensor parallelism written by hand: send/recv with their peers
and sizes, paired on replay; tensor-parallel all-reduces in their own groups."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

torch = pytest.importorskip("torch")

import simcluster as sc  # noqa: E402
from simcluster.errors import UnsupportedOperationError  # noqa: E402
from simcluster.workload.record import RecordOptions, record_function, record_script  # noqa: E402

HERE = Path(__file__).parent
TOPOLOGY = Path(__file__).parents[3] / "topologies" / "dgx-h100.yaml"
HIDDEN, BATCH, MICRO = 256, 16, 4          # pipeline_train.py's defaults
ACT = BATCH * HIDDEN * 4                    # one micro-batch's fp32 activation, bytes


def _ops(wl, rank: int) -> list[dict]:
    return wl.ops.filter(pc.equal(wl.ops["rank"], rank)).to_pylist()


def _p2p(ops: list[dict]) -> list[tuple[str, int, int]]:
    return [(o["kind"], o["comm_bytes"], o["peer"]) for o in ops if o["kind"] in ("send", "recv")]


@pytest.fixture(scope="module")
def pipeline():
    return record_script(HERE / "pipeline_train.py", options=RecordOptions(world_size=2,
                                                                           fold=False))


def test_each_stage_sends_and_receives_one_activation_per_micro_batch(pipeline) -> None:
    # GPipe: stage 0 sends 4 activations forward, then receives 4 gradients; stage 1 the
    # mirror image
    assert _p2p(_ops(pipeline, 0)) == [("send", ACT, 1)] * MICRO + [("recv", ACT, 1)] * MICRO
    assert _p2p(_ops(pipeline, 1)) == [("recv", ACT, 0)] * MICRO + [("send", ACT, 0)] * MICRO


def test_the_compute_that_reads_a_received_tensor_waits_for_it(pipeline) -> None:
    r1 = _ops(pipeline, 1)
    recvs = [o["op_id"] for o in r1 if o["kind"] == "recv"]
    gemms = [o for o in r1 if o["name"] == "aten::addmm"]          # stage 1's forwards
    kinds = {o["op_id"]: o["kind"] for o in r1}                     # (and its launch)
    assert [[d for d in o["deps"] if kinds[d] != "host"] for o in gemms] == [[r] for r in recvs]
    assert {o["stream"] for o in r1 if o["kind"] in ("send", "recv")} == {"send", "recv"}


def test_the_pipeline_replays_with_its_pairs_matched_folded_or_not(pipeline) -> None:
    folded = record_script(HERE / "pipeline_train.py", options=RecordOptions(world_size=2))
    # folded: rank 1 holds only the other halves of rank 0's sends and receives
    assert _p2p(_ops(folded, 1)) == [("recv", ACT, 0)] * MICRO + [("send", ACT, 0)] * MICRO
    assert {o["kind"] for o in _ops(folded, 1)} == {"send", "recv"}
    for wl in (pipeline, folded):
        flows = sc.replay(wl, TOPOLOGY).run.flows.to_pylist()
        assert sorted(f["group"] for f in flows if f["kind"] == "send") == \
            ["0->1"] * MICRO + ["1->0"] * MICRO


def test_a_receive_from_any_source_is_named() -> None:
    def step() -> None:
        torch.distributed.init_process_group("nccl")
        torch.distributed.recv(torch.empty(4, device="cuda"))   # no src: any source

    with pytest.raises(UnsupportedOperationError) as err:
        record_function(step, options=RecordOptions(world_size=2))
    assert err.value.operator == "c10d::recv_any_source_"


TOKENS, H, LAYERS = 32, 64, 2                # tp_train.py's defaults, TP 2 of 4 ranks


def test_tensor_parallel_all_reduces_are_in_the_tp_group_and_ddp_in_the_dp_group() -> None:
    wl = record_script(HERE / "tp_train.py", options=RecordOptions(world_size=4, fold=False))
    act = TOKENS * H * 4
    # rank's own shard: the replicated input layer, per block fc1 (H x 4H/2 + bias), fc2
    # (4H/2 x H), the output bias; fp32
    shard = 4 * (H * H + H + LAYERS * (H * 2 * H + 2 * H + 2 * H * H + H))
    groups = {0: ("pg0-1", "pg0-2s2"), 1: ("pg0-1", "pg1-3s2"), 2: ("pg2-3", "pg0-2s2"),
              3: ("pg2-3", "pg1-3s2")}
    for rank, (tp, dp) in groups.items():
        colls = [(o["collective"], o["group"], o["comm_bytes"]) for o in _ops(wl, rank)
                 if o["kind"] == "collective"]
        # forward: each row-parallel output; backward: each column-parallel input gradient
        assert colls == [("all_reduce", tp, act)] * (2 * LAYERS) + [("all_reduce", dp, shard)]
    assert wl.groups == {"pg0-1": (0, 1), "pg0-2s2": (0, 2), "pg1-3s2": (1, 3),
                         "pg2-3": (2, 3)}

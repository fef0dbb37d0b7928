"""The recording log without torch: memory ledger, stream dependencies, the fold."""

from __future__ import annotations

import pyarrow.compute as pc

from simcluster.workload.host import HostModel
from simcluster.workload.record.fusion import POINTWISE
from simcluster.workload.record.log import OpLog
from simcluster.workload.record.work import op_work


def _rank(wl, rank):
    return wl.ops.filter(pc.equal(wl.ops["rank"], rank)).to_pylist()


def test_allocations_go_to_the_next_op_and_frees_to_the_last() -> None:
    log = OpLog(world_size=1)
    log.alloc(1000)                     # live before recording: the first op allocates it
    log.start_recording(step=0)
    log.alloc(64)
    log.compute("aten::mm", 10.0, 100, "fp32")
    log.alloc(32)
    log.free(32)                        # made and freed between ops: nets to nothing
    log.compute("aten::add", None, 8, "fp32")
    log.free(64)                        # dies after the add: freed when the add ends
    ops = _rank(log.workload("t", "test"), 0)
    assert [o["alloc_bytes"] for o in ops] == [1064, None]
    assert [o["free_bytes"] for o in ops] == [None, 64]
    assert log.ledger.live == 1000 and log.ledger.peak == 1096 and log.recorded_peak == 1096


def test_ops_before_recording_are_dropped_but_counted_in_memory() -> None:
    log = OpLog(world_size=2)
    log.alloc(10)
    assert log.compute("aten::mm", 1.0, 1, "fp32") is None
    assert log.collective("c10d::allreduce_", "all_reduce", 8, "world", (0, 1)) is None
    log.start_recording(step=0)
    log.compute("aten::mm", 1.0, 1, "fp32")
    wl = log.workload("t", "test")
    assert wl.num_ops == 1 and _rank(wl, 0)[0]["alloc_bytes"] == 10
    assert wl.groups == {"world": (0, 1)}


def test_collective_waits_for_compute_and_its_reader_waits_for_it() -> None:
    log = OpLog(world_size=4)
    log.start_recording(step=0)
    grad = log.compute("aten::mm", 8.0, 24, "fp32")
    ar = log.collective("c10d::allreduce_", "all_reduce", 400, "world", (0, 1, 2, 3),
                        writes=[7])
    other = log.compute("aten::add", None, 8, "fp32", reads=[5])
    reader = log.compute("aten::copy_", None, 800, "fp32", reads=[7])
    again = log.compute("aten::mul", None, 8, "fp32", reads=[7])   # stream order suffices
    ops = {o["op_id"]: o for o in _rank(log.workload("t", "test"), 0)}
    assert ops[ar]["deps"] == [grad] and ops[ar]["stream"] == "comm"
    assert ops[other]["deps"] is None
    assert ops[reader]["deps"] == [ar]
    assert ops[again]["deps"] is None


def test_other_ranks_mirror_rank_zeros_collectives_on_their_groups() -> None:
    log = OpLog(world_size=4)
    log.start_recording(step=0)
    log.compute("aten::mm", 8.0, 24, "bf16")
    log.collective("c10d::allreduce_", "all_reduce", 400, "world", (0, 1, 2, 3))
    log.collective("c10d::_allgather_base_", "all_gather", 64, "pg1", (0, 2))
    log.step = 1
    log.collective("c10d::allreduce_", "all_reduce", 400, "world", (0, 1, 2, 3))
    wl = log.workload("t", "test")
    assert [(o["name"], o["step"], o["seq"]) for o in _rank(wl, 1)] == [
        ("c10d::allreduce_", 0, 0), ("c10d::allreduce_", 1, 1)]
    assert [(o["collective"], o["comm_bytes"], o["group"]) for o in _rank(wl, 2)] == [
        ("all_reduce", 400, "world"), ("all_gather", 64, "pg1"), ("all_reduce", 400, "world")]
    assert all(o["deps"] is None for r in (1, 2, 3) for o in _rank(wl, r))
    assert wl.groups["pg1"] == (0, 2)


def test_attention_backward_counts_twice_the_forward() -> None:
    q = [2, 4, 16, 8]                   # batch 2, 4 heads, 16 tokens, head size 8
    fwd = op_work("aten::_scaled_dot_product_efficient_attention", [q] * 3, ["float"] * 3)
    bwd = op_work("aten::_scaled_dot_product_efficient_attention_backward", [q] * 4,
                  ["float"] * 4)
    assert fwd == (2.0 * 2 * 4 * 16 * 16 * 16, 4 * 4 * 1024, "fp32")
    # backward: Q, K, V, O twice (read; dQ, dK, dV written) and dO once
    assert bwd == (2 * fwd[0], 4 * (2 * 4 * 1024 + 1024), "fp32")


def test_host_costs_count_the_aten_ops_since_the_last_launch_and_syncs_wait() -> None:
    log = OpLog(world_size=1, host=HostModel(launch_us=10.0, dispatch_us=2.0))
    log.dispatched()                    # before recording: not counted
    log.start_recording(step=0)
    log.dispatched()
    log.dispatched()                    # a view, then the mm: 2 ops dispatched
    mm = log.compute("aten::mm", 8.0, 24, "fp32")
    log.sync()                          # .item(): the next launch waits for the mm
    log.dispatched()
    add = log.compute("aten::add", None, 8, "fp32")
    ops = _rank(log.workload("t", "test"), 0)
    assert [(o["kind"], o["duration_us"], o["deps"]) for o in ops] == [
        ("host", 14.0, None), ("compute", None, [0]),
        ("host", 12.0, [1]), ("compute", None, [2])]
    assert (mm, add) == (0, 1)          # op_ids as recorded; the table renumbers


def test_a_send_waits_for_the_compute_before_it_and_its_peer_mirrors_a_receive() -> None:
    log = OpLog(world_size=4)
    log.start_recording(step=0)
    log.compute("aten::mm", 1.0, 1, "fp32")
    log.p2p("c10d::send", "send", 4096, peer=2)
    log.p2p("c10d::recv_", "recv", 1024, peer=3, writes=[7])
    reader = log.compute("aten::add", None, 8, "fp32", reads=[7])
    wl = log.workload("t", "test")
    r0 = _rank(wl, 0)
    assert [(o["kind"], o["stream"], o["peer"], o["comm_bytes"], o["deps"]) for o in r0[1:3]] \
        == [("send", "send", 2, 4096, [0]), ("recv", "recv", 3, 1024, [0])]
    assert r0[reader]["deps"] == [2]                 # the add reads what was received
    assert [(o["kind"], o["peer"], o["comm_bytes"]) for o in _rank(wl, 2)] == [("recv", 0, 4096)]
    assert [(o["kind"], o["peer"], o["comm_bytes"]) for o in _rank(wl, 3)] == [("send", 0, 1024)]
    assert _rank(wl, 1) == []


def test_a_fused_kernel_costs_the_host_its_launch_but_not_its_operators_dispatch() -> None:
    log = OpLog(world_size=1, host=HostModel(launch_us=10.0, dispatch_us=2.0))
    log.start_recording(step=0)
    fuser = log.fusing(live=lambda key: key == 3)
    for name, src, dst in (("aten::mul", 1, 2), ("aten::add", 2, 3)):
        log.dispatched()
        fuser.add(name, POINTWISE, 1000, None, "fp32", [(src, 4000)], [(dst, 4000)])
    log.dispatched()                    # a view outside the chain: dispatched, no kernel
    log.end_chain()                     # compiled code: one kernel, launched by its wrapper
    log.dispatched()
    log.compute("aten::mm", 8.0, 24, "fp32")
    ops = _rank(log.workload("t", "test"), 0)
    assert [(o["kind"], o["name"], o["duration_us"]) for o in ops] == [
        ("host", "launch", 12.0), ("compute", "triton_poi_fused_add_mul", None),
        ("host", "launch", 12.0), ("compute", "aten::mm", None)]

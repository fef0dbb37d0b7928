"""Fusion of memory-bound operators into one kernel per chain, without torch: which
operators join a chain and what bytes the fused kernel moves."""

from __future__ import annotations

from simcluster.workload.record.fusion import POINTWISE, REDUCTION, Fuser


def _fuser(live: set[int]) -> tuple[Fuser, list[tuple]]:
    out: list[tuple] = []
    return Fuser(lambda *op: out.append(op), live=lambda key: key in live), out


def test_a_reduction_ends_its_chain_and_pointwise_ops_before_it_join() -> None:
    fuser, out = _fuser(live={3, 4})
    # x (key 1, 1000 fp32) -> exp -> 2 -> sum over all -> 3 (4 bytes) -> mul -> 4
    fuser.add("aten::exp", POINTWISE, 1000, None, "fp32", [(1, 4000)], [(2, 4000)])
    fuser.add("aten::sum", REDUCTION, 1000, None, "fp32", [(2, 4000)], [(3, 4)])
    fuser.add("aten::mul", POINTWISE, 1, None, "fp32", [(3, 4)], [(4, 4)])
    fuser.flush()
    # the sum reads exp's output on chip and writes its 4-byte result, which lives on
    assert out == [("triton_red_fused_exp_sum", None, 4000 + 4, "fp32", [1]),
                   ("aten::mul", None, 4 + 4, "fp32", [3])]


def test_an_operator_over_another_number_of_elements_starts_a_new_chain() -> None:
    fuser, out = _fuser(live={2, 3})
    fuser.add("aten::add", POINTWISE, 1000, None, "bf16", [(1, 2000)], [(2, 2000)])
    fuser.add("aten::mul", POINTWISE, 10, None, "bf16", [(5, 20)], [(3, 20)])
    fuser.flush()
    assert [(name, nbytes) for name, _, nbytes, _, _ in out] == [
        ("aten::add", 4000), ("aten::mul", 40)]


def test_an_in_place_update_reads_and_writes_its_tensor_once() -> None:
    fuser, out = _fuser(live={1})
    # x.mul_(2).add_(1): both in place on x (key 1), 1000 fp32 elements
    fuser.add("aten::mul_", POINTWISE, 1000, 1000.0, "fp32", [(1, 4000)], [(1, 4000)])
    fuser.add("aten::add_", POINTWISE, 1000, 1000.0, "fp32", [(1, 4000)], [(1, 4000)])
    fuser.flush()
    fuser.flush()                                  # nothing open: emits nothing
    assert out == [("triton_poi_fused_add__mul_", 2000.0, 8000, "fp32", [1])]


def test_a_storage_address_reused_inside_a_chain_counts_its_last_tensor() -> None:
    fuser, out = _fuser(live={2})
    # x (key 1, fp32) -> exp -> key 2 (fp32, dies) -> cast -> key 2 again (reused, bf16)
    fuser.add("aten::exp", POINTWISE, 1000, None, "fp32", [(1, 4000)], [(2, 4000)])
    fuser.add("aten::_to_copy", POINTWISE, 1000, None, "bf16", [(2, 4000)], [(2, 2000)])
    fuser.flush()
    assert out[0][2] == 4000 + 2000      # reads x, writes the bf16 result only

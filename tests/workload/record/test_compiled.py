"""Recording compiled code: chains of memory-bound operators become one kernel each, in the
forward and backward of what ``torch.compile`` compiles, and nowhere else."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

torch = pytest.importorskip("torch")

from simcluster.errors import WorkloadError  # noqa: E402
from simcluster.workload.record import Recorder, RecordOptions, record_function  # noqa: E402

MiB = 2**20


def _compute(wl) -> list[tuple[str, int | None]]:
    ops = wl.ops.filter(pc.equal(wl.ops["kind"], "compute")).to_pylist()
    return [(o["name"], o["bytes_accessed"]) for o in ops]


def _record(code, fuse: str = "all"):
    with Recorder(RecordOptions(world_size=1, warmup=0, fuse=fuse)) as rec:
        x = torch.ones(2**20, dtype=torch.bfloat16, device="cuda")  # 1M bf16: 2 MiB
        kept = code(x)                                               # noqa: F841 (alive)
    return _compute(rec.workload())[1:]                              # after the ones


def test_a_pointwise_chain_is_one_kernel_reading_its_input_and_writing_its_output() -> None:
    # x * 2, + 1, relu: the two temporaries stay on chip
    assert _record(lambda x: torch.relu(x * 2 + 1)) == [
        ("triton_poi_fused_add_mul_relu", 2 * MiB + 2 * MiB)]


def test_a_matrix_multiply_between_pointwise_ops_splits_the_chain() -> None:
    def code(x):
        w = torch.ones(1024, 1024, dtype=torch.bfloat16, device="cuda")  # 2 MiB
        return torch.relu((x.view(1024, 1024) * 2) @ w + 1)

    ops = _record(code)
    # ones(w); mul alone (reads x, writes x*2); mm (reads x*2 and w, writes 2 MiB);
    # add + relu (read the product, write the result)
    assert [name for name, _ in ops] == ["aten::ones", "aten::mul", "aten::mm",
                                         "triton_poi_fused_add_relu"]
    assert [nbytes for _, nbytes in ops[1:]] == [4 * MiB, 6 * MiB, 4 * MiB]


def test_without_fusion_every_operator_is_its_own_kernel() -> None:
    assert [name for name, _ in _record(lambda x: torch.relu(x * 2 + 1), fuse="none")] == [
        "aten::mul", "aten::add", "aten::relu"]


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(256, 512)

    def forward(self, x):
        return torch.relu(self.lin(x) * 2 + 1)


def _train() -> None:
    model = torch.compile(_Model().cuda())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        y = model(torch.ones(64, 256, device="cuda"))
        (y * 3 + 1).sum().backward()     # eager code around the compiled model
        opt.step()
        opt.zero_grad()


def test_a_compiled_model_fuses_its_forward_and_backward_and_nothing_else() -> None:
    wl = record_function(_train, options=RecordOptions(world_size=1))
    act = 64 * 512 * 4                   # one activation, fp32 bytes
    assert wl.meta.extra["fuse"] == "compiled"
    ops = _compute(wl)
    assert ops[-1][0] == "aten::_foreach_add_"                # the optimizer, eager
    assert ops[1:-1] == [
        ("aten::addmm", (64 * 256 + 256 * 512 + 512 + 64 * 512) * 4),
        # compiled forward: reads the product, writes relu's output (saved for backward)
        ("triton_poi_fused_add_mul_relu", 2 * act),
        ("aten::mul", 2 * act), ("aten::add", 2 * act), ("aten::sum", act),   # eager
        ("aten::ones_like", 8), ("aten::mul", 2 * act),     # eager backward: sum, * 3
        # compiled backward: relu's (reads the gradient and relu's output) and * 2's
        ("triton_poi_fused_mul_threshold_backward", 3 * act),
        ("aten::mm", (64 * 512 + 64 * 256 + 512 * 256) * 4),
        ("aten::sum", act + 512 * 4),                        # the bias gradient
    ]


def test_an_unknown_fusion_mode_is_bad_input() -> None:
    with pytest.raises(WorkloadError, match="fuse is 'some'"):
        RecordOptions(fuse="some").check()


def test_fusing_all_makes_adamw_one_kernel_over_its_four_lists() -> None:
    def train() -> None:
        model = torch.nn.Linear(256, 512, bias=False).cuda()
        opt = torch.optim.AdamW(model.parameters())
        for _ in range(2):
            model(torch.ones(64, 256, device="cuda")).sum().backward()
            opt.step()

    ops = _compute(record_function(train, options=RecordOptions(world_size=1, fuse="all")))
    weights = 256 * 512 * 4
    # the update reads weights, gradients and both moments, writes weights and moments (its
    # temporaries, such as the moments' square roots, stay on chip)
    assert ops[-1] == ("triton_poi_fused__foreach_add___foreach_addcdiv___foreach_addcmul___"
                       "foreach_div___foreach_lerp___foreach_mul___foreach_sqrt", 7 * weights)
    assert ops[-2][0] == "aten::_foreach_add_"    # the step counters: one element each

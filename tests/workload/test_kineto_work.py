"""FLOPs, bytes and dtype of Kineto kernels from their aten ops, by hand-computed examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest

from simcluster.placement import bind
from simcluster.sim import SimOptions, simulate
from simcluster.sim.compute import ComputeModel
from simcluster.topology.catalog import lookup
from simcluster.topology.recorded import recorded_cluster
from simcluster.topology.transform import with_device
from simcluster.workload.kineto import KinetoOptions, import_kineto
from simcluster.workload.kineto.aten_work import Work, describe
from simcluster.workload.kineto.work import innermost
from simcluster.workload.model import Workload
from tests.workload.kinetotrace import KTrace

B = 1_000_000.0
F32, F16, BF16 = "float", "c10::Half", "c10::BFloat16"


def _wl(tmp_path: Path, t: KTrace) -> Workload:
    return import_kineto(t.write(tmp_path / "rank-0.json"), KinetoOptions())


def _kernels(wl: Workload) -> dict[str, dict[str, Any]]:
    """Compute kernels by name: flops, bytes_accessed, dtype."""
    rows = wl.ops.filter(pc.equal(wl.ops.column("kind"), "compute")).to_pylist()
    return {r["name"]: {k: r[k] for k in ("flops", "bytes_accessed", "dtype")} for r in rows}


def _one_op(tmp_path: Path, name: str, dims: list[Any], types: list[str],
            concrete: list[str] | None = None, **args: Any) -> dict[str, Any]:
    """One aten op launching one kernel ``k``; that kernel's work."""
    t = KTrace()
    t.step(1, B, 100)
    t.aten(name, B + 5, 20, dims, types, concrete, **args)
    t.launch(B + 10, 5, B + 20, 30, name="k")
    return _kernels(_wl(tmp_path, t))["k"]


def test_mm_is_2mkn(tmp_path: Path) -> None:
    m, k, n = 64, 128, 256
    w = _one_op(tmp_path, "aten::mm", [[m, k], [k, n]], [F32, F32])
    assert w == {"flops": 2 * m * k * n, "bytes_accessed": 4 * (m * k + k * n + m * n),
                 "dtype": "fp32"}  # float matmuls: fp32 (PyTorch's default, no TF32)


def test_a_float_matmul_on_tf32_tensor_cores_is_tf32(tmp_path: Path) -> None:
    """The kernel that ran says what the shapes cannot: CUTLASS's m16n8k8 fp32-accumulate
    GEMM is TF32; a SIMT sgemm stays fp32."""
    dims, types = [[64, 128], [128, 256]], [F32, F32]
    t = KTrace()
    t.step(1, B, 100)
    t.aten("aten::mm", B + 5, 20, dims, types)
    t.launch(B + 10, 5, B + 20, 30,
             name="void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_64x64_32x6_tn_align4>")
    t.aten("aten::mm", B + 55, 20, dims, types)
    t.launch(B + 60, 5, B + 70, 20, name="ampere_sgemm_128x64_nn")
    kernels = _kernels(_wl(tmp_path, t))
    assert [k["dtype"] for k in kernels.values()] == ["tf32", "fp32"]


def test_addmm_counts_the_product_and_all_tensors(tmp_path: Path) -> None:
    m, k, n = 32, 64, 16
    w = _one_op(tmp_path, "aten::addmm", [[n], [m, k], [k, n], [], []],
                [F16, F16, F16, "Scalar", "Scalar"])
    assert w == {"flops": 2 * m * k * n, "bytes_accessed": 2 * (n + m * k + k * n + m * n),
                 "dtype": "fp16"}


def test_bmm(tmp_path: Path) -> None:
    b, m, k, n = 4, 8, 16, 32
    w = _one_op(tmp_path, "aten::bmm", [[b, m, k], [b, k, n]], [BF16, BF16])
    assert w == {"flops": 2 * b * m * k * n,
                 "bytes_accessed": 2 * (b * m * k + b * k * n + b * m * n), "dtype": "bf16"}


def test_shapes_that_do_not_multiply_give_nothing(tmp_path: Path) -> None:
    w = _one_op(tmp_path, "aten::mm", [[4, 5], [6, 7]], [F32, F32])
    assert w == {"flops": None, "bytes_accessed": None, "dtype": None}


def test_other_matmul_forms() -> None:
    def flops(name: str, dims: list[Any], types: list[str]) -> float:
        w = describe(name, {"Input Dims": dims, "Input type": types})
        assert isinstance(w, Work)
        return w.flops

    assert flops("aten::linear", [[2, 3, 64], [32, 64], [32]], [F32] * 3) == 2 * 6 * 64 * 32
    assert flops("aten::matmul", [[5, 1, 8, 16], [3, 16, 4]], [F32] * 2) == 2 * 15 * 8 * 16 * 4
    assert flops("aten::matmul", [[16], [16]], [F32] * 2) == 2 * 16
    assert flops("aten::mv", [[8, 16], [16]], [F32] * 2) == 2 * 8 * 16
    assert flops("aten::addmv", [[8], [8, 16], [16], [], []], [F32] * 3 + ["Scalar"] * 2) \
        == 2 * 8 * 16
    assert flops("aten::baddbmm", [[2, 3, 5], [2, 3, 4], [2, 4, 5], [], []],
                 [F32] * 3 + ["Scalar"] * 2) == 2 * 2 * 3 * 4 * 5
    assert describe("aten::matmul", {"Input Dims": [[5, 2, 8, 16], [3, 16, 4]],
                                     "Input type": [F32, F32]}) is None  # 2 vs 3: no broadcast


def test_a_matmul_carries_its_gemm_shape(tmp_path: Path) -> None:
    """``[batch, m, n, k]`` of the aten op, for the compute model's tile and wave
    quantisation; elementwise ops carry none."""
    t = KTrace()
    t.step(1, B, 200)
    t.aten("aten::bmm", B + 5, 20, [[4, 8, 16], [4, 16, 32]], [BF16, BF16])
    t.launch(B + 10, 5, B + 20, 30, name="bmm")
    t.aten("aten::linear", B + 55, 20, [[2, 3, 64], [32, 64], [32]], [F32] * 3)
    t.launch(B + 60, 5, B + 70, 20, name="linear")
    t.aten("aten::add", B + 105, 20, [[8], [8], []], [F32, F32, "Scalar"])
    t.launch(B + 110, 5, B + 120, 20, name="add")
    rows = _wl(tmp_path, t).ops.to_pylist()
    assert {r["name"]: r["gemm_shape"] for r in rows if r["kind"] == "compute"} == {
        "bmm": [4, 8, 32, 16], "linear": [1, 6, 32, 64], "add": None}


def _conv_args() -> tuple[list[Any], int, int]:
    """x [2,3,32,32] * w [8,3,3,3], stride 2, padding 1: output [2,8,16,16]."""
    out = 2 * 8 * 16 * 16
    flops = 2 * out * 3 * 3 * 3
    nbytes = 4 * (2 * 3 * 32 * 32 + 8 * 3 * 3 * 3 + out)
    return [[2, 3, 32, 32], [8, 3, 3, 3]], flops, nbytes


def test_convolution_output_size_from_concrete_inputs(tmp_path: Path) -> None:
    dims, flops, nbytes = _conv_args()
    w = _one_op(tmp_path, "aten::convolution", dims + [[]] * 7,
                [F32, F32, "", "ScalarList", "ScalarList", "ScalarList", "Scalar",
                 "ScalarList", "Scalar"],
                ["", "", "", "[2, 2]", "[1, 1]", "[1, 1]", "False", "[0, 0]", "1"])
    # float convolutions run as TF32 (cuDNN's default allow_tf32=True)
    assert w == {"flops": flops, "bytes_accessed": nbytes, "dtype": "tf32"}


def test_convolution_without_concrete_inputs_is_skipped(tmp_path: Path) -> None:
    dims, _, _ = _conv_args()
    w = _one_op(tmp_path, "aten::cudnn_convolution", dims + [[]] * 7,
                [F32, F32, "GenericList", "GenericList", "GenericList", "Int", "Bool", "Bool",
                 "Bool"])
    assert w == {"flops": None, "bytes_accessed": None, "dtype": None}


def test_convolution_forward_and_backward_from_the_backward_node(tmp_path: Path) -> None:
    """PyTorch 1.9 style (the ResNet-50 trace): no Concrete Inputs; the forward output comes
    from the gradient its backward node (same Sequence number) received; the weight gradient
    op takes the weight's shape from the enclosing cudnn_convolution_backward."""
    dims, flops, nbytes = _conv_args()
    x, w = dims
    go = [2, 8, 16, 16]
    gl = ["GenericList"] * 3
    t = KTrace()
    t.step(1, B, 300)
    t.aten("aten::conv2d", B + 2, 40, dims + [[]] * 5, [F32, F32, ""] + gl + ["Int"],
           **{"Sequence number": 5})
    t.aten("aten::cudnn_convolution", B + 5, 30, dims + [[]] * 7,
           [F32, F32] + gl + ["Int", "Bool", "Bool", "Bool"], **{"Sequence number": 5})
    t.launch(B + 10, 5, B + 20, 30, name="fwd")
    # backward, on the autograd thread
    t.cpu("CudnnConvolutionBackward", B + 100, 150, tid=2,
          **{"Input Dims": [go], "Input type": [F32], "Sequence number": 5})
    t.aten("aten::cudnn_convolution_backward", B + 105, 140, [x, go, w] + [[]] * 8,
           [F32] * 3 + gl + ["Int", "Bool", "Bool", "Bool", "GenericList"], tid=2)
    t.aten("aten::cudnn_convolution_backward_input", B + 110, 50, [[], go, w] + [[]] * 7,
           ["GenericList", F32, F32] + gl + ["Int", "Bool", "Bool", "Bool"], tid=2)
    t.launch(B + 120, 5, B + 130, 40, name="dgrad", tid=2)
    t.aten("aten::cudnn_convolution_backward_weight", B + 170, 50, [[], go, x] + [[]] * 7,
           ["GenericList", F32, F32] + gl + ["Int", "Bool", "Bool", "Bool"], tid=2)
    t.launch(B + 180, 5, B + 190, 40, name="wgrad", tid=2)
    k = _kernels(_wl(tmp_path, t))
    xb, wb, gb = 4 * np.prod(x), 4 * np.prod(w), 4 * np.prod(go)
    assert k["fwd"] == {"flops": flops, "bytes_accessed": nbytes, "dtype": "tf32"}
    assert k["dgrad"] == {"flops": flops, "bytes_accessed": gb + wb + xb, "dtype": "tf32"}
    assert k["wgrad"] == {"flops": flops, "bytes_accessed": gb + xb + wb, "dtype": "tf32"}


def test_convolution_backward_with_output_mask(tmp_path: Path) -> None:
    """Newer PyTorch: one convolution_backward; only the weight gradient asked for."""
    dims, flops, _ = _conv_args()
    x, w = dims
    go = [2, 8, 16, 16]
    k = _one_op(tmp_path, "aten::convolution_backward", [go, x, w] + [[]] * 8,
                [F32] * 3 + ["ScalarList"] * 4 + ["Scalar", "ScalarList", "Scalar",
                                                   "ScalarList"],
                [""] * 3 + ["[8]", "[2, 2]", "[1, 1]", "[1, 1]", "False", "[0, 0]", "1",
                            "[False, True, False]"])
    assert k["flops"] == flops
    assert k["bytes_accessed"] == 4 * (np.prod(go) + np.prod(x) + 2 * np.prod(w))


def test_flops_argument_wins(tmp_path: Path) -> None:
    """with_flops=True puts a flops argument on aten::conv2d; the kernel, launched inside
    aten::cudnn_convolution, gets it."""
    dims, _, _ = _conv_args()
    t = KTrace()
    t.step(1, B, 100)
    t.aten("aten::conv2d", B + 2, 40, dims + [[]] * 5, [F32, F32, ""] + ["ScalarList"] * 3
           + ["Scalar"], flops=12345)
    t.aten("aten::cudnn_convolution", B + 5, 30, dims + [[]] * 7, [F32, F32] + [""] * 7)
    t.launch(B + 10, 5, B + 20, 30, name="k")
    t.aten("aten::mm", B + 50, 20, [[4, 4], [4, 4]], [F32, F32], flops="777")
    t.launch(B + 55, 5, B + 60, 10, name="k2")
    k = _kernels(_wl(tmp_path, t))
    assert k["k"] == {"flops": 12345, "bytes_accessed": None, "dtype": "tf32"}
    assert k["k2"]["flops"] == 777 and k["k2"]["bytes_accessed"] == 4 * 48


@pytest.mark.parametrize("name,dims,types,nbytes", [
    ("aten::add_", [[32, 64], [32, 64], []], [F32, F32, "Scalar"], 3 * 4 * 32 * 64),
    ("aten::mul", [[1000], []], [F16, "double"], 2 * 1000 + 8 + 2 * 1000),  # 0-dim tensor
    ("aten::fill_", [[1000], []], [F32, "Scalar"], 4000),                   # write only
    ("aten::copy_", [[1000], [1000], []], ["int", "long", "Scalar"], 4000 + 8000),
    ("aten::sum", [[10, 100], [], [], []], [F32, "", "Scalar", ""], 4000),  # reduction
    ("aten::native_layer_norm", [[8, 512], [], [512], [512], []],
     [BF16, "", BF16, BF16, "Scalar"], 2 * (8 * 512 + 512 + 512 + 8 * 512)),
    # broadcasts write the broadcast shape, whichever input comes first
    ("aten::add", [[64], [32, 64], []], [F32, F32, "Scalar"], 4 * (64 + 2 * 32 * 64)),
    ("aten::add", [[32, 64], [64], []], [F32, F32, "Scalar"], 4 * (64 + 2 * 32 * 64)),
    ("aten::where", [[32, 1], [32, 64], [1, 64]], ["bool", F16, F16],
     32 + 2 * (32 * 64 + 64) + 2 * 32 * 64),
])
def test_elementwise_bytes(tmp_path: Path, name: str, dims: list[Any], types: list[str],
                           nbytes: int) -> None:
    w = _one_op(tmp_path, name, dims, types)
    assert w["flops"] is None and w["bytes_accessed"] == nbytes


@pytest.mark.parametrize("name,dims,types", [
    ("aten::embedding", [[100000, 64], [32]], [F32, "long"]),   # indexes a table sparsely
    ("aten::cat", [[], []], ["TensorList", "Scalar"]),          # sizes not recorded
    ("aten::add_", [[], [], []], ["Int", "Int", "Int"]),        # scalars, not tensors
])
def test_ops_whose_shapes_say_nothing(tmp_path: Path, name: str, dims: list[Any],
                                      types: list[str]) -> None:
    assert _one_op(tmp_path, name, dims, types) == {"flops": None, "bytes_accessed": None,
                                                    "dtype": None}


def test_one_op_two_kernels_split_by_duration(tmp_path: Path) -> None:
    m = k = n = 64
    t = KTrace()
    t.step(1, B, 200)
    t.aten("aten::mm", B + 5, 40, [[m, k], [k, n]], [F32, F32])
    t.launch(B + 10, 5, B + 20, 30, name="k1")
    t.launch(B + 20, 5, B + 50, 10, name="k2")
    w = _kernels(_wl(tmp_path, t))
    total = 2 * m * k * n
    assert w["k1"]["flops"] == pytest.approx(0.75 * total)
    assert w["k2"]["flops"] == pytest.approx(0.25 * total)
    assert w["k1"]["bytes_accessed"] + w["k2"]["bytes_accessed"] == 4 * 3 * 64 * 64


def test_innermost_op_decides(tmp_path: Path) -> None:
    """linear > addmm: the kernel belongs to addmm; a kernel launched in a non-aten op inside
    an aten op, or outside every op, gets nothing; the report counts them."""
    t = KTrace()
    t.step(1, B, 300)
    t.aten("aten::linear", B + 2, 50, [[16, 32], [8, 32], [8]], [F32] * 3)
    t.aten("aten::t", B + 4, 2, [[8, 32]], [F32])
    t.aten("aten::addmm", B + 10, 30, [[8], [16, 32], [32, 8], [], []],
           [F32] * 3 + ["Scalar"] * 2)
    t.launch(B + 15, 5, B + 20, 30, name="gemm")
    t.aten("aten::add_", B + 100, 50, [[1 << 20], [1 << 20], []], [F32, F32, "Scalar"])
    t.cpu("fbgemm::fused_thing", B + 105, 40)
    t.launch(B + 110, 5, B + 120, 10, name="fused")
    t.launch(B + 200, 5, B + 210, 30, name="orphan")
    wl = _wl(tmp_path, t)
    w = _kernels(wl)
    assert w["gemm"]["flops"] == 2 * 16 * 32 * 8
    assert w["fused"]["flops"] is None and w["fused"]["bytes_accessed"] is None
    assert w["orphan"]["bytes_accessed"] is None
    note = next(n for n in wl.meta.extra["import"]["notes"] if "GPU compute kernels" in n)
    assert note.startswith("1 of 3 GPU compute kernels (42.9% of their GPU time) have "
                           "FLOPs/bytes from their aten op")
    assert "launched by fbgemm::fused_thing (14%)" in note
    assert wl.meta.extra["kineto"]["kernel_work"] == {
        "kernels": 3, "with_work": 1, "kernel_us": 70.0, "with_work_us": 30.0}


def test_innermost_sweep() -> None:
    # op 0 [0, 100] holds op 1 [10, 50] and op 2 [60, 90]; op 3 on another thread
    ts = np.array([0.0, 10.0, 60.0, 0.0])
    end = np.array([100.0, 50.0, 90.0, 100.0])
    th = np.array([1, 1, 1, 2], dtype=np.int32)
    owner, parent = innermost(ts, end, th, np.array([1, 1, 1, 2, 3], dtype=np.int32),
                              np.array([20.0, 55.0, 95.0, 5.0, 5.0]))
    assert owner.tolist() == [1, 0, 0, 3, -1]
    assert parent[:3].tolist() == [-1, 0, 0]


def test_retargeting_uses_the_inferred_work(tmp_path: Path) -> None:
    """Recorded on an A100: identical on an A100, moved by the model's ratio on an H100."""
    t = KTrace()
    t.step(1, B, 3000)
    n = 8192
    t.aten("aten::mm", B + 5, 30, [[n, n], [n, n]], [BF16, BF16])
    t.launch(B + 10, 5, B + 20, 1000, name="gemm")
    t.aten("aten::add_", B + 40, 10, [[n, n], [n, n], []], [BF16, BF16, "Scalar"])
    t.launch(B + 42, 5, B + 1020, 300, name="add")
    wl = _wl(tmp_path, t)
    a100 = lookup("A100-SXM4-80GB")
    opts = SimOptions(compute=ComputeModel(recorded_spec=a100))
    base = recorded_cluster("A100-SXM4-80GB", 1)

    def durations(cluster: Any) -> dict[str, float]:
        tl = simulate(bind(wl, cluster), opts).timeline
        return {nm: e - s for nm, s, e in zip(tl["name"].to_pylist(), tl["start_us"].to_pylist(),
                                             tl["end_us"].to_pylist()) if nm in ("gemm", "add")}

    assert durations(base) == {"gemm": 1000.0, "add": 300.0}
    h100 = lookup("H100-SXM5-80GB")
    model = ComputeModel()
    # The GEMM's shape goes with it: 64 x 64 tiles of the default 128 x 128, 38 waves on
    # the A100's 108 SMs, 32 on the H100's 132 (tile and wave quantisation).
    want_gemm = model.retarget_us(np.array([1000.0]), np.array([2.0 * n ** 3]),
                                  np.array([2.0 * 3 * n * n]), "bf16", a100, h100,
                                  tiles=np.array([64.0 * 64]))[0]
    want_add = model.retarget_us(np.array([300.0]), np.array([0.0]),
                                 np.array([2.0 * 3 * n * n]), "bf16", a100, h100)[0]
    got = durations(with_device(base, "H100-SXM5-80GB"))
    assert got["gemm"] == pytest.approx(want_gemm) and got["gemm"] < 1000 / 2.5
    assert got["add"] == pytest.approx(want_add) and 300 / 2.2 < got["add"] < 300 / 1.5


def test_tf32_runs_at_fp32_on_a_gpu_without_tf32() -> None:
    v100, a100 = lookup("V100-SXM2-32GB"), lookup("A100-SXM4-80GB")
    assert v100.peak_flops_per_us("tf32") == v100.peak_flops_per_us("fp32") == 15.7e6
    assert a100.peak_flops_per_us("tf32") == 156e6
    assert v100.peak_flops_per_us("bf16") == 125e6  # unchanged: bf16 falls back to fp16

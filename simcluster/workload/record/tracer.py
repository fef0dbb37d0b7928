"""The dispatch mode that sees every aten and c10d operator the script asks for.

Under PyTorch's ``FakeTensorMode`` tensors carry shapes, dtypes and devices but no data; this
mode sits above it and, for each operator that reaches the dispatcher:

- **memory**: every storage an output creates is allocated (its ``nbytes``) and watched
  with a weak reference; when it dies its bytes are freed (:class:`~.log.OpLog`);
- **kernels**: an operator that launches a kernel (not a view, not a metadata or
  allocation-only op) becomes a compute op with FLOPs, bytes and dtype (:mod:`.work`);
- **collectives**: the ``c10d`` operators of ``torch.distributed`` (DDP's bucket
  all-reduces, FSDP's all-gathers and reduce-scatters) and the functional collectives become
  collectives with their size (nccl-tests convention) and process group.

Anything it cannot stand in for raises :class:`~simcluster.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from simcluster.errors import UnsupportedOperationError
from simcluster.workload.record.fusion import POINTWISE, REDUCTION
from simcluster.workload.record.log import OpLog
from simcluster.workload.record.work import INPUT_TYPE, gpu_name, op_work

# Operators that launch no kernel: allocation, metadata, aliasing.
_NO_KERNEL = frozenset({
    "aten::detach", "aten::lift_fresh", "aten::lift_fresh_copy", "aten::_local_scalar_dense",
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::new_empty",
    "aten::new_empty_strided", "aten::_unsafe_view", "aten::set_", "aten::resize_",
    "aten::alias", "aten::_has_same_storage_numel", "aten::is_same_size", "aten::size",
    "aten::stride", "aten::sym_size", "aten::sym_stride", "aten::sym_numel",
    "aten::record_stream", "aten::_version", "aten::is_pinned", "aten::_pin_memory",
})
_IGNORED_NAMESPACES = frozenset({"prim", "profiler"})

# c10d operator -> (collective, index of the process group argument, how to size it).
_C10D: dict[str, tuple[str, int, str]] = {
    "c10d::allreduce_": ("all_reduce", 1, "arg0"),
    "c10d::broadcast_": ("broadcast", 1, "arg0"),
    "c10d::reduce_": ("reduce", 1, "arg0"),
    "c10d::_allgather_base_": ("all_gather", 2, "arg0"),
    "c10d::allgather_": ("all_gather", 2, "arg0"),
    "c10d::allgather_into_tensor_coalesced_": ("all_gather", 2, "arg0"),
    "c10d::_reduce_scatter_base_": ("reduce_scatter", 2, "arg1"),
    "c10d::reduce_scatter_": ("reduce_scatter", 2, "arg1"),
    "c10d::reduce_scatter_tensor_coalesced_": ("reduce_scatter", 2, "arg1"),
    "c10d::alltoall_base_": ("all_to_all", 2, "arg1"),
    "c10d::alltoall_": ("all_to_all", 2, "arg1"),
    "c10d::barrier": ("barrier", 1, "none"),
}
# functional collectives: name -> (collective, index of the group name, size rule)
_FUNCTIONAL: dict[str, tuple[str, int, str]] = {
    "_c10d_functional::all_reduce": ("all_reduce", 2, "arg0"),
    "_c10d_functional::all_reduce_": ("all_reduce", 2, "arg0"),
    "_c10d_functional::broadcast": ("broadcast", 2, "arg0"),
    "_c10d_functional::all_gather_into_tensor": ("all_gather", 2, "out"),
    "_c10d_functional::all_gather_into_tensor_out": ("all_gather", 2, "out"),
    "_c10d_functional::reduce_scatter_tensor": ("reduce_scatter", 3, "arg0"),
    "_c10d_functional::all_to_all_single": ("all_to_all", 3, "arg0"),
}
_SYNC = frozenset({"_c10d_functional::wait_tensor"})
# point-to-point: c10d operator -> kind (arguments: tensors, group, peer's rank in it, tag)
_P2P = {"c10d::send": "send", "c10d::recv_": "recv"}

# Fusible beyond aten's ``pointwise`` tag: casts, copies, fills, embedding lookups (Inductor
# lowers them to pointwise loops), NLL loss's backward (a scatter upon zeros, which Inductor
# rewrites as a pointwise select: ``fx_passes/joint_graph.py``, ``scatter_upon_const_tensor``);
# and reductions, fused with the pointwise ops around them.
_POINTWISE = frozenset({
    "aten::_to_copy", "aten::copy_", "aten::fill_", "aten::zero_", "aten::zeros_like",
    "aten::ones_like", "aten::full_like", "aten::embedding", "aten::native_dropout",
    "aten::native_dropout_backward", "aten::nll_loss_backward",
})
_REDUCTIONS = frozenset({
    "aten::sum", "aten::mean", "aten::amax", "aten::amin", "aten::max", "aten::min",
    "aten::var", "aten::std", "aten::var_mean", "aten::std_mean", "aten::norm",
    "aten::linalg_vector_norm", "aten::prod", "aten::logsumexp", "aten::argmax",
    "aten::argmin", "aten::any", "aten::all", "aten::_softmax", "aten::_log_softmax",
    "aten::_softmax_backward_data", "aten::_log_softmax_backward_data",
    "aten::native_layer_norm", "aten::native_layer_norm_backward", "aten::nll_loss_forward",
    "aten::nll_loss2d_forward",
})


def fusion_kind(func: Any, name: str) -> str | None:
    """POINTWISE or REDUCTION for an operator a compiler fuses (:mod:`.fusion`), else None.

    Example:
        >>> aten = torch.ops.aten
        >>> [fusion_kind(f, f._schema.name) for f in (aten.mul.Tensor, aten.sum.default,
        ...                                          aten.mm.default)]
        ['pointwise', 'reduction', None]
    """
    if name == "aten::_foreach_norm" or name in _REDUCTIONS:
        return REDUCTION
    foreach = name.startswith("aten::_foreach_")   # Inductor's ForeachKernelSchedulerNode
    return POINTWISE if foreach or torch.Tag.pointwise in func.tags or name in _POINTWISE \
        else None


def tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a nested argument (lists, tuples, dicts); of a DTensor (FSDP2's
    sharded parameters) the local shard this rank holds."""
    return [getattr(t, "_local_tensor", t) for t in tree_flatten(value)[0]
            if isinstance(t, torch.Tensor)]


def storage_key(t: torch.Tensor) -> int:
    """A key of the storage behind ``t`` (the same for all views of it)."""
    return t.untyped_storage()._cdata


def _describe(args: tuple[Any, ...]) -> tuple[list[Any], list[str]]:
    """Arguments as Kineto's ``Input Dims`` and ``Input type``."""
    dims: list[Any] = []
    types: list[str] = []
    for a in args:
        a = getattr(a, "_local_tensor", a)
        if isinstance(a, torch.Tensor):
            dims.append(list(a.shape))
            types.append(INPUT_TYPE.get(str(a.dtype).removeprefix("torch."), ""))
        elif isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor):
            dims.append([list(t.shape) for t in tensors(a)])
            types.append("TensorList")
        else:
            dims.append([])
            types.append("Scalar" if isinstance(a, (int, float, bool)) else "")
    return dims, types


def group_name(ranks: tuple[int, ...], world_size: int) -> str:
    """``world`` for all ranks; ``pg<first>-<last>`` for consecutive ranks, with
    ``s<stride>`` for evenly strided ones; else ``pg`` and the ranks joined by ``_``.

    Example:
        >>> [group_name(r, 8) for r in (tuple(range(8)), (4, 5, 6, 7), (1, 3, 5), (0, 1, 3))]
        ['world', 'pg4-7', 'pg1-5s2', 'pg0_1_3']
    """
    if ranks == tuple(range(world_size)):
        return "world"
    steps = {b - a for a, b in zip(ranks, ranks[1:])}
    if len(ranks) > 1 and len(steps) == 1:
        stride = steps.pop()
        return f"pg{ranks[0]}-{ranks[-1]}" + (f"s{stride}" if stride != 1 else "")
    return "pg" + "_".join(map(str, ranks))


def _mutated(func: Any, args: tuple[Any, ...]) -> list[torch.Tensor]:
    """The tensors an operator writes in place: the arguments its schema marks as written
    (``Tensor(a!)``, ``Tensor(a!)[]``)."""
    return [t for arg, value in zip(func._schema.arguments, args)
            if arg.alias_info is not None and arg.alias_info.is_write for t in tensors(value)]


def _nbytes(ts: list[torch.Tensor]) -> int:
    """Bytes of the tensors ``ts``."""
    return sum(int(t.numel()) * t.element_size() for t in ts)


def _sized(ts: list[torch.Tensor]) -> list[tuple[int, int]]:
    """(storage key, bytes) of each tensor."""
    return [(storage_key(t), _nbytes([t])) for t in ts]


class Tracer(TorchDispatchMode):
    """Records operators into an :class:`~.log.OpLog` (module docstring)."""

    def __init__(self, log: OpLog, fuse: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.log = log
        self._refs: dict[int, Any] = {}       # live storage key -> its weak reference
        self.fuse = fuse                      # whether fusible ops are fused now

    def __exit__(self, *exc: Any) -> Any:
        self.log.end_chain()                  # while the code's last tensors are alive
        return super().__exit__(*exc)

    # -- memory -----------------------------------------------------------------------------

    def _track(self, outputs: list[torch.Tensor]) -> None:
        for t in outputs:
            st = t.untyped_storage()
            key = st._cdata
            if key in self._refs:
                continue
            nbytes = int(st.nbytes())
            self.log.alloc(nbytes)
            self._refs[key] = weakref.ref(st, self._freer(key, nbytes))

    def _freer(self, key: int, nbytes: int) -> Any:
        def free(_: Any) -> None:
            if self._refs.pop(key, None) is not None:
                self.log.free(nbytes)
        return free

    # -- groups -----------------------------------------------------------------------------

    def group_name(self, pg: Any) -> tuple[str, tuple[int, ...]]:
        """A name and the global ranks of process group ``pg``, the same on every rank
        (:func:`group_name`)."""
        ranks = tuple(dist.get_process_group_ranks(pg))
        return group_name(ranks, self.log.world_size), ranks

    # -- dispatch ---------------------------------------------------------------------------

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = func._schema.name
        namespace = name.split("::", 1)[0]
        if namespace in ("c10d", "_c10d_functional"):
            return self._collective(func, name, args, kwargs)
        out = func(*args, **kwargs)
        if namespace in _IGNORED_NAMESPACES:
            return out
        self.log.dispatched()
        outs = tensors(out)
        if func.is_view or name in _NO_KERNEL:
            self._track(outs)
            return out
        ins = tensors(args)
        fused = self._fusible(func, name, args, ins, outs)
        if fused is None or not self.log.fusing(self._live).joins(fused[1]):
            self.log.end_chain()          # before the allocations of this op
        self._track(outs)
        dims, tps = _describe(args)
        flops, nbytes, dtype = op_work(name, dims, tps)
        if fused is not None:
            made = outs + _mutated(func, args)
            self.log.fusing(self._live).add(gpu_name(name), *fused, flops, dtype,
                                            _sized(ins), _sized(made))
            return out
        if not flops and not nbytes:  # no rule (factories, foreach, fused optimizers ...)
            touched = ins + outs + _mutated(func, args)      # read, then written
            nbytes = _nbytes(touched) or 1
        self.log.compute(gpu_name(name), flops, nbytes, dtype,
                         reads=[storage_key(t) for t in ins])
        return out

    def _fusible(self, func: Any, name: str, args: tuple[Any, ...], ins: list[torch.Tensor],
                 outs: list[torch.Tensor]) -> tuple[str, int] | None:
        """(kind, elements of its loop) for an operator to fuse now, else None: a
        pointwise op loops over its output, a reduction over its input (``ins``: the
        tensors of ``args``), a multi-tensor (``_foreach_``) op over all tensors of its
        first list."""
        if self.fuse is None or not self.fuse():
            return None
        kind = fusion_kind(func, name)
        if kind is None or not args:
            return None
        if name.startswith("aten::_foreach_"):
            return kind, sum(int(t.numel()) for t in tensors(args[0]))
        over = outs if kind == POINTWISE else ins
        return (kind, int(over[0].numel())) if over else None

    def _live(self, key: int) -> bool:
        return key in self._refs

    def _p2p(self, name: str, kind: str, args: tuple[Any, ...]) -> None:
        """A send or receive of the tensors in ``args[0]`` with the peer whose rank in group
        ``args[1]`` is ``args[2]``."""
        pg = dist.ProcessGroup.unbox(args[1])
        peer = dist.get_global_rank(pg, int(args[2]))
        moved = tensors(args[0])
        self.log.p2p(name, kind, _nbytes(moved), peer,
                     writes=[storage_key(t) for t in moved] if kind == "recv" else [])

    def _collective(self, func: Any, name: str, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        out = func(*args, **kwargs)
        self.log.dispatched()
        if name in _SYNC:
            return out
        if name in _P2P:
            self._p2p(name, _P2P[name], args)
            return out
        if name in _C10D:
            collective, pg_at, size = _C10D[name]
            pg = dist.ProcessGroup.unbox(args[pg_at])
        elif name in _FUNCTIONAL:
            collective, pg_at, size = _FUNCTIONAL[name]
            from torch._C._distributed_c10d import _resolve_process_group
            pg = _resolve_process_group(args[pg_at])
        else:
            raise UnsupportedOperationError(
                f"{name}: the recorder does not model this communication operator (a "
                "receive from any source depends on timing); name the peer (recv(t, src)) "
                "or use the collectives and send/recv it does model (docs/record.md).", name)
        group, ranks = self.group_name(pg)
        moved = tensors(args[0] if size == "arg0" else args[1] if size == "arg1" else out
                        if size == "out" else [])
        comm_bytes = _nbytes(moved)
        root = None
        if collective in ("broadcast", "reduce"):
            root = ranks[int(args[2])]
        written = tensors(args[:2]) + tensors(out)
        self.log.end_chain()
        self._track(tensors(out))
        self.log.collective(name, collective, comm_bytes, group, ranks, root,
                            writes=[storage_key(t) for t in written])
        return out

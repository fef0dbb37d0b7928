"""The target machine as an unmodified script sees it, on a CPU-only PyTorch.

Inside :func:`target_machine` (and only there: every patch is undone on exit):

- **devices**: ``cuda`` tensors are fake tensors on the CPU (``FakeTensorMode``: shapes,
  dtypes, no data). ``.cuda()``, ``.to("cuda")`` and ``device="cuda..."`` arguments are
  mapped by a ``TorchFunctionMode``; moving a tensor to the GPU records a host-to-device
  copy; ``nn.Module.cuda()`` and ``nn.Module.to(device)`` keep the module where it is
  (already "on the device").
  ``torch.autocast("cuda", ...)`` autocasts as the CPU autocast does (its op lists differ
  from CUDA's in a few ops). ``tensor.item()`` of a floating tensor whose value depends on
  data is NaN (for the loss logging of training loops); such an integer or boolean value
  is an error. ``torch.device("cuda:N")`` is the fake device too.
- **torch.cuda**: ``is_available`` True, ``device_count`` the GPUs per node,
  ``current_device``/``set_device``, ``synchronize``, ``Event`` (elapsed time 0),
  ``Stream``/``stream``/``current_stream`` (no-ops), ``get_device_name``/
  ``get_device_properties`` (the target accelerator, its HBM), memory queries (the
  recorder's ledger: ``memory_allocated``, ``max_memory_allocated``, ``mem_get_info``, ...).
- **torch.distributed**: ``init_process_group`` with any backend makes PyTorch's fake
  process group of the world size, as the recorded rank (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` are set as torchrun sets them).
- **DDP**: ``device_ids`` are dropped (the module is on the fake device), the parameter
  shape check across ranks is skipped, the gradient hook is the default one (divide by the
  world size, all-reduce the bucket) written so that its future holds the bucket, and DDP
  does not rebuild its buckets after the first iteration (that needs data): its buckets
  are from the start the sizes the rebuild gives (first 1 MB, then ``bucket_cap_mb``),
  over the parameters in reverse order of definition (the order DDP assumes, and the order
  of a model whose layers run in the order they are defined).
- **init_device_mesh** (FSDP2, DTensor) runs on real tensors: a mesh reads its rank table.
- **optimizers** and ``clip_grad_norm_``: the multi-tensor (``foreach``) implementation, as
  on a GPU.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

from simcluster.errors import UnsupportedOperationError
from simcluster.workload.record.log import OpLog
from simcluster.workload.record.tracer import storage_key


def _host(device: Any) -> Any:
    """A ``cuda`` device (str or torch.device) as ``cpu``; anything else unchanged."""
    if isinstance(device, str) and device.startswith("cuda"):
        return "cpu"
    if isinstance(device, torch.device) and device.type == "cuda":
        return torch.device("cpu")
    return device


def _is_cuda(device: Any) -> bool:
    return (isinstance(device, str) and device.startswith("cuda")) or \
        (isinstance(device, torch.device) and device.type == "cuda")


def _is_device(device: Any) -> bool:
    """A device argument: a ``torch.device`` (``torch.device("cuda:0")`` is the fake device,
    ``cpu``, here) or a ``cuda``/``cpu`` string."""
    return isinstance(device, torch.device) or (
        isinstance(device, str) and device.split(":", 1)[0] in ("cuda", "cpu"))


def _module_to(original: Callable[..., Any]) -> Callable[..., Any]:
    """``nn.Module.to`` without the move to a device: the module is already "on the device"
    (as ``Module.cuda`` here), and a dtype given with the device still applies. (Moving each
    parameter would swap it for a fake tensor, which ``Module._apply`` refuses.)"""
    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        args = tuple(a for a in args if not _is_device(a))
        if _is_device(kwargs.get("device")):
            del kwargs["device"]
        return original(self, *args, **kwargs) if args or kwargs else self
    return to


class DeviceMap(TorchFunctionMode):
    """Maps ``cuda`` to the fake CPU device and records host-to-device copies."""

    def __init__(self, log: OpLog) -> None:
        super().__init__()
        self.log = log

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.cuda or (func is torch.Tensor.to and (
                any(_is_cuda(a) for a in args[1:]) or _is_cuda(kwargs.get("device")))):
            return self._to_device(func, args, kwargs)
        if func is torch.Tensor.pin_memory:
            return args[0]
        if func is torch.Tensor.item:
            # The host waits for the value, except the optimizers' step counters, which
            # live on the host (unless capturable or fused): torch.optim reads them freely.
            if not sys._getframe(1).f_globals.get("__name__", "").startswith("torch.optim"):
                self.log.sync()
            return self._item(func, args[0])
        if "device" in kwargs:
            kwargs["device"] = _host(kwargs["device"])
        return func(*(_host(a) for a in args), **kwargs)

    def _to_device(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        t = args[0]
        if func is torch.Tensor.cuda:
            out = t
        else:
            kwargs.pop("device", None)
            rest = [a for a in args[1:] if not _is_cuda(a) and not isinstance(a, int)]
            out = t.to(*rest, **kwargs) if rest or kwargs else t
        if not t.requires_grad:
            self.log.copy_h2d(int(t.numel()) * t.element_size(), storage_key(out))
        return out

    @staticmethod
    def _item(func: Any, t: torch.Tensor) -> Any:
        """The value when the fake tensor knows it (a constant), NaN for another floating
        value, else an error (control flow on data)."""
        from torch._subclasses.fake_tensor import DataDependentOutputException

        try:
            return func(t)
        except DataDependentOutputException:
            if t.is_floating_point():
                return math.nan
        raise UnsupportedOperationError(
            "Tensor.item: the script reads the value of an integer or boolean tensor "
            f"(shape {list(t.shape)}); recorded tensors hold no data, so control flow on "
            "tensor values cannot be recorded. Make the value a Python number in the script.",
            "Tensor.item")


class CudaEvent:
    """``torch.cuda.Event``: records nothing; elapsed time 0 ms."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, *args: Any) -> None:
        """Also ``wait``, ``synchronize``, and a stream's ``wait_stream``/``wait_event``."""

    wait = synchronize = wait_stream = wait_event = record

    def query(self) -> bool:
        return True

    def elapsed_time(self, other: Any) -> float:
        return 0.0


class CudaStream(contextlib.nullcontext, CudaEvent):  # type: ignore[misc]
    """``torch.cuda.Stream`` and ``torch.cuda.stream(...)``: work stays in program order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def record_event(self, *args: Any) -> CudaEvent:
        return CudaEvent()


def _ddp_hook(group, bucket):  # type: ignore[no-untyped-def]
    """DDP's default gradient hook (divide, all-reduce) with the bucket in its future.
    (No annotations: DDP accepts only ``dist.GradBucket`` ones, and this module's are
    strings.)"""
    buffer = bucket.buffer()
    buffer.div_(dist.get_world_size(group))
    dist.all_reduce(buffer, group=group, async_op=True)
    future: Any = torch.futures.Future()
    future.set_result(buffer)
    return future


class _Reducer:
    """DDP's reducer, except that buckets are not rebuilt (that reads data)."""

    def __init__(self, reducer: Any) -> None:
        self._reducer = reducer

    def _rebuild_buckets(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reducer, name)


def _rebuilt_buckets(original: Callable[..., Any]) -> Callable[..., Any]:
    """DDP's bucket sizes after its rebuild (a first small bucket, then ``bucket_cap_mb``)
    from the start, over the parameters in reverse order (the order DDP assumes)."""
    def limits(self: Any, static_graph: bool, find_unused_parameters: bool) -> Any:
        return original(self, static_graph=False, find_unused_parameters=True)
    return limits


def _ddp_init(original: Callable[..., None]) -> Callable[..., None]:
    def init(self: Any, module: Any, device_ids: Any = None, output_device: Any = None,
             *args: Any, **kwargs: Any) -> None:
        original(self, module, None, None, *args, **kwargs)
        self.register_comm_hook(self.process_group, _ddp_hook)
        self.reducer = _Reducer(self.reducer)
    return init


def _real_tensors(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` run on real tensors: a ``DeviceMesh`` reads its rank table."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    def run(*args: Any, **kwargs: Any) -> Any:
        with unset_fake_temporarily():
            return original(*args, **kwargs)
    return run


def _foreach(params: Any, differentiable: bool, use_fused: bool = False) -> tuple[bool, bool]:
    """Optimizers use the multi-tensor implementation, as on a GPU."""
    return False, not differentiable


def _foreach_tensors(tensors: Any, device: Any) -> bool:
    """``clip_grad_norm_`` takes the multi-tensor path for fake tensors too (PyTorch's own
    check admits plain tensors and parameters only)."""
    return True


def _cuda_namespace(log: OpLog, gpus_per_node: int, name: str, hbm_bytes: int
                    ) -> dict[str, Any]:
    """The ``torch.cuda`` functions a script calls, answering as the target machine."""
    current = [0]
    props = SimpleNamespace(name=name, total_memory=hbm_bytes, major=9, minor=0,
                            multi_processor_count=132, is_integrated=False)

    def set_device(device: Any) -> None:
        if isinstance(device, str):  # "cuda:3" (torch.device() would answer the fake device)
            current[0] = int(device.partition(":")[2] or 0)
        else:
            current[0] = (device.index or 0) if isinstance(device, torch.device) else int(device)

    def reset(*_: Any) -> None:
        log.ledger.peak = log.ledger.live

    return {
        "is_available": lambda: True, "device_count": lambda: gpus_per_node,
        "current_device": lambda: current[0], "set_device": set_device,
        "synchronize": lambda *a: log.sync(), "is_initialized": lambda: True,
        "init": lambda: None, "empty_cache": lambda: None,
        "get_device_name": lambda *a: name, "get_device_properties": lambda *a: props,
        "get_device_capability": lambda *a: (9, 0), "is_bf16_supported": lambda *a, **k: True,
        "memory_allocated": lambda *a: log.ledger.live,
        "max_memory_allocated": lambda *a: log.ledger.peak,
        "memory_reserved": lambda *a: log.ledger.live,
        "max_memory_reserved": lambda *a: log.ledger.peak,
        "reset_peak_memory_stats": reset, "reset_max_memory_allocated": reset,
        "mem_get_info": lambda *a: (hbm_bytes - log.ledger.live, hbm_bytes),
        "Event": CudaEvent, "Stream": CudaStream, "stream": CudaStream,
        "current_stream": lambda *a: CudaStream(), "default_stream": lambda *a: CudaStream(),
    }


@contextlib.contextmanager
def target_machine(log: OpLog, gpus_per_node: int, device_name: str, hbm_bytes: int
                   ) -> Iterator[None]:
    """Patch torch so that a script sees the target machine (module docstring); undone on
    exit, with the fake process group destroyed."""
    import torch.distributed.fsdp as _fsdp  # noqa: F401  (imports init_device_mesh)
    import torch.nn.parallel.distributed as ddp_module
    from torch.testing._internal.distributed.fake_pg import FakeStore

    world, rank = log.world_size, log.rank
    env = {"RANK": str(rank), "LOCAL_RANK": str(rank % gpus_per_node), "WORLD_SIZE": str(world),
           "LOCAL_WORLD_SIZE": str(min(gpus_per_node, world)),
           "GROUP_RANK": str(rank // gpus_per_node),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    fake_init = dist.init_process_group

    def init_process_group(*args: Any, **kwargs: Any) -> None:
        if not dist.is_initialized():
            fake_init("fake", store=FakeStore(), rank=rank, world_size=world)

    def autocast_init(original: Callable[..., None]) -> Callable[..., None]:
        def init(self: Any, device_type: str, *args: Any, **kwargs: Any) -> None:
            original(self, "cpu" if device_type == "cuda" else device_type, *args, **kwargs)
        return init

    DDP = torch.nn.parallel.DistributedDataParallel
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, env))
        for attr, value in _cuda_namespace(log, gpus_per_node, device_name, hbm_bytes).items():
            stack.enter_context(mock.patch.object(torch.cuda, attr, value))
        stack.enter_context(mock.patch.object(dist, "init_process_group", init_process_group))
        stack.enter_context(mock.patch.object(torch.nn.Module, "cuda", lambda self, *a, **k: self))
        stack.enter_context(mock.patch.object(torch.nn.Module, "to",
                                              _module_to(torch.nn.Module.to)))
        stack.enter_context(mock.patch.object(DDP, "__init__", _ddp_init(DDP.__init__)))
        stack.enter_context(mock.patch.object(
            ddp_module, "_verify_param_shape_across_processes", lambda *a, **k: None))
        config = getattr(ddp_module, "_BucketCapacityConfig", None)
        if config is not None:
            stack.enter_context(mock.patch.object(
                config, "compute_bucket_size_limits",
                _rebuilt_buckets(config.compute_bucket_size_limits)))
        stack.enter_context(mock.patch.object(
            torch.autocast, "__init__", autocast_init(torch.autocast.__init__)))
        import torch.distributed.device_mesh as mesh_module
        fake_mesh = mesh_module.init_device_mesh
        real_mesh = _real_tensors(fake_mesh)
        for module in [m for n, m in sorted(sys.modules.items())
                       if n.startswith("torch.distributed") and m is not None]:
            if getattr(module, "init_device_mesh", None) is fake_mesh:
                stack.enter_context(mock.patch.object(module, "init_device_mesh", real_mesh))
        import torch.nn.utils.clip_grad as clip_grad
        stack.enter_context(mock.patch.object(clip_grad, "_has_foreach_support",
                                              _foreach_tensors))
        for module in [m for n, m in sorted(sys.modules.items()) if n.startswith("torch.optim")]:
            if hasattr(module, "_default_to_fused_or_foreach"):
                stack.enter_context(mock.patch.object(
                    module, "_default_to_fused_or_foreach", _foreach))
        try:
            yield
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()

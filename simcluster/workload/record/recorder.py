"""Record training steps of unmodified PyTorch code on a CPU-only machine.

:class:`Recorder` is a context manager: the code inside its ``with`` block runs as rank 0 of
a world of ``world_size`` ranks on the target machine (:mod:`.environment`), with fake
tensors, and every operator it asks for is recorded (:mod:`.tracer`). Steps are counted by
optimizer steps (``optimizer.step()`` of any ``torch.optim`` optimizer): the first
``warmup`` steps are run but not kept (optimizer states are created lazily in the first),
the next ``steps`` are kept, and then the code is stopped. Code that never steps an
optimizer is recorded whole, as one step.

The result is a native workload (:mod:`.log`: rank 0 in full, the other ranks mirroring
its collectives), with ``meta.extra`` saying what was recorded (``docs/record.md``). The
cyclic garbage collector is off while recording, so that storages are freed by reference
counts alone, at the same op in every run: the same script gives the same workload.
"""

from __future__ import annotations

import contextlib
import gc
import runpy
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from simcluster.errors import UnsupportedOperationError, WorkloadError
from simcluster.workload.host import EAGER
from simcluster.workload.model import Workload
from simcluster.workload.record.log import OpLog, merge

_GiB = 1 << 30
FUSE = ("compiled", "all", "none")


@dataclass(frozen=True)
class RecordOptions:
    """What to record and as which machine.

    Attributes:
        world_size: ranks of the job (the fake process group's size).
        gpus_per_node: what ``torch.cuda.device_count()`` answers (and ``LOCAL_WORLD_SIZE``).
        steps: optimizer steps to keep.
        warmup: optimizer steps to run first and not keep.
        device: the target accelerator (catalog name or alias): what ``torch.cuda`` names
            and the capacity it reports; stored as the workload's ``recorded_device``.
        name: the workload's name.
        fold: record rank 0 only, the others mirroring its collectives (data parallelism);
            false: run the code once per rank, as that rank, and keep every rank's ops
            (ranks that differ: tensor parallelism, different groups).
        host: give every recorded op the host time eager PyTorch spends launching it
            (``workload/host.py``: the default model, measured on real traces), so that a
            step of many short kernels is as launch-bound as the real one; false: the GPU
            streams only.
        fuse: which memory-bound operators become fused kernels (:mod:`.fusion`):
            ``compiled`` those that ``torch.compile``d code runs (its forward and their
            backward; nothing in a script that compiles nothing), ``all`` every one (the
            step as if all of it were compiled), ``none`` none (eager kernels throughout).
    """

    world_size: int = 8
    gpus_per_node: int = 8
    steps: int = 1
    warmup: int = 1
    device: str = "H100-SXM5-80GB"
    name: str = "recorded"
    fold: bool = True
    host: bool = True
    fuse: str = "compiled"

    def check(self) -> None:
        """Raise WorkloadError naming the option that is out of range."""
        for field, value, low in (("world_size", self.world_size, 1),
                                  ("gpus_per_node", self.gpus_per_node, 1),
                                  ("steps", self.steps, 1), ("warmup", self.warmup, 0)):
            if value < low:
                raise WorkloadError(f"record: {field} is {value}; use at least {low}.")
        if self.fuse not in FUSE:
            raise WorkloadError(f"record: fuse is {self.fuse!r}; use one of {', '.join(FUSE)}.")


class _StopRecording(BaseException):
    """Raised from the optimizer hook once the steps are recorded (a BaseException, so
    that a script's ``except Exception`` does not catch it)."""


class Recorder:
    """Record what the code in a ``with`` block asks the devices to do.

    Example (needs torch)::

        with Recorder(RecordOptions(world_size=8)) as rec:
            train()          # unmodified: DDP, .cuda(), AdamW ...
        workload = rec.workload()
    """

    def __init__(self, options: RecordOptions, source: str = "simcluster record",
                 script: str | None = None, rank: int = 0) -> None:
        options.check()
        self.options = options
        self.source = source
        self.script = script
        self.log = OpLog(options.world_size, rank, EAGER if options.host else None)
        self.optimizer_steps = 0
        self.categories: dict[int, dict[str, int]] = {}
        self._stack = contextlib.ExitStack()
        self._result: Workload | None = None
        self.extra: dict[str, Any] = {}

    # -- optimizer steps --------------------------------------------------------------------

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.categories[id(optimizer)] = _optimizer_memory(optimizer)
        self.optimizer_steps += 1
        done = self.optimizer_steps - self.options.warmup
        if done == 0:
            self.log.start_recording(step=0)
        elif done > 0:
            if done >= self.options.steps:
                raise _StopRecording
            self.log.next_step(done)

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> Recorder:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise WorkloadError("record needs PyTorch, an optional extra: pip install "
                                "'simcluster[record]'.") from None
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.optim.optimizer import register_optimizer_step_post_hook

        from simcluster.topology.catalog import known_models, lookup
        from simcluster.workload.record.environment import DeviceMap, target_machine
        from simcluster.workload.record.tracer import Tracer

        spec = lookup(self.options.device)
        if spec is None:
            raise WorkloadError(f"record: --device {self.options.device!r} is not in the "
                                "accelerator catalog; use one of "
                                f"{', '.join(known_models())}.")
        self.device = spec.model
        if self.options.warmup == 0:
            self.log.start_recording(step=0)
        try:
            st = self._stack
            if gc.isenabled():  # frees by reference counts only: the same ops every run
                gc.collect()
                gc.disable()
                st.callback(gc.enable)
            st.enter_context(target_machine(self.log, self.options.gpus_per_node, spec.model,
                                            int(spec.hbm_GiB * _GiB)))
            handle = register_optimizer_step_post_hook(self._after_step)
            st.callback(handle.remove)
            st.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
            st.enter_context(DeviceMap(self.log))
            st.enter_context(Tracer(self.log, self._fusion()))
        except BaseException:
            self._stack.close()
            raise
        return self

    def _fusion(self) -> Callable[[], bool] | None:
        """When to fuse memory-bound operators (``options.fuse``); patches ``torch.compile``
        for ``compiled``."""
        if self.options.fuse == "all":
            return lambda: True
        if self.options.fuse == "none":
            return None
        from simcluster.workload.record.compiled import CompiledCode, compiled_code

        code = CompiledCode()
        self._stack.enter_context(compiled_code(code))
        return code.active

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self._stack.close()
        if exc is None or isinstance(exc, _StopRecording) or (
                isinstance(exc, SystemExit) and exc.code in (0, None)):
            self._result = self._build()
            return True
        unsupported = _unsupported(exc, tb, self.script)
        if unsupported is not None:
            raise unsupported from None
        if isinstance(exc, Exception) and not isinstance(exc, WorkloadError):
            line = _script_line(tb, self.script)
            raise WorkloadError(
                f"{line or 'record'}: the code raised {type(exc).__name__}: {exc} while it was "
                "recorded (with fake tensors: see docs/record.md for what is supported).") \
                from exc
        return False

    def _build(self) -> Workload | None:
        o = self.options
        if self.optimizer_steps and self.optimizer_steps < o.warmup + o.steps:
            raise WorkloadError(
                f"record: the code made {self.optimizer_steps} optimizer step(s); recording "
                f"needs {o.warmup + o.steps} (warm-up {o.warmup}, steps {o.steps}). Lower "
                "--warmup/--steps or let the script train longer.")
        if self.log.num_ops == 0:
            raise WorkloadError("record: the code launched no device operator; check that it "
                                "trains on the GPU (tensors or the model moved with .cuda()).")
        memory = {"parameters": 0, "gradients": 0, "optimizer": 0}
        for cats in self.categories.values():
            for k, v in cats.items():
                memory[k] += v
        memory["peak"] = self.log.recorded_peak
        extra = {"recorder": "torch", "world_size": o.world_size,
                 "host": asdict(EAGER) if o.host else None,
                 "gpus_per_node": o.gpus_per_node, "steps": o.steps, "warmup": o.warmup,
                 "fuse": o.fuse, "memory": memory}
        if self.script:
            extra["script"] = self.script
        if o.fold:
            extra["fold"] = {"full_ranks": 1}
            return self.log.workload(o.name, self.source, extra, recorded_device=self.device)
        self.extra = extra
        return None

    def workload(self) -> Workload:
        """The recorded workload (after the ``with`` block; folded recordings)."""
        if self._result is None:
            raise WorkloadError("record: the recording has not finished.")
        return self._result


def memory_breakdown(workload: Workload) -> dict[str, int]:
    """Rank 0's recorded device memory by category, in bytes: ``parameters``,
    ``gradients``, ``optimizer`` (the optimizers' tensors), ``other`` (activations, DDP
    buckets, temporaries: the peak less the rest) and ``peak``.

    Example:
        >>> from simcluster.workload.record.log import OpLog, merge
        >>> log = OpLog(1); log.start_recording(0); log.alloc(100)
        >>> _ = log.compute("aten::add", None, 8, "fp32")
        >>> wl = log.workload("t", "test", {"memory": {"parameters": 40, "gradients": 20,
        ...                                            "optimizer": 0, "peak": 100}})
        >>> memory_breakdown(wl)
        {'parameters': 40, 'gradients': 20, 'optimizer': 0, 'other': 40, 'peak': 100}
    """
    mem = workload.meta.extra["memory"]
    known = {k: int(mem[k]) for k in ("parameters", "gradients", "optimizer")}
    return {**known, "other": int(mem["peak"]) - sum(known.values()), "peak": int(mem["peak"])}


def summary(workload: Workload) -> dict[str, Any]:
    """What ``simcluster record`` reports of a recorded workload: ranks, ops, rank 0's ops
    by kind, FLOPs per step (all ranks), memory by category (:func:`memory_breakdown`), the
    target device, its capacity (bytes) and whether the peak fits in it."""
    from simcluster.topology.catalog import lookup

    ops = workload.ops
    kinds = ops.filter(ops.column("rank").to_numpy() == 0).column("kind").to_pylist()
    steps = int(workload.meta.extra.get("steps", 1))
    mem = memory_breakdown(workload)
    spec = lookup(workload.meta.recorded_device or "")
    capacity = int(spec.hbm_GiB * _GiB) if spec is not None else 0
    return {"ranks": workload.num_ranks, "ops": workload.num_ops,
            "rank0": {k: kinds.count(k) for k in sorted(set(kinds))},
            "flops_per_step": sum(f or 0.0 for f in ops.column("flops").to_pylist()) / steps,
            "memory": mem, "device": workload.meta.recorded_device,
            "capacity_bytes": capacity, "fits": mem["peak"] <= capacity}


def _optimizer_memory(optimizer: Any) -> dict[str, int]:
    """Bytes of the distinct storages of an optimizer's parameters, their gradients and its
    state tensors, except ``step`` counters (kept on the host unless the optimizer is
    ``capturable`` or ``fused``)."""
    import torch

    def nbytes(ts: list[Any]) -> int:
        seen: dict[int, int] = {}
        for t in ts:
            if isinstance(t, torch.Tensor):
                st = getattr(t, "_local_tensor", t).untyped_storage()  # a DTensor's shard
                seen[st._cdata] = int(st.nbytes())
        return sum(seen.values())

    params = [p for g in optimizer.param_groups for p in g["params"]]
    on_device = all(g.get("capturable") or g.get("fused") for g in optimizer.param_groups)
    state = [v for s in optimizer.state.values() for k, v in s.items()
             if k != "step" or on_device]
    return {"parameters": nbytes(params), "gradients": nbytes([p.grad for p in params]),
            "optimizer": nbytes(state)}


def _unsupported(exc: BaseException, tb: TracebackType | None, script: str | None
                 ) -> UnsupportedOperationError | None:
    """A fake-tensor failure as an UnsupportedOperationError naming the operator and the
    script line that called it (None: not such a failure)."""
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        UnsupportedOperatorException,
    )

    line = _script_line(tb, script)
    at = f"{line}: " if line else ""
    if isinstance(exc, UnsupportedOperationError):
        return UnsupportedOperationError(f"{at}{exc}", exc.operator, line)
    if isinstance(exc, UnsupportedOperatorException):
        op = str(exc.func)
        why = ("it has no shape (meta/fake) implementation, as custom CUDA extensions often "
               "lack; register one with torch.library.register_fake, or leave the op out")
    elif isinstance(exc, (DataDependentOutputException, DynamicOutputShapeException)):
        op = str(exc.func)
        why = ("its output depends on tensor values (data-dependent shape or control flow), "
               "which a recording without data cannot know")
    elif isinstance(exc, NotImplementedError) and "Meta" in str(exc):
        op = str(exc).split(":")[0]
        why = "it has no meta implementation"
    else:
        return None
    return UnsupportedOperationError(f"{at}operator {op} cannot be recorded: {why}.", op, line)


def _script_line(tb: TracebackType | None, script: str | None) -> str:
    """``file:line`` of the innermost frame in ``script`` (or, without a script, outside
    torch and simcluster)."""
    found = ""
    for frame in traceback.extract_tb(tb):
        path = frame.filename
        mine = (Path(path).resolve() == Path(script).resolve()) if script else \
            not any(part in path for part in ("/torch/", "/simcluster/", "<frozen"))
        if mine:
            found = f"{path}:{frame.lineno}"
    return found


def record_script(path: str | Path, argv: Sequence[str] = (),
                  options: RecordOptions = RecordOptions()) -> Workload:
    """Record ``options.steps`` training steps of the script at ``path`` run as
    ``python path argv...`` (as ``__main__``, unmodified).

    Raises:
        WorkloadError: the script is missing or made too few steps.
        UnsupportedOperationError: an operator cannot be recorded (with the script line).
    """
    path = Path(path)
    if not path.is_file():
        raise WorkloadError(f"{path}: script not found; check the path.")
    script = str(path.resolve())
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        return _each_rank(lambda: runpy.run_path(str(path), run_name="__main__"), options,
                          f"simcluster record {path.name}", script)
    except SystemExit as exc:
        raise WorkloadError(f"{path}: the script exited with {exc.code!r} while it was "
                            "recorded.") from None
    finally:
        sys.argv, sys.path[:] = old_argv, old_path


def _each_rank(run: Callable[[], Any], options: RecordOptions, source: str,
               script: str | None = None) -> Workload:
    """``run`` recorded as rank 0 (folded), or once as each rank, merged."""
    ranks = range(1 if options.fold else options.world_size)
    recorders = []
    for rank in ranks:
        with Recorder(options, source=source, script=script, rank=rank) as rec:
            kept = run()    # noqa: F841  (a script's globals live until the recording ends)
        recorders.append(rec)
    if options.fold:
        return recorders[0].workload()
    return merge([r.log for r in recorders], options.name, source, recorders[0].extra,
                 recorded_device=recorders[0].device)


def record_function(fn: Callable[..., Any], *args: Any,
                    options: RecordOptions = RecordOptions(), **kwargs: Any) -> Workload:
    """Record ``fn(*args, **kwargs)`` (a training loop, or one step) as :class:`Recorder`
    does."""
    return _each_rank(lambda: fn(*args, **kwargs), options,
                      f"simcluster record {getattr(fn, '__name__', 'function')}")

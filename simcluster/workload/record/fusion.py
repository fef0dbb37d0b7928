"""What a compiler would fuse: chains of memory-bound operators recorded as one kernel.

A ``torch.compile``d model does not launch eager PyTorch's one kernel per aten operator:
TorchInductor's scheduler fuses neighbouring pointwise operators, and pointwise operators
into the reduction that consumes them, into one generated kernel whose intermediates stay in
registers (``torch/_inductor/scheduler.py``, ``Scheduler.can_fuse``;
``torch/_inductor/codegen/simd.py``, ``SIMDScheduling.can_fuse``). The recorder cannot run
Inductor itself (Dynamo skips every frame while a ``TorchDispatchMode`` is active:
``torch/_dynamo/convert_frame.py``, ``should_skip_for_dispatch_mode``), so it applies these
rules to the recorded operator stream, in program order:

- a **pointwise** operator (aten's ``pointwise`` tag, and the copies, casts, fills and
  embedding lookups that Inductor lowers to pointwise loops; a multi-tensor ``_foreach_``
  operator over all its tensors, as Inductor's ``ForeachKernelSchedulerNode``; lists in
  :mod:`.tracer`) joins the open chain when its output has as many elements as the chain's
  (Inductor: "nodes numel incompatibility" otherwise), else it starts a new chain;
- a **reduction** (sum, mean, amax, softmax, log-softmax, layer norm and its backward, NLL
  loss ...) joins the chain when its input has as many elements as the chain (a pointwise
  producer fused into a reduction: ``numel1 == numel2 * rnumel2``), and so does a pointwise
  operator after it over the same elements (the epilogue of a softmax or a norm, a cast of
  its output; the same rule with the nodes swapped); a pointwise operator over the reduced
  output (fewer elements) starts a new kernel;
- anything else (matrix multiplies, attention, collectives, copies to the device, ops the
  compiler leaves to a library) ends the chain and stays a kernel of its own.

A chain becomes one compute op: FLOPs summed; bytes = the chain's external inputs (tensors
it reads that none of its ops made), each once, plus the tensors it made that are still
alive when the chain ends (saved for the backward pass, or held by the script): the
intermediates that died inside it never leave the chip. It is named as Inductor names its
kernels, ``triton_poi_fused_<ops>`` (``triton_red_fused_`` with a reduction); a chain of one
operator keeps the operator's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

POINTWISE, REDUCTION = "pointwise", "reduction"

# Emit one compute op: name, FLOPs, bytes, dtype, storage keys it reads.
Emit = Callable[[str, "float | None", int, "str | None", "list[int]"], object]


@dataclass
class Chain:
    """Memory-bound operators being fused into one kernel.

    Attributes:
        numel: elements of the loop every operator of the chain runs over.
        names: the operators, in order (``aten::mul``).
        reads: external inputs, storage key -> bytes read.
        made: tensors the chain's operators made, storage key -> bytes.
        reduces: a reduction joined (the kernel is a reduction kernel).
    """

    numel: int
    names: list[str] = field(default_factory=list)
    flops: float = 0.0
    dtype: str | None = None
    reads: dict[int, int] = field(default_factory=dict)
    made: dict[int, int] = field(default_factory=dict)
    reduces: bool = False

    def kernel_name(self) -> str:
        """The operator's own name for a chain of one, else Inductor's kind of name.

        Example:
            >>> Chain(4, ["aten::mul", "aten::add", "aten::mul"]).kernel_name()
            'triton_poi_fused_add_mul'
        """
        if len(self.names) == 1:
            return self.names[0]
        short = sorted({n.split("::")[-1] for n in self.names})
        return f"triton_{'red' if self.reduces else 'poi'}_fused_" + "_".join(short)


class Fuser:
    """Collects fusible operators into chains and emits each chain as one kernel.

    ``live(key)`` says whether the storage ``key`` is still referenced when a chain ends.

    Example: ``y = relu(x * 2 + 1)`` on 1,000 fp32 elements; the two temporaries die inside
    the chain, so the kernel reads x and writes y (4,000 bytes each):

        >>> out = []
        >>> fuser = Fuser(lambda *op: out.append(op), live=lambda key: key in (1, 4))
        >>> for name, src, dst in (("aten::mul", 1, 2), ("aten::add", 2, 3),
        ...                        ("aten::relu", 3, 4)):
        ...     fuser.add(name, POINTWISE, 1000, None, "fp32", [(src, 4000)], [(dst, 4000)])
        >>> fuser.flush()
        >>> out
        [('triton_poi_fused_add_mul_relu', None, 8000, 'fp32', [1])]
    """

    def __init__(self, emit: Emit, live: Callable[[int], bool]) -> None:
        self.emit = emit
        self.live = live
        self.chain: Chain | None = None
        self.flushed_ops = 0   # operators of the chain emitted last

    def joins(self, numel: int) -> bool:
        """Whether an operator over ``numel`` elements would join the open chain (or start
        one: none is open)."""
        return self.chain is None or self.chain.numel == numel

    def add(self, name: str, kind: str, numel: int, flops: float | None, dtype: str | None,
            inputs: list[tuple[int, int]], outputs: list[tuple[int, int]]) -> None:
        """Operator ``name`` (``kind`` POINTWISE or REDUCTION over ``numel`` elements) reading
        ``inputs`` and making ``outputs`` (storage key, bytes) joins the open chain, or ends
        it and starts the next (module docstring)."""
        if not self.joins(numel):
            self.flush()
        chain = self.chain = self.chain or Chain(numel)
        for key, nbytes in inputs:
            if key not in chain.made:
                chain.reads[key] = max(chain.reads.get(key, 0), nbytes)
        for key, nbytes in outputs:   # a key made again: the old storage died, its
            chain.made[key] = nbytes  # address reused (the same in every run or not)
        chain.names.append(name)
        chain.flops += flops or 0.0
        chain.dtype = chain.dtype or dtype
        chain.reduces = chain.reduces or kind == REDUCTION

    def flush(self) -> None:
        """End the open chain: emit it as one kernel (nothing if none is open)."""
        chain, self.chain = self.chain, None
        if chain is None:
            return
        written = sum(n for key, n in chain.made.items() if self.live(key))
        self.flushed_ops = len(chain.names)
        self.emit(chain.kernel_name(), chain.flops or None,
                  sum(chain.reads.values()) + written, chain.dtype, list(chain.reads))

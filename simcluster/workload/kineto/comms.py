"""What a communication kernel did: collective, size, group, from whatever the trace has.

Sources, best first (see ``../shared/data/README.md`` for the trace versions):

1. the NCCL kernel's own args (newer PyTorch): ``Collective name``, ``In msg nelems``,
   ``Out msg nelems``, ``dtype``, ``Group size``, ``Process Group Name``,
   ``Process Group Ranks``;
2. the enclosing ``record_param_comms`` CPU op: the same keys, or (older) ``Input Dims`` and
   ``Input type`` of its first tensor;
3. the enclosing ``nccl:<collective>`` annotation (``Input Dims``/``Input type``) and the
   ``c10d::<collective>_`` op's name;
4. a PyTorch execution trace (``--et``), matched in issue order (:mod:`.pyet`);
5. the kernel name (``ncclKernel_AllReduce_*``, ``ncclDevKernel_AllGather_*``; ``SendRecv``
   is an all-to-all or a send/recv, which only the annotations tell apart).

An all-to-all(v)'s per-member sizes come from ``In split size`` (``record_param_comms``) or
the execution trace's input split list: the rank's ``nbytes`` in their proportions.

Sizes follow the nccl-tests convention of ``docs/formats.md``: the per-rank buffer of an
all-reduce, broadcast or reduce; the whole output of an all-gather; the whole input of a
reduce-scatter; the total a rank sends in an all-to-all.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

# Element sizes of the dtype names PyTorch writes in traces (c10 names and C++ names).
DTYPE_BYTES = {
    "float": 4, "float32": 4, "double": 8, "float64": 8, "half": 2, "float16": 2,
    "c10::half": 2, "bfloat16": 2, "c10::bfloat16": 2, "long": 8, "long int": 8,
    "int64": 8, "int": 4, "int32": 4, "short": 2, "int16": 2, "short int": 2, "byte": 1,
    "unsigned char": 1, "uint8": 1, "char": 1, "signed char": 1, "int8": 1, "bool": 1,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "c10::float8_e4m3fn": 1, "c10::float8_e5m2": 1,
    "complexfloat": 8, "c10::complex<float>": 8, "complexdouble": 16,
}

_KERNEL = re.compile(r"(?:nccl|rccl)(?:Dev)?Kernel_([A-Za-z]+?)(?:_|\(|$)", re.IGNORECASE)
_KERNEL_COLLECTIVES = {
    "allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
    "broadcast": "broadcast", "reduce": "reduce", "alltoall": "all_to_all",
    "sendrecv": "sendrecv", "send": "send", "recv": "recv",
}
_NAMES = {
    "allreduce": "all_reduce", "allgather": "all_gather", "allgatherbase": "all_gather",
    "allgatherintotensor": "all_gather", "allgathercoalesced": "all_gather",
    "reducescatter": "reduce_scatter", "reducescatterbase": "reduce_scatter",
    "reducescattertensor": "reduce_scatter", "reducescattertensorcoalesced": "reduce_scatter",
    "alltoall": "all_to_all", "alltoallbase": "all_to_all", "alltoallv": "all_to_all",
    "alltoallsingle": "all_to_all", "broadcast": "broadcast", "reduce": "reduce",
    "barrier": "barrier", "send": "send", "recv": "recv", "recvanysource": "recv",
    "gather": "gather", "scatter": "scatter", "allreducecoalesced": "all_reduce",
}
UNSUPPORTED = ("gather", "scatter")


@dataclass(frozen=True)
class CommInfo:
    """What is known about one communication kernel (None: unknown).

    Attributes:
        collective: ``all_reduce`` ... or ``send``/``recv``; ``sendrecv`` when only the
            kernel name is known.
        nbytes: size, nccl-tests convention.
        group: process-group name.
        ranks: global ranks of the group.
        source: where the size came from (for the report).
        splits: an all-to-all(v)'s input split sizes (``In split size``: what the rank sends
            to each member, in the group's rank order; in rows or elements, so only their
            proportions are used).
    """

    collective: str | None = None
    nbytes: int | None = None
    group: str | None = None
    ranks: tuple[int, ...] | None = None
    source: str = "kernel name"
    splits: tuple[int, ...] | None = None

    def merged(self, other: CommInfo) -> CommInfo:
        """Fill what this one lacks from ``other`` (this one wins where both know)."""
        coll = self.collective
        if coll in (None, "sendrecv") and other.collective is not None:
            coll = other.collective
        return CommInfo(
            collective=coll,
            nbytes=self.nbytes if self.nbytes is not None else other.nbytes,
            group=self.group if self.group is not None else other.group,
            ranks=self.ranks if self.ranks is not None else other.ranks,
            source=self.source if self.nbytes is not None else other.source,
            splits=self.splits if self.splits is not None else other.splits,
        )

    def pair_bytes(self, members: int) -> list[int] | None:
        """The bytes sent to each of the group's ``members``: ``nbytes`` in the proportions
        of ``splits`` (rounded down); None without a usable split list.

        Example:
            >>> CommInfo("all_to_all", 100, splits=(1, 3, 0, 0)).pair_bytes(4)
            [25, 75, 0, 0]
        """
        s = self.splits
        if (self.collective != "all_to_all" or self.nbytes is None or s is None
                or len(s) != members or not sum(s)):
            return None
        total = sum(s)
        return [self.nbytes * x // total for x in s]


def split_sizes(value: Any) -> tuple[int, ...] | None:
    """A split list as traces write it: a list of counts, or its text (``"[768, 768]"``);
    None when absent, empty, truncated (``...``) or not counts.

    Example:
        >>> split_sizes("[768, 256]"), split_sizes("[1, 2, ...]"), split_sizes([])
        ((768, 256), None, None)
    """
    if isinstance(value, str) and len(value) < 1 << 20:
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if (isinstance(value, list) and value and len(value) <= _MAX_RANK
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < _MAX_BYTES
                    for x in value)):
        return tuple(value)
    return None


def normalize_collective(name: str) -> str | None:
    """``nccl:_all_gather_base``, ``c10d::allreduce_``, ``all_to_allv`` -> the collective.

    Example:
        >>> normalize_collective("nccl:_all_gather_base")
        'all_gather'
        >>> normalize_collective("c10d::alltoall_base_")
        'all_to_all'
    """
    base = name.split("::")[-1].split(":")[-1]
    key = re.sub(r"[^a-z]", "", base.lower())
    return _NAMES.get(key)


def kernel_collective(kernel_name: str) -> str | None:
    """The collective a NCCL/RCCL kernel name tells (``sendrecv`` for SendRecv kernels)."""
    m = _KERNEL.search(kernel_name)
    return _KERNEL_COLLECTIVES.get(m.group(1).lower()) if m else None


def dtype_bytes(name: Any) -> int | None:
    """Bytes per element of a dtype name as traces write it (``Float``, ``c10::BFloat16``)."""
    if not isinstance(name, str):
        return None
    return DTYPE_BYTES.get(name.strip().lower())


_MAX_RANK = 1 << 20  # ranks of a group: the largest jobs have about 10^5
_MAX_BYTES = 1 << 63  # a message size must fit the int64 column


def _rank(r: Any) -> bool:
    return isinstance(r, int) and not isinstance(r, bool) and 0 <= r < _MAX_RANK


def _bytes(n: int | None) -> int | None:
    """A message size in bytes, None when it cannot be one (negative, >= 2**63: corrupt)."""
    return n if n is not None and 0 <= n < _MAX_BYTES else None


def _ranks(args: dict[str, Any]) -> tuple[int, ...] | None:
    """The group's ranks: ``Process Group Ranks``, else start/stride/size; None when absent
    or not ranks (negative, 2**20 or more, a group larger than that)."""
    raw = args.get("Process Group Ranks")
    if isinstance(raw, str) and len(raw) < 1 << 24:
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raw = None
    if isinstance(raw, list) and raw and all(_rank(r) for r in raw):
        return tuple(raw)
    start, stride, size = (args.get(k) for k in ("Global rank start", "Global rank stride",
                                                   "Group size"))
    if (_rank(start) and _rank(stride) and _rank(size) and size > 0 and stride > 0
            and start + (size - 1) * stride < _MAX_RANK):
        return tuple(range(start, start + size * stride, stride))
    return None


def _size_from_nelems(coll: str | None, args: dict[str, Any]) -> int | None:
    es = dtype_bytes(args.get("dtype"))
    n_in, n_out = args.get("In msg nelems"), args.get("Out msg nelems")
    if es is None or not isinstance(n_in, int) or not isinstance(n_out, int):
        return None
    if coll == "all_gather":
        return _bytes(n_out * es)
    if coll in ("send", "recv"):
        return _bytes(max(n_in, n_out) * es)
    return _bytes(n_in * es)


def from_args(args: dict[str, Any], source: str) -> CommInfo:
    """Read the newer ``record_param_comms``-style keys (kernel or CPU-op args)."""
    name = args.get("Collective name")
    coll = normalize_collective(name) if isinstance(name, str) else None
    group = args.get("Process Group Name")
    return CommInfo(
        collective=coll,
        nbytes=_size_from_nelems(coll, args),
        group=str(group) if group not in (None, "") else None,
        ranks=_ranks(args),
        source=source,
        splits=split_sizes(args.get("In split size")),
    )


def first_tensor_bytes(args: dict[str, Any]) -> int | None:
    """Bytes of the first tensor in ``Input Dims``/``Input type`` (older traces)."""
    dims, types = args.get("Input Dims"), args.get("Input type")
    if not isinstance(dims, list) or not isinstance(types, list) or not dims:
        return None
    shape, tname = dims[0], types[0] if types else None
    es = dtype_bytes(tname)
    if es is None or not isinstance(shape, list) or not shape:
        return None
    if not all(isinstance(d, int) and d >= 0 for d in shape) or len(shape) > 64:
        return None
    return _bytes(math.prod(shape) * es)


def from_annotation(name: str, args: dict[str, Any], group_size: int) -> CommInfo:
    """Read an enclosing CPU annotation: ``record_param_comms``, ``nccl:*`` or ``c10d::*``.

    ``group_size`` turns an all-gather's input (what ``Input Dims`` shows) into its output.
    """
    if name == "record_param_comms":
        info = from_args(args, "record_param_comms")
        if info.nbytes is None:
            size = first_tensor_bytes(args)
            if size is not None and info.collective == "all_gather":
                size = _bytes(size * (len(info.ranks) if info.ranks else group_size))
            info = replace(info, nbytes=size)
        return info
    coll = normalize_collective(name)
    size = first_tensor_bytes(args) if name.startswith("nccl:") else None
    if size is not None and coll == "all_gather":
        size = _bytes(size * group_size)
    return CommInfo(collective=coll, nbytes=size,
                    source="nccl annotation" if name.startswith("nccl:") else "c10d op")

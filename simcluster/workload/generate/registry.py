"""Generators by name, with the parameters each accepts, for sweeps and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from simcluster.errors import WorkloadError
from simcluster.workload.generate.data_parallel import (
    DataParallelConfig,
    TransformerDims,
    data_parallel,
)
from simcluster.workload.generate.frameworks import settings_of
from simcluster.workload.generate.presets import ModelSpec, model_from
from simcluster.workload.generate.transformer import TransformerConfig, transformer
from simcluster.workload.model import Workload


@dataclass(frozen=True)
class Generator:
    """A named generator: ``make(params) -> Workload`` and the parameter names it accepts."""

    name: str
    params: tuple[str, ...]
    make: Callable[[dict[str, Any]], Workload]


def _data_parallel(p: dict[str, Any]) -> Workload:
    dims = {k: p[k] for k in ("layers", "hidden", "seq_len", "vocab") if k in p}
    cfg = {k: p[k] for k in ("ranks", "micro_batch", "dtype", "bucket_mb", "steps", "name")
           if k in p}
    return data_parallel(DataParallelConfig(dims=TransformerDims(**dims), **cfg))


_MODEL_FIELDS = tuple(f.name for f in fields(ModelSpec) if f.name not in ("name", "source"))
_CONFIG_FIELDS = tuple(f.name for f in fields(TransformerConfig) if f.name != "model")


def zero_stage(value: int | str) -> int:
    """A ZeRO stage from ``0``-``3`` (int or text) or ``fsdp`` (ZeRO-3, as PyTorch's fully
    sharded data parallelism shards weights, grads and optimizer states).

    Raises:
        WorkloadError: anything else.

    Example:
        >>> zero_stage("fsdp"), zero_stage(" 1"), zero_stage(2)
        (3, 1, 2)
    """
    text = str(value).strip().lower()
    if text == "fsdp":
        return 3
    if text not in ("0", "1", "2", "3"):
        raise WorkloadError(f"zero {value!r}: use 0, 1, 2, 3 or fsdp.")
    return int(text)


def transformer_config(p: dict[str, Any]) -> TransformerConfig:
    """``preset`` (or the dimensions), overridden dimensions (None: the preset's), and the
    training settings; ``zero`` may be ``fsdp``. The CLI's ``generate transformer``, sweeps
    and search all build their configurations here. ``framework`` fills the settings not
    given (None counts as not given) from that framework's profile (``frameworks.py``).

    Raises:
        WorkloadError: unknown preset, dimensions missing without one, a bad ZeRO stage.
    """
    model = model_from(p.get("preset"), {k: p[k] for k in _MODEL_FIELDS if k in p})
    settings = settings_of(p.get("framework"), {k: p[k] for k in _CONFIG_FIELDS
                                                if p.get(k) is not None})
    if "zero" in settings:
        settings["zero"] = zero_stage(settings["zero"])
    return TransformerConfig(model=model, **settings)


GENERATORS: dict[str, Generator] = {
    "data-parallel": Generator(
        "data-parallel",
        tuple(f.name for f in fields(DataParallelConfig) if f.name != "dims")
        + tuple(f.name for f in fields(TransformerDims)),
        _data_parallel,
    ),
    "transformer": Generator(
        "transformer", ("preset", *_MODEL_FIELDS, *_CONFIG_FIELDS),
        lambda p: transformer(transformer_config(p)),
    ),
}


def generate(name: str, params: dict[str, Any]) -> Workload:
    """Run generator ``name`` with ``params``.

    Raises:
        WorkloadError: unknown generator or parameter.
    """
    gen = GENERATORS.get(name)
    if gen is None:
        raise WorkloadError(f"unknown generator {name!r}; use one of {', '.join(GENERATORS)}.")
    unknown = sorted(set(params) - set(gen.params))
    if unknown:
        raise WorkloadError(
            f"generator {name!r} has no parameter {', '.join(map(repr, unknown))}; its "
            f"parameters: {', '.join(gen.params)}."
        )
    return gen.make(params)

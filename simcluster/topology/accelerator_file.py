"""User-defined accelerators: ``accelerator_models`` entries, inline in a topology or in a
separate YAML file (an *accelerator file*), and ``--device`` resolution on replay.

An accelerator file holds ``accelerator_models:`` (and an optional ``description:``), with
the same keys as a topology's inline entries (``docs/formats.md``, "User-defined
accelerators"). A topology lists such files under ``accelerator_files:`` (paths relative to
the topology file); ``simcluster replay --device-file FILE`` reads one for ``--device``.
Errors name the file, the line and the YAML path, like every other input.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from simcluster.errors import TopologyError
from simcluster.filekinds import hint, identify as file_kind
from simcluster.topology.accelerator import AcceleratorSpec
from simcluster.topology.identification import resolve
from simcluster.topology.schema import AcceleratorFileSpec, CustomAccelerator
from simcluster.yamlfile import YamlDocument, read_yaml, validate

YAML_SUFFIXES = (".yaml", ".yml")


def to_spec(name: str, m: CustomAccelerator, origin: str = "the topology file") -> AcceleratorSpec:
    """The :class:`AcceleratorSpec` of a user-defined model ``name``; ``origin`` names where
    it was defined, the source when the entry gives none."""
    source = m.source if "source" in m.model_fields_set else f"defined in {origin}"
    return AcceleratorSpec(
        model=name,
        peak_tflops=dict(m.peak_tflops),
        hbm_GiB=m.hbm_GiB,
        hbm_GBps=m.hbm_GBps,
        nvlink_GBps=m.nvlink_GBps,
        pcie_gen=m.pcie_gen,
        launch_overhead_us=m.launch_overhead_us,
        source=source,
        vendor=m.vendor,
        aliases=tuple(m.aliases),
        nvls=m.nvls,
        scale_up=m.scale_up or "",
        compute_units=m.compute_units,
    )


def load_accelerator_file(path: str | Path) -> dict[str, AcceleratorSpec]:
    """The models an accelerator file defines, by name.

    Raises:
        TopologyError: the file is missing, not YAML, another kind of simcluster file, or
            breaks the schema; the message names the line, the YAML path and the fix.

    Example:
        >>> load_accelerator_file("my-gpus.yaml")["MyGPU"].hbm_GiB  # doctest: +SKIP
        64.0
    """
    p = Path(path)
    if p.exists() and file_kind(p) not in (None, "accelerators"):
        raise TopologyError(hint(p, "an accelerator file"))
    doc = read_yaml(p, TopologyError)
    spec = validate(doc, AcceleratorFileSpec, TopologyError)
    assert isinstance(spec, AcceleratorFileSpec)
    return {name: to_spec(name, m, str(p)) for name, m in spec.accelerator_models.items()}


def load_listed(files: Sequence[str], base: Path, doc: YamlDocument | None = None,
                inline: Collection[str] = ()) -> dict[str, AcceleratorSpec]:
    """The models of a topology's ``accelerator_files`` (paths relative to ``base``);
    ``inline`` names the models the topology defines itself.

    Raises:
        TopologyError: a file fails to load (its own message, after the topology line that
            lists it), or a model is defined twice (in two files, or in a file and inline).
    """
    models: dict[str, AcceleratorSpec] = {}
    where: dict[str, str] = {}
    for i, name in enumerate(files):
        at = doc.at(("accelerator_files", i)) if doc is not None else f"accelerator_files[{i}]: "
        path = Path(name) if Path(name).is_absolute() else base / name
        try:
            defined = load_accelerator_file(path)
        except TopologyError as exc:
            raise TopologyError(f"{at}{exc}") from None
        for model, spec in defined.items():
            first = where.get(model) or ("this topology's accelerator_models"
                                         if model in inline else None)
            if first:
                raise TopologyError(f"{at}accelerator model {model!r} is defined in {path} and "
                                    f"in {first}; keep one definition.")
            models[model], where[model] = spec, str(path)
    return models


def _is_file(device: str) -> bool:
    """Whether ``--device`` names an accelerator file rather than a model."""
    return device.lower().endswith(YAML_SUFFIXES)


def resolve_device(device: str | AcceleratorSpec | None,
                   files: Sequence[str | Path] = ()) -> AcceleratorSpec | None:
    """The accelerator ``--device`` names, with the models of ``--device-file`` files.

    ``device`` may be a catalog name or alias, a model the files define, or the path of an
    accelerator file that defines one model. With files and no device, the files must define
    exactly one model, which is the device. No device and no files: None (the recorded
    accelerator).

    Raises:
        TopologyError: a file fails to load; an unknown name (with the closest names and how
            to supply a spec); a file with several models and no name to choose one.
    """
    if isinstance(device, AcceleratorSpec):
        return device
    models: dict[str, AcceleratorSpec] = {}
    for f in files:
        models.update(load_accelerator_file(f))
    if device is not None and not models and _is_file(device):
        models = load_accelerator_file(device)
        device = None if len(models) == 1 else device
        if device is not None:
            raise TopologyError(f"--device {device}: the file defines {', '.join(models)}; "
                                "give --device-file FILE --device NAME to choose one.")
    if device is None:
        if not models:
            return None
        if len(models) > 1:
            raise TopologyError(f"--device-file defines {', '.join(models)}; name the one to "
                                "use with --device NAME.")
        return next(iter(models.values()))
    return resolve(device, extra=models, where=f"--device {device!r}: ")

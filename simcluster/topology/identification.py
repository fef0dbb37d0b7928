"""Recognise an accelerator from the name a user typed or a driver printed.

Names come from ``--device``, topology files, and traces: PyTorch's ``deviceProperties[].name``
(``NVIDIA H100 80GB HBM3``), ``nvidia-smi`` (``NVIDIA H100 NVL``), ``rocm-smi`` (``AMD
Instinct MI300X``), ``hl-smi`` (``HL-225``). They match regardless of case and punctuation.
When a name gives only the product family (``NVIDIA H100``), the memory size tells the
variants apart: the device's memory in bytes where known (Kineto's ``totalGlobalMem``), else
a size in the name (``H100 94GB``); without either, the SXM/OAM variant is assumed. A name
that also says the form (``PCIe``, ``NVL``) only matches a variant of that form.

Example:
    >>> identify("NVIDIA H100", memory_bytes=99_900_000_000).spec.model
    'H100-NVL-94GB'
    >>> identify("NVIDIA GeForce RTX 2080 Ti") is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from simcluster.errors import TopologyError
from simcluster.names import closest, loose
from simcluster.topology.accelerator import GIB, AcceleratorSpec
from simcluster.topology.parts import PARTS

# Words that name a vendor or a product line, not a part.
_VENDOR_WORDS = frozenset({"nvidia", "tesla", "amd", "instinct", "intel", "habana", "google",
                           "cloud"})
# Form-factor words in a name -> the ``form`` of the variants they select.
_FORM_WORDS = {"pcie": "pcie", "nvl": "nvl", "sxm": "sxm", "sxm2": "sxm", "sxm4": "sxm",
               "sxm5": "sxm", "sxm3": "sxm3", "oam": "oam"}
# Variants assumed when the name says nothing of the form.
_DEFAULT_FORMS = frozenset({"sxm", "oam", "gcd", "superchip", "tpu"})
# A memory size in a name: 80GB, 94 GB, 40G.
_MEMORY = re.compile(r"^(\d+)(?:gb|gib|g)$")
# A family variant is accepted when its memory is within this fraction of the memory seen.
MEMORY_TOLERANCE = 0.12
# GPUs whose name says nothing (ROCm reports "AMD Radeon Graphics" for some datacenter
# parts), told apart by compute units per device: an MI250 GCD has 104 (ROCm docs).
_AMD_BY_COMPUTE_UNITS = {104: "MI250-GCD"}

HOW_TO_SUPPLY = ("to simulate it, describe it in an accelerator file (docs/formats.md, "
                 "'User-defined accelerators') and give --device-file FILE --device NAME, or "
                 "define it under accelerator_models: in the topology")


@dataclass(frozen=True)
class Match:
    """An accelerator recognised from a name, and how.

    Attributes:
        spec: the catalog (or user-defined) part.
        how: what was matched and from what, for notes and import reports.
        name: the name as given.
        exact: True when the name (or one of the part's aliases) named the part itself;
            False when the part was inferred from its family and the memory size or
            compute units.
    """

    spec: AcceleratorSpec
    how: str
    name: str
    exact: bool


def catalog() -> dict[str, AcceleratorSpec]:
    """The catalog's parts by model name, in catalog order."""
    return {spec.model: spec for spec in PARTS}


@lru_cache(maxsize=1)
def _catalog_index() -> tuple[dict[str, AcceleratorSpec], dict[str, list[AcceleratorSpec]]]:
    return _index(PARTS)


def _index(specs: tuple[AcceleratorSpec, ...]
           ) -> tuple[dict[str, AcceleratorSpec], dict[str, list[AcceleratorSpec]]]:
    """Loose name (model or alias) -> part, and family -> its parts (catalog order)."""
    names: dict[str, AcceleratorSpec] = {}
    families: dict[str, list[AcceleratorSpec]] = {}
    for spec in specs:
        for key in (spec.model, *spec.aliases):
            names.setdefault(loose(key), spec)
        if spec.family:
            families.setdefault(spec.family, []).append(spec)
    return names, families


def _pool(extra: Mapping[str, AcceleratorSpec] | None
          ) -> tuple[dict[str, AcceleratorSpec], dict[str, list[AcceleratorSpec]]]:
    names, families = _catalog_index()
    if not extra:
        return names, families
    own_names, own_families = _index(tuple(extra.values()))
    for key, spec in extra.items():  # a user-defined part is also known by its key
        own_names[loose(key)] = spec
    return {**names, **own_names}, {**families, **own_families}


def _words(name: str) -> list[str]:
    """Lower-case words of a name, and each pair of neighbours joined (``gaudi 2`` ->
    ``gaudi2``)."""
    words = [w for w in re.split(r"[^0-9a-z]+", name.lower()) if w]
    return words + [a + b for a, b in zip(words, words[1:])]


def _memory_hint(words: list[str]) -> int | None:
    """Bytes of a memory size written in the name (``80GB`` read as 80 GiB, as the catalog
    does), or None."""
    for w in words:
        m = _MEMORY.match(w)
        if m:
            return int(m.group(1)) * GIB
    return None


def _exact(name: str, names: dict[str, AcceleratorSpec]) -> Match | None:
    spec = names.get(loose(name))
    if spec is not None:
        return Match(spec, f"catalog name {name!r}", name, True)
    kept = [w for w in re.split(r"[^0-9a-z]+", name.lower()) if w and w not in _VENDOR_WORDS]
    spec = names.get("".join(kept))
    if spec is not None and kept:
        return Match(spec, f"{name!r} is {spec.model}", name, True)
    return None


def _contradicted(spec: AcceleratorSpec, memory_bytes: int | None,
                  compute_units: int | None) -> bool:
    """Whether the device's memory or compute units rule out the part a name matched (a
    94 GiB "NVIDIA H100" is not the 80 GB SXM5 part the alias ``H100`` names)."""
    if memory_bytes and abs(spec.hbm_bytes - memory_bytes) > MEMORY_TOLERANCE * spec.hbm_bytes:
        return True
    return bool(compute_units and spec.compute_units
                and spec.compute_units != compute_units)


def _by_family(name: str, memory_bytes: int | None, compute_units: int | None,
               families: dict[str, list[AcceleratorSpec]]) -> Match | None:
    """The variant of the family the name mentions that fits its form, compute units and
    memory (module docstring), or None."""
    words = _words(name)
    named = [f for f in dict.fromkeys(words) if f in families]
    if not named:
        return None
    parts = [s for f in named for s in families[f]]
    forms = {_FORM_WORDS[w] for w in words if w in _FORM_WORDS}
    if forms:
        parts = [s for s in parts if s.form in forms]
    if compute_units and any(s.compute_units == compute_units for s in parts):
        parts = [s for s in parts if s.compute_units == compute_units]
    memory = memory_bytes or _memory_hint(words)
    if memory:
        parts = [s for s in parts
                 if abs(s.hbm_bytes - memory) <= MEMORY_TOLERANCE * s.hbm_bytes]
        parts.sort(key=lambda s: abs(s.hbm_bytes - memory))
    if not parts:
        return None
    if not forms:  # stable: the SXM/OAM variant first among equals
        best = parts[0]
        ties = [s for s in parts if not memory or s.hbm_GiB == best.hbm_GiB]
        parts = sorted(ties, key=lambda s: s.form not in _DEFAULT_FORMS)
    spec = parts[0]
    how = f"{name!r}: {spec.family.upper()} family"
    if memory_bytes:
        how += f", {memory_bytes / GIB:.1f} GiB"
    elif memory:
        how += f", {memory // GIB} GB in the name"
    if compute_units and spec.compute_units == compute_units:
        how += f", {compute_units} compute units"
    return Match(spec, how, name, False)


def identify(name: str, memory_bytes: int | None = None, compute_units: int | None = None,
             *, extra: Mapping[str, AcceleratorSpec] | None = None) -> Match | None:
    """Recognise the accelerator behind a name (module docstring).

    Tries, in order: a catalog name or alias (case and punctuation ignored); the name without
    vendor words (``Tesla V100-SXM2-16GB``); a product family in the name, choosing among
    its variants by form, compute units and memory (``memory_bytes``, else a size in the
    name); for AMD devices with a generic name, the number of compute units.

    Parameters:
        name: the name; empty or blank names match nothing.
        memory_bytes: the device's memory (Kineto ``totalGlobalMem``), if known.
        compute_units: SMs or compute units (Kineto ``numSms``), if known.
        extra: user-defined parts by name (topology or accelerator files); they take
            precedence over catalog parts of the same name.

    Returns:
        The :class:`Match`, or None when nothing in the catalog (or ``extra``) fits.

    Example:
        >>> identify("NVIDIA A100-PG509-200", memory_bytes=42297524224).spec.model
        'A100-SXM4-40GB'
    """
    if not isinstance(name, str) or not name.strip():
        return None
    names, families = _pool(extra)
    if extra and name in extra:
        return Match(extra[name], f"catalog name {name!r}", name, True)
    found = _exact(name, names)
    if found is not None and _contradicted(found.spec, memory_bytes, compute_units):
        found = _by_family(name, memory_bytes, compute_units, families) or found
    found = found or _by_family(name, memory_bytes, compute_units, families)
    if found is not None:
        return found
    if "amd" in loose(name) and compute_units in _AMD_BY_COMPUTE_UNITS:
        spec = catalog()[_AMD_BY_COMPUTE_UNITS[compute_units]]
        return Match(spec, f"{name!r} with {compute_units} compute units", name, False)
    return None


def suggestions(name: str, extra: Mapping[str, AcceleratorSpec] | None = None,
                n: int = 3) -> list[str]:
    """Model names most similar to ``name`` as a whole (aliases count for their model),
    best first; ``H100-PCIe-96GB`` suggests ``H100-PCIe-80GB``, not a V100."""
    labels = {s.model: s.aliases for s in PARTS}
    labels.update({k: (*s.aliases, s.model) for k, s in (extra or {}).items()})
    return closest(name, labels, n=n, cutoff=0.7)


def known_names(extra: Mapping[str, AcceleratorSpec] | None = None) -> list[str]:
    """Catalog model names and user-defined ones, sorted."""
    return sorted({s.model for s in PARTS} | set(extra or {}))


def unknown_message(name: str, memory_bytes: int | None = None,
                    extra: Mapping[str, AcceleratorSpec] | None = None,
                    list_known: bool = True) -> str:
    """Why ``name`` matched nothing and how to supply its spec, as one message."""
    if not isinstance(name, str) or not name.strip():
        return ("the accelerator has no name (the trace does not say which GPU it ran on); "
                "give --device MODEL with a catalog model, or " + HOW_TO_SUPPLY + ".")
    mem = f" ({memory_bytes / GIB:.1f} GiB)" if memory_bytes else ""
    close = suggestions(name, extra)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = f"; known models: {', '.join(known_names(extra))}" if list_known else ""
    return (f"unknown accelerator model {name!r}{mem}: not in the catalog; {hint}"
            f"{HOW_TO_SUPPLY}{known}.")


def resolve(name: str, memory_bytes: int | None = None, *,
            extra: Mapping[str, AcceleratorSpec] | None = None,
            where: str = "") -> AcceleratorSpec:
    """The part :func:`identify` finds for ``name``.

    Raises:
        TopologyError: nothing fits; ``where`` prefixes the message (``--device 'X': ``),
            which suggests the closest models and says how to supply a spec.
    """
    found = identify(name, memory_bytes, extra=extra)
    if found is None:
        raise TopologyError(where + unknown_message(name, memory_bytes, extra))
    return found.spec

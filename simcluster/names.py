"""Forgiving names: match what a user typed against known names regardless of case and
punctuation, and suggest the closest known name when nothing matches.

Example:
    >>> match("LLaMA3_8B", ["llama3-8b", "llama3-70b"])
    'llama3-8b'
    >>> suggestion("spred", ["packed", "spread", "tp-packed"])
    "did you mean 'spread'? "
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping


def loose(name: str) -> str:
    """Lower case with every character that is not a letter or a digit removed: the key
    under which device names match (``NVIDIA A100-SXM4-80GB`` -> ``nvidiaa100sxm480gb``)."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def match(name: str, known: Iterable[str]) -> str | None:
    """The known name equal to ``name`` once both are :func:`loose`, or None."""
    want = loose(name)
    return next((k for k in known if loose(k) == want), None)


def suggestion(name: str, known: Iterable[str]) -> str:
    """``did you mean 'x'? `` for the known name most similar to ``name`` (:func:`closest`),
    else the empty string."""
    close = closest(name, {k: () for k in known})
    return f"did you mean {close[0]!r}? " if close else ""


def closest(name: str, labels: Mapping[str, Iterable[str]], n: int = 1,
            cutoff: float = 0.6) -> list[str]:
    """The labels whose names are most similar to ``name``, best first.

    Each label (a model) has several names (its aliases); a label scores the best similarity
    (``difflib`` ratio of the :func:`loose` names, whole name against whole name) of any of
    its names. Labels below ``cutoff`` are left out.

    Example:
        >>> closest("H100-PCIe-96GB", {"H100-PCIe-80GB": ["H100 PCIe"],
        ...                            "V100-SXM2-16GB": ["Tesla V100-SXM2-16GB"]})
        ['H100-PCIe-80GB']
    """
    want = loose(name)
    scored = []
    for label, aliases in labels.items():
        keys = {loose(label), *map(loose, aliases)} - {""}
        score = max((difflib.SequenceMatcher(None, want, k).ratio() for k in keys), default=0.0)
        if score >= cutoff:
            scored.append((-score, label))
    return [label for _, label in sorted(scored)[:n]]

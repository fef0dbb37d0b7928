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


def normalize(name: str) -> str:
    """Lower case, with spaces, dashes, underscores and dots removed."""
    return re.sub(r"[\s\-_.]+", "", name.strip().lower())


def match(name: str, known: Iterable[str]) -> str | None:
    """The known name equal to ``name`` once both are normalized, or None."""
    want = normalize(name)
    return next((k for k in known if normalize(k) == want), None)


def suggestion(name: str, known: Iterable[str]) -> str:
    """``did you mean 'x'? `` for the known name most similar to ``name`` (similarity of the
    whole normalized names, at least 0.6), else the empty string."""
    pool = {normalize(k): k for k in known}
    close = difflib.get_close_matches(normalize(name), list(pool), n=1, cutoff=0.6)
    return f"did you mean {pool[close[0]]!r}? " if close else ""


def loose(name: str) -> str:
    """Lower case with every character that is not a letter or a digit removed: the key
    under which device names match (``NVIDIA A100-SXM4-80GB`` -> ``nvidiaa100sxm480gb``)."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


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

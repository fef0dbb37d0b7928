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
from collections.abc import Iterable


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

"""A bounded memo of rate allocations, keyed by the exact sharing problem.

The flow network recomputes max-min rates whenever a flow starts or finishes, and in a
training step the same small problems come back again and again: the tensor-parallel
all-reduce of one server, a pipeline send, the same data-parallel phase of the next
micro-batch (about 90 % of GPT-3's recomputations are repeats of an earlier one, 98 % of
those under 256 pairs). What the network derives from a problem (the rates, the limiting
links, the per-link load) depends on nothing but the problem itself, so a repeat can reuse
what the first occurrence computed: the same bits, without the solver.

The key is the problem's bytes (the links used, the (flow, link-slot) pairs, the coupling
groups and the weights), not a hash of them, so a hit is an exact match. The memo holds at
most ``budget_bytes`` of keys and values; past that it forgets the least recently used
entries. Values are made read-only so that no caller can change a stored result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Problems larger than this (key bytes) are not memoised: rarely repeated, and costly to hold.
_MAX_KEY_BYTES = 1 << 20


def problem_key(*arrays: np.ndarray) -> bytes:
    """The exact bytes of a problem given as arrays: their lengths, then their contents
    (the lengths make the concatenation unambiguous).

    >>> problem_key(np.array([1, 2]), np.array([3])) == problem_key(np.array([1]), np.array([2, 3]))
    False
    """
    head = np.array([len(a) for a in arrays], dtype=np.int64).tobytes()
    return head + b"".join(a.tobytes() for a in arrays)


class RateCache:
    """Least-recently-used memo from a problem key to a tuple of read-only arrays.

    ``hits`` and ``misses`` count look-ups (for tests and benchmarks; they do not change
    results).

    >>> c = RateCache(budget_bytes=64)
    >>> c.get(b"k") is None
    True
    >>> v = c.put(b"k", (np.array([1.0, 2.0]),))
    >>> c.get(b"k")[0].tolist(), c.hits, c.misses
    ([1.0, 2.0], 1, 1)
    """

    def __init__(self, budget_bytes: int = 64 << 20) -> None:
        self.budget_bytes = budget_bytes
        self.hits = 0
        self.misses = 0
        self._used = 0
        self._entries: dict[bytes, tuple[Any, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> tuple[Any, ...] | None:
        """The stored value, or None (a miss)."""
        value = self._entries.pop(key, None)
        if value is None:
            self.misses += 1
            return None
        self._entries[key] = value  # most recently used: last in insertion order
        self.hits += 1
        return value

    def put(self, key: bytes, value: tuple[Any, ...]) -> tuple[Any, ...]:
        """Store ``value`` (its arrays made read-only) unless it is too large; return it."""
        for a in value:
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        size = len(key) + sum(a.nbytes for a in value if isinstance(a, np.ndarray))
        if len(key) > _MAX_KEY_BYTES or size > self.budget_bytes:
            return value
        self._entries[key] = value
        self._used += size
        while self._used > self.budget_bytes:
            old_key = next(iter(self._entries))
            old = self._entries.pop(old_key)
            self._used -= len(old_key) + sum(a.nbytes for a in old
                                             if isinstance(a, np.ndarray))
        return value

"""Merging new flows' links into the sorted links that the active routes use.

The flow network keeps its active routes as (flow, link slot) pairs, a slot being the
link's index in ``links``, the sorted link ids the active routes use (slots in link-id order,
so ties between links break the same way in every solve). When flows arrive, their links are
merged into ``links``; the old pairs' slots move where a new link lands before them. Two
ways give the same links and slots: sorting the distinct new links and searching (few new
pairs), and one table over every link id (many: linear, where sorting and searching the
pairs is n log n and misses the cache).
"""

from __future__ import annotations

import numpy as np

# Up to this many new pairs, their distinct links are found with a Python set.
_SET_PAIRS = 64


def merge_sorted(links: np.ndarray, pair_slot: np.ndarray, new_link: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the link ids ``new_link`` into ``links`` (sorted, unique) by sorting the
    distinct new ones and searching. Returns the merged links, the old pairs' slots in
    them, and the new pairs' slots.

    >>> [a.tolist() for a in merge_sorted(np.array([2, 5]), np.array([1, 0]), np.array([3, 5]))]
    [[2, 3, 5], [2, 0], [1, 2]]
    """
    add = (np.unique(new_link) if len(new_link) > _SET_PAIRS
           else np.array(sorted(set(new_link.tolist())), dtype=np.int64))
    pos = links.searchsorted(add)
    there = pos < len(links)
    there[there] = links[pos[there]] == add[there]
    if not there.all():
        # Merge: the i-th missing link lands at its insertion point + i; the old links
        # fill the other places, in order, and their slots move with them.
        missing = (~there).nonzero()[0]
        at = pos[missing] + np.arange(len(missing))
        old = np.ones(len(links) + len(missing), dtype=bool)
        old[at] = False
        merged = np.empty(len(old), dtype=np.int64)
        merged[at] = add[missing]
        moved = old.nonzero()[0]
        merged[moved] = links
        pair_slot = moved[pair_slot]
        links = merged
    return links, pair_slot, links.searchsorted(new_link)


def merge_dense(links: np.ndarray, pair_slot: np.ndarray, new_link: np.ndarray,
                num_links: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same merge as :func:`merge_sorted` with one table over every link id
    (``num_links`` of them), for many new pairs: the same links and slots.

    >>> [a.tolist() for a in merge_dense(np.array([2, 5]), np.array([1, 0]), np.array([3, 5]), 6)]
    [[2, 3, 5], [2, 0], [1, 2]]
    """
    used = np.zeros(num_links, dtype=bool)
    used[links] = True
    used[new_link] = True
    merged = used.nonzero()[0]
    slot_of = np.empty(len(used), dtype=np.int64)
    slot_of[merged] = np.arange(len(merged))
    if len(merged) != len(links):
        pair_slot = slot_of[links][pair_slot]
        links = merged
    return links, pair_slot, slot_of[new_link]

"""The scaling exponent of a benchmark: how its wall time grows with the number of ranks.

Issue 19 asks that time grow within N log N. :func:`fit_exponent` is the least-squares slope
of log(time) against log(ranks); N log N over the same sizes has a slope a little above 1
(:func:`nlogn_exponent`: 1.12 from 1,024 to 16,384 ranks), and :func:`verdict` compares the
two.

Example:
    >>> round(fit_exponent([1024, 2048, 4096], [1.0, 2.0, 4.0]), 6)
    1.0
    >>> round(nlogn_exponent([1024, 16384]), 3)
    1.121
    >>> verdict([1024, 16384], [1.0, 16.0])
    'fitted exponent 1.000 over 1,024-16,384 ranks (N log N: 1.121): within N log N'
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def fit_exponent(ranks: Sequence[int], seconds: Sequence[float]) -> float:
    """The least-squares slope b of log(seconds) = a + b log(ranks) (needs two sizes)."""
    xs = [math.log(r) for r in ranks]
    ys = [math.log(s) for s in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if len(xs) < 2 or sxx == 0:
        raise ValueError("fitting an exponent needs at least two different rank counts")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def nlogn_exponent(ranks: Sequence[int]) -> float:
    """The fitted exponent of N log N itself over the same rank counts."""
    return fit_exponent(ranks, [r * math.log(r) for r in ranks])


def verdict(ranks: Sequence[int], seconds: Sequence[float]) -> str:
    """One line: the fitted exponent, N log N's over the same sizes, and whether the measured
    growth stays within it."""
    b, ref = fit_exponent(ranks, seconds), nlogn_exponent(ranks)
    within = "within N log N" if b <= ref else "faster than N log N"
    return (f"fitted exponent {b:.3f} over {min(ranks):,}-{max(ranks):,} ranks "
            f"(N log N: {ref:.3f}): {within}")

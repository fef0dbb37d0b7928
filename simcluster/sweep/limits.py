"""Limits of a sweep spec, apart from the spec's models so that the command line's defaults
can name them without importing pydantic and the what-if machinery."""

#: Most points a sweep may have, counted before constraints (``--max-points`` raises it).
MAX_POINTS = 100_000

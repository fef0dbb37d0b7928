"""The engine's results on small and medium cases are byte-identical to those of the engine
before the speed work of issue 19 (digests in ``tests/sim/data/equivalence.json``; the cases
and how the digests were made: ``tests/sim/equivalence.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sim.equivalence import cases, digest

EXPECTED = json.loads((Path(__file__).parent / "data" / "equivalence.json").read_text())


def test_the_cases_are_those_recorded() -> None:
    assert sorted(cases()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_step_time_and_tables_as_before(name: str) -> None:
    assert digest(cases()[name]) == EXPECTED[name]

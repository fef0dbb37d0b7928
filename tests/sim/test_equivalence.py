"""The engine's results on small and medium cases are byte-identical to those of the engine
before the speed work of issue 19 (digests in ``tests/sim/data/equivalence.json``; the cases
and how the digests were made: ``tests/sim/equivalence.py``).

The digests were made again when compute slowed by communication (``sim/interference.py``)
became the default: it changed the two cases that compute on catalog GPUs while they
communicate. With it off, those give their digests from before
(``data/equivalence_no_interference.json``), and the other cases are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sim.equivalence import cases, digest

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "equivalence.json").read_text())
BEFORE_INTERFERENCE = json.loads((DATA / "equivalence_no_interference.json").read_text())


def test_the_cases_are_those_recorded() -> None:
    assert sorted(cases()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_step_time_and_tables_as_before(name: str) -> None:
    assert digest(cases()[name]) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(BEFORE_INTERFERENCE))
def test_without_interference_the_digests_from_before_it(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from simcluster.sim import interference

    monkeypatch.setattr(interference, "DEFAULT_COMM_SMS_MODELS", frozenset())
    assert EXPECTED[name] != BEFORE_INTERFERENCE[name]
    assert digest(cases()[name]) == BEFORE_INTERFERENCE[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_same_digests_with_every_update_solved_by_components(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Solving only the touched components (``sim/components.py``) in every update, however
    small, gives the same bytes on every case: its rates may differ from one progressive
    filling over all components by rounding (docs/performance.md, "Only the components a
    change touches"), but on these cases they do not."""
    from simcluster.sim import network

    monkeypatch.setattr(network, "COMPONENT_PAIRS", 0)
    assert digest(cases()[name]) == EXPECTED[name]

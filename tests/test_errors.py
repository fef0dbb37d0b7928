"""Typed failures keep their fields through the copies that SimPy and Dask make."""

from __future__ import annotations

import pickle

import pytest

from simcluster.errors import (
    CollectiveMismatchError,
    DeadlockError,
    OutOfMemoryError,
    SimclusterError,
    SimulationError,
)

CASES = [
    OutOfMemoryError("out of memory on rank 3", 3, "rank 3 op 7 'fwd'", 10, 20, 25,
                     {0: {"weights": 1, "total": 30}}),
    DeadlockError("deadlock: ...", 2, 9, ["rank 1 stream 's': waits"], [1]),
    CollectiveMismatchError("mismatched collective", "dp", 4, ("rank 0 op 1", "rank 1 op 1")),
]


@pytest.mark.parametrize("exc", CASES, ids=lambda e: type(e).__name__)
def test_fields_and_message_survive_pickle_and_args_copy(exc: SimulationError) -> None:
    for copy in (pickle.loads(pickle.dumps(exc)), type(exc)(*exc.args)):
        assert type(copy) is type(exc) and str(copy) == str(exc) == exc.args[0]
        assert vars(copy) == vars(exc)
    assert isinstance(exc, SimulationError) and isinstance(exc, SimclusterError)


def test_out_of_memory_fields() -> None:
    exc = CASES[0]
    assert isinstance(exc, OutOfMemoryError)
    assert (exc.rank, exc.op, exc.requested_bytes, exc.live_bytes, exc.capacity_bytes) == (
        3, "rank 3 op 7 'fwd'", 10, 20, 25)
    assert exc.breakdown == {0: {"weights": 1, "total": 30}}

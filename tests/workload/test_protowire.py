"""The protobuf wire decoder: exact values, and garbage never escapes as another error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simcluster.workload.protowire import (
    WireError,
    iter_delimited,
    iter_fields,
    packed_varints,
    read_varint,
    signed32,
    signed64,
    zigzag,
)
from tests.workload.etwriter import f_bytes, f_varint, varint


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_round_trip(n: int) -> None:
    data = varint(n)
    assert read_varint(data, 0) == (n, len(data))


@given(st.lists(st.integers(min_value=0, max_value=2**63), max_size=20))
def test_packed_varints(values: list[int]) -> None:
    assert packed_varints(b"".join(varint(v) for v in values)) == values


def test_signed_views() -> None:
    assert signed64(2**64 - 1) == -1
    assert signed32(2**64 - 5) == -5
    assert zigzag(3) == -2 and zigzag(4) == 2


def test_fields_of_a_message() -> None:
    msg = f_varint(1, 300) + f_bytes(2, b"abc") + f_varint(15, 7)
    assert list(iter_fields(msg)) == [(1, 0, 300), (2, 2, b"abc"), (15, 0, 7)]


def test_truncated_inputs_raise_wire_error() -> None:
    with pytest.raises(WireError, match="truncated varint"):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(WireError, match="needs 5 bytes"):
        list(iter_fields(b"\x12\x05ab"))
    with pytest.raises(WireError, match="truncated file"):
        list(iter_delimited(varint(10) + b"short"))


@given(st.binary(max_size=200))
def test_garbage_is_a_wire_error_or_fields(data: bytes) -> None:
    try:
        for number, wire, value in iter_fields(data):
            assert number > 0 and wire in (0, 1, 2, 5)
    except WireError:
        pass

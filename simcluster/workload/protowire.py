"""A small decoder of the protobuf wire format, enough to read Chakra execution traces.

Protobuf messages are sequences of ``(field number, wire type, value)`` records
(https://protobuf.dev/programming-guides/encoding/). This module decodes those records; the
meaning of each field is the caller's business (see ``workload/chakra/``). No generated
code and no protobuf dependency: Chakra's schema is small and stable.

Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited (strings, bytes, sub-messages,
packed repeated scalars), 5 fixed 32-bit. Groups (3, 4) are obsolete and rejected.

Any byte string either decodes or raises :class:`WireError` (a truncated varint, a length past
the end, a field number 0, a group, a field of the wrong wire type for what the caller
expects: :func:`expect_wire`); the tests feed it random and mutated bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not valid protobuf wire format (truncated or corrupt)."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode the unsigned varint at ``buf[pos:]``; return (value, position after it).

    Example:
        >>> read_varint(bytes([0xAC, 0x02]), 0)
        (300, 2)
    """
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError(f"varint longer than 10 bytes at byte {pos}")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)`` of one message.

    A varint is returned as an unsigned int, fixed 32/64-bit values and length-delimited
    ones as their raw bytes.

    Raises:
        WireError: truncated or malformed input.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {pos}")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
            yield number, wire, value
            continue
        if wire == LENGTH:
            size, pos = read_varint(buf, pos)
        elif wire == FIXED64:
            size = 8
        elif wire == FIXED32:
            size = 4
        else:
            raise WireError(f"unsupported wire type {wire} at byte {pos}")
        if pos + size > end:
            raise WireError(f"field {number} needs {size} bytes at byte {pos}, "
                            f"{end - pos} left")
        yield number, wire, buf[pos:pos + size]
        pos += size


def iter_delimited(data: bytes) -> Iterator[bytes]:
    """Split a stream of varint-length-prefixed messages (Chakra's ``.et`` layout).

    Raises:
        WireError: a length runs past the end of the data.
    """
    for _, message in iter_delimited_at(data):
        yield message


def iter_delimited_at(data: bytes) -> Iterator[tuple[int, bytes]]:
    """:func:`iter_delimited`, with the byte offset of each message's first byte (after its
    length prefix) in ``data``.

    Raises:
        WireError: a length runs past the end of the data.
    """
    pos, end = 0, len(data)
    while pos < end:
        size, pos = read_varint(data, pos)
        if pos + size > end:
            raise WireError(f"message at byte {pos} declares {size} bytes but {end - pos} "
                            "are left (truncated file?)")
        yield pos, data[pos:pos + size]
        pos += size


WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed 64-bit", LENGTH: "length-delimited",
              FIXED32: "fixed 32-bit"}


def expect_wire(number: int, wire: int, allowed: tuple[int, ...], what: str) -> None:
    """Check that field ``number`` (``what``, for the message) came with one of the
    ``allowed`` wire types.

    Raises:
        WireError: it did not (a corrupt file, or a field of another schema).

    Example:
        >>> expect_wire(1, VARINT, (VARINT,), "id")
        >>> expect_wire(1, LENGTH, (VARINT,), "id")
        Traceback (most recent call last):
        ...
        simcluster.workload.protowire.WireError: field 1 (id) is length-delimited, expected varint
    """
    if wire not in allowed:
        expected = " or ".join(WIRE_NAMES[w] for w in allowed)
        raise WireError(f"field {number} ({what}) is {WIRE_NAMES.get(wire, wire)}, "
                        f"expected {expected}")


def packed_varints(buf: bytes) -> list[int]:
    """Decode a packed repeated varint field."""
    out, pos = [], 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        out.append(value)
    return out


def signed64(value: int) -> int:
    """Reinterpret an unsigned varint as a two's-complement int64 (``int64`` fields)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def signed32(value: int) -> int:
    """Reinterpret a varint as an int32 (negative int32 are sign-extended to 64 bits)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def zigzag(value: int) -> int:
    """Decode a zigzag-encoded ``sint32``/``sint64``."""
    return (value >> 1) ^ -(value & 1)


def fixed(raw: bytes, fmt: str) -> int | float:
    """Decode a fixed-width little-endian value (``struct`` format such as ``<d``)."""
    return struct.unpack(fmt, raw)[0]

"""A tiny protobuf/Chakra encoder for tests: builds .et files field by field."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def f_varint(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def f_bytes(number: int, value: bytes) -> bytes:
    return key(number, 2) + varint(len(value)) + value


def f_str(number: int, value: str) -> bytes:
    return f_bytes(number, value.encode())


def attr(name: str, value: Any) -> bytes:
    """An AttributeProto: bool -> bool_val, int -> int64_val, str -> string_val,
    float -> double_val, list[int] -> int64_list (packed)."""
    body = f_str(1, name)
    if isinstance(value, bool):
        body += f_varint(27, int(value))
    elif isinstance(value, int):
        body += f_varint(9, value)
    elif isinstance(value, str):
        body += f_str(29, value)
    elif isinstance(value, float):
        body += key(3, 1) + struct.pack("<d", value)
    elif isinstance(value, list):
        body += f_bytes(10, f_bytes(1, b"".join(varint(v) for v in value)))
    return body


def node(node_id: int, name: str, ntype: int, data_deps: tuple[int, ...] = (),
         ctrl_deps: tuple[int, ...] = (), duration: int | None = None,
         attrs: dict[str, Any] | None = None, packed: bool = True) -> bytes:
    body = f_varint(1, node_id) + f_str(2, name) + f_varint(3, ntype)
    for number, deps in ((4, ctrl_deps), (5, data_deps)):
        if deps and packed:
            body += f_bytes(number, b"".join(varint(d) for d in deps))
        else:
            body += b"".join(f_varint(number, d) for d in deps)
    if duration is not None:
        body += f_varint(7, duration)
    for k, v in (attrs or {}).items():
        body += f_bytes(10, attr(k, v))
    return body


def et_file(path: Path, nodes: list[bytes], version: str = "0.0.4") -> Path:
    msgs = [f_str(1, version)] + nodes
    path.write_bytes(b"".join(varint(len(m)) + m for m in msgs))
    return path

"""Stream a Chrome-trace JSON object one ``traceEvents`` element at a time, in bounded memory.

``json.load`` of a 200 MB trace builds every event as a dict at once (gigabytes of Python
objects). This reader walks the top-level object itself and hands each event to the caller
as soon as it is decoded, so memory holds one read chunk plus one event. Decoding uses the
standard library's C scanner (``json.JSONDecoder.raw_decode``) per element; when an element
straddles the end of the buffer, the next chunk is appended and the element decoded again.

Top-level values other than ``traceEvents`` (``distributedInfo``, ``deviceProperties``, ...)
are small and returned whole, in file order, wherever they appear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

_WS = re.compile(r"[ \t\n\r]*")
_DELIMITERS = " \t\n\r,]}"
_DECODER = json.JSONDecoder()
CHUNK_CHARS = 1 << 20


class TraceJSONError(ValueError):
    """Malformed or truncated JSON; ``offset`` is the character offset in the file."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


EVENTS = "<traceEvents follow>"  # the value of the Item that announces the events


@dataclass(frozen=True)
class Item:
    """One thing read from the top level: an event (``key`` is None) or a key's value. The
    ``traceEvents`` key itself comes as ``Item("traceEvents", EVENTS)`` before its elements
    when it is a list."""

    key: str | None
    value: Any


class _Reader:
    """A growing window over a text stream: ``buf[pos:]`` is what is not consumed yet."""

    def __init__(self, stream: IO[str], chunk: int) -> None:
        self.stream = stream
        self.chunk = chunk
        self.buf = ""
        self.pos = 0
        self.consumed = 0  # characters dropped from the front of buf
        self.eof = False

    def fill(self) -> None:
        """Drop the consumed prefix and append the next chunk."""
        if self.pos:
            self.consumed += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = 0
        data = self.stream.read(self.chunk)
        if data:
            self.buf += data
        else:
            self.eof = True

    def offset(self) -> int:
        return self.consumed + self.pos

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the file), not consumed."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof:
                return ""
            self.fill()

    def expect(self, chars: str, what: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            found = "the end of the file (truncated?)" if not c else repr(c)
            raise TraceJSONError(f"expected {what} but found {found}", self.offset())
        self.pos += 1
        return c

    def value(self) -> Any:
        """Decode the JSON value at the cursor, reading more input as needed."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    where = exc.pos + self.consumed
                    tail = " (the file ends inside it: truncated?)" if exc.pos >= len(
                        self.buf) - 1 else ""
                    raise TraceJSONError(f"{exc.msg}{tail}", where) from None
                self.fill()
                continue
            if (not isinstance(value, (dict, list, str)) and not self.eof
                    and (end == len(self.buf) or self.buf[end] not in _DELIMITERS)):
                self.fill()  # a number ("0." + "5") may continue in the next chunk
                continue
            self.pos = end
            return value


def iter_trace(stream: IO[str], chunk: int = CHUNK_CHARS) -> Iterator[Item]:
    """Yield every ``traceEvents`` element and every other top-level key's value.

    Raises:
        TraceJSONError: the text is not a JSON object, is malformed, or ends early.
    """
    r = _Reader(stream, chunk)
    r.expect("{", "a JSON object ('{')")
    if r.peek() == "}":
        r.pos += 1
        return
    while True:
        key = r.value()
        if not isinstance(key, str):
            raise TraceJSONError("expected a key (a string)", r.offset())
        r.expect(":", "':'")
        if key == "traceEvents" and r.peek() == "[":
            r.pos += 1
            yield Item(key, EVENTS)
            if r.peek() == "]":
                r.pos += 1
            else:
                while True:
                    yield Item(None, r.value())
                    if r.expect(",]", "',' or ']' after an event") == "]":
                        break
        else:
            yield Item(key, r.value())
        if r.expect(",}", "',' or '}'") == "}":
            break
    if r.peek():
        raise TraceJSONError("extra data after the JSON object", r.offset())

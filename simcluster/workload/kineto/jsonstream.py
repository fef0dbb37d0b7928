"""Stream a Chrome-trace JSON object one ``traceEvents`` element at a time, in bounded memory.

``json.load`` of a 200 MB trace builds every event as a dict at once (gigabytes of Python
objects). This reader walks the top-level object itself and hands each event to the caller
as soon as it is decoded, so memory holds one read chunk plus one event. Decoding uses the
standard library's C scanner (``json.JSONDecoder.raw_decode``) per element; when an element
straddles the end of the buffer, the next chunk is appended and the element decoded again.

Top-level values other than ``traceEvents`` (``distributedInfo``, ``deviceProperties``, ...)
are small and returned whole, in file order, wherever they appear.

Bounds (:class:`JsonLimits`): the text read in all, the size of one value (an event or a
top-level value) and its nesting depth. A value that straddles the buffer's end is read on
with a doubling read size, so a long value costs linear time, and one past the size limit is
refused as soon as the buffer holds that much of it: memory stays within a few times the
limit whatever the file holds. Numbers of more than 4,300 digits (Python's limit on
converting them) and nesting deeper than the interpreter's recursion are refused as malformed
values rather than escaping as other exceptions.
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


@dataclass(frozen=True)
class JsonLimits:
    """Bounds on one JSON text (characters: one per byte for the ASCII of real traces).

    Attributes:
        max_chars: all the text read (16 GiB; real traces are at most a few GiB).
        max_value_chars: one event or top-level value (8 MiB; real events are under 100 KB).
        max_depth: nesting of arrays and objects within one value (64; events nest 4 deep).
    """

    max_chars: int = 16 << 30
    max_value_chars: int = 8 << 20
    max_depth: int = 64


class TraceJSONError(ValueError):
    """Malformed or truncated JSON; ``offset`` is the character offset in the file."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class TraceLimitError(TraceJSONError):
    """Well-formed so far, but over a limit; the message names it, ``limit`` says which:
    ``"chars"``, ``"value"``, ``"depth"``, ``"digits"`` (a number of more than 4,300 digits)
    or, from the caller's stream, ``"gzip_ratio"``."""

    def __init__(self, message: str, offset: int, limit: str) -> None:
        super().__init__(message, offset)
        self.limit = limit


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

    def __init__(self, stream: IO[str], chunk: int, limits: JsonLimits) -> None:
        self.stream = stream
        self.chunk = chunk
        self.limits = limits
        self.buf = ""
        self.pos = 0
        self.consumed = 0  # characters dropped from the front of buf
        self.eof = False

    def fill(self, want: int = 0) -> None:
        """Drop the consumed prefix and append the next ``max(chunk, want)`` characters.

        Raises:
            TraceLimitError: the text read in all would pass ``limits.max_chars``.
        """
        if self.pos:
            self.consumed += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = 0
        data = self.stream.read(max(self.chunk, want))
        if data:
            self.buf += data
            if self.consumed + len(self.buf) > self.limits.max_chars:
                raise TraceLimitError(
                    f"the text is longer than the limit of {self.limits.max_chars:,} characters",
                    self.limits.max_chars, "chars")
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

    def _more(self) -> None:
        """Read on into a value that straddles the buffer's end: as much again as is pending
        (so a long value is rescanned O(log n) times), refusing one over the size limit."""
        pending = len(self.buf) - self.pos
        if pending > self.limits.max_value_chars:
            raise TraceLimitError(
                f"a single value (an event or a top-level value) is longer than the limit of "
                f"{self.limits.max_value_chars:,} characters", self.offset(), "value")
        self.fill(pending)

    def value(self) -> Any:
        """Decode the JSON value at the cursor, reading more input as needed.

        Raises:
            TraceJSONError: malformed or truncated; TraceLimitError: over a limit.
        """
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof or not _may_continue(exc, len(self.buf)):
                    where = exc.pos + self.consumed
                    cut = self.eof and exc.pos >= len(self.buf) - 1
                    tail = " (the file ends inside it: truncated?)" if cut else ""
                    raise TraceJSONError(f"{exc.msg}{tail}", where) from None
                self._more()
                continue
            except RecursionError:
                raise TraceLimitError(f"a value nests deeper than the limit of "
                                      f"{self.limits.max_depth} levels", self.offset(),
                                      "depth") from None
            except ValueError:  # an integer of more than 4,300 digits
                raise TraceLimitError("a number has more than 4,300 digits",
                                      self.offset(), "digits") from None
            if (not isinstance(value, (dict, list, str)) and not self.eof
                    and (end == len(self.buf) or self.buf[end] not in _DELIMITERS)):
                self._more()  # a number ("0." + "5") may continue in the next chunk
                continue
            if end - self.pos > self.limits.max_value_chars:
                raise TraceLimitError(
                    f"a single value (an event or a top-level value) is longer than the limit "
                    f"of {self.limits.max_value_chars:,} characters", self.offset(), "value")
            if isinstance(value, (dict, list)) and _deeper_than(
                    value, self.buf, self.pos, end, self.limits.max_depth):
                raise TraceLimitError(f"a value nests deeper than the limit of "
                                      f"{self.limits.max_depth} levels", self.offset(), "depth")
            self.pos = end
            return value


def _may_continue(exc: json.JSONDecodeError, buffered: int) -> bool:
    """Whether more text could make the value valid: the error is an unterminated string or
    lies within the last few characters (a token cut by the buffer's end, such as ``tr`` or
    a ``\\u`` escape). Any other error is final, and is raised without reading on."""
    return exc.msg.startswith("Unterminated string") or exc.pos >= buffered - 16


def _deeper_than(value: Any, text: str, start: int, end: int, limit: int) -> bool:
    """Whether ``value`` (decoded from ``text[start:end]``) nests more than ``limit`` arrays
    and objects deep. Counting brackets in the text settles almost every value at C speed
    (fewer brackets than the limit, no deeper nesting); the rest are walked."""
    if text.count("[", start, end) + text.count("{", start, end) <= limit:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return True
        children = v.values() if isinstance(v, dict) else v
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return False


def iter_trace(stream: IO[str], chunk: int = CHUNK_CHARS,
               limits: JsonLimits | None = None) -> Iterator[Item]:
    """Yield every ``traceEvents`` element and every other top-level key's value.

    Parameters:
        stream: the text.
        chunk: characters read at a time.
        limits: the bounds (default :class:`JsonLimits`).

    Raises:
        TraceJSONError: the text is not a JSON object, is malformed, or ends early.
        TraceLimitError: the text, a value or its nesting is over a limit.
    """
    r = _Reader(stream, chunk, limits or JsonLimits())
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

"""Named records at the extension points: one table per kind of extension.

A collective algorithm (``sim/algorithms.py``), a fabric template (``topology/fabrics.py``)
and a trace format (``workload/formats.py``) are each one record in one :class:`Registry`.
Everything that lists them (schema names, CLI help, error messages, dispatch order) reads
the registry when it needs the list, so adding a record is the only change an extension
makes. The registries are the only module-level mutable state of simcluster; tests add
records with :meth:`Registry.registered`, which takes them out again.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

from simcluster.errors import RegistryError, SimclusterError


class Named(Protocol):
    """A record: anything with a ``name``."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Records by name, in registration order (which is also the order they are listed and,
    where it matters, tried in).

    Parameters:
        kind: what a record is, for messages (``"fabric"``).
        missing: the error :meth:`get` raises for an unknown name (the error of the input
            that names it: ``TopologyError`` for a fabric).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Rec:
        ...     name: str
        >>> reg = Registry[Rec]("thing", SimclusterError)
        >>> with reg.registered(Rec("a")):
        ...     reg.names()
        ('a',)
        >>> reg.names()
        ()
    """

    def __init__(self, kind: str, missing: type[SimclusterError]) -> None:
        self.kind = kind
        self._missing = missing
        self._records: dict[str, T] = {}

    def register(self, record: T, *, replace: bool = False) -> T:
        """Add ``record`` under its name; returns it.

        Raises:
            RegistryError: the name is empty, or already taken and ``replace`` is false.
        """
        name = record.name
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty name, not {name!r}.")
        if name in self._records and not replace:
            raise RegistryError(
                f"a {self.kind} named {name!r} is already registered; pick another name, or "
                "pass replace=True to override it.")
        self._records[name] = record
        return record

    def unregister(self, name: str) -> T:
        """Remove the record ``name``; returns it.

        Raises:
            RegistryError: no such record.
        """
        if name not in self._records:
            raise RegistryError(f"no {self.kind} named {name!r} is registered.")
        return self._records.pop(name)

    @contextmanager
    def registered(self, record: T, *, replace: bool = False) -> Iterator[T]:
        """Register ``record`` for the duration of a ``with`` block, then remove it (and put
        back the record it replaced, at its place)."""
        previous = self._records.get(record.name)
        self.register(record, replace=replace)
        try:
            yield record
        finally:
            if previous is not None:
                self._records[record.name] = previous
            else:
                self._records.pop(record.name, None)

    def get(self, name: str) -> T:
        """The record ``name``.

        Raises:
            The registry's ``missing`` error: no such record; the message suggests the
            closest name and lists them all.
        """
        hit = self._records.get(name)
        if hit is None:
            raise self._missing(f"unknown {self.kind} {name!r}; {self.suggest(name)}")
        return hit

    def suggest(self, name: str) -> str:
        """``did you mean 'x'? known: a, b, c.`` for an unknown ``name``."""
        close = difflib.get_close_matches(str(name), list(self._records), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{hint}known {self.kind}s: {', '.join(self._records) or '(none)'}."

    def names(self) -> tuple[str, ...]:
        """The names, in registration order."""
        return tuple(self._records)

    def records(self) -> tuple[T, ...]:
        """The records, in registration order."""
        return tuple(self._records.values())

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __len__(self) -> int:
        return len(self._records)

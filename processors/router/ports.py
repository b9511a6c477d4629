"""What the router binding needs from its surroundings, as types it can be tested against.

The binding writes to Faust tables and sends to Faust topics. Naming those
needs here, as protocols, lets :class:`~processors.router.binding.Binding`
run over in-memory fakes in unit tests.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, Protocol, TypeAlias

from processors.directory import CapacityChange, Directory

__all__ = [
    "WRITER_HEADER",
    "DirectoryPort",
    "Headers",
    "Message",
    "Scan",
    "Table",
    "Topic",
    "json_bytes",
]

WRITER_HEADER = "safepassage-writer"
"""Names the worker that appended a ledger record; a worker skips its own."""

Headers: TypeAlias = Sequence[tuple[str, bytes]]

Table: TypeAlias = MutableMapping[str, Any]
"""A Faust table as the binding uses it: str keys, JSON-ready values.

A structural need (``get``, item access, ``in``, ``del``, iteration) that a
Faust table and a dict both meet; spelt as :class:`MutableMapping` because
:class:`~processors.deadlines.StoredDeadlines` takes one."""

Scan = Callable[[str, str], Iterable[str]]
"""Keys ``start <= key < stop`` of one partition's deadline store, in order."""


class Topic(Protocol):
    """A Faust topic as the binding sends to it: ``send`` returns the ack still to await."""

    async def send(
        self,
        *,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Awaitable[Any]:
        """Queue one record; the awaitable resolves when the broker acknowledged it."""


class Message(Protocol):
    """A raw record as Faust hands it over (clock ticks)."""

    @property
    def value(self) -> bytes: ...

    @property
    def partition(self) -> int: ...


class DirectoryPort(Protocol):
    """This worker's view of the provider directory (see :class:`DirectoryView`)."""

    @property
    def directory(self) -> Directory:
        """The directory as of now, own reservations included."""

    @property
    def writer(self) -> bytes:
        """This process's id, sent as :data:`WRITER_HEADER` on its ledger records."""

    def apply_local(self, changes: Iterable[CapacityChange]) -> None:
        """Apply this worker's own capacity changes at once."""


def json_bytes(data: Any) -> bytes:
    """Compact, key-sorted JSON: the form of every audit, status and ledger value."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

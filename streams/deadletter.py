"""Dead letters: a record that cannot be processed is kept, with the reason.

Nothing accepted is ever silently dropped (DESIGN.md, principle 2). A
consumer that fails on a record publishes the original record (key, value
bytes and headers untouched) to ``<namespace>.deadletter.v1`` with headers
naming the error class, its message, and the source topic, partition and
offset, and then goes on with the next record.

What to do with a failure is a policy (:data:`FailurePolicy`), a plain
function so it can be unit-tested. The default (:func:`default_policy`)
asks whose fault it is: the record's (dead-letter it and go on), a
dependency's (retry), or SafePassage's own (a bug or a wrong configuration:
stop, because every following record would fail the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from schemas.exceptions import SafePassageError
from streams.cloudevents import Headers
from streams.exceptions import (
    EncodeError,
    ProvisioningError,
    RegistryUnavailableError,
    StreamsError,
    UnknownTopicError,
)

__all__ = [
    "DEADLETTER_HEADERS",
    "Action",
    "DeadLetter",
    "FailurePolicy",
    "deadletter_headers",
    "default_policy",
    "describe_error",
]

DEADLETTER_HEADERS = (
    "deadletter.error.class",
    "deadletter.error.message",
    "deadletter.source.topic",
    "deadletter.source.partition",
    "deadletter.source.offset",
)
"""Headers :func:`deadletter_headers` appends, in this order."""

_MAX_MESSAGE_CHARS = 1000


def deadletter_headers(
    original: Headers | None,
    error: BaseException,
    *,
    topic: str,
    partition: int,
    offset: int,
) -> list[tuple[str, bytes | None]]:
    """Headers of a dead letter: the original ones, untouched and in order, then the reason.

    The dead letter keeps the original key and value bytes; these headers
    say what failed (the error's class name and message, truncated to 1000
    characters) and where the record came from. Pass SafePassage errors:
    their messages carry no personal data. A record dead-lettered twice
    carries both sets; the last one is the latest failure.
    """
    items = original.items() if isinstance(original, Mapping) else (original or ())
    # Header values stay bytes on the way out (a client may hand over text).
    out: list[tuple[str, bytes | None]] = [
        (name, value.encode("utf-8") if isinstance(value, str) else value) for name, value in items
    ]
    values = (
        type(error).__name__,
        describe_error(error)[:_MAX_MESSAGE_CHARS],
        topic,
        str(partition),
        str(offset),
    )
    out.extend(
        (name, text.encode("utf-8")) for name, text in zip(DEADLETTER_HEADERS, values, strict=True)
    )
    return out


def describe_error(error: BaseException) -> str:
    """An error's message if it is one of ours, else only its class.

    Every :class:`~schemas.exceptions.SafePassageError` is written never to
    carry personal data, so its message is copied (on one line); the message
    of any other exception (a library's, a bug's) might repeat a value, so
    it is not copied into headers or logs.
    """
    if isinstance(error, SafePassageError):
        return error.one_line()
    return f"unexpected {type(error).__name__} (message withheld: it may carry record data)"


class Action(StrEnum):
    """What a consumer does with a record whose processing failed."""

    DEAD_LETTER = "dead-letter"
    """Publish it to the dead-letter topic with the reason, then go on."""
    RETRY = "retry"
    """Not the record's fault (a dependency is down): try the same record again."""
    STOP = "stop"
    """SafePassage's fault (a bug, a wrong configuration): keep the record, then raise.

    The record is still dead-lettered first: Faust acknowledges the record
    an agent was iterating over as the agent unwinds, so its offset is
    committed whether or not it was processed, and without the dead letter
    it would be lost. Then the error propagates out of the consuming loop:
    the agent crashes and, under :func:`streams.consuming.stop_app_on_error`,
    the worker stops with the error logged. Once the bug is fixed the dead letter can be replayed.
    """


FailurePolicy = Callable[[BaseException], Action]
"""Decides, from the error alone, what happens to the failed record."""

_NOT_ABOUT_THE_RECORD: tuple[type[StreamsError], ...] = (
    EncodeError,
    ProvisioningError,
    UnknownTopicError,
)
"""Streams errors raised while handling a record that are about what we write or configure."""


def default_policy(error: BaseException) -> Action:
    """Whose fault is it: retry a dependency's, dead-letter the record's, stop on ours.

    * :class:`~streams.exceptions.RegistryUnavailableError`: the schema
      registry is down: retry the same record.
    * any other :class:`~streams.exceptions.StreamsError` describes the
      record being consumed (a :class:`~streams.exceptions.DecodeError`, a
      :class:`~streams.exceptions.RecordRejected` refusal of the domain, a
      malformed tick): dead-letter it and go on. Except those about what we
      *write* or how we are configured (an event the contract will not let
      us publish, a topic outside the catalog, provisioning): those are ours.
    * any other SafePassage error (``ProcessorsError``, ``ConnectorsError``,
      ``SchemasError``, ``InfraError``) is a bug or a wrong configuration:
      every following record would fail the same way, so
      :attr:`Action.STOP`. ``streams`` cannot name ``processors``' errors;
      the common root tells them apart from a record's fault.
    * an exception that is not ours cannot say whether it is about the
      record (a library may choke on one record's data): the record is
      dead-lettered under the exception's class name and the worker goes on.
    """
    if isinstance(error, RegistryUnavailableError):
        return Action.RETRY
    if isinstance(error, StreamsError) and not isinstance(error, _NOT_ABOUT_THE_RECORD):
        return Action.DEAD_LETTER
    if isinstance(error, SafePassageError):
        return Action.STOP
    return Action.DEAD_LETTER


@dataclass(frozen=True)
class DeadLetter:
    """A record on its way to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

    @classmethod
    def of(
        cls,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        error: BaseException,
        topic: str,
        partition: int,
        offset: int,
    ) -> DeadLetter:
        """The dead letter of one failed record: same key and value, reason added."""
        return cls(
            key,
            value,
            deadletter_headers(headers, error, topic=topic, partition=partition, offset=offset),
        )

    def reason(self) -> dict[str, str]:
        """The dead-letter headers as text (for tests, tools and the console)."""
        wanted = set(DEADLETTER_HEADERS)
        return {
            name: (value or b"").decode("utf-8", "replace")
            for name, value in self.headers
            if name in wanted
        }

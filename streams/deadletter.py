"""Dead letters: a record that cannot be processed is kept, with the reason.

Nothing accepted is ever silently dropped (DESIGN.md, principle 2): the
original record goes to ``<namespace>.deadletter.v1`` untouched, with
headers naming the error and where the record came from. What to do with a
failure is a plain function (:data:`FailurePolicy`), so it is unit-tested.
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

    A record dead-lettered twice carries both sets; the last one is the latest failure.
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

    Our messages never carry personal data; another exception's (a library's,
    a bug's) might repeat a value, so it is not copied into headers or logs.
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
    """SafePassage's fault (a bug, a wrong configuration): dead-letter the record, then raise.

    Faust commits the record an agent was iterating over as the agent unwinds,
    so without the dead letter it would be lost; it can be replayed once the
    bug is fixed. The worker stops (:func:`streams.consuming.stop_app_on_error`).
    """


FailurePolicy = Callable[[BaseException], Action]
"""Decides, from the error alone, what happens to the failed record."""

_NOT_ABOUT_THE_RECORD: tuple[type[StreamsError], ...] = (
    EncodeError,
    ProvisioningError,
    UnknownTopicError,
)
"""Streams errors about what we write or how we are configured, not about the record."""


def default_policy(error: BaseException) -> Action:
    """Whose fault is it: retry a dependency's, dead-letter the record's, stop on ours.

    * the schema registry is down: retry the same record;
    * any other :class:`~streams.exceptions.StreamsError` describes the
      record consumed (undecodable, refused by the domain): dead-letter it,
      unless it is about what we write or how we are configured;
    * any other SafePassage error is a bug or a wrong configuration that
      every following record would meet: stop;
    * an exception not ours cannot say (a library may choke on one record's
      data): dead-letter the record and go on.
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

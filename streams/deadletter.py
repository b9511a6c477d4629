"""Dead letters: a record that cannot be processed is kept, with the reason.

Nothing accepted is ever silently dropped (DESIGN.md, principle 2). A
consumer that fails on a record publishes the original record (key, value
bytes and headers untouched) to ``<namespace>.deadletter.v1`` with headers
naming the error class, its message, and the source topic, partition and
offset, and then goes on with the next record.

What to do with a failure is a policy (:data:`FailurePolicy`), a plain
function so it can be unit-tested: bad input is dead-lettered, a transient
failure (the schema registry is down) is retried, and nothing crashes the
worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from streams.codec import Headers
from streams.exceptions import RegistryUnavailableError, StreamsError

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

    SafePassage's own errors are written never to carry personal data; the
    message of any other exception (a library's, a bug's) might repeat a
    value, so it is not copied into headers or logs.
    """
    if isinstance(error, StreamsError):
        return str(error)
    return f"unexpected {type(error).__name__} (message withheld: it may carry record data)"


class Action(StrEnum):
    """What a consumer does with a record whose processing failed."""

    DEAD_LETTER = "dead-letter"
    """Publish it to the dead-letter topic with the reason, then go on."""
    RETRY = "retry"
    """Not the record's fault (a dependency is down): try the same record again."""


FailurePolicy = Callable[[BaseException], Action]
"""Decides, from the error alone, what happens to the failed record."""


def default_policy(error: BaseException) -> Action:
    """Retry transient infrastructure failures; dead-letter everything else.

    Everything else includes bugs (any unexpected exception): the record is
    kept with the exception's class name, and the worker stays up.
    """
    if isinstance(error, RegistryUnavailableError):
        return Action.RETRY
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

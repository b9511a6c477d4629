"""How the SDKs hand an event to the platform: the one interface both transports implement.

:class:`~connectors.sdk.kafka_transport.KafkaTransport` writes the record
itself; :class:`~connectors.sdk.http_transport.HttpTransport` POSTs it to the
intake API. Both retry transient failures by one policy
(:mod:`connectors.sdk.retry`) with the very same event. The SDK clients depend
on this interface only, so a caller (or a test) can hand them any transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from schemas.models import Event

__all__ = ["Closing", "Outgoing", "Transport"]


@dataclass(frozen=True)
class Outgoing:
    """One event to publish, with the CloudEvents identity it is published under."""

    event: Event
    event_id: str
    source: str


class Transport(Protocol):
    """What the SDKs need from a way to reach the platform."""

    def publish(self, event: Event, *, event_id: str, source: str) -> str:
        """Publish one event, retrying transient failures; its CloudEvents id once accepted."""
        ...

    def publish_many(self, items: Sequence[Outgoing]) -> list[str]:
        """Publish several events (each survivor's in the given order); their ids."""
        ...

    async def publish_async(self, event: Event, *, event_id: str, source: str) -> str:
        """:meth:`publish` without blocking the event loop."""
        ...

    def close(self) -> None:
        """Release connections (and, for Kafka, deliver what is still queued)."""
        ...


class Closing:
    """A context manager that calls ``close()`` on exit: the SDK's clients and transports."""

    def close(self) -> None:
        """Release what the object holds (overridden)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""How the SDKs hand an event to the platform: the one interface both transports implement.

Both SDKs (:mod:`connectors.sdk.agency`, :mod:`connectors.sdk.provider`)
build a typed event, give it a CloudEvents id and source, and pass it to a
:class:`Transport`:

* :class:`~connectors.sdk.kafka_transport.KafkaTransport` writes the record
  itself (inside the platform's network, or for partners with Kafka
  credentials): the codec's Avro body, CloudEvents binary-mode headers, the
  survivor as key, an idempotent ``acks=all`` producer, and waits for the
  broker's acknowledgement.
* :class:`~connectors.sdk.http_transport.HttpTransport` POSTs a CloudEvents
  1.0 *structured-mode* JSON document to the intake API
  (``<base_url>/v1/events``), which checks the caller's role and writes the
  record under the caller's source and id.

Both retry transient failures by one policy (:mod:`connectors.sdk.retry`)
with the very same event. The SDK clients depend on this interface only,
so a caller (or a test) can hand them any transport.
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
        """Use as a context manager to close on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close."""
        self.close()

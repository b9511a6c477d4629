"""Contract of the SDKs' Transport: Recorder and KafkaTransport behave alike.

What the agency and provider clients rely on: :meth:`publish` (and its
async form) returns the event's id once it is published, once;
:meth:`publish_many` returns the ids in the given order and keeps each
survivor's events in that order; an invalid id is refused with
:class:`SdkValidationError` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest

from connectors.exceptions import SdkValidationError
from connectors.sdk import KafkaTransport, Outgoing, RetryPolicy, Transport
from schemas.models import Event
from streams.codec import Codec
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.contract.harness import read_topic
from tests.doubles import Recorder
from tests.integration.conftest import create_topic
from tests.unit.domain_builders import closed, identified, uid

SOURCE = "/agencies/x"
"""An agency whose id can name its own topic."""

Published = tuple[Event, str, str]
"""(event, CloudEvents id, source) of one published event."""


@dataclass
class TransportSide:
    """A transport and what it published (each survivor's events in order)."""

    transport: Transport
    published: Callable[[], list[Published]]


def _kafka_side(request: pytest.FixtureRequest) -> Iterator[TransportSide]:
    settings: KafkaSettings = request.getfixturevalue("kafka_settings")
    bootstrap = settings.bootstrap_servers
    # The transport writes on the sender's own topic (the inbound relay moves it on).
    topics = [create_topic(bootstrap, Topics.of(settings).from_party(SOURCE), 3)]
    no_wait = RetryPolicy(initial_wait_s=0, max_wait_s=0, max_attempts=3)
    transport = KafkaTransport(settings, retry=no_wait, delivery_timeout_s=10.0)
    codec = Codec(settings, source="/contract")

    def published() -> list[Published]:
        found: list[Published] = []
        for topic in topics:
            for s in read_topic(bootstrap, topic):
                decoded = codec.decode(s.value, s.headers, topic=topic, key=s.key)
                found.append((decoded.event, decoded.envelope.id, decoded.envelope.source))
        return found

    yield TransportSide(transport, published)
    transport.close()


@pytest.fixture
def side(backend: str, request: pytest.FixtureRequest) -> Iterator[TransportSide]:
    """The double (``fake``) or the Kafka transport on the session broker (``kafka``)."""
    if backend == "kafka":
        yield from _kafka_side(request)
        return
    recorder = Recorder()
    yield TransportSide(recorder, lambda: [(o.event, o.event_id, o.source) for o in recorder.sent])


def of(survivor: UUID, published: list[Published]) -> list[str]:
    """The ids of one survivor's published events, in the order published."""
    return [event_id for event, event_id, _ in published if event.subject == survivor]


def test_publish_returns_the_id_once_the_event_is_published(side: TransportSide) -> None:
    event = identified(uid("contract-survivor"))

    assert side.transport.publish(event, event_id="t-1", source=SOURCE) == "t-1"

    assert side.published() == [(event, "t-1", SOURCE)]


async def test_publish_async_returns_the_id_once_the_event_is_published(
    side: TransportSide,
) -> None:
    event = closed(uid("contract-survivor"))

    assert await side.transport.publish_async(event, event_id="t-2", source=SOURCE) == "t-2"

    assert side.published() == [(event, "t-2", SOURCE)]


def test_publish_many_returns_the_ids_in_order_and_keeps_each_survivors_order(
    side: TransportSide,
) -> None:
    one, two = uid("contract-1"), uid("contract-2")
    items = [
        Outgoing(identified(one), "1-a", SOURCE),
        Outgoing(identified(two), "2-a", SOURCE),
        Outgoing(closed(one), "1-b", SOURCE),
        Outgoing(closed(two), "2-b", SOURCE),
    ]

    assert side.transport.publish_many(items) == ["1-a", "2-a", "1-b", "2-b"]

    published = side.published()
    assert sorted(published, key=lambda p: p[1]) == [
        (i.event, i.event_id, i.source) for i in sorted(items, key=lambda i: i.event_id)
    ]
    assert (of(one, published), of(two, published)) == (["1-a", "1-b"], ["2-a", "2-b"])


def test_an_invalid_id_is_refused_before_anything_is_sent(side: TransportSide) -> None:
    sid = uid("contract-survivor")
    items = [Outgoing(identified(sid), "fine", SOURCE), Outgoing(closed(sid), "not fine", SOURCE)]

    with pytest.raises(SdkValidationError):
        side.transport.publish_many(items)

    assert side.published() == []

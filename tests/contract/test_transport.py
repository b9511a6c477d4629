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

    assert (
        side.transport.publish(
            event, event_id="72434751-a09c-5b3a-8033-dce02b217258", source=SOURCE
        )
        == "72434751-a09c-5b3a-8033-dce02b217258"
    )

    assert side.published() == [(event, "72434751-a09c-5b3a-8033-dce02b217258", SOURCE)]


async def test_publish_async_returns_the_id_once_the_event_is_published(
    side: TransportSide,
) -> None:
    event = closed(uid("contract-survivor"))

    assert (
        await side.transport.publish_async(
            event, event_id="59344227-a8e0-5e87-a6bd-16302456d119", source=SOURCE
        )
        == "59344227-a8e0-5e87-a6bd-16302456d119"
    )

    assert side.published() == [(event, "59344227-a8e0-5e87-a6bd-16302456d119", SOURCE)]


def test_publish_many_returns_the_ids_in_order_and_keeps_each_survivors_order(
    side: TransportSide,
) -> None:
    one, two = uid("contract-1"), uid("contract-2")
    ids = {name: str(uid(f"event:{name}")) for name in ("1-a", "2-a", "1-b", "2-b")}
    items = [
        Outgoing(identified(one), ids["1-a"], SOURCE),
        Outgoing(identified(two), ids["2-a"], SOURCE),
        Outgoing(closed(one), ids["1-b"], SOURCE),
        Outgoing(closed(two), ids["2-b"], SOURCE),
    ]

    assert side.transport.publish_many(items) == [ids[n] for n in ("1-a", "2-a", "1-b", "2-b")]

    published = side.published()
    assert sorted(published, key=lambda p: p[1]) == [
        (i.event, i.event_id, i.source) for i in sorted(items, key=lambda i: i.event_id)
    ]
    assert (of(one, published), of(two, published)) == (
        [ids["1-a"], ids["1-b"]],
        [ids["2-a"], ids["2-b"]],
    )


def test_an_invalid_id_is_refused_before_anything_is_sent(side: TransportSide) -> None:
    sid = uid("contract-survivor")
    fine = str(uid("event:fine"))
    items = [Outgoing(identified(sid), fine, SOURCE), Outgoing(closed(sid), "not-a-uuid", SOURCE)]

    with pytest.raises(SdkValidationError):
        side.transport.publish_many(items)

    assert side.published() == []

"""Contract of the intake's Publisher: RecordingPublisher and KafkaPublisher behave alike.

What the intake service relies on: :meth:`submit` refuses unless started,
each record's future resolves to the :class:`Delivery` of where it was
stored (its key's partition, the next offset of that partition, in the
order of submission), the record is stored as given, :meth:`close`
delivers what was queued, and :meth:`ready` / :meth:`probe` say the
broker is up while it is.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial

import pytest

from connectors.exceptions import BrokerUnavailableError
from connectors.intake import Delivery, KafkaPublisher, Publisher
from streams.codec import EncodedRecord
from streams.settings import KafkaSettings
from tests.contract.harness import Stored, read_topic
from tests.doubles import RecordingPublisher, java_partition


@dataclass
class PublisherSide:
    """A started publisher, where it writes, and what it wrote."""

    publisher: Publisher
    new_topic: Callable[[int], str]
    """A new topic with that many partitions; its name."""
    stored: Callable[[str], list[Stored]]
    """Everything on a topic, by partition then offset."""
    unstarted: Callable[[], Publisher]
    """Another publisher of the same kind, not started (closed at the end)."""
    others: list[Publisher] = field(default_factory=list)


def _fake_side() -> PublisherSide:
    fake = RecordingPublisher()
    made: list[RecordingPublisher] = [fake]

    def new_topic(partitions: int) -> str:
        name = f"contract-{uuid.uuid4().hex}"
        for publisher in made:
            publisher.partitions[name] = partitions
        return name

    def stored(topic: str) -> list[Stored]:
        return [
            Stored(topic, partition, offset, r.key, r.value, list(r.headers))
            for (name, partition), log in sorted(fake.log.items())
            if name == topic
            for offset, r in enumerate(log)
        ]

    def unstarted() -> Publisher:
        made.append(RecordingPublisher(fake.partitions))
        return made[-1]

    return PublisherSide(fake, new_topic, stored, unstarted)


def _kafka_side(request: pytest.FixtureRequest) -> PublisherSide:
    settings: KafkaSettings = request.getfixturevalue("kafka_settings")
    make_topic: Callable[..., str] = request.getfixturevalue("make_topic")

    def new_topic(partitions: int) -> str:
        return make_topic(partitions=partitions)

    def unstarted() -> Publisher:
        return KafkaPublisher(settings, timeout_s=10.0)

    return PublisherSide(
        KafkaPublisher(settings, timeout_s=10.0),
        new_topic,
        partial(read_topic, settings.bootstrap_servers),
        unstarted,
    )


@pytest.fixture
async def side(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[PublisherSide]:
    """The double (``fake``) or the real publisher (``kafka``), started."""
    made = _fake_side() if backend == "fake" else _kafka_side(request)
    await made.publisher.start()
    yield made
    for publisher in [made.publisher, *made.others]:
        await publisher.close()


def record(topic: str, n: int, key: bytes) -> EncodedRecord:
    """A record with a binary value and two headers, told apart by ``n``."""
    headers = [("ce_id", f"e-{n}".encode()), ("content-type", b"application/avro")]
    return EncodedRecord(topic, key, b"\x00\xff" + bytes([n]) * 3, headers)


async def submit_all(publisher: Publisher, records: list[EncodedRecord]) -> list[Delivery]:
    """Submit every record first (as a batch does), then wait for every delivery."""
    futures = [publisher.submit(r) for r in records]
    return list(await asyncio.wait_for(asyncio.gather(*futures), timeout=20))


KEYS = [b"survivor-1", b"survivor-2", b"survivor-3", b"survivor-4"]


async def test_each_record_resolves_to_its_keys_partition_and_the_next_offset(
    side: PublisherSide,
) -> None:
    topic = side.new_topic(3)
    records = [record(topic, n, KEYS[n % len(KEYS)]) for n in range(10)]

    deliveries = await submit_all(side.publisher, records)

    assert {d.topic for d in deliveries} == {topic}
    assert [d.partition for d in deliveries] == [java_partition(r.key, 3) for r in records]
    offsets: dict[int, list[int]] = defaultdict(list)
    for delivery in deliveries:
        offsets[delivery.partition].append(delivery.offset)
    assert all(found == list(range(len(found))) for found in offsets.values())


async def test_offsets_are_counted_per_topic(side: PublisherSide) -> None:
    first, second = side.new_topic(1), side.new_topic(1)
    records = [record(topic, n, b"k") for n in range(3) for topic in (first, second)]

    deliveries = await submit_all(side.publisher, records)

    assert [(d.topic, d.partition, d.offset) for d in deliveries] == [
        (topic, 0, n) for n in range(3) for topic in (first, second)
    ]


async def test_a_record_is_stored_where_its_delivery_says_as_it_was_given(
    side: PublisherSide,
) -> None:
    topic = side.new_topic(2)
    records = [record(topic, n, KEYS[n % 2]) for n in range(6)]

    deliveries = await submit_all(side.publisher, records)

    stored = {(s.partition, s.offset): s for s in side.stored(topic)}
    assert len(stored) == len(records)
    for sent, delivery in zip(records, deliveries, strict=True):
        found = stored[(delivery.partition, delivery.offset)]
        assert (found.key, found.value, found.headers) == (sent.key, sent.value, sent.headers)


async def test_ready_and_probe_say_yes_while_the_broker_is_up(side: PublisherSide) -> None:
    assert await side.publisher.ready() is True
    assert await side.publisher.probe() is True


async def test_submit_is_refused_before_start_and_after_close(side: PublisherSide) -> None:
    topic = side.new_topic(1)
    publisher = side.unstarted()
    side.others.append(publisher)

    with pytest.raises(BrokerUnavailableError):
        publisher.submit(record(topic, 0, b"k"))
    await publisher.start()
    [delivery] = await submit_all(publisher, [record(topic, 1, b"k")])
    await publisher.close()
    with pytest.raises(BrokerUnavailableError):
        publisher.submit(record(topic, 2, b"k"))

    assert delivery == Delivery(topic, 0, 0)


async def test_close_delivers_what_was_queued(side: PublisherSide) -> None:
    topic = side.new_topic(1)
    futures = [side.publisher.submit(record(topic, n, b"k")) for n in range(3)]

    await side.publisher.close()

    deliveries = await asyncio.wait_for(asyncio.gather(*futures), timeout=20)
    assert [d.offset for d in deliveries] == [0, 1, 2]
    assert [s.value for s in side.stored(topic)] == [record(topic, n, b"k").value for n in range(3)]

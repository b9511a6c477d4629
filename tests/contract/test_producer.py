"""Contract of confluent-kafka's Producer as AckedProducer uses it: ScriptedProducer alike.

What :class:`streams.producing.AckedProducer` (under the SDKs' transport and
every other Kafka writer) relies on:
:meth:`produce` only queues; each record's ``on_delivery`` is called
exactly once, from :meth:`poll` or :meth:`flush`, with no error and a
message whose topic, partition (its key's) and offset (the partition's
next) are set; :meth:`poll` returns 0 when it served nothing; :meth:`flush`
returns 0 once everything is delivered; the producer is truthy even when
idle (``producer or Producer(...)``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from streams.clients import producer_config
from streams.settings import KafkaSettings
from tests.contract.harness import Stored, read_topic, scripted_producer
from tests.doubles import java_partition


@dataclass
class ProducerSide:
    """A producer, where it writes, and what it wrote."""

    producer: Any
    new_topic: Callable[[int], str]
    """A new topic with that many partitions; its name."""
    stored: Callable[[str], list[Stored]]
    """Everything on a topic, by partition then offset."""


def _fake_side() -> ProducerSide:
    fake, new_topic, stored = scripted_producer()
    return ProducerSide(fake, new_topic, stored)


@pytest.fixture
def side(backend: str, request: pytest.FixtureRequest) -> Iterator[ProducerSide]:
    """The double (``fake``) or a producer configured as KafkaTransport's (``kafka``)."""
    if backend == "fake":
        yield _fake_side()
        return
    settings: KafkaSettings = request.getfixturevalue("kafka_settings")
    make_topic: Callable[..., str] = request.getfixturevalue("make_topic")
    producer = Producer(producer_config(settings))
    yield ProducerSide(
        producer,
        lambda partitions: make_topic(partitions=partitions),
        partial(read_topic, settings.bootstrap_servers),
    )
    producer.flush(10)


@dataclass(frozen=True)
class Report:
    """What one ``on_delivery`` call was given."""

    error: KafkaError | None
    topic: str | None
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None


class Reports(list[Report]):
    """An ``on_delivery`` callback that keeps what it is given."""

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        self.append(
            Report(
                error,
                message.topic(),
                message.partition(),
                message.offset(),
                message.key(),
                message.value(),
            )
        )


KEYS = [b"survivor-1", b"survivor-2", b"survivor-3"]
HEADERS = [("ce_id", b"e-1"), ("content-type", b"application/avro")]


def produce(side: ProducerSide, topic: str, count: int, reports: Reports) -> list[bytes]:
    """Produce ``count`` records as KafkaTransport does; their values."""
    values = [f"value-{n}".encode() for n in range(count)]
    for n, value in enumerate(values):
        side.producer.produce(
            topic, value=value, key=KEYS[n % len(KEYS)], headers=HEADERS, on_delivery=reports
        )
    return values


def test_produce_only_queues_and_each_record_is_reported_once_by_poll_or_flush(
    side: ProducerSide,
) -> None:
    topic = side.new_topic(2)
    reports = Reports()

    values = produce(side, topic, 6, reports)
    assert reports == []
    assert len(side.producer) == 6

    assert side.producer.flush(10) == 0
    side.producer.poll(0)

    assert [r.value for r in reports] == values
    assert all(r.error is None and r.topic == topic for r in reports)
    assert [r.partition for r in reports] == [java_partition(r.key, 2) for r in reports]
    assert [r.key for r in reports] == [KEYS[n % len(KEYS)] for n in range(6)]
    offsets: dict[int | None, list[int | None]] = defaultdict(list)
    for report in reports:
        offsets[report.partition].append(report.offset)
    assert all(found == list(range(len(found))) for found in offsets.values())


def test_poll_serves_the_reports_and_says_whether_it_served_any(side: ProducerSide) -> None:
    """The count is of librdkafka events (a batch of reports may be one), so only 0 is exact."""
    topic = side.new_topic(1)
    reports = Reports()
    produce(side, topic, 3, reports)

    deadline = time.monotonic() + 10
    while len(reports) < 3 and time.monotonic() < deadline:
        before = len(reports)
        served = side.producer.poll(0.1)
        assert (served > 0) == (len(reports) > before)

    assert len(reports) == 3
    assert side.producer.poll(0) == 0
    assert len(side.producer) == 0


def test_an_idle_producer_flushes_at_once_and_is_truthy(side: ProducerSide) -> None:
    assert side.producer.flush(1) == 0
    assert len(side.producer) == 0
    assert bool(side.producer) is True


def test_records_are_stored_as_produced_where_reported(side: ProducerSide) -> None:
    topic = side.new_topic(3)
    reports = Reports()
    values = produce(side, topic, 6, reports)
    assert side.producer.flush(10) == 0

    stored = side.stored(topic)

    assert sorted(s.value or b"" for s in stored) == sorted(values)
    by_place = {(s.partition, s.offset): s for s in stored}
    for report in reports:
        found = by_place[(report.partition or 0, report.offset or 0)]
        assert (found.key, found.value, found.headers) == (report.key, report.value, HEADERS)

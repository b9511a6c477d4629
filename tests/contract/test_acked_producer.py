"""Contract of the one acknowledged producer: over ScriptedProducer as over the real broker.

What every Kafka writer relies on (the intake, the SDKs' transport, the
webhook connector, ticks): the asyncio face resolves each record to the
:class:`~streams.producing.Delivery` where the broker stored it, as it was
given; the synchronous face acknowledges every record, in order per key;
a record given a partition is stored there. Running the cases on the
double too keeps unit tests that use :class:`~tests.doubles.ScriptedProducer`
under :class:`~streams.producing.AckedProducer` honest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import pytest

from streams.producing import AckedProducer, Delivery, OutRecord
from streams.settings import KafkaSettings
from tests.contract.harness import Stored, read_topic, scripted_producer


@dataclass
class Side:
    """An acknowledged producer, where it writes, and what it wrote."""

    producer: AckedProducer
    new_topic: Callable[[int], str]
    stored: Callable[[str], list[Stored]]


def _fake_side() -> Side:
    fake, new_topic, stored = scripted_producer()
    return Side(AckedProducer(KafkaSettings(), name="contract", producer=fake), new_topic, stored)


@pytest.fixture
def side(backend: str, request: pytest.FixtureRequest) -> Iterator[Side]:
    """The producer over the double (``fake``) or over the session broker (``kafka``)."""
    if backend == "fake":
        made = _fake_side()
    else:
        settings: KafkaSettings = request.getfixturevalue("kafka_settings")
        make_topic: Callable[..., str] = request.getfixturevalue("make_topic")
        made = Side(
            AckedProducer(settings, name="contract"),
            lambda partitions: make_topic(partitions=partitions),
            partial(read_topic, settings.bootstrap_servers),
        )
    yield made
    made.producer.close(10)


KEYS = [b"survivor-1", b"survivor-2", b"survivor-3"]
HEADERS = (("ce_id", b"e-1"), ("content-type", b"application/avro"))


def records(topic: str, count: int) -> list[OutRecord]:
    return [
        OutRecord(topic, KEYS[n % len(KEYS)], f"value-{n}".encode(), HEADERS) for n in range(count)
    ]


def where(stored: list[Stored]) -> dict[tuple[int, int], Stored]:
    return {(s.partition, s.offset): s for s in stored}


async def test_the_async_face_resolves_each_record_to_where_it_was_stored(side: Side) -> None:
    topic = side.new_topic(3)
    side.producer.start()
    given = records(topic, 9)
    futures = [side.producer.submit(record) for record in given]
    deliveries = await asyncio.wait_for(asyncio.gather(*futures), 30)
    stored = where(side.stored(topic))
    assert len(stored) == 9
    for record, delivery in zip(given, deliveries, strict=True):
        assert isinstance(delivery, Delivery) and delivery.topic == topic
        at = stored[(delivery.partition, delivery.offset)]
        assert (at.key, at.value, at.headers) == (record.key, record.value, list(HEADERS))
    assert await side.producer.send(given[0]) != deliveries[0]  # a new record, a new offset


def test_the_sync_face_acknowledges_everything_keeping_each_keys_order(side: Side) -> None:
    topic = side.new_topic(2)
    given = records(topic, 12)
    outcome = side.producer.send_in_key_order(given, timeout_s=30)
    assert outcome.left == [] and outcome.errors == {} and outcome.final is None
    assert sorted(outcome.delivered) == list(range(12))
    stored = side.stored(topic)
    for key in KEYS:
        in_order = [r.value for r in given if r.key == key]
        assert [s.value for s in stored if s.key == key] == in_order
    for index, delivery in outcome.delivered.items():
        assert where(stored)[(delivery.partition, delivery.offset)].value == given[index].value


def test_a_record_given_a_partition_is_stored_there(side: Side) -> None:
    topic = side.new_topic(3)
    given = [OutRecord(topic, b"tick", b"now", partition=p) for p in (2, 0, 1)]
    outcome = side.producer.send_in_key_order(given, timeout_s=30)
    assert [outcome.delivered[i].partition for i in range(3)] == [2, 0, 1]
    assert sorted(s.partition for s in side.stored(topic)) == [0, 1, 2]

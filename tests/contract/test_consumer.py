"""Contract of confluent-kafka's Consumer as the consumer loop uses it: ScriptedConsumer alike.

What :class:`streams.consumer_loop.ConsumerLoop` (under the provider SDK's
:class:`~connectors.sdk.ProviderClient`) relies on: once
subscribed, :meth:`poll` hands out each record once, in offset order per
partition, and None when there is nothing; ``on_assign`` comes (from
:meth:`poll`) before the first record, ``on_revoke`` from :meth:`close`,
both as ``(consumer, partitions)``; ``commit(offsets=...,
asynchronous=False)`` is where the next consumer of the group starts and
does not move this one; :meth:`seek` rewinds one assigned partition only
and is refused for a partition not assigned.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streams.clients import consumer_config
from streams.settings import KafkaSettings
from tests.doubles import ScriptedConsumer

Seeded = list[tuple[int, bytes, bytes]]
"""Records to put on a topic: (partition, key, value), in order."""


@dataclass
class ConsumerSide:
    """Topics with records on them, and consumers of them."""

    seed: Callable[[int, Seeded], str]
    """A new topic with that many partitions and those records; its name."""
    consumer: Callable[[str], Any]
    """A new consumer in that group, configured as the provider SDK's."""


def _fake_side() -> Iterator[ConsumerSide]:
    messages: list[Message] = []
    partitions: dict[str, int] = {}
    groups: dict[str, dict[tuple[str, int], int]] = {}

    def seed(count: int, records: Seeded) -> str:
        topic = f"contract-{uuid.uuid4().hex}"
        partitions[topic] = count
        offsets = [0] * count
        for n, (partition, key, value) in enumerate(records):
            headers: list[tuple[str, str | bytes | None]] = [("n", str(n).encode())]
            messages.append(
                Message(
                    topic=topic,
                    partition=partition,
                    offset=offsets[partition],
                    key=key,
                    value=value,
                    headers=headers,
                )
            )
            offsets[partition] += 1
        return topic

    def consumer(group: str) -> ScriptedConsumer:
        committed = groups.setdefault(group, {})
        return ScriptedConsumer(messages, committed=committed, partitions=partitions)

    yield ConsumerSide(seed, consumer)


def _kafka_side(request: pytest.FixtureRequest) -> Iterator[ConsumerSide]:
    settings: KafkaSettings = request.getfixturevalue("kafka_settings")
    make_topic: Callable[..., str] = request.getfixturevalue("make_topic")
    consumers: list[Consumer] = []

    def seed(count: int, records: Seeded) -> str:
        topic = make_topic(partitions=count)
        # Seeding is not under test: a plain producer skips the idempotent one's set-up.
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 0})
        for n, (partition, key, value) in enumerate(records):
            headers: list[tuple[str, str | bytes | None]] = [("n", str(n).encode())]
            producer.produce(topic, value=value, key=key, partition=partition, headers=headers)
        assert producer.flush(10) == 0
        return topic

    def consumer(group: str) -> Consumer:
        # Latency only: a seek need not wait out the fetch the broker is holding (500 ms).
        consumers.append(Consumer(consumer_config(settings, group, **{"fetch.wait.max.ms": 10})))
        return consumers[-1]

    yield ConsumerSide(seed, consumer)
    for made in consumers:
        with contextlib.suppress(RuntimeError):  # closed by the test already
            made.close()


@pytest.fixture
def side(backend: str, request: pytest.FixtureRequest) -> Iterator[ConsumerSide]:
    """The double (``fake``) or consumers configured as the provider SDK's (``kafka``)."""
    yield from _fake_side() if backend == "fake" else _kafka_side(request)


def group() -> str:
    return f"contract-{uuid.uuid4().hex}"


def drain(consumer: Any, count: int, timeout_s: float = 10.0) -> list[Message]:
    """Poll until ``count`` records came (the real consumer first joins its group)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            got.append(message)
    return got


def places(messages: list[Message]) -> list[tuple[int | None, int | None]]:
    """(partition, offset) of each record, in the order handed out."""
    return [(m.partition(), m.offset()) for m in messages]


def per_partition(messages: list[Message]) -> dict[int | None, list[int | None]]:
    found: dict[int | None, list[int | None]] = {}
    for message in messages:
        found.setdefault(message.partition(), []).append(message.offset())
    return found


# Partition 0 gets values 0, 2, 4 (offsets 0..2), partition 1 gets 1, 3 (offsets 0..1).
RECORDS: Seeded = [(n % 2, f"key-{n}".encode(), f"value-{n}".encode()) for n in range(5)]


def test_poll_hands_out_every_record_once_in_offset_order_then_none(side: ConsumerSide) -> None:
    topic = side.seed(2, RECORDS)
    consumer = side.consumer(group())
    consumer.subscribe([topic])

    got = drain(consumer, 5)

    assert per_partition(got) == {0: [0, 1, 2], 1: [0, 1]}
    assert sorted((m.topic(), m.key(), m.value(), m.headers()) for m in got) == sorted(
        (topic, key, value, [("n", str(n).encode())]) for n, (_, key, value) in enumerate(RECORDS)
    )
    assert consumer.poll(0.3) is None


def test_on_assign_comes_before_the_first_record_and_on_revoke_from_close(
    side: ConsumerSide,
) -> None:
    topic = side.seed(3, RECORDS)  # partition 2 stays empty: it is assigned all the same
    consumer = side.consumer(group())
    calls: list[tuple[str, bool, list[tuple[str, int, int]]]] = []

    def called(name: str) -> Callable[[Any, list[TopicPartition]], None]:
        def callback(who: Any, partitions: list[TopicPartition]) -> None:
            found = sorted((tp.topic, tp.partition, tp.offset) for tp in partitions)
            calls.append((name, who is consumer, found))

        return callback

    consumer.subscribe([topic], on_assign=called("assign"), on_revoke=called("revoke"))
    got = drain(consumer, 5)
    assert len(got) == 5
    consumer.poll(0.2)
    everything = [(topic, p, OFFSET_INVALID) for p in range(3)]
    assert calls == [("assign", True, everything)]

    consumer.close()

    assert calls == [("assign", True, everything), ("revoke", True, everything)]
    with pytest.raises(RuntimeError):
        consumer.poll(0)


def test_a_commit_is_where_the_groups_next_consumer_starts_and_does_not_move_this_one(
    side: ConsumerSide,
) -> None:
    topic, shared = side.seed(2, RECORDS), group()
    first = side.consumer(shared)
    first.subscribe([topic])
    assert len(drain(first, 5)) == 5

    done = first.commit(
        offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 1)], asynchronous=False
    )

    assert sorted((tp.topic, tp.partition, tp.offset, tp.error) for tp in done) == [
        (topic, 0, 2, None),
        (topic, 1, 1, None),
    ]
    assert first.poll(0.3) is None
    first.close()
    second = side.consumer(shared)
    second.subscribe([topic])
    assert sorted(places(drain(second, 2))) == [(0, 2), (1, 1)]
    assert second.poll(0.3) is None


def test_seek_rewinds_that_partition_only(side: ConsumerSide) -> None:
    topic = side.seed(2, RECORDS)
    consumer = side.consumer(group())
    consumer.subscribe([topic])
    assert len(drain(consumer, 5)) == 5

    consumer.seek(TopicPartition(topic, 0, 1))

    assert places(drain(consumer, 2)) == [(0, 1), (0, 2)]
    assert consumer.poll(0.3) is None


def test_seek_of_a_partition_not_assigned_is_refused(side: ConsumerSide) -> None:
    topic = side.seed(2, RECORDS)
    consumer = side.consumer(group())
    consumer.subscribe([topic])  # assigned by the first poll only

    with pytest.raises(KafkaException):
        consumer.seek(TopicPartition(topic, 0, 0))

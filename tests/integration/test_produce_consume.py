"""Durable, ordered, exactly-once-per-record delivery through confluent-kafka."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from streams.clients import consumer_config, producer_config
from streams.settings import KafkaSettings

pytestmark = pytest.mark.integration

KEYS = 200
PER_KEY = 50  # 10,000 records in all


def produce_numbered(settings: KafkaSettings, topic: str) -> int:
    """Write KEYS x PER_KEY records (value = sequence number per key); return acks."""
    producer = Producer(producer_config(settings))
    acked: list[int] = []
    failed: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is None:
            acked.append(1)
        else:
            failed.append(err)

    for seq in range(PER_KEY):
        for k in range(KEYS):
            producer.produce(
                topic,
                key=f"survivor-{k}".encode(),
                value=str(seq).encode(),
                on_delivery=on_delivery,
            )
            producer.poll(0)
    assert producer.flush(60) == 0
    assert not failed, failed[:3]
    return len(acked)


def consume_all(
    settings: KafkaSettings, topic: str, expected: int
) -> list[tuple[bytes, bytes, int]]:
    """Read a topic from the start until `expected` records arrived (or 60 s passed)."""
    consumer = Consumer(consumer_config(settings, group_id=f"{topic}-reader"))
    consumer.subscribe([topic])
    records: list[tuple[Any, Any, Any]] = []
    idle_polls = 0
    try:
        while len(records) < expected and idle_polls < 60:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            if not batch:
                idle_polls += 1
            for msg in batch:
                assert msg.error() is None, msg.error()
                records.append((msg.key(), msg.value(), msg.partition()))
        # Nothing more should arrive: every record exactly once.
        extra = consumer.consume(num_messages=100, timeout=2.0)
        records.extend((m.key(), m.value(), m.partition()) for m in extra if m.error() is None)
    finally:
        consumer.close()
    return records


def test_ten_thousand_keyed_records_come_back_once_each_in_order_per_key(
    kafka_settings: KafkaSettings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=6)
    assert produce_numbered(kafka_settings, topic) == KEYS * PER_KEY

    records = consume_all(kafka_settings, topic, KEYS * PER_KEY)

    assert len(records) == KEYS * PER_KEY
    per_key: dict[bytes, list[int]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for key, value, partition in records:
        per_key[key].append(int(value))
        partitions[key].add(partition)
    assert len(per_key) == KEYS
    for key, values in per_key.items():
        assert values == list(range(PER_KEY)), f"{key!r} out of order or duplicated"
        assert len(partitions[key]) == 1, f"{key!r} spread over partitions"

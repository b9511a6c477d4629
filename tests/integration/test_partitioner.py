"""A key lands on the same partition whichever client writes it.

confluent-kafka (librdkafka) partitions by CRC32 by default; the Java client
and aiokafka (Faust's client) use murmur2. SafePassage's producer config
selects librdkafka's `murmur2_random`, so a survivor's events written by the
intake (confluent-kafka) meet the stream processors (aiokafka) on the same
partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer

from streams.clients import producer_config
from streams.settings import KafkaSettings

pytestmark = pytest.mark.integration

KEYS = [f"survivor-{i:04d}".encode() for i in range(500)]


def confluent_partitions(
    settings: KafkaSettings, topic: str, **overrides: object
) -> dict[bytes, int]:
    producer = Producer(producer_config(settings, **overrides))
    placed: dict[bytes, int] = {}

    def on_delivery(err: object, msg: object) -> None:
        assert err is None, err
        placed[msg.key()] = msg.partition()  # type: ignore[attr-defined]

    for key in KEYS:
        producer.produce(topic, key=key, value=b"c", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return placed


async def aiokafka_partitions(bootstrap: str, topic: str) -> dict[bytes, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        placed = {}
        for key in KEYS:
            metadata = await producer.send_and_wait(topic, key=key, value=b"a")
            placed[key] = metadata.partition
        return placed
    finally:
        await producer.stop()


def test_confluent_kafka_and_aiokafka_agree_on_partitions(
    kafka_settings: KafkaSettings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=12)

    via_confluent = confluent_partitions(kafka_settings, topic)
    via_aiokafka = asyncio.run(aiokafka_partitions(kafka_settings.bootstrap_servers, topic))

    assert via_confluent == via_aiokafka
    assert len(set(via_confluent.values())) == 12  # the keys really spread out


def test_librdkafka_default_partitioner_would_disagree(
    kafka_settings: KafkaSettings, make_topic: Callable[..., str]
) -> None:
    """Why the setting matters: without it most keys go elsewhere."""
    topic = make_topic(partitions=12)

    default = confluent_partitions(kafka_settings, topic, partitioner="consistent_random")
    via_aiokafka = asyncio.run(aiokafka_partitions(kafka_settings.bootstrap_servers, topic))

    disagreeing = sum(default[k] != via_aiokafka[k] for k in KEYS)
    assert disagreeing > len(KEYS) // 2

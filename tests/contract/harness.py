"""What the contracts share: a record as stored on a partition, and reading one back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.doubles import ScriptedProducer
from tests.integration.waits import watermarks

POLL_S = 0.1


@dataclass(frozen=True)
class Stored:
    """One record as a partition holds it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    """confluent-kafka's headers (a list of pairs, or None) as (name, bytes) pairs."""
    pairs = raw.items() if isinstance(raw, dict) else raw or []
    return [(str(n), v if isinstance(v, bytes) else str(v or "").encode()) for n, v in pairs]


def read_topic(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[Stored]:
    """Everything on ``topic`` right now, by partition then offset (no group is joined)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"contract-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: watermarks(consumer, TopicPartition(topic, p))[1] for p in partitions}
        wanted = sum(ends.values())
        if not wanted:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        stored: list[Stored] = []
        deadline = time.monotonic() + timeout_s
        while len(stored) < wanted and time.monotonic() < deadline:
            message = consumer.poll(POLL_S)
            if message is None or message.error() is not None:
                continue
            stored.append(
                Stored(
                    topic,
                    message.partition() or 0,
                    message.offset() or 0,
                    message.key(),
                    message.value(),
                    _headers(message.headers()),
                )
            )
        return sorted(stored, key=lambda s: (s.partition, s.offset))
    finally:
        consumer.close()


def scripted_producer() -> tuple[
    ScriptedProducer, Callable[[int], str], Callable[[str], list[Stored]]
]:
    """The double, a maker of its topics (by partition count), and a reader of what it stored."""
    fake = ScriptedProducer()

    def new_topic(partitions: int) -> str:
        name = f"contract-{uuid.uuid4().hex}"
        fake.partitions[name] = partitions
        return name

    def stored(topic: str) -> list[Stored]:
        return [
            Stored(topic, partition, offset, r["key"], r["value"], list(r["headers"] or []))
            for (name, partition), log in sorted(fake.log.items())
            if name == topic
            for offset, r in enumerate(log)
        ]

    return fake, new_topic, stored

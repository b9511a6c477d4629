"""Waiting in integration tests: for a condition or for Kafka, never for a fixed time.

A busy two-core machine stretches every delay a test could guess, so tests
poll for the condition they need with a generous limit, and read topics up
to the offsets the broker reports instead of "until nothing came for a
while". Reaching the end of a topic is only meaningful once its writers are
done; :func:`wait_caught_up` says when a consumer group (a router worker,
whose outputs are acknowledged before its input offset is committed) has
processed everything there is.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.clients import consumer_config
from streams.settings import KafkaSettings

T = TypeVar("T")

GENEROUS_S = 120.0
"""The default limit: long enough for a loaded CI machine, short enough to fail."""


def wait_until(
    condition: Callable[[], T | None],
    what: str,
    *,
    timeout_s: float = GENEROUS_S,
    interval_s: float = 0.2,
    on_timeout: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    ``on_timeout`` adds what the failure message should explain (a diagnosis).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = condition()
        if outcome:
            return outcome
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what}\n{on_timeout()}".rstrip()
            )
        time.sleep(interval_s)


async def async_wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout_s: float = GENEROUS_S,
    interval_s: float = 0.02,
) -> None:
    """:func:`wait_until` for a condition that an event loop of the test makes true."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


def _partitions(consumer: Consumer, topics: Iterable[str]) -> list[TopicPartition]:
    found: list[TopicPartition] = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        assert metadata.error is None, metadata.error
        found.extend(TopicPartition(topic, p) for p in sorted(metadata.partitions))
    return found


_NOT_NOW = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


def _not_now(error: KafkaError) -> bool:
    """librdkafka does not flag NOT_LEADER_FOR_PARTITION retriable on a watermark query."""
    return bool(error.retriable()) or error.code() in _NOT_NOW


def watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float = 60.0) -> tuple[int, int]:
    """Low and high watermark of one partition, retrying the broker's "not now" answers.

    A partition just created, or whose leader moved, answers
    ``NOT_LEADER_FOR_PARTITION`` or ``UNKNOWN_TOPIC_OR_PART`` for a moment
    (seen on a loaded CI machine); those are retriable, not test failures.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            return low, high
        except KafkaException as exc:
            error = exc.args[0]
            if not (isinstance(error, KafkaError) and _not_now(error)):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def end_offsets(settings: KafkaSettings, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``topics``."""
    consumer = Consumer(consumer_config(settings, group_id=f"probe-{uuid.uuid4().hex}"))
    try:
        return {
            (tp.topic, tp.partition): watermarks(consumer, tp)[1]
            for tp in _partitions(consumer, topics)
        }
    finally:
        consumer.close()


def lag(settings: KafkaSettings, group: str, topics: Iterable[str]) -> int:
    """Records of ``topics`` that ``group`` has not committed yet (all, before a commit)."""
    consumer = Consumer(consumer_config(settings, group_id=group))
    try:
        partitions = _partitions(consumer, topics)
        committed = consumer.committed(partitions, timeout=30)
        behind = 0
        for tp in committed:
            high = watermarks(consumer, tp)[1]
            behind += high - max(tp.offset, 0)
        return behind
    finally:
        consumer.close()


def wait_caught_up(
    settings: KafkaSettings,
    group: str,
    topics: Iterable[str],
    *,
    timeout_s: float = GENEROUS_S,
    on_timeout: Callable[[], str] = lambda: "",
) -> None:
    """Until ``group`` has committed every record of ``topics`` that exists now.

    Kafka errors count as "not yet": a young broker answers ``NOT_COORDINATOR``
    or ``COORDINATOR_LOAD_IN_PROGRESS`` until it has loaded the group.
    """
    wanted = list(topics)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            behind: int | str = lag(settings, group, wanted)
        except KafkaException as exc:
            behind = str(exc)
        if behind == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{group} not caught up on {wanted} after {timeout_s:.0f} s: {behind}\n"
                + on_timeout()
            )
        time.sleep(0.5)


class TopicReader:
    """Reads topics from the beginning; each :meth:`to_end` returns what is new up to the end.

    The end is the high watermark when the call starts: a call returns
    promptly on a quiet topic and never waits for records that do not exist.
    """

    def __init__(self, settings: KafkaSettings, topics: Iterable[str]) -> None:
        self.consumer = Consumer(
            consumer_config(
                settings,
                group_id=f"reader-{uuid.uuid4().hex}",
                # Watermark queries share the broker connection with the fetch long-poll:
                # with librdkafka's 500 ms wait each query waited ~0.5 s behind a fetch.
                **{"isolation.level": "read_uncommitted", "fetch.wait.max.ms": 10},
            )
        )
        self.partitions = _partitions(self.consumer, topics)
        self.consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in self.partitions])
        self.position = {(tp.topic, tp.partition): 0 for tp in self.partitions}

    def to_end(self, timeout_s: float = GENEROUS_S) -> list[Message]:
        """Every record after the last call's, up to the current end of each partition."""
        ends = {
            (tp.topic, tp.partition): watermarks(self.consumer, tp)[1] for tp in self.partitions
        }
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while any(self.position[where] < end for where, end in ends.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"reading to {ends} stopped at {self.position}")
            for message in self.consumer.consume(1000, timeout=0.5):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    continue
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                assert topic is not None and partition is not None and offset is not None
                self.position[topic, partition] = offset + 1
                out.append(message)
            # The fetch position also moves past offsets that hold no record
            # (transaction markers, compacted gaps).
            for tp in self.consumer.position(self.partitions):
                where = (tp.topic, tp.partition)
                self.position[where] = max(self.position[where], tp.offset)
        return out

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_to_end(settings: KafkaSettings, *topics: str) -> list[Message]:
    """Every record of ``topics`` that exists now, from the beginning."""
    with TopicReader(settings, topics) as reader:
        return reader.to_end()

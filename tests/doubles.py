"""Test doubles of SafePassage's Kafka edge, held to their real adapters by tests/contract.

Each double imitates one real adapter closely enough that a unit test
written against it would pass against the real thing too; tests/contract
runs the same cases against the double and, on the real broker, against
the adapter it imitates, so that the two cannot drift apart. What the
contracts pin down is the shared behaviour; the knobs a double has for
injecting failures (``fail``, ``gate``, ``down``, a producer's script, a
consumer's :meth:`ScriptedConsumer.revoke`) are the double's own.

* :class:`RecordingPublisher` imitates :class:`connectors.intake.KafkaPublisher`.
* :class:`ScriptedProducer` imitates ``confluent_kafka.Producer`` as
  :class:`streams.producing.AckedProducer` uses it (under the SDKs'
  :class:`connectors.sdk.KafkaTransport` and every other Kafka writer).
* :class:`ScriptedConsumer` imitates ``confluent_kafka.Consumer`` as
  :class:`streams.consumer_loop.ConsumerLoop` uses it (under the provider
  SDK's :class:`connectors.sdk.ProviderClient`).
* :class:`Recorder` imitates :class:`connectors.sdk.KafkaTransport`
  (the SDKs' :class:`~connectors.sdk.Transport`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import (
    OFFSET_INVALID,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from connectors.exceptions import BrokerUnavailableError
from connectors.intake import Delivery
from connectors.intake.keys import KeyDirectory
from connectors.sdk import Outgoing
from connectors.sdk.events import check_event_id
from schemas.models import Event
from streams.codec import EncodedRecord
from streams.keystore import MemoryKeystore
from streams.settings import KafkaSettings

__all__ = [
    "Recorder",
    "RecordingPublisher",
    "ScriptedConsumer",
    "ScriptedProducer",
    "java_partition",
]

Where = tuple[str, int]
"""A partition: (topic, partition)."""

OnDelivery = Callable[[KafkaError | None, Message], None]


def java_partition(key: bytes | None, partitions: int) -> int:
    """The partition of ``key`` under librdkafka's ``murmur2_random`` (the Java client's).

    That is the partitioner :func:`streams.clients.producer_config` selects,
    so that Faust (aiokafka) and confluent-kafka agree on a survivor's
    partition. A record without a key goes to a random partition on a real
    producer; the doubles put it on partition 0.
    """
    if key is None or partitions <= 1:
        return 0
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


# --------------------------------------------------------------------------- intake publisher


class RecordingPublisher:
    """An in-process :class:`~connectors.intake.Publisher`: records, holds or fails.

    Imitates :class:`~connectors.intake.KafkaPublisher`: :meth:`submit`
    refuses until :meth:`start` (and after :meth:`close`); an acknowledged
    record is appended to its partition's log, the partition chosen from the
    key as the real producer chooses it (``partitions`` gives a topic's
    partition count, 1 when not given), and its future resolves to that
    :class:`Delivery` (offsets count from 0 per partition).

    Failure injection: ``gate``: while set to an unset event, deliveries wait
    for it (a slow broker). ``fail``: records it returns True for are not
    acknowledged. ``queue_full``: :meth:`submit` refuses at once. ``down``:
    :meth:`ready` and :meth:`probe` say the broker is unreachable.
    """

    def __init__(self, partitions: Mapping[str, int] | None = None) -> None:
        self.partitions: dict[str, int] = dict(partitions or {})
        self.records: list[EncodedRecord] = []
        """Every acknowledged record, in the order of the acknowledgements."""
        self.log: dict[Where, list[EncodedRecord]] = {}
        """Each partition's acknowledged records; the offset is the index."""
        self.submitted = 0
        self.started = False
        self.gate: asyncio.Event | None = None
        self.fail: Callable[[EncodedRecord], bool] = lambda _: False
        self.queue_full = False
        self.down = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Accept records from now on."""
        self.started = True

    async def close(self) -> None:
        """Refuse records from now on (those already submitted are still settled)."""
        self.started = False

    def submit(self, record: EncodedRecord) -> asyncio.Future[Delivery]:
        """Enqueue ``record``; the future resolves once it is "acknowledged"."""
        if not self.started:
            raise BrokerUnavailableError("the publisher is not started")
        if self.queue_full:
            raise BrokerUnavailableError("the producer's queue is full")
        self.submitted += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()
        task = loop.create_task(self._deliver(record, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return future

    async def _deliver(self, record: EncodedRecord, future: asyncio.Future[Delivery]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail(record):
            outcome: Delivery | BaseException = BrokerUnavailableError(
                "the broker did not acknowledge the record (_MSG_TIMED_OUT)"
            )
        else:
            outcome = self._append(record)
        # Like the real one: a caller that stopped waiting (timeout) is not told.
        if future.done():
            return
        if isinstance(outcome, Delivery):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)

    def _append(self, record: EncodedRecord) -> Delivery:
        partition = java_partition(record.key, self.partitions.get(record.topic, 1))
        log = self.log.setdefault((record.topic, partition), [])
        log.append(record)
        self.records.append(record)
        return Delivery(record.topic, partition, len(log) - 1)

    async def ready(self) -> bool:
        """False while ``down``."""
        return not self.down

    async def probe(self) -> bool:
        """False while ``down``."""
        return not self.down


def following(publisher: RecordingPublisher) -> Callable[..., Any]:
    """Stands in for :class:`streams.replay.ReplayReader` over what ``publisher`` acknowledged.

    Same constructor; :meth:`run` applies the records of its topics in
    each partition's order, says it caught up, then follows new ones (a
    record published is read back a moment later, as from the broker).
    """

    class Following:
        def __init__(
            self,
            settings: object,
            topics: Sequence[str],
            *,
            name: str,
            apply: Callable[[Any], None],
            on_caught_up: Callable[[], None] | None = None,
        ) -> None:
            self.topics, self.name = set(topics), name
            self.apply, self.on_caught_up = apply, on_caught_up

        async def run(self) -> None:
            read: dict[Where, int] = {}
            caught_up = False
            while True:
                for where, log in list(publisher.log.items()):
                    if where[0] not in self.topics:
                        continue
                    for offset in range(read.get(where, 0), len(log)):
                        record = log[offset]
                        self.apply(
                            SimpleNamespace(
                                topic=where[0],
                                partition=where[1],
                                offset=offset,
                                key=record.key,
                                value=record.value,
                                headers=record.headers,
                            )
                        )
                    read[where] = len(log)
                if not caught_up and self.on_caught_up is not None:
                    self.on_caught_up()
                caught_up = True
                await asyncio.sleep(0.005)

    return Following


# --------------------------------------------------------------------------- producer


@dataclass
class ScriptedProducer:
    """Stands in for confluent-kafka's ``Producer``: keeps records, reports what a script says.

    ``script(n, record)`` (``n`` counting records from 1) returns the error
    the delivery report of the n-th record carries, or None to acknowledge
    it. As on the real producer, :meth:`produce` only queues: each report
    is handed to ``on_delivery`` exactly once, by :meth:`poll` or
    :meth:`flush`, with a message whose topic, partition and offset are
    set (offset :data:`~confluent_kafka.OFFSET_INVALID` when it failed).
    An acknowledged record gets the next offset of its partition, chosen
    from the key as :func:`streams.clients.producer_config`'s partitioner
    does (``partitions`` gives a topic's partition count, 1 when not given).
    """

    script: Callable[[int, dict[str, Any]], KafkaError | None] = lambda n, record: None
    partitions: dict[str, int] = field(default_factory=dict)
    produced: list[dict[str, Any]] = field(default_factory=list)
    """Every record produced (failed ones too): topic, value, key, headers."""
    log: dict[Where, list[dict[str, Any]]] = field(default_factory=dict)
    """Each partition's acknowledged records; the offset is the index."""
    _reports: list[tuple[OnDelivery | None, KafkaError | None, Message]] = field(
        default_factory=list
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """As librdkafka: records may be produced while another thread polls."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        partition: int = -1,
        headers: Any = None,
        on_delivery: OnDelivery | None = None,
    ) -> None:
        """Queue one record; its report waits for :meth:`poll` or :meth:`flush`."""
        with self._lock:
            self._produce(
                topic,
                value=value,
                key=key,
                partition=partition,
                headers=headers,
                on_delivery=on_delivery,
            )

    def _produce(
        self,
        topic: str,
        *,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        headers: Any,
        on_delivery: OnDelivery | None,
    ) -> None:
        record = {"topic": topic, "value": value, "key": key, "headers": headers}
        self.produced.append(record)
        error = self.script(len(self.produced), record)
        if partition < 0:
            partition = java_partition(key, self.partitions.get(topic, 1))
        if error is None:
            log = self.log.setdefault((topic, partition), [])
            log.append(record)
            offset = len(log) - 1
        else:
            offset = OFFSET_INVALID
        message = Message(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            headers=list(headers) if headers is not None else None,
            error=error,
        )
        self._reports.append((on_delivery, error, message))

    def poll(self, timeout: float = -1) -> int:
        """Hand out every queued report; how many there were."""
        with self._lock:
            reports, self._reports = self._reports, []
        for callback, error, message in reports:
            if callback is not None:
                callback(error, message)
        return len(reports)

    def flush(self, timeout: float = -1) -> int:
        """Hand out every queued report; 0 records are left waiting."""
        self.poll()
        return 0

    def __len__(self) -> int:
        """Reports not handed out yet."""
        return len(self._reports)

    def __bool__(self) -> bool:
        """True even when nothing is queued, as the real one (``producer or Producer(...)``)."""
        return True


# --------------------------------------------------------------------------- consumer


class ScriptedConsumer:
    """Stands in for confluent-kafka's ``Consumer``: hands out records, keeps commits and seeks.

    ``messages`` are the records on the broker (each partition's in offset
    order), and possibly error events, each handed out once in its place.
    As on the real consumer: the first :meth:`poll` after :meth:`subscribe`
    assigns every partition of the subscribed topics (calling ``on_assign``)
    and each partition is read from the group's committed offset, or from
    its first record; :meth:`poll` returns each partition's records in
    offset order and None when there is nothing left; :meth:`seek` moves
    one assigned partition only; :meth:`close` calls ``on_revoke`` with the
    assigned partitions. ``committed`` is the group's committed offsets
    (pass the same dict to two consumers of one group); ``partitions``
    gives a topic's partition count (else one more than the highest
    partition among ``messages``).

    Failure injection: :meth:`revoke` takes partitions away as a rebalance
    does; the next :meth:`poll` assigns them again.
    """

    def __init__(
        self,
        messages: Sequence[Message],
        *,
        committed: dict[Where, int] | None = None,
        partitions: Mapping[str, int] | None = None,
    ) -> None:
        self.messages = list(messages)
        self.committed: dict[Where, int] = committed if committed is not None else {}
        self.partitions: dict[str, int] = dict(partitions or {})
        self.commits: list[dict[Where, int]] = []
        self.seeks: list[tuple[str, int, int]] = []
        self.on_assign: Callable[..., None] | None = None
        self.on_revoke: Callable[..., None] | None = None
        self.on_lost: Callable[..., None] | None = None
        self.closed = False
        self._topics: list[str] = []
        self._positions: dict[Where, int] = {}
        """Assigned partitions and the offset each reads next."""
        self._errors_served: set[int] = set()

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[..., None] | None = None,
        on_revoke: Callable[..., None] | None = None,
        on_lost: Callable[..., None] | None = None,
    ) -> None:
        """Subscribe; the partitions are assigned by the next :meth:`poll`."""
        self._topics = list(topics)
        self.on_assign, self.on_revoke, self.on_lost = on_assign, on_revoke, on_lost

    def _partition_count(self, topic: str) -> int:
        if topic in self.partitions:
            return self.partitions[topic]
        seen = [m.partition() for m in self.messages if m.error() is None and m.topic() == topic]
        return max((p for p in seen if p is not None), default=0) + 1

    def _assign_new(self) -> None:
        wanted = [(t, p) for t in self._topics for p in range(self._partition_count(t))]
        new = [where for where in wanted if where not in self._positions]
        if not new:
            return
        for where in new:
            self._positions[where] = self.committed.get(where, 0)
        if self.on_assign is not None:
            self.on_assign(self, [TopicPartition(t, p) for t, p in new])

    def poll(self, timeout: float | None = None) -> Message | None:
        """The next record (or error event), or None when there is nothing to hand out."""
        if self.closed:
            raise RuntimeError("Consumer closed")
        self._assign_new()
        for index, message in enumerate(self.messages):
            if message.error() is not None:
                if index not in self._errors_served:
                    self._errors_served.add(index)
                    return message
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue
            position = self._positions.get((topic, partition))
            if position is not None and offset >= position:
                self._positions[(topic, partition)] = offset + 1
                return message
        return None

    def commit(
        self,
        message: Message | None = None,
        *,
        offsets: list[TopicPartition] | None = None,
        asynchronous: bool = True,
    ) -> list[TopicPartition]:
        """Commit ``offsets`` for the group (only synchronous commits of offsets are imitated)."""
        if message is not None or offsets is None or asynchronous:
            raise NotImplementedError("only commit(offsets=..., asynchronous=False) is imitated")
        if self.closed:
            raise RuntimeError("Consumer closed")
        positions = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        self.commits.append(positions)
        self.committed.update(positions)
        return [TopicPartition(t, p, o) for (t, p), o in positions.items()]

    def seek(self, partition: TopicPartition) -> None:
        """Read ``partition`` from its offset next; the other partitions are left alone."""
        if self.closed:
            raise RuntimeError("Consumer closed")
        where = (partition.topic, partition.partition)
        if where not in self._positions:
            raise KafkaException(
                KafkaError(KafkaError._UNKNOWN_PARTITION, "Local: Unknown partition")
            )
        self.seeks.append((partition.topic, partition.partition, partition.offset))
        self._positions[where] = partition.offset

    def revoke(self, partitions: list[TopicPartition]) -> None:
        """A rebalance takes ``partitions`` away (``on_revoke``); the next poll gives them back."""
        if self.on_revoke is not None:
            self.on_revoke(self, partitions)
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)

    def close(self) -> None:
        """Leave the group: ``on_revoke`` with what was assigned, then refuse every call."""
        if self.closed:
            return
        assigned = [TopicPartition(t, p) for t, p in self._positions]
        if assigned:
            self.revoke(assigned)
        self.closed = True


# --------------------------------------------------------------------------- SDK transport


@dataclass
class Recorder:
    """A :class:`~connectors.sdk.Transport` that keeps what it is given.

    Imitates :class:`~connectors.sdk.KafkaTransport` on the SDK's
    side of the interface: the id is checked as the real transports check
    it, each event "published" is appended to ``sent`` and its id returned.
    Which topic an event may go to is not imitated (the HTTP transport
    leaves that to the intake API).
    """

    sent: list[Outgoing] = field(default_factory=list)
    closed: bool = False

    def publish(self, event: Event, *, event_id: str, source: str) -> str:
        """Keep one event; its id."""
        return self.publish_many([Outgoing(event, event_id, source)])[0]

    def publish_many(self, items: Sequence[Outgoing]) -> list[str]:
        """Keep several events, in order; their ids (nothing is kept if one id is invalid)."""
        for item in items:
            check_event_id(item.event_id)
        self.sent.extend(items)
        return [item.event_id for item in items]

    async def publish_async(self, event: Event, *, event_id: str, source: str) -> str:
        """:meth:`publish`."""
        return self.publish(event, event_id=event_id, source=source)

    def close(self) -> None:
        """Remember that it was closed."""
        self.closed = True


def key_directory(publisher: RecordingPublisher) -> KeyDirectory:
    """The intake's key directory over what ``publisher`` acknowledged, keys in memory."""
    return KeyDirectory(
        KafkaSettings(topic_namespace="safepassage"), MemoryKeystore(), reader=following(publisher)
    )

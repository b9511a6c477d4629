"""The one acknowledged producer: a record is "published" once the broker acked it (``acks=all``).

Every Kafka writer (the intake, the SDKs' Kafka transport, the webhook
connector, clock ticks) uses it, over confluent-kafka's idempotent producer
(:func:`streams.clients.producer_config`). The asyncio face
(:meth:`AckedProducer.submit`) returns a future per record at once, so a
batch is enqueued in order, and a daemon thread settles the futures on
their loop; the synchronous face (:meth:`AckedProducer.send_in_key_order`)
keeps only the oldest unacknowledged record of each key in flight, so a
failed record is never overtaken by a later one of its key. librdkafka's
"all brokers down" marks it :attr:`~AckedProducer.down`, and a fatal error
(the idempotent producer lost its sequence) replaces the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.clients import producer_config
from streams.exceptions import StreamsError
from streams.logs import get_logger
from streams.settings import KafkaSettings

__all__ = [
    "TRANSIENT_KAFKA_ERRORS",
    "AckedProducer",
    "Delivery",
    "KeyOrderOutcome",
    "OutRecord",
    "ProduceError",
    "ProducerLike",
    "kafka_error_is_transient",
]

log = get_logger(__name__)

Headers = Sequence[tuple[str, str | bytes | None]]

TRANSIENT_KAFKA_ERRORS = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._QUEUE_FULL,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    }
)
"""Kafka errors worth sending the record again for, even when librdkafka does not flag them.

``_MSG_TIMED_OUT`` is final for librdkafka but only means "no answer in time":
sending the record again (under the same CloudEvents id) is safe.
"""


def kafka_error_is_transient(error: KafkaError) -> bool:
    """Whether sending the same record again may succeed (never after a fatal error)."""
    return not error.fatal() and (bool(error.retriable()) or error.code() in TRANSIENT_KAFKA_ERRORS)


class ProduceError(StreamsError):
    """The producer refused a record, or the broker did not acknowledge it (``error``)."""

    def __init__(self, message: str, error: KafkaError) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class Delivery:
    """Where the broker put an acknowledged record."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class OutRecord:
    """One record to produce; ``partition`` None lets the partitioner choose by key."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    partition: int | None = None

    @property
    def order_key(self) -> Hashable:
        """Records of one order key land on one partition and must keep their order."""
        return (self.topic, self.partition, self.key)


class ProducerLike(Protocol):
    """The part of confluent-kafka's ``Producer`` used here (a test double can supply it)."""

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...


Report = Callable[[KafkaError | None, Delivery | None], None]


@dataclass
class _InFlight:
    index: int
    record: OutRecord
    done: bool = False
    error: KafkaError | None = None
    delivery: Delivery | None = None

    def report(self, error: KafkaError | None, delivery: Delivery | None) -> None:
        self.error, self.delivery, self.done = error, delivery, True


@dataclass
class KeyOrderOutcome:
    """What :meth:`AckedProducer.send_in_key_order` achieved, by index of the records given."""

    delivered: dict[int, Delivery] = field(default_factory=dict)
    left: list[int] = field(default_factory=list)
    """Records not acknowledged, in the order given (a key's later records after its failed one)."""
    errors: dict[int, KafkaError] = field(default_factory=dict)
    """Why each failed record failed (the later records of its key were not sent)."""
    final: KafkaError | None = None
    """The first error :meth:`~AckedProducer.send_in_key_order` was told is final, if any."""


class AckedProducer:
    """An idempotent ``acks=all`` producer whose callers learn of each acknowledgement.

    The sync face may be used from several threads, the async face from one event loop.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        name: str = "producer",
        overrides: Mapping[str, Any] | None = None,
        producer: ProducerLike | None = None,
    ) -> None:
        """``name`` prefixes the log events; nothing connects before the first record or probe."""
        self.name = name
        self._config = producer_config(
            settings, **{"error_cb": self._on_error, **dict(overrides or {})}
        )
        self._owned = producer is None
        self._producer: ProducerLike = producer if producer is not None else Producer(self._config)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fatal: KafkaError | None = None
        self._logged: dict[int, float] = {}
        self.down = False
        """True after librdkafka reported every broker down, until a record is acknowledged."""

    def _on_error(self, error: KafkaError) -> None:
        """Remember outages and fatal errors; log each kind at most every 10 s.

        librdkafka repeats a connection error many times a second while a broker is down.
        """
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.down = True
        if error.fatal():
            self._fatal = error
        now = time.monotonic()
        if error.fatal() or now - self._logged.get(error.code(), -math.inf) >= 10.0:
            self._logged[error.code()] = now
            log.warning(f"{self.name}.kafka_error", code=error.name(), fatal=error.fatal())

    def probe(self, timeout_s: float) -> bool:
        """Ask the cluster for metadata (blocking): is a broker reachable?"""
        list_topics = getattr(self._producer, "list_topics", None)
        if list_topics is None:
            return not self.down
        try:
            metadata = list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        ok = bool(metadata.brokers)
        if ok:
            self.down = False
        return ok

    def produce(self, record: OutRecord, on_report: Report) -> None:
        """Enqueue ``record``; ``on_report`` gets its outcome from whoever polls.

        :class:`ProduceError` when the producer refuses it at once (queue full, too large...).
        """

        def on_delivery(error: KafkaError | None, message: Any) -> None:
            if error is None:
                self.down = False
                on_report(None, Delivery(message.topic(), message.partition(), message.offset()))
            else:
                on_report(error, None)

        extra: dict[str, Any] = {}
        if record.partition is not None:
            extra["partition"] = record.partition
        try:
            self._producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                on_delivery=on_delivery,
                **extra,
            )
        except BufferError:
            error = KafkaError(KafkaError._QUEUE_FULL, "local producer queue full")
            raise ProduceError("the producer's queue is full", error) from None
        except KafkaException as exc:
            first = exc.args[0] if exc.args else None
            refusal = (
                first
                if isinstance(first, KafkaError)
                else KafkaError(KafkaError._FAIL, type(exc).__name__)
            )
            raise ProduceError(
                f"the producer refused the record ({refusal.name()})", refusal
            ) from exc

    def flush(self, timeout_s: float) -> int:
        """Deliver what is queued, up to ``timeout_s``; how many records are left."""
        return self._producer.flush(timeout_s)

    def start(self) -> None:
        """Start the daemon thread that serves delivery reports (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll_forever, name=f"{self.name}-kafka-poll", daemon=True
        )
        self._thread.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
            if self._fatal is not None and self._owned:
                self._replace()

    def _replace(self) -> None:
        """After a fatal error the producer refuses everything: fail its records, start anew."""
        old = self._producer
        log.error(
            f"{self.name}.producer_replaced", code=self._fatal.name() if self._fatal else None
        )
        self._fatal = None
        self._producer = Producer(self._config)
        purge = getattr(old, "purge", None)
        if purge is not None:
            purge()
        old.poll(0)

    def submit(
        self,
        record: OutRecord,
        *,
        failure: Callable[[KafkaError], BaseException] | None = None,
    ) -> asyncio.Future[Delivery]:
        """Enqueue ``record`` (on the event loop); the future resolves on the broker's ack.

        An unacknowledged record fails its future with ``failure(error)`` (a
        :class:`ProduceError` by default); a refused one raises :class:`ProduceError`
        here. The reports arrive once :meth:`start` runs the poll thread.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()
        make_error = failure or _not_acknowledged

        def settle(error: KafkaError | None, delivery: Delivery | None) -> None:
            if future.done():  # the caller stopped waiting (timeout)
                return
            if delivery is not None:
                future.set_result(delivery)
            else:
                assert error is not None  # noqa: S101 - a report has one or the other
                future.set_exception(make_error(error))

        def on_report(error: KafkaError | None, delivery: Delivery | None) -> None:
            # RuntimeError: the loop closed during shutdown; nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, error, delivery)

        self.produce(record, on_report)
        return future

    async def send(self, record: OutRecord) -> Delivery:
        """Produce ``record`` and wait for the broker's acknowledgement (:class:`ProduceError`)."""
        return await self.submit(record)

    async def aclose(self, timeout_s: float = 10.0) -> int:
        """:meth:`close` without blocking the event loop."""
        return await asyncio.to_thread(self.close, timeout_s)

    def close(self, timeout_s: float = 10.0) -> int:
        """Stop the poll thread, deliver what is queued (up to ``timeout_s``); records left."""
        thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join()
            self._thread = None
        return self._producer.flush(timeout_s)

    def send_in_key_order(
        self,
        records: Sequence[OutRecord],
        *,
        timeout_s: float,
        is_final: Callable[[KafkaError], bool] = lambda _: False,
    ) -> KeyOrderOutcome:
        """Send ``records`` and wait for their reports (up to ``timeout_s``), in key order.

        Keys are in flight together, a key's records one after the other. A
        failed record stops its key (its later records are ``left``); an error
        ``is_final`` stops sending altogether, once the records in flight report.
        """
        queues: dict[Hashable, deque[_InFlight]] = {}
        for index, record in enumerate(records):
            queues.setdefault(record.order_key, deque()).append(_InFlight(index, record))
        outcome = KeyOrderOutcome()
        in_flight: list[_InFlight] = []
        deadline = time.monotonic() + timeout_s

        def send_next(key: Hashable) -> None:
            queue = queues[key]
            if not queue:
                return
            entry = queue[0]
            try:
                self.produce(entry.record, entry.report)
            except ProduceError as refused:
                if refused.error.code() == KafkaError._QUEUE_FULL:
                    self._producer.poll(0.5)  # the local queue is full: let it drain once
                    try:
                        self.produce(entry.record, entry.report)
                    except ProduceError as again:
                        entry.report(again.error, None)
                else:
                    entry.report(refused.error, None)
            in_flight.append(entry)

        for key in list(queues):
            send_next(key)
        while in_flight:
            if any(not entry.done for entry in in_flight):
                self._producer.poll(0.05)
            for entry in [e for e in in_flight if e.done]:
                in_flight.remove(entry)
                key = entry.record.order_key
                if entry.error is None and entry.delivery is not None:
                    queues[key].popleft()
                    outcome.delivered[entry.index] = entry.delivery
                    if outcome.final is None:
                        send_next(key)
                    continue
                assert entry.error is not None  # noqa: S101 - a report has one or the other
                outcome.errors[entry.index] = entry.error
                if outcome.final is None and is_final(entry.error):
                    outcome.final = entry.error
            if in_flight and time.monotonic() > deadline:
                break
        outcome.left = sorted(entry.index for queue in queues.values() for entry in queue)
        timed_out = KafkaError(KafkaError._MSG_TIMED_OUT, "no delivery report in time")
        for entry in in_flight:  # still in flight: no report yet, so no error recorded either
            outcome.errors[entry.index] = timed_out
        return outcome


def _not_acknowledged(error: KafkaError) -> ProduceError:
    return ProduceError(f"the broker did not acknowledge the record ({error.name()})", error)

"""The Kafka edge of the intake: enqueue a record, learn when the broker acknowledged it.

:class:`Publisher` is the interface the service needs, so that unit tests can
pass an in-process recorder. :class:`KafkaPublisher` is the real one
(confluent-kafka, ``acks=all``, idempotent producer): delivery reports are
settled onto the event loop from a poll thread, so that "202 means on Kafka"
holds without blocking the loop, and a known broker outage answers 503 at
once instead of waiting out the publish timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.exceptions import BrokerUnavailableError
from streams.clients import producer_config
from streams.codec import EncodedRecord
from streams.logs import get_logger
from streams.settings import KafkaSettings

__all__ = ["Delivery", "KafkaPublisher", "Publisher"]

_log = get_logger("connectors.intake")


class _Throttle(logging.Filter):
    """Lets each kind of librdkafka line through once per ``interval_s``.

    While a broker is down librdkafka logs a failed connection on every
    reconnect (about once a second here); one line of each kind is enough.
    The kind is the level and the first word (librdkafka's facility, e.g. FAIL).
    """

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last: dict[tuple[int, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.levelno, record.getMessage().split(" ", 1)[0])
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) < self._interval_s:
            return False
        self._last[kind] = now
        return True


_librdkafka_log = logging.getLogger("connectors.intake.librdkafka")
_librdkafka_log.addFilter(_Throttle())


@dataclass(frozen=True)
class Delivery:
    """Where the broker put an acknowledged record."""

    topic: str
    partition: int
    offset: int


class Publisher(Protocol):
    """What the intake needs from Kafka: enqueue a record, learn when it is acknowledged.

    :meth:`submit` returns at once (so records of a batch keep their order);
    the awaitable resolves with the :class:`Delivery` once the broker
    acknowledged, or raises :class:`BrokerUnavailableError`.
    """

    async def start(self) -> None:
        """Connect (called once the event loop runs)."""

    async def close(self) -> None:
        """Deliver what is queued (within a bound) and disconnect."""

    def submit(self, record: EncodedRecord) -> Awaitable[Delivery]:
        """Enqueue ``record``; raise :class:`BrokerUnavailableError` if it cannot even queue."""
        ...

    async def ready(self) -> bool:
        """False when the broker is known to be down right now (answer 503 without trying)."""
        ...

    async def probe(self) -> bool:
        """Ask the broker for metadata: is it reachable? (cheap, cached briefly)."""
        ...


def _settle(future: asyncio.Future[Delivery], error: KafkaError | None, where: Delivery) -> None:
    """Resolve a delivery future on the event loop (it may have timed out meanwhile)."""
    if future.done():
        return
    if error is None:
        future.set_result(where)
    else:
        future.set_exception(
            BrokerUnavailableError(f"the broker did not acknowledge the record ({error.name()})")
        )


class KafkaPublisher:
    """:class:`Publisher` over confluent-kafka with ``acks=all`` and idempotence.

    A daemon thread polls the producer, so delivery reports arrive while the
    event loop stays free; each report settles its asyncio future through
    ``call_soon_threadsafe``. ``message.timeout.ms`` is the publish timeout,
    so librdkafka itself reports a record it could not deliver in time.

    "All brokers down" reports from librdkafka mark the broker as down:
    requests then get 503 at once, after one metadata probe per second at
    most, instead of each waiting out the timeout. A fatal producer error
    (e.g. the idempotent producer's sequence is broken) replaces the producer.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout_s: float,
        probe_timeout_s: float = 2.0,
        probe_ttl_s: float = 1.0,
    ) -> None:
        """Prepare the configuration; nothing connects before :meth:`start`."""
        self._config = producer_config(
            kafka,
            **{
                "client.id": f"{kafka.client_id}-intake",
                "message.timeout.ms": max(1, int(timeout_s * 1000)),
                # Never create a topic by writing to it: only provisioning does that.
                "allow.auto.create.topics": False,
                # Come back within a second of the broker, not after ten.
                "reconnect.backoff.max.ms": 1000,
                "error_cb": self._on_error,
                "logger": _librdkafka_log,
            },
        )
        self._probe_timeout_s = probe_timeout_s
        self._probe_ttl_s = probe_ttl_s
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._down = False
        self._fatal: KafkaError | None = None
        self._logged: dict[int, float] = {}
        self._probe_lock = asyncio.Lock()
        self._probed_at = -math.inf
        self._probe_ok = False

    async def start(self) -> None:
        """Create the producer and start the poll thread."""
        if self._producer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll_forever, name="intake-kafka-poll", daemon=True
        )
        self._thread.start()

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's global errors (poll thread): remember outages and fatal errors.

        librdkafka repeats a connection error on every retry (many a second
        while a broker is down), so each kind is logged at most every 10 s.
        """
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._down = True
        if error.fatal():
            self._fatal = error
        now = time.monotonic()
        if error.fatal() or now - self._logged.get(error.code(), -math.inf) >= 10.0:
            self._logged[error.code()] = now
            _log.warning("intake.kafka_error", code=error.name(), fatal=error.fatal())

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            producer = self._producer
            if producer is None:
                return
            producer.poll(0.1)
            if self._fatal is not None:
                self._replace_producer()

    def _replace_producer(self) -> None:
        """After a fatal error the producer refuses everything; fail its records, start anew."""
        old = self._producer
        _log.error("intake.producer_replaced", code=self._fatal.name() if self._fatal else None)
        self._fatal = None
        self._producer = Producer(self._config)
        if old is not None:
            old.purge()
            old.poll(0)

    def submit(self, record: EncodedRecord) -> asyncio.Future[Delivery]:
        """Enqueue ``record``; the future resolves on the broker's ack."""
        loop, producer = self._loop, self._producer
        if loop is None or producer is None:
            raise BrokerUnavailableError("the publisher is not started")
        future: asyncio.Future[Delivery] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Any) -> None:
            if error is None:
                self._down = False
            where = Delivery(message.topic(), message.partition(), message.offset())
            # RuntimeError: the loop closed during shutdown; nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, error, where)

        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        try:
            producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=headers,
                on_delivery=on_delivery,
            )
        except BufferError:
            raise BrokerUnavailableError("the producer's queue is full") from None
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            name = error.name() if isinstance(error, KafkaError) else type(exc).__name__
            raise BrokerUnavailableError(f"the record could not be queued ({name})") from None
        return future

    async def ready(self) -> bool:
        """True unless librdkafka reported every broker down and a probe confirms it."""
        if not self._down:
            return True
        return await self.probe()

    async def probe(self) -> bool:
        """One metadata request (in a thread), at most once per ``probe_ttl_s``."""
        async with self._probe_lock:
            if time.monotonic() - self._probed_at < self._probe_ttl_s:
                return self._probe_ok
            ok = await asyncio.to_thread(self._metadata_ok)
            self._probed_at, self._probe_ok = time.monotonic(), ok
            if ok:
                self._down = False
            return ok

    def _metadata_ok(self) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            metadata = producer.list_topics(timeout=self._probe_timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop polling, deliver what is queued (up to ``timeout_s``), let go of the producer."""
        producer, thread = self._producer, self._thread
        if producer is None:
            return
        self._stop.set()
        if thread is not None:
            await asyncio.to_thread(thread.join)
        remaining = await asyncio.to_thread(producer.flush, timeout_s)
        if remaining:
            _log.warning("intake.unflushed_records", count=remaining)
        self._producer = None

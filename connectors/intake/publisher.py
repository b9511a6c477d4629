"""The Kafka edge of the intake: enqueue a record, learn when the broker acknowledged it.

:class:`Publisher` is the interface (unit tests pass an in-process recorder);
:class:`KafkaPublisher` is the asyncio face of the one acknowledged producer,
:class:`streams.producing.AckedProducer`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from typing import Protocol

from confluent_kafka import KafkaError

from connectors.exceptions import BrokerUnavailableError
from streams.codec import EncodedRecord
from streams.logs import get_logger
from streams.producing import AckedProducer, Delivery, OutRecord, ProduceError
from streams.settings import KafkaSettings

__all__ = ["Delivery", "KafkaPublisher", "Publisher"]

_log = get_logger("connectors.intake")


class _Throttle(logging.Filter):
    """Lets each kind of librdkafka line (level and facility) through once per ``interval_s``.

    While a broker is down librdkafka logs a failed connection on every
    reconnect (about once a second here); one line of each kind is enough.
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


def _not_acknowledged(error: KafkaError) -> BrokerUnavailableError:
    return BrokerUnavailableError(f"the broker did not acknowledge the record ({error.name()})")


class KafkaPublisher:
    """:class:`Publisher` over :class:`~streams.producing.AckedProducer`.

    ``message.timeout.ms`` is the publish timeout, so librdkafka itself
    reports a record it could not deliver in time. While every broker is
    down, requests get 503 at once (after one metadata probe per second at
    most) instead of each waiting out the timeout.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout_s: float,
        probe_timeout_s: float = 2.0,
        probe_ttl_s: float = 1.0,
    ) -> None:
        self._kafka = kafka
        self._overrides = {
            "client.id": f"{kafka.client_id}-intake",
            "message.timeout.ms": max(1, int(timeout_s * 1000)),
            # Never create a topic by writing to it: only provisioning does that.
            "allow.auto.create.topics": False,
            # Come back within a second of the broker, not after ten.
            "reconnect.backoff.max.ms": 1000,
            "logger": _librdkafka_log,
        }
        self._probe_timeout_s = probe_timeout_s
        self._probe_ttl_s = probe_ttl_s
        self._producer: AckedProducer | None = None
        self._probe_lock = asyncio.Lock()
        self._probed_at = -math.inf
        self._probe_ok = False

    async def start(self) -> None:
        if self._producer is not None:
            return
        self._producer = AckedProducer(self._kafka, name="intake", overrides=self._overrides)
        self._producer.start()

    def submit(self, record: EncodedRecord) -> asyncio.Future[Delivery]:
        producer = self._producer
        if producer is None:
            raise BrokerUnavailableError("the publisher is not started")
        out = OutRecord(record.topic, record.key, record.value, tuple(record.headers))
        try:
            return producer.submit(out, failure=_not_acknowledged)
        except ProduceError as exc:
            if exc.error.code() == KafkaError._QUEUE_FULL:
                raise BrokerUnavailableError("the producer's queue is full") from None
            raise BrokerUnavailableError(
                f"the record could not be queued ({exc.error.name()})"
            ) from None

    async def ready(self) -> bool:
        """True unless librdkafka reported every broker down and a probe confirms it."""
        if self._producer is None or not self._producer.down:
            return True
        return await self.probe()

    async def probe(self) -> bool:
        """One metadata request (in a thread), at most once per ``probe_ttl_s``."""
        async with self._probe_lock:
            if time.monotonic() - self._probed_at < self._probe_ttl_s:
                return self._probe_ok
            producer = self._producer
            ok = producer is not None and await asyncio.to_thread(
                producer.probe, self._probe_timeout_s
            )
            self._probed_at, self._probe_ok = time.monotonic(), ok
            return ok

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop polling, deliver what is queued (up to ``timeout_s``), let go of the producer."""
        producer = self._producer
        if producer is None:
            return
        remaining = await producer.aclose(timeout_s)
        if remaining:
            _log.warning("intake.unflushed_records", count=remaining)
        self._producer = None

"""The one relay loop: read, write each record (or its dead letter) elsewhere, commit the copied.

Two relays carry records across the trust boundary on the broker: the
offers relay (:mod:`connectors.offers_relay`) out to each provider's own
topic, the inbound relay (:mod:`connectors.inbound_relay`) in from each
party's own topic. Both copy a record byte for byte (key, value, headers)
and commit an input offset only once its copy, or its dead letter, is
acknowledged: at least once, and every reader recognises copies by their
CloudEvents id. A record that cannot be relayed is dead-lettered with the
reason, never skipped.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message

from schemas.models import MODELS
from streams.cloudevents import CE_TYPE
from streams.consumer_loop import ConsumerLoop
from streams.deadletter import DeadLetter
from streams.logs import get_logger
from streams.metrics import DEAD_LETTERS, EVENTS_IN, EVENTS_OUT, serve_probes
from streams.offsets import Partition
from streams.producing import AckedProducer, Delivery, OutRecord
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["Relay", "RelayStats", "copy_of", "run_until_signalled"]

log = get_logger(__name__)

_BATCH = 500


@dataclass
class RelayStats:
    """What a relay did since it started."""

    relayed: int = 0
    dead_lettered: int = 0
    topics_created: int = 0


def copy_of(message: Message, topic: str) -> OutRecord:
    """The record byte for byte (key, value, headers), bound for ``topic``."""
    headers = message.headers()  # a consumed record's are a list (or None)
    return OutRecord(
        topic, message.key(), message.value(), headers if isinstance(headers, list) else ()
    )


class Relay(abc.ABC):
    """A consumer of ``sources`` in ``group_id`` and one acknowledged producer; see the module."""

    name: str = "relay"
    """Prefix of the log events and the producer's name."""
    service: str = "relay"
    """Its name among the platform's processes (:data:`streams.metrics.DEFAULT_PORTS`)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        group_id: str,
        sources: Sequence[str],
        poll_interval_s: float = 0.2,
        consumer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._kafka = kafka
        self._topics = Topics.of(kafka)
        self.group_id = group_id
        self.sources = list(sources)
        self.poll_interval_s = poll_interval_s
        self._overrides = dict(consumer_overrides or {})
        self.stats = RelayStats()
        self.running = False
        """True while the relay consumes (its readiness)."""

    @abc.abstractmethod
    async def route(self, message: Message, where: Partition, offset: int) -> OutRecord:
        """The copy of one record, or its dead letter (:meth:`dead_letter`)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; a copy not acknowledged stops the relay (restart it).

        What was copied is committed before the stop; a batch cut short is
        read again by the next run.
        """
        producer = AckedProducer(self._kafka, name=self.name)
        producer.start()
        loop = ConsumerLoop(
            self._kafka,
            self.group_id,
            self.sources,
            name=self.name,
            overrides=self._overrides,
            on_error=self._log_consumer_error,
        )
        log.info(f"{self.name}.started", sources=self.sources)
        self.running = True
        try:
            while not stop.is_set():
                messages = loop.consume(_BATCH, timeout_s=0)
                if messages:
                    await self._relay(messages, loop, producer)
                    loop.commit(asynchronous=True)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_interval_s)
            loop.commit()
        finally:
            self.running = False
            loop.close()
            await producer.aclose(10)
            log.info(f"{self.name}.stopped", **vars(self.stats))

    async def _relay(
        self, messages: list[Message], loop: ConsumerLoop, producer: AckedProducer
    ) -> None:
        """Copy one batch and wait for every copy; finish the offsets of what was copied."""
        pending: list[tuple[Partition, int, int, str, Awaitable[Delivery]]] = []
        for message in messages:
            topic, index, offset = message.topic(), message.partition(), message.offset()
            if topic is None or index is None or offset is None:
                continue
            where = Partition(topic, index)
            generation = loop.tracker.track(where, offset)
            kind = _event_type(message)
            EVENTS_IN.labels(type=kind).inc()
            record = await self.route(message, where, offset)
            pending.append((where, offset, generation, kind, producer.submit(record)))
        for where, offset, generation, kind, copied in pending:
            await copied  # ProduceError: nothing after it is committed; the relay stops
            loop.tracker.finish(where, offset, generation)
            EVENTS_OUT.labels(type=kind).inc()

    def dead_letter(
        self, message: Message, where: Partition, offset: int, error: BaseException
    ) -> OutRecord:
        """The dead letter of a record that cannot be relayed, with the reason."""
        self.stats.dead_lettered += 1
        DEAD_LETTERS.labels(reason=type(error).__name__).inc()
        log.warning(
            f"{self.name}.dead_lettered",
            topic=where.topic,
            partition=where.partition,
            offset=offset,
            reason=type(error).__name__,
        )
        letter = DeadLetter.of(
            key=message.key(),
            value=message.value(),
            headers=message.headers(),
            error=error,
            topic=where.topic,
            partition=where.partition,
            offset=offset,
        )
        return OutRecord(self._topics.deadletter, letter.key, letter.value, letter.headers)

    def _log_consumer_error(self, error: KafkaError) -> None:
        """Consumer errors are logged; librdkafka recovers from them by itself."""
        log.warning(f"{self.name}.consumer_error", error=error.name())


def run_until_signalled(relay: Relay) -> RelayStats:
    """Run ``relay`` in the foreground until SIGINT or SIGTERM (the commands' way)."""

    async def until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await relay.run(stop)

    probes = serve_probes(relay.service, ready=lambda: relay.running)
    try:
        asyncio.run(until_signalled())
    finally:
        probes.close()
    return relay.stats


def _event_type(message: Message) -> str:
    """The record's CloudEvents type as a metric label; 'undecodable' when it has none.

    Only a type of the catalog is a label: a header a party wrote is not a
    closed vocabulary, and a label must never carry what a caller typed.
    """
    headers = message.headers() or []
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        if name == CE_TYPE and value is not None:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return text if text in MODELS else "unknown"
    return "undecodable"

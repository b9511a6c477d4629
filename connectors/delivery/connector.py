"""The connector's run loop: read the referral topics, queue per provider, commit what is finished.

:class:`WebhookDelivery` owns the consumer loop (:mod:`streams.consumer_loop`),
one queue and worker per configured provider, and the acknowledged producer
of dead letters and reports. A record is finished, and its offset may be
committed, once the :class:`~connectors.delivery.sender.RecordSender` has
delivered it or dead-lettered and reported it; records keyed to a provider
not in the webhooks file are finished at once as skipped. Reading pauses
while ``max_buffered`` records are unfinished, so a dead provider cannot
make the connector buffer without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

import httpx
from confluent_kafka import KafkaError, Message

from connectors.delivery.jobs import DeliveryStats, Job
from connectors.delivery.sender import RecordSender
from connectors.delivery.settings import ProviderEndpoint, WebhookSettings
from connectors.delivery.undelivered import SOURCE
from streams.codec import Codec, Decoded
from streams.consumer_loop import ConsumerLoop
from streams.contract import provider_of
from streams.logs import bind_record, get_logger
from streams.offsets import OffsetTracker, Partition
from streams.producing import AckedProducer
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["WebhookDelivery"]

log = get_logger(__name__)

_BATCH = 500


class WebhookDelivery:
    """The delivery connector: one consumer, one worker per provider, one HTTP client.

    Everything runs on one event loop. The consumer is polled without
    blocking from the loop itself, so rebalance and commit callbacks run on
    the loop too, and delivery reports are settled onto it: no locks.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: WebhookSettings,
        providers: Mapping[UUID, ProviderEndpoint],
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Configure the connector; nothing connects before :meth:`run`.

        ``clock`` (monotonic) measures horizons, ``wall`` (Unix seconds)
        stamps signatures and reports, ``sleep`` waits out backoffs.
        """
        self._kafka = kafka
        self._settings = settings
        self._providers = dict(providers)
        self._client = client
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._codec = Codec(kafka, source=SOURCE)
        topics = Topics.of(kafka)
        self._topics = list(topics.all_referrals)
        self._deadletter_topic = topics.deadletter
        self._report_topic = topics.provider_responses  # the router's input
        self._loop: ConsumerLoop | None = None
        self.running = False
        """True while the connector consumes (its readiness)."""
        self._queues: dict[UUID, asyncio.Queue[Job]] = {}
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._producer: AckedProducer | None = None
        self._paused = False
        self.stats = DeliveryStats()

    # ----------------------------------------------------------------- run loop

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then commit what is finished and close.

        Deliveries still in progress at the stop are abandoned uncommitted:
        the next run delivers them again under the same delivery ids.
        """
        own_client = self._client is None
        client = self._client or httpx.AsyncClient(
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self._settings.max_in_flight),
            headers={"User-Agent": "SafePassage-Webhooks/1"},
        )
        self._client = client
        producer = self._producer = AckedProducer(self._kafka, name="webhooks")
        producer.start()
        loop = self._loop = ConsumerLoop(
            self._kafka,
            self._settings.group_id,
            self._topics,
            name="webhooks",
            on_error=_log_consumer_error,
        )
        self._queues = {provider: asyncio.Queue() for provider in self._providers}
        sender = RecordSender(
            settings=self._settings,
            providers=self._providers,
            codec=self._codec,
            client=client,
            producer=producer,
            slots=self._slots,
            stats=self.stats,
            deadletter_topic=self._deadletter_topic,
            report_topic=self._report_topic,
            clock=self._clock,
            wall=self._wall,
            sleep=self._sleep,
        )
        workers = [
            asyncio.create_task(self._serve(provider, sender), name=f"webhooks-{provider}")
            for provider in self._providers
        ]
        log.info("webhooks.started", providers=len(self._providers), topics=self._topics)
        self.running = True
        try:
            await self._poll(loop, stop, workers)
        finally:
            self.running = False
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            loop.close()
            await producer.aclose(10)
            self._producer = None
            if own_client:
                await client.aclose()
                self._client = None
            log.info("webhooks.stopped", **vars(self.stats))

    @property
    def _tracker(self) -> OffsetTracker:
        if self._loop is None:
            raise RuntimeError("the connector is not running")
        return self._loop.tracker

    async def _poll(
        self, loop: ConsumerLoop, stop: asyncio.Event, workers: list[asyncio.Task[None]]
    ) -> None:
        """Read, route, commit, pace; a worker that died takes the connector down with it."""
        while not stop.is_set():
            room = max(1, min(_BATCH, self._settings.max_buffered - loop.tracker.pending))
            messages = loop.consume(room, timeout_s=0)
            for message in messages:
                self._accept(message)
            loop.commit(asynchronous=True)
            self._pace(loop)
            for worker in workers:
                if worker.done():
                    worker.result()  # re-raises what killed it
                    raise RuntimeError(f"worker {worker.get_name()} stopped")
            if not messages:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.poll_interval_s)
            else:
                await asyncio.sleep(0)

    def _pace(self, loop: ConsumerLoop) -> None:
        """Pause reading while too many records are unfinished; resume at half."""
        pending = loop.tracker.pending
        if pending >= self._settings.max_buffered:
            if not self._paused:
                log.warning("webhooks.paused", pending=pending)
            self._paused = True
            loop.pause_all()  # again each time: new partitions too
        elif self._paused and pending <= self._settings.max_buffered // 2:
            self._paused = False
            loop.resume_all()
            log.info("webhooks.resumed", pending=pending)

    # ----------------------------------------------------------------- routing

    def _provider_of(self, key: bytes | None) -> UUID | None:
        """The configured provider a record is keyed to, or None (skip it)."""
        provider = provider_of(key)
        return provider if provider in self._providers else None

    def _accept(self, message: Message) -> None:
        """Track a record and queue it for its provider's worker, or finish it as skipped."""
        topic, index, offset = message.topic(), message.partition(), message.offset()
        if topic is None or index is None or offset is None:
            return
        partition = Partition(topic, index)
        generation = self._tracker.track(partition, offset)
        provider = self._provider_of(message.key())
        if provider is None:
            self._tracker.finish(partition, offset, generation)
            self.stats.skipped += 1
            return
        decoded: Decoded | None = None
        failure: Exception | None = None
        try:
            decoded = self._codec.decode(
                message.value(), message.headers(), topic=topic, key=message.key()
            )
        except Exception as exc:  # every decode failure is dead-lettered, by the worker
            failure = exc
        self._queues[provider].put_nowait(
            Job(
                partition=partition,
                offset=offset,
                generation=generation,
                provider_id=provider,
                key=message.key(),
                value=message.value(),
                headers=message.headers(),
                deadline=self._clock() + self._settings.max_elapsed_s,
                decoded=decoded,
                error=failure,
            )
        )

    # ----------------------------------------------------------------- workers

    async def _serve(self, provider: UUID, sender: RecordSender) -> None:
        """One provider's worker: its records in order, each finished before the next."""
        queue = self._queues[provider]
        while True:
            job = await queue.get()
            if self._tracker.owns(job.partition, job.generation):
                with bind_record(
                    topic=job.partition.topic,
                    partition=job.partition.partition,
                    offset=job.offset,
                    provider_id=str(provider),
                ):
                    await sender.handle(job)
            self._tracker.finish(job.partition, job.offset, job.generation)


def _log_consumer_error(error: KafkaError) -> None:
    """Consumer errors are logged; librdkafka recovers from them by itself."""
    log.warning("webhooks.consumer_error", error=error.name())

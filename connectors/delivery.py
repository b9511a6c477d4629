"""Webhook delivery: offers and cancellations to providers that do not read Kafka.

``safepassage deliver webhooks`` reads every referral topic
(``<ns>.referrals.<category>.v1``, keyed by provider id) in a consumer group
of its own and POSTs each record addressed to a provider listed in the
webhooks file as a signed JSON webhook (:mod:`connectors.webhooks`).
Providers not in the file are skipped: they consume Kafka themselves.

Guarantees, and how they are kept:

* **At least once.** Offsets are committed by hand, and only up to the
  lowest offset of each partition that is not finished yet
  (:class:`OffsetTracker`). A record is finished when the provider answered
  2xx, or when delivery was given up *and* the record is in the dead-letter
  topic and a ``referral.escalated`` is on the escalation topic. After a
  crash, unfinished records are delivered again under the same delivery
  id, which providers deduplicate on.
* **Nothing silently dropped.** A delivery given up (a status that is not
  retried, or no 2xx within ``max_elapsed_s``) is dead-lettered with the
  project's reason headers and escalated to the case coordinator (level
  2, ``DELIVERY_FAILED``); a record that does not decode is dead-lettered.
* **One provider cannot hold up another.** Each provider has its own queue
  and worker (its deliveries stay in order); a worker waiting out a
  backoff holds no request slot; only HTTP requests in flight are bounded
  (``max_in_flight``). The horizon runs from when a record was read, so a
  dead provider's queue drains within about one horizon, however long.
* **Retries.** Timeouts, connection errors, 5xx and 429 are retried with
  exponential backoff and full jitter (tenacity), waiting at least as long
  as a ``Retry-After`` asks; any other status is final at once.

Logs carry topic, partition, offset, provider id, delivery id and event id;
never a URL (it may hold a token), a secret or a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

import click
import httpx
import structlog
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_random_exponential

from connectors.exceptions import (
    WebhookConfigError,
    WebhookDeliveryError,
    WebhookRejectedError,
    WebhookUndeliverableError,
)
from connectors.webhooks import MAX_SIGNATURES, WebhookEvent, delivery_id, payload, signed_headers
from schemas.models import ReferralCancelled, ReferralEscalated, ReferralOffered
from schemas.types import EscalationReason, Jurisdiction
from streams.clients import consumer_config, producer_config
from streams.codec import Codec, Decoded
from streams.deadletter import DeadLetter, describe_error
from streams.logs import bind_record, get_logger
from streams.settings import KafkaSettings
from streams.topics import CATEGORIES, referral_topic

__all__ = [
    "COORDINATOR_LEVEL",
    "ESCALATION_ID_NAMESPACE",
    "SOURCE",
    "AttemptResult",
    "DeliveryStats",
    "OffsetTracker",
    "Partition",
    "ProviderEndpoint",
    "Verdict",
    "WebhookDelivery",
    "WebhookSettings",
    "escalation_for",
    "escalation_id",
    "load_providers",
    "next_delay",
    "parse_retry_after",
    "register",
    "should_stop",
    "verdict_for_error",
    "verdict_for_status",
]

log = get_logger(__name__)

SOURCE = "/safepassage/webhooks"
"""CloudEvents source of the escalations this connector publishes."""

COORDINATOR_LEVEL = 2
"""Rung of the escalation ladder that alerts the survivor's case coordinator."""

ESCALATION_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:safepassage:webhooks:escalation")
"""UUIDv5 namespace of escalation ids; apart from the ladder's, so the two never collide."""

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_MIN_SECRET_CHARS = 16
_DRAIN_LIMIT_BYTES = 64 * 1024
_BATCH = 500
_REPUBLISH_BACKOFF_S = (1.0, 30.0)


# --------------------------------------------------------------------------- settings


class WebhookSettings(BaseSettings):
    """How the delivery connector runs (prefix ``SAFEPASSAGE_WEBHOOKS_``), read once at start."""

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_WEBHOOKS_", frozen=True)

    file: Path = Field(
        description="SAFEPASSAGE_WEBHOOKS_FILE: YAML (or .json) file of endpoints and secrets."
    )
    group_id: str = Field(
        default="safepassage-webhooks",
        min_length=1,
        description="SAFEPASSAGE_WEBHOOKS_GROUP_ID: consumer group (its own offsets).",
    )
    max_elapsed_s: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "SAFEPASSAGE_WEBHOOKS_MAX_ELAPSED_S: give up (dead-letter and escalate) when no "
            "2xx came back this long after the record was read."
        ),
    )
    initial_backoff_s: float = Field(
        default=1.0,
        gt=0,
        description="SAFEPASSAGE_WEBHOOKS_INITIAL_BACKOFF_S: first backoff window (full jitter).",
    )
    max_backoff_s: float = Field(
        default=300.0,
        gt=0,
        description="SAFEPASSAGE_WEBHOOKS_MAX_BACKOFF_S: the backoff window stops growing here.",
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="SAFEPASSAGE_WEBHOOKS_TIMEOUT_S: request timeout unless a provider sets one.",
    )
    max_in_flight: int = Field(
        default=32,
        ge=1,
        description="SAFEPASSAGE_WEBHOOKS_MAX_IN_FLIGHT: HTTP requests in flight, all providers.",
    )
    max_buffered: int = Field(
        default=10_000,
        ge=1,
        description=(
            "SAFEPASSAGE_WEBHOOKS_MAX_BUFFERED: records read but not finished; above it the "
            "consumer pauses until half of them are done."
        ),
    )
    poll_interval_s: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="SAFEPASSAGE_WEBHOOKS_POLL_INTERVAL_S: pause between empty polls of Kafka.",
    )

    @field_validator("file", mode="before")
    @classmethod
    def _named(cls, value: object) -> object:
        """An empty variable would name the current directory, a confusing error later."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("name the webhooks file")
        return value

    @model_validator(mode="after")
    def _backoff_window(self) -> WebhookSettings:
        """A first window above the cap would make the cap meaningless."""
        if self.initial_backoff_s > self.max_backoff_s:
            raise ValueError("initial_backoff_s must not exceed max_backoff_s")
        return self


# --------------------------------------------------------------------------- providers file


class ProviderEndpoint(BaseModel):
    """Where and how one provider receives webhooks.

    ``secrets``: the first is current; list two while rotating (every
    request is then signed with both). ``jurisdiction`` is the one operators
    see on escalations about this provider's failed deliveries (offers do
    not carry the survivor's).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: HttpUrl
    secrets: tuple[SecretStr, ...] = Field(min_length=1, max_length=MAX_SIGNATURES)
    jurisdiction: Jurisdiction
    timeout_s: float | None = Field(default=None, gt=0, le=300)

    @field_validator("secrets", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        """``secrets: "..."`` is one secret, not a sequence of characters."""
        return [value] if isinstance(value, str) else value

    @field_validator("secrets")
    @classmethod
    def _long_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        """Short secrets can be guessed; the message never shows one."""
        if any(len(secret.get_secret_value()) < _MIN_SECRET_CHARS for secret in value):
            raise ValueError(f"every secret needs at least {_MIN_SECRET_CHARS} characters")
        return value

    @field_validator("url")
    @classmethod
    def _https(cls, value: HttpUrl) -> HttpUrl:
        """Referral data crosses networks only encrypted; plain HTTP is for loopback tests."""
        if value.scheme != "https" and (value.host or "") not in _LOOPBACK_HOSTS:
            raise ValueError("the url must use https (http only for 127.0.0.1/localhost)")
        return value


class _ProvidersFile(BaseModel):
    """The whole webhooks file: ``providers: {<provider id>: <endpoint>}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: dict[UUID, ProviderEndpoint] = Field(min_length=1)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML SafeLoader refusing repeated keys: a provider listed twice must not silently win."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"repeated key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` object hook refusing repeated keys, like the YAML loader."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"repeated key {key!r}")
        out[key] = value
    return out


def _read_document(path: Path) -> object:
    """The parsed file; errors name the line and column, never the text (it holds secrets)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebhookConfigError(f"cannot read webhooks file {path}: {type(exc).__name__}") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text, object_pairs_hook=_unique_pairs)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise WebhookConfigError(f"webhooks file {path} is not JSON ({where})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise WebhookConfigError(f"webhooks file {path}: {exc.problem}{where}") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise WebhookConfigError(f"webhooks file {path}: {exc}") from None


def load_providers(path: Path) -> Mapping[UUID, ProviderEndpoint]:
    """Provider id → endpoint, from a YAML (or ``.json``) file; every problem listed.

    Raises :class:`WebhookConfigError` whose message gives each problem's
    path and kind, never the offending value.
    """
    document = _read_document(path)
    try:
        parsed = _ProvidersFile.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise WebhookConfigError(f"webhooks file {path} is invalid: {problems}") from None
    return parsed.providers


# --------------------------------------------------------------------------- retry policy


class Verdict(StrEnum):
    """What one delivery attempt means for the record."""

    DELIVERED = "delivered"
    RETRY = "retry"
    """Transient: try again after a backoff, until the horizon."""
    GIVE_UP = "give-up"
    """Final: the provider refused, retrying cannot help."""


def verdict_for_status(status: int) -> Verdict:
    """2xx delivered; 429 and 5xx retried; anything else final (4xx, and 3xx: no redirects).

    Redirects are not followed: a signed referral must not travel to a
    host nobody configured.
    """
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 429 or 500 <= status < 600:
        return Verdict.RETRY
    return Verdict.GIVE_UP


_TRANSIENT_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


def verdict_for_error(error: httpx.HTTPError) -> Verdict:
    """Timeouts, refused or broken connections and a provider's protocol faults are retried.

    What is left (an unsupported scheme, our own protocol fault, too many
    redirects) is a configuration or program error no retry can fix.
    """
    return Verdict.RETRY if isinstance(error, _TRANSIENT_ERRORS) else Verdict.GIVE_UP


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` asks to wait (delta-seconds or HTTP-date), None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def next_delay(jittered: float, retry_after: float | None, remaining: float) -> float:
    """The pause before the next attempt: the jittered backoff, at least ``Retry-After``.

    Never past the horizon, so the last attempt happens at the horizon.
    """
    wanted = max(jittered, retry_after or 0.0)
    return max(0.0, min(wanted, remaining))


def should_stop(remaining: float, retry_after: float | None) -> bool:
    """Give up when the horizon has passed, or the provider asks to wait beyond it.

    Waiting out a ``Retry-After`` that ends after the horizon would only
    delay the escalation the coordinator needs.
    """
    return remaining <= 0 or (retry_after is not None and retry_after > remaining)


@dataclass(frozen=True)
class AttemptResult:
    """One HTTP attempt: its verdict and what the logs and the dead letter say about it."""

    verdict: Verdict
    status: int | None = None
    error: str | None = None
    """Class name of the transport error when there was no response."""
    retry_after: float | None = None

    def describe(self) -> str:
        """``HTTP 503`` or ``ConnectError``: safe for logs and dead-letter headers."""
        return f"HTTP {self.status}" if self.status is not None else str(self.error)


# --------------------------------------------------------------------------- offsets


class Partition(NamedTuple):
    """A topic partition as a hashable key."""

    topic: str
    partition: int


@dataclass
class _PartitionState:
    generation: int
    pending: dict[int, None] = field(default_factory=dict)
    """Offsets read and not finished, ascending (insertion order)."""
    next_offset: int | None = None
    """Highest offset read + 1."""
    committed: int | None = None


class OffsetTracker:
    """Which offset each partition may commit: the lowest one not finished yet.

    Records finish out of order (one provider is fast, another in backoff);
    committing past an unfinished record would lose it in a crash. So the
    commit position of a partition is its lowest pending offset, or the
    highest offset read + 1 when none is pending (offsets may have gaps:
    transaction markers, compaction). Each assignment of a partition gets a
    new generation: a record of an earlier assignment finishing late
    cannot move the new owner's position.
    """

    def __init__(self) -> None:
        """Start with no partition."""
        self._partitions: dict[Partition, _PartitionState] = {}
        self._generations = 0

    def _new_state(self) -> _PartitionState:
        self._generations += 1
        return _PartitionState(generation=self._generations)

    def assign(self, partition: Partition) -> int:
        """Start owning ``partition`` afresh; its generation."""
        state = self._new_state()
        self._partitions[partition] = state
        return state.generation

    def revoke(self, partition: Partition) -> None:
        """Stop owning ``partition``: its unfinished records are the next owner's."""
        self._partitions.pop(partition, None)

    def owns(self, partition: Partition, generation: int) -> bool:
        """Whether a record read in ``generation`` still belongs to this consumer."""
        state = self._partitions.get(partition)
        return state is not None and state.generation == generation

    def track(self, partition: Partition, offset: int) -> int:
        """Note a record as read and unfinished; the generation to finish it with.

        An offset at or below one already read means the consumer went back
        (an offset reset): the partition starts over in a new generation.
        """
        state = self._partitions.get(partition)
        if state is None or (state.next_offset is not None and offset < state.next_offset):
            state = self._new_state()
            self._partitions[partition] = state
        state.pending[offset] = None
        state.next_offset = offset + 1
        return state.generation

    def finish(self, partition: Partition, offset: int, generation: int) -> None:
        """Note a record as finished (delivered, or dead-lettered and escalated)."""
        if self.owns(partition, generation):
            self._partitions[partition].pending.pop(offset, None)

    def position(self, partition: Partition) -> int | None:
        """The offset to commit for ``partition`` (Kafka's next-to-read), or None if none read."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        if state.pending:
            return next(iter(state.pending))
        return state.next_offset

    def take_ready(self) -> list[tuple[Partition, int]]:
        """Positions that moved since the last commit, marked as committed."""
        ready = []
        for partition, state in self._partitions.items():
            position = self.position(partition)
            if position is not None and position != state.committed:
                state.committed = position
                ready.append((partition, position))
        return ready

    def commit_failed(self, partition: Partition) -> None:
        """A commit did not go through: offer the position again next time."""
        state = self._partitions.get(partition)
        if state is not None:
            state.committed = None

    @property
    def pending(self) -> int:
        """Records read and not finished, over every partition (for back-pressure)."""
        return sum(len(state.pending) for state in self._partitions.values())


# --------------------------------------------------------------------------- escalation


def escalation_id(delivery: str) -> str:
    """CloudEvents id of the escalation of a failed delivery: the same after a crash."""
    return str(uuid5(ESCALATION_ID_NAMESPACE, delivery))


def escalation_for(
    event: WebhookEvent, *, provider_id: UUID, jurisdiction: str, now: datetime
) -> ReferralEscalated:
    """The coordinator's alert that ``event`` could not be delivered to its provider."""
    return ReferralEscalated(
        survivor_id=event.survivor_id,
        occurred_at=now,
        referral_id=event.referral_id,
        level=COORDINATOR_LEVEL,
        reason=EscalationReason.DELIVERY_FAILED,
        provider_id=provider_id,
        category=event.category,
        jurisdiction=jurisdiction,
    )


# --------------------------------------------------------------------------- the connector


@dataclass(frozen=True)
class _Job:
    """One record addressed to a configured provider, waiting in that provider's queue."""

    partition: Partition
    offset: int
    generation: int
    provider_id: UUID
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    deadline: float
    """Monotonic time after which delivery is given up."""
    decoded: Decoded | None
    error: Exception | None
    """Why the record did not decode (it is dead-lettered, not delivered)."""


@dataclass
class DeliveryStats:
    """What a run did, for tests and the closing line of the command."""

    delivered: int = 0
    dead_lettered: int = 0
    escalated: int = 0
    skipped: int = 0
    """Records for providers that are not in the webhooks file."""
    attempts: int = 0


class _PublishError(Exception):
    """Kafka did not acknowledge a dead letter or escalation; retried by the worker."""


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(_PublishError(error.name()))


class WebhookDelivery:
    """The delivery connector: one consumer, one worker per provider, one HTTP client.

    Everything runs on one event loop. The consumer is polled without
    blocking from the loop itself, so rebalance, commit and delivery
    callbacks run on the loop too and need no locks.
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
        stamps signatures and escalations, ``sleep`` waits out backoffs.
        """
        self._kafka = kafka
        self._settings = settings
        self._providers = dict(providers)
        self._client = client
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._codec = Codec(kafka, source=SOURCE)
        self._topics = [referral_topic(kafka, category) for category in CATEGORIES]
        self._deadletter_topic = f"{kafka.topic_namespace}.deadletter.v1"
        self._escalation_topic = f"{kafka.topic_namespace}.escalations.v1"
        self._tracker = OffsetTracker()
        self._queues: dict[UUID, asyncio.Queue[_Job]] = {}
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._producer: Producer | None = None
        self._paused = False
        self.stats = DeliveryStats()

    @property
    def _running_producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("the connector is not running")
        return self._producer

    @property
    def _running_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the connector is not running")
        return self._client

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
        producer = self._producer = Producer(producer_config(self._kafka))
        consumer = Consumer(
            consumer_config(self._kafka, self._settings.group_id, on_commit=self._on_commit)
        )
        consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._queues = {provider: asyncio.Queue() for provider in self._providers}
        workers = [
            asyncio.create_task(self._serve(provider), name=f"webhooks-{provider}")
            for provider in self._providers
        ]
        log.info("webhooks.started", providers=len(self._providers), topics=self._topics)
        try:
            await self._poll(consumer, stop, workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._commit(consumer, asynchronous=False)
            consumer.close()
            producer.flush(10)
            self._producer = None
            if own_client:
                await client.aclose()
                self._client = None
            log.info("webhooks.stopped", **vars(self.stats))

    async def _poll(
        self, consumer: Consumer, stop: asyncio.Event, workers: list[asyncio.Task[None]]
    ) -> None:
        """Read, route, commit, pace; a worker that died takes the connector down with it."""
        while not stop.is_set():
            room = max(1, min(_BATCH, self._settings.max_buffered - self._tracker.pending))
            messages = consumer.consume(room, timeout=0)
            for message in messages:
                self._accept(message)
            self._running_producer.poll(0)  # serves delivery callbacks, on this loop
            self._commit(consumer, asynchronous=True)
            self._pace(consumer)
            for worker in workers:
                if worker.done():
                    worker.result()  # re-raises what killed it
                    raise RuntimeError(f"worker {worker.get_name()} stopped")
            if not messages:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.poll_interval_s)
            else:
                await asyncio.sleep(0)

    def _pace(self, consumer: Consumer) -> None:
        """Pause reading while too many records are unfinished; resume at half."""
        pending = self._tracker.pending
        if pending >= self._settings.max_buffered:
            if not self._paused:
                log.warning("webhooks.paused", pending=pending)
            self._paused = True
            consumer.pause(consumer.assignment())  # again each time: new partitions too
        elif self._paused and pending <= self._settings.max_buffered // 2:
            self._paused = False
            consumer.resume(consumer.assignment())
            log.info("webhooks.resumed", pending=pending)

    # ----------------------------------------------------------------- offsets

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        for tp in partitions:
            self._tracker.assign(Partition(tp.topic, tp.partition))
        log.info("webhooks.assigned", partitions=_names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Commit what is finished on the partitions leaving, then forget them."""
        self._commit(consumer, asynchronous=False)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Lost partitions (session timed out) can no longer be committed: forget them."""
        self._forget(partitions)

    def _forget(self, partitions: list[KafkaPartition]) -> None:
        for tp in partitions:
            self._tracker.revoke(Partition(tp.topic, tp.partition))
        log.info("webhooks.revoked", partitions=_names(partitions))

    def _commit(self, consumer: Consumer, *, asynchronous: bool) -> None:
        ready = self._tracker.take_ready()
        if not ready:
            return
        offsets = [KafkaPartition(p.topic, p.partition, position) for p, position in ready]
        try:
            if asynchronous:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            for partition, _ in ready:
                self._tracker.commit_failed(partition)
            log.warning("webhooks.commit_failed", error=str(exc.args[0]))

    def _on_commit(self, error: KafkaError | None, partitions: list[KafkaPartition]) -> None:
        """An asynchronous commit failed: offer those positions again."""
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        for tp in failed:
            self._tracker.commit_failed(Partition(tp.topic, tp.partition))
        if failed:
            log.warning("webhooks.commit_failed", error=str(error), partitions=_names(failed))

    # ----------------------------------------------------------------- routing

    def _provider_of(self, key: bytes | None) -> UUID | None:
        """The configured provider a record is keyed to, or None (skip it)."""
        if key is None:
            return None
        try:
            provider = UUID(key.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
        return provider if provider in self._providers else None

    def _accept(self, message: Message) -> None:
        """Track a record and queue it for its provider's worker, or finish it as skipped."""
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("webhooks.consumer_error", error=error.name())
            return
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
            _Job(
                partition=partition,
                offset=offset,
                generation=generation,
                provider_id=provider,
                key=message.key(),
                value=message.value(),
                headers=_header_list(message),
                deadline=self._clock() + self._settings.max_elapsed_s,
                decoded=decoded,
                error=failure,
            )
        )

    # ----------------------------------------------------------------- workers

    async def _serve(self, provider: UUID) -> None:
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
                    await self._handle(job)
            self._tracker.finish(job.partition, job.offset, job.generation)

    async def _handle(self, job: _Job) -> None:
        """Deliver one record, or dead-letter (and escalate) it: either way it is finished."""
        if job.decoded is None or not isinstance(
            job.decoded.event, ReferralOffered | ReferralCancelled
        ):
            await self._dead_letter(job, job.error or RuntimeError("no event"))
            return
        event = job.decoded.event
        envelope = job.decoded.envelope
        delivery = delivery_id(envelope.source, envelope.id)
        with structlog.contextvars.bound_contextvars(event_id=envelope.id, delivery_id=delivery):
            failure: BaseException | None
            try:
                failure = await self._deliver(job, payload(event, delivery), delivery, event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not lose the record: give it up instead
                log.error(
                    "webhook.crashed", error_class=type(exc).__name__, error=describe_error(exc)
                )
                failure = exc
            if failure is None:
                return
            await self._dead_letter(job, failure)
            await self._escalate(job, event, delivery)

    async def _deliver(
        self, job: _Job, body: bytes, delivery: str, event: WebhookEvent
    ) -> WebhookDeliveryError | None:
        """Attempt until delivered, refused, or out of time; None when delivered."""
        endpoint = self._providers[job.provider_id]
        attempts = 0
        started = self._clock()

        async def attempt() -> AttemptResult:
            nonlocal attempts
            attempts += 1
            self.stats.attempts += 1
            async with self._slots:
                return await self._post(endpoint, body, delivery, event.event_type)

        jitter = wait_random_exponential(
            multiplier=self._settings.initial_backoff_s, max=self._settings.max_backoff_s
        )

        def wait(state: RetryCallState) -> float:
            last = _result(state)
            return next_delay(jitter(state), last.retry_after, job.deadline - self._clock())

        def stop(state: RetryCallState) -> bool:
            return should_stop(job.deadline - self._clock(), _result(state).retry_after)

        def before_sleep(state: RetryCallState) -> None:
            pause = state.next_action.sleep if state.next_action else 0.0
            log.info(
                "webhook.retry",
                attempt=state.attempt_number,
                outcome=_result(state).describe(),
                retry_in_s=round(pause, 3),
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_result(lambda result: result.verdict is Verdict.RETRY),
            before_sleep=before_sleep,
            retry_error_callback=_result,
            sleep=self._sleep,
        )
        last: AttemptResult = await retrying(attempt)
        elapsed = round(self._clock() - started, 3)
        if last.verdict is Verdict.DELIVERED:
            self.stats.delivered += 1
            log.info("webhook.delivered", attempts=attempts, status=last.status, elapsed_s=elapsed)
            return None
        if last.verdict is Verdict.GIVE_UP:
            return WebhookRejectedError(
                f"the provider answered {last.describe()} on attempt {attempts}; not retried"
            )
        return WebhookUndeliverableError(
            f"no 2xx within the horizon of {self._settings.max_elapsed_s:g} s: {attempts} "
            f"attempt(s) over {elapsed:g} s, the last {last.describe()}"
        )

    async def _post(
        self, endpoint: ProviderEndpoint, body: bytes, delivery: str, event_type: str
    ) -> AttemptResult:
        """One signed POST; the status (and Retry-After) decide, the response body is ignored."""
        client = self._running_client
        headers = signed_headers(
            endpoint.secrets,
            body,
            delivery=delivery,
            event_type=event_type,
            timestamp=int(self._wall()),
        )
        request = client.build_request(
            "POST",
            str(endpoint.url),
            content=body,
            headers=headers,
            timeout=endpoint.timeout_s or self._settings.timeout_s,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return AttemptResult(verdict_for_error(exc), error=type(exc).__name__)
        try:
            await _drain(response)
        finally:
            await response.aclose()
        return AttemptResult(
            verdict_for_status(response.status_code),
            status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), self._wall()),
        )

    # ----------------------------------------------------------------- giving up

    async def _dead_letter(self, job: _Job, error: BaseException) -> None:
        """The original record, untouched, with the project's reason headers."""
        letter = DeadLetter.of(
            key=job.key,
            value=job.value,
            headers=job.headers,
            error=error,
            topic=job.partition.topic,
            partition=job.partition.partition,
            offset=job.offset,
        )
        await self._publish_until_acked(
            self._deadletter_topic, letter.key, letter.value, letter.headers
        )
        self.stats.dead_lettered += 1
        log.warning(
            "webhook.dead_lettered", error_class=type(error).__name__, error=describe_error(error)
        )

    async def _escalate(self, job: _Job, event: WebhookEvent, delivery: str) -> None:
        """Tell the case coordinator: the provider has not received this offer or cancellation."""
        endpoint = self._providers[job.provider_id]
        escalation = escalation_for(
            event,
            provider_id=job.provider_id,
            jurisdiction=endpoint.jurisdiction,
            now=datetime.fromtimestamp(self._wall(), UTC),
        )
        record = self._codec.encode(
            escalation, self._escalation_topic, event_id=escalation_id(delivery)
        )
        headers: list[tuple[str, bytes | None]] = list(record.headers)
        await self._publish_until_acked(record.topic, record.key, record.value, headers)
        self.stats.escalated += 1
        log.warning(
            "webhook.escalated", level=COORDINATOR_LEVEL, escalation_id=escalation_id(delivery)
        )

    async def _publish_until_acked(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]],
    ) -> None:
        """Publish and wait for the broker's ack; while Kafka refuses, keep trying.

        The source offset must not be committed before this record is safe,
        and there is nothing better to do with it meanwhile.
        """
        pause, cap = _REPUBLISH_BACKOFF_S
        while True:
            try:
                await self._publish(topic, key, value, headers)
                return
            except (_PublishError, BufferError, KafkaException) as exc:
                log.warning("webhooks.publish_failed", target=topic, error=str(exc))
                await self._sleep(pause)
                pause = min(cap, pause * 2)

    async def _publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            loop.call_soon_threadsafe(_settle, acked, error)

        self._running_producer.produce(
            topic, key=key, value=value, headers=list[Any](headers), on_delivery=on_delivery
        )
        await acked  # the run loop's producer.poll(0) serves the callback


def _result(state: RetryCallState) -> AttemptResult:
    """The result of the attempt just made (attempts return results, they do not raise)."""
    assert state.outcome is not None  # noqa: S101 - tenacity sets it before calling back
    result: AttemptResult = state.outcome.result()
    return result


async def _drain(response: httpx.Response) -> None:
    """Read (and drop) a little of the answer so the connection can be reused; stop early."""
    read = 0
    try:
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > _DRAIN_LIMIT_BYTES:
                return
    except httpx.HTTPError:
        return  # the status line is what counts


def _header_list(message: Message) -> list[tuple[str, bytes | None]]:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [
        (name, value.encode("utf-8") if isinstance(value, str) else value) for name, value in items
    ]


def _names(partitions: list[KafkaPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]


# --------------------------------------------------------------------------- command line


async def _run_until_signalled(
    kafka: KafkaSettings, settings: WebhookSettings, providers: Mapping[UUID, ProviderEndpoint]
) -> DeliveryStats:
    """Run the connector until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    connector = WebhookDelivery(kafka, settings, providers)
    await connector.run(stop)
    return connector.stats


def _settings(file: Path | None) -> WebhookSettings:
    """Settings from the environment, with ``--file`` taking precedence."""
    try:
        return WebhookSettings() if file is None else WebhookSettings(file=file)
    except ValidationError as exc:
        problems = "; ".join(
            f"SAFEPASSAGE_WEBHOOKS_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise click.ClickException(problems) from None


@click.group("deliver")
def deliver() -> None:
    """Deliver referral events to providers that do not read Kafka."""


@deliver.command("webhooks")
@click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Webhooks file (default: SAFEPASSAGE_WEBHOOKS_FILE).",
)
@click.option("--check", is_flag=True, help="Validate the webhooks file, print a summary, exit.")
def webhooks(file: Path | None, check: bool) -> None:
    """POST offers and cancellations as signed webhooks; dead-letter and escalate failures."""
    settings = _settings(file)
    try:
        providers = load_providers(settings.file)
    except WebhookConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        click.echo(f"{settings.file}: {len(providers)} provider(s) OK")
        for provider, endpoint in sorted(providers.items()):
            click.echo(f"  {provider}  {endpoint.jurisdiction}  {len(endpoint.secrets)} secret(s)")
        return
    try:
        stats = asyncio.run(_run_until_signalled(KafkaSettings(), settings, providers))
    except KafkaException as exc:
        raise click.ClickException(f"Kafka: {exc.args[0]}") from None
    click.echo(
        f"{stats.delivered} delivered, {stats.dead_lettered} dead-lettered, "
        f"{stats.escalated} escalated, {stats.skipped} skipped, {stats.attempts} attempts"
    )


def register(main_group: click.Group) -> None:
    """Add ``safepassage deliver webhooks`` to the ``safepassage`` command group."""
    main_group.add_command(deliver)

"""Faust bindings of the router: records into :func:`processors.core.decide`, effects out.

Thin edge over the pure core, nothing decided here:

* ``cases``: one agent over the co-partitioned intake and provider-response
  topics (keyed by survivor pseudonym). For each record: decode (bad
  records are dead-lettered by :func:`streams.consuming.process_records`),
  decide, then carry the decision out in order: publish events (offers and
  cancellations to the provider's category topic, escalations to the
  escalation topic) and audit records, append capacity changes to the
  ledger, publish the status view, and only then write the survivor's
  table entry. A crash in between replays the record; the core recognises
  it by its CloudEvents source and id and the re-published events carry the
  same ids, so consumers can drop the copies. A refused input is audited
  and dead-lettered with the core's reason.
* :class:`DirectoryView`: every worker's copy of the provider directory
  and the capacity ledger, replayed from the start of both topics (all
  partitions, no consumer group) and kept up to date; the ``cases`` agent
  waits until it has caught up before deciding anything.
* ``GET /v1/survivors/{id}/status``: served by any worker, forwarded by
  Faust to the worker that owns the survivor's intake partition (and so
  its table entry); 404 when unknown.

Faust cautions of DESIGN.md are applied in :func:`streams.app.create_app`
and here: ``concurrency=1``, at-least-once, table web views off.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.web import Request, Response, View

from processors.case import CaseState
from processors.core import decide
from processors.directory import CapacityChange, Directory, apply_capacity, apply_directory
from processors.effects import AuditRecord, Decision, Publish
from processors.exceptions import ProcessorsError
from processors.meta import EventMeta
from processors.policy import DEFAULT_POLICY, RoutingPolicy
from processors.status import status_view
from schemas.models import Event, ProviderEvent, SurvivorEvent
from streams.app import create_app, raw_topic
from streams.codec import Codec, Decoded
from streams.consuming import FaustDeadLetterSink, process_records
from streams.exceptions import RecordRejected, StreamsError, WrongEventType
from streams.logs import get_logger
from streams.settings import KafkaSettings
from streams.topics import CATEGORIES, referral_topic

__all__ = ["DirectoryView", "Router", "build_router"]

log = get_logger(__name__)

SOURCE = "/safepassage/router"
"""CloudEvents source of everything the router publishes."""


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


class DirectoryView:
    """The provider directory with its free places, as every worker must see it whole.

    A consumer without a group reads every partition of the (compacted)
    directory topic and of the capacity ledger from the start, so a restart
    rebuilds the view from Kafka. ``ready`` is set once it has reached the
    end offsets it saw at start.
    """

    WRITER_HEADER = "safepassage-writer"
    """Names the worker that appended a ledger record; a worker skips its own."""

    def __init__(self, settings: KafkaSettings, codec: Codec) -> None:
        self.writer = uuid4().hex.encode()
        """This process's id: its own ledger records are applied locally already, at once.

        Replaying them as well would re-reserve a place released meanwhile
        until the release is replayed too; a restarted worker has a new id
        and so rebuilds everything from the ledger."""
        self.settings = settings
        self.codec = codec
        self.directory = Directory()
        self.pending: list[CapacityChange] = []
        """Ledger changes whose provider the directory does not know yet."""
        self.ready = asyncio.Event()
        self.providers_topic = f"{settings.topic_namespace}.providers.v1"
        self.ledger_topic = f"{settings.topic_namespace}.capacity-ledger.v1"

    def _apply_change(self, change: CapacityChange) -> None:
        """Apply a ledger change, or keep it until its provider's entry arrives.

        The two topics are read side by side, so a reservation can be seen
        before the registration of its provider; dropping it would let this
        worker offer that place again.
        """
        entry = self.directory.get(change.provider_id)
        if entry is None or change.category not in entry.places:
            self.pending.append(change)  # releases too: order per referral must hold
            return
        self.directory = apply_capacity(self.directory, [change])

    def _retry_pending(self) -> None:
        waiting, self.pending = self.pending, []
        for change in waiting:
            self._apply_change(change)

    def apply_local(self, changes: Iterable[CapacityChange]) -> None:
        """Apply this worker's own reservations at once (the ledger replay repeats them)."""
        self.directory = apply_capacity(self.directory, changes)

    async def run(self) -> None:
        """Replay, then follow, both topics until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id=f"{self.settings.client_id}-directory",
            group_id=None,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            # consumer.topics() does not refresh the metadata partitions_for_topic
            # reads (aiokafka 0.14); ask the client for the cluster metadata itself.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = [
                TopicPartition(topic, p)
                for topic in (self.providers_topic, self.ledger_topic)
                for p in sorted(cluster.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                raise StreamsError(
                    f"{self.providers_topic} and {self.ledger_topic} do not exist: "
                    "run `safepassage topics provision`"
                )
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batch.values():
                    for record in records:
                        self._apply(record)
                if not self.ready.is_set():
                    positions = [await consumer.position(tp) for tp in partitions]
                    if all(pos >= end[tp] for pos, tp in zip(positions, partitions, strict=True)):
                        self.ready.set()
                        log.info("directory.ready", providers=len(self.directory.providers))
        finally:
            await consumer.stop()

    def _apply(self, record: Any) -> None:
        try:
            if record.topic == self.ledger_topic:
                if (self.WRITER_HEADER, self.writer) in (record.headers or ()):
                    return
                self._apply_change(CapacityChange.model_validate_json(record.value))
                return
            decoded = self.codec.decode(
                record.value, record.headers, topic=record.topic, key=record.key
            )
            if not isinstance(decoded.event, ProviderEvent):
                raise WrongEventType(f"{decoded.event.event_type} is not a directory event")
            self.directory = apply_directory(self.directory, decoded.event)
            self._retry_pending()
        except (StreamsError, ProcessorsError, ValueError) as exc:
            # Every worker reads this record; the directory agent of one
            # worker is not the place to dead-letter it. Log coordinates only.
            log.warning(
                "directory.record_skipped",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error_class=type(exc).__name__,
            )


@dataclass
class Router:
    """The Faust app of the router and the parts tests and the CLI need to reach."""

    app: faust.App
    view: DirectoryView
    cases: Any
    """The Faust table: survivor pseudonym (str) → :meth:`CaseState.to_dict`."""


@dataclass
class _Binding:
    """Carries one decoded record through the core and its decision out to Kafka."""

    codec: Codec
    view: DirectoryView
    policy: RoutingPolicy
    cases: Any
    audit: Any
    status: Any
    ledger: Any
    outputs: dict[str, Any]

    async def handle(self, decoded: Decoded) -> None:
        """Decide on one record; raise :class:`RecordRejected` when the core refused it."""
        event: Event = decoded.event
        if not isinstance(event, SurvivorEvent):
            raise WrongEventType(f"{event.event_type} does not belong to a survivor's case")
        survivor = str(event.survivor_id)
        stored = self.cases.get(survivor)
        case = CaseState.from_dict(stored) if stored else None
        decision = decide(
            case,
            self.view.directory,
            event,
            EventMeta.of(decoded.envelope),
            now=event.occurred_at,
            policy=self.policy,
        )
        await self._carry_out(survivor, decision)
        rejection = decision.rejection
        if rejection is not None:
            raise RecordRejected(f"{rejection.code.value}: {rejection.message}")

    async def _publish(self, published: Publish) -> None:
        topics = [t for t in self.codec.contract.topics_for(published.event) if t in self.outputs]
        if len(topics) != 1:
            raise ProcessorsError(f"no single output topic for {published.event.event_type}")
        record = self.codec.encode(published.event, topics[0], event_id=published.event_id)
        await _sent(self.outputs[topics[0]], record.key, record.value, record.headers)

    async def _carry_out(self, survivor: str, decision: Decision) -> None:
        """Publish (and wait for acks) before the table write: a crash replays the record."""
        for effect in decision.effects:
            if isinstance(effect, Publish):
                await self._publish(effect)
            elif isinstance(effect, AuditRecord):
                await _sent(self.audit, survivor.encode(), _json(effect.to_dict()))
        for change in decision.capacity:
            key = str(change.provider_id).encode()
            await _sent(
                self.ledger,
                key,
                change.model_dump_json().encode(),
                [(DirectoryView.WRITER_HEADER, self.view.writer)],
            )
        self.view.apply_local(decision.capacity)
        if decision.changed:
            current = status_view(decision.state, datetime.now(UTC))
            await _sent(self.status, survivor.encode(), _json(current.to_dict()))
            self.cases[survivor] = decision.state.to_dict()


async def _sent(topic: Any, key: bytes, value: bytes, headers: Any = None) -> None:
    """Send one record through Faust's producer and wait for the broker's ack."""
    pending = await topic.send(key=key, value=value, headers=headers)
    await pending


def _problem(web: View, status: int, title: str, detail: str, **headers: str) -> Response:
    """An RFC 9457 problem document (no personal data: titles and ids only)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.json(
        body, status=status, content_type="application/problem+json", headers=headers or None
    )


_Page = Callable[..., Awaitable[Response]]


def _ready_or_503(app: faust.App) -> Callable[[_Page], _Page]:
    """503 with Retry-After until the worker has partitions: Faust cannot route before."""

    def decorate(handler: _Page) -> _Page:
        @functools.wraps(handler)
        async def wrapper(web: View, request: Request, **kwargs: Any) -> Response:
            if not app.assignor.assigned_actives():
                return _problem(
                    web, 503, "Not ready", "the worker is joining its group", **{"Retry-After": "2"}
                )
            result: Response = await handler(web, request, **kwargs)
            return result

        return wrapper

    return decorate


def build_router(
    settings: KafkaSettings,
    *,
    policy: RoutingPolicy = DEFAULT_POLICY,
    data_dir: Path | None = None,
    web_port: int | None = None,
    store: str = "rocksdb://",
    app_id: str | None = None,
) -> Router:
    """Create the router's Faust app: agents, table, directory view and status page."""
    ns = settings.topic_namespace
    app_id = app_id or f"{ns}-router"
    app = create_app(
        settings,
        app_id,
        # Faust's table files do not name the app: keep each app's apart, or a
        # store left by another namespace would be taken for this one's.
        data_dir=None if data_dir is None else data_dir / app_id,
        web_port=web_port,
        store=store,
    )
    codec = Codec(settings, source=SOURCE)
    view = DirectoryView(settings, codec)
    inputs = app.topic(
        f"{ns}.intake.v1",
        f"{ns}.provider-responses.v1",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    intake_route = raw_topic(app, f"{ns}.intake.v1")  # for routing web requests only
    deadletters = raw_topic(app, f"{ns}.deadletter.v1")
    audit = raw_topic(app, f"{ns}.audit.v1")
    status = raw_topic(app, f"{ns}.case-status.v1")
    ledger = raw_topic(app, f"{ns}.capacity-ledger.v1")
    outputs = {
        name: raw_topic(app, name)
        for name in [f"{ns}.escalations.v1", *(referral_topic(settings, c) for c in CATEGORIES)]
    }
    cases = app.Table(
        "cases",
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        options={"driver": "rocksdict"},
    )

    binding = _Binding(codec, view, policy, cases, audit, status, ledger, outputs)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_directory() -> None:
        await view.run()

    @app.agent(inputs, concurrency=1)
    async def route(stream: Any) -> None:
        await view.ready.wait()
        await process_records(stream, codec, binding.handle, FaustDeadLetterSink(deadletters))

    @app.page("/v1/survivors/{survivor_id}/status")
    @_ready_or_503(app)
    # Routed by the owner of the survivor's *intake* partition (the table's
    # owner too: co-partitioned). Faust's table_route maps keys through the
    # changelog assignment, which includes standbys, and sent requests to a
    # worker that does not serve the key (seen with two workers; cf.
    # faust-streaming issue #514).
    @app.topic_route(topic=intake_route, match_info="survivor_id")
    async def survivor_status(web: View, request: Request, survivor_id: str) -> Response:
        try:
            key = str(UUID(survivor_id))
        except ValueError:
            return _problem(web, 400, "Not a survivor id", "the id must be a UUID")
        stored = cases.get(key)
        if not stored:
            return _problem(web, 404, "Unknown survivor", "no case for this survivor id")
        return web.json(status_view(CaseState.from_dict(stored), datetime.now(UTC)).to_dict())

    del follow_directory, route, survivor_status  # registered on the app
    return Router(app=app, view=view, cases=cases)

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
* the escalation ladder, in the same agent: each decision also keeps the
  survivor's deadlines in step (``deadlines`` table, keyed by partition and
  due time; ``ladder`` table for the rungs reached), and a record on the
  co-partitioned ``escalation-ticks.v1`` topic escalates the partition's
  due deadlines (:mod:`processors.engine` decides, this module carries
  out). Ticks come from each worker's wall clock for the partitions it
  owns, or from outside (``SAFEPASSAGE_ESCALATION_CLOCK=external``).
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

from connectors.auth import ApiKeyStore, Principal, authorize_status_read
from connectors.exceptions import ForbiddenError
from processors.case import CaseState
from processors.deadlines import Deadline, StoredDeadlines, partition_prefix
from processors.directory import CapacityChange, Directory, apply_capacity, apply_directory
from processors.effects import AuditRecord, Publish
from processors.engine import Step, on_due, on_event
from processors.escalation import EscalationState
from processors.exceptions import ProcessorsError
from processors.meta import EventMeta
from processors.policy import DEFAULT_POLICY, RoutingPolicy
from processors.settings import ClockMode, EscalationSettings
from processors.sla import SlaPolicy, default_policy
from processors.status import StatusRead, status_view
from schemas.models import Event, ProviderEvent, SurvivorEvent
from streams.app import create_app, raw_topic
from streams.codec import Codec, Decoded
from streams.consuming import FaustDeadLetterSink, process_records
from streams.exceptions import RecordRejected, StreamsError, WrongEventType
from streams.logs import get_logger
from streams.provisioning import provision
from streams.settings import KafkaSettings, Profile
from streams.ticks import TICK_KEY, decode_tick, encode_tick, tick_topic
from streams.topics import CATEGORIES, CleanupPolicy, TopicSpec, referral_topic

__all__ = ["DirectoryView", "Router", "build_router", "changelog_specs", "declare_changelogs"]

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
    ladder: Any
    """The Faust table: survivor pseudonym (str) → :meth:`EscalationState.to_dict`."""
    deadlines: Any
    """The Faust table: partition-prefixed deadline key → :meth:`Deadline.to_dict`."""


Scan = Callable[[str, str], Iterable[str]]


def _rocksdb_scan(table: Any, partition: int) -> Scan:
    """Keys ``start <= key < stop`` of one partition's RocksDB, in byte order: one seek.

    The store holds keys as the table serialises them (Faust's default for
    table keys is JSON: ``"p00003|…"``). Deadline keys are printable ASCII
    without quotes or backslashes, so quoting them keeps their order: a
    closing quote sorts below every character a key may hold.
    """
    store = table.data

    def scan(start: str, stop: str) -> Iterable[str]:
        db = store._db_for_partition(partition)
        bound = store._encode_key(stop)
        for key in db.keys(from_key=store._encode_key(start)):
            if key >= bound:
                return
            yield store._decode_key(key)

    return scan


def _sorted_scan(table: Any) -> Scan:
    """The same over a store without ordered iteration (memory://): O(n log n), tests only."""

    def scan(start: str, stop: str) -> Iterable[str]:
        return sorted(k for k in table if start <= k < stop)

    return scan


@dataclass
class _Binding:
    """Carries each input through the pure engine and its step out to Kafka and the tables."""

    codec: Codec
    view: DirectoryView
    policy: RoutingPolicy
    sla: SlaPolicy
    clock: EscalationSettings
    cases: Any
    ladder: Any
    deadlines: Any
    audit: Any
    status: Any
    ledger: Any
    ticks: Any
    outputs: dict[str, Any]
    ordered_store: bool
    queues: dict[int, StoredDeadlines]
    """One deadline queue per owned partition; dropped at every rebalance (its low-water
    mark is only valid while this worker owned the partition throughout)."""

    def _case(self, survivor: str) -> CaseState | None:
        stored = self.cases.get(survivor)
        return CaseState.from_dict(stored) if stored else None

    def _ladder(self, survivor: str) -> EscalationState | None:
        stored = self.ladder.get(survivor)
        return EscalationState.from_dict(stored) if stored else None

    def queue(self, partition: int) -> StoredDeadlines:
        """The deadline queue of one partition (this worker must own it)."""
        queue = self.queues.get(partition)
        if queue is None:
            scan = (
                _rocksdb_scan(self.deadlines, partition)
                if self.ordered_store
                else _sorted_scan(self.deadlines)
            )
            queue = StoredDeadlines(self.deadlines, scan, partition_prefix(partition))
            self.queues[partition] = queue
        return queue

    async def handle(self, decoded: Decoded) -> None:
        """Decide on one record; raise :class:`RecordRejected` when the core refused it."""
        event: Event = decoded.event
        if not isinstance(event, SurvivorEvent):
            raise WrongEventType(f"{event.event_type} does not belong to a survivor's case")
        survivor = str(event.survivor_id)
        step = on_event(
            self._case(survivor),
            self._ladder(survivor),
            self.view.directory,
            event,
            EventMeta.of(decoded.envelope),
            now=event.occurred_at,
            policy=self.policy,
            sla=self.sla,
        )
        await self._carry_out(survivor, step, _current_partition())
        rejection = step.rejection
        if rejection is not None:
            raise RecordRejected(f"{rejection.code.value}: {rejection.message}")

    async def tick(self, message: Any) -> None:
        """Escalate the deadlines of the message's partition due at the tick's instant.

        At most ``max_due_per_tick`` at once; when there may be more, a
        follow-up tick with the same instant goes to the back of the
        partition, so the partition's events are not held up by a burst.
        """
        now = decode_tick(message.value)
        partition: int = message.partition
        queue = self.queue(partition)
        limit = self.clock.max_due_per_tick
        due = queue.peek_due(now, limit)
        outcomes: dict[str, int] = {}
        for deadline in due:
            step = await self._escalate(deadline, now, partition)
            name = step.outcome.value if step.outcome else "none"
            outcomes[name] = outcomes.get(name, 0) + 1
        if len(due) >= limit:
            await _sent(self.ticks, TICK_KEY, encode_tick(now), partition=partition)
        if due:
            log.info("escalation.tick", at=now.isoformat(), due=len(due), **outcomes)

    async def _escalate(self, deadline: Deadline, now: datetime, partition: int) -> Step:
        survivor = str(deadline.survivor_id)
        step = on_due(
            deadline,
            self._case(survivor),
            self._ladder(survivor),
            self.view.directory,
            now=now,
            policy=self.policy,
            sla=self.sla,
        )
        await self._carry_out(survivor, step, partition)
        if step.rejection is not None:  # a planned deadline should never meet one
            log.warning(
                "escalation.refused_by_router",
                survivor_id=survivor,
                referral_id=str(deadline.referral_id),
                code=step.rejection.code.value,
            )
        return step

    async def _publish(self, published: Publish) -> Awaitable[Any]:
        topics = [t for t in self.codec.contract.topics_for(published.event) if t in self.outputs]
        if len(topics) != 1:
            raise ProcessorsError(f"no single output topic for {published.event.event_type}")
        record = self.codec.encode(published.event, topics[0], event_id=published.event_id)
        pending: Awaitable[Any] = await self.outputs[topics[0]].send(
            key=record.key, value=record.value, headers=record.headers
        )
        return pending

    async def _carry_out(self, survivor: str, step: Step, partition: int) -> None:
        """Carry out a step in the order of :mod:`processors.engine`: add early, remove late.

        Records are all sent, then their acks awaited together (the
        idempotent producer keeps each partition's order), before any
        table write: a crash replays the input.
        """
        pending: list[Awaitable[Any]] = []
        for effect in step.effects:
            if isinstance(effect, Publish):
                pending.append(await self._publish(effect))
            elif isinstance(effect, AuditRecord):
                pending.append(
                    await self.audit.send(key=survivor.encode(), value=_json(effect.to_dict()))
                )
        for change in step.capacity:
            pending.append(
                await self.ledger.send(
                    key=str(change.provider_id).encode(),
                    value=change.model_dump_json().encode(),
                    headers=[(DirectoryView.WRITER_HEADER, self.view.writer)],
                )
            )
        if step.case is not None:
            current = status_view(step.case, datetime.now(UTC))
            pending.append(
                await self.status.send(key=survivor.encode(), value=_json(current.to_dict()))
            )
        await asyncio.gather(*pending)
        self.view.apply_local(step.capacity)
        queue = self.queue(partition)
        for deadline in step.add:
            queue.add(deadline)
        if step.case is not None:
            self.cases[survivor] = step.case.to_dict()
        if step.ladder is not None:
            self.ladder[survivor] = step.ladder.to_dict()
        for deadline in step.remove:
            queue.discard(deadline)


def _current_partition() -> int:
    """The partition of the record being processed (table writes go to its changelog too)."""
    event = faust.current_event()
    if event is None:  # pragma: no cover - only called from the agent
        raise ProcessorsError("no record is being processed")
    partition: int = event.message.partition
    return partition


async def _sent(
    topic: Any, key: bytes, value: bytes, headers: Any = None, partition: int | None = None
) -> None:
    """Send one record through Faust's producer and wait for the broker's ack."""
    pending = await topic.send(key=key, value=value, headers=headers, partition=partition)
    await pending


def _problem(web: View, status: int, title: str, detail: str, **headers: str) -> Response:
    """An RFC 9457 problem document (no personal data: titles and ids only)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.json(
        body, status=status, content_type="application/problem+json", headers=headers or None
    )


_Page = Callable[..., Awaitable[Response]]


def _caller(keys: ApiKeyStore | None, request: Request) -> Principal | None:
    """The principal of the request's bearer key, if any (None also without keys)."""
    if keys is None:
        return None
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return keys.authenticate(key.strip()) if scheme.lower() == "bearer" else None


async def _audit_read(
    audit: Any, keys: ApiKeyStore | None, request: Request, survivor: UUID, status: int
) -> None:
    """Append a :class:`StatusRead` to the audit topic and wait for the broker's ack."""
    caller = _caller(keys, request)
    record = StatusRead(
        survivor_id=survivor,
        at=datetime.now(UTC),
        principal=caller.name if caller else None,
        role=caller.role.value if caller else None,
        key_id=caller.key_id if caller else None,
        status=status,
    )
    await _sent(audit, str(survivor).encode(), _json(record.to_dict()))


def _authenticated(keys: ApiKeyStore | None) -> Callable[[_Page], _Page]:
    """Bearer API key of an operator, or 401/403 problem+json (``keys`` None: open, dev only).

    Checked on the worker that receives the request; Faust forwards the
    headers to the worker owning the survivor, which checks them again.
    """

    def decorate(handler: _Page) -> _Page:
        if keys is None:
            return handler

        @functools.wraps(handler)
        async def wrapper(web: View, request: Request, **kwargs: Any) -> Response:
            principal = _caller(keys, request)
            if principal is None:
                return _problem(
                    web,
                    401,
                    "Unauthenticated",
                    "send an operator's API key as 'Authorization: Bearer <key>'",
                    **{"WWW-Authenticate": 'Bearer realm="safepassage"'},
                )
            try:
                authorize_status_read(principal)
            except ForbiddenError as exc:
                return _problem(web, 403, "Forbidden", str(exc))
            result: Response = await handler(web, request, **kwargs)
            return result

        return wrapper

    return decorate


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


def changelog_specs(router: Router, settings: KafkaSettings) -> tuple[TopicSpec, ...]:
    """The changelog topics of the router's tables, as the catalog would describe them."""
    production = settings.profile is Profile.PRODUCTION
    keys = {"cases": "survivor id", "ladder": "survivor id", "deadlines": "deadline key"}
    return tuple(
        TopicSpec(
            name=table.changelog_topic.get_topic_name(),
            key=keys[name],
            description=f"Faust changelog of the router's {name} table.",
            partitions=settings.partitions,
            replication_factor=3 if production else 1,
            min_insync_replicas=2 if production else 1,
            cleanup_policy=CleanupPolicy.COMPACT,
            retention_ms=-1,
        )
        for name, table in (
            ("cases", router.cases),
            ("ladder", router.ladder),
            ("deadlines", router.deadlines),
        )
    )


def declare_changelogs(router: Router, settings: KafkaSettings) -> tuple[str, ...]:
    """Create the tables' changelog topics before Faust starts; refuse a mismatched one.

    Faust creates missing changelogs itself, at start, while its consumer
    is already joining: with three tables, its metadata snapshot was seen
    holding a changelog still being created, and every first write to that
    table failed with ``PartitionsMismatch``. Created beforehand, they are
    complete when Faust looks. A changelog whose partitions differ from the
    intake topic's can never work (a table partition is an intake
    partition), so that is an error naming the topic.
    """
    the_plan, created = provision(settings, changelog_specs(router, settings))
    wrong = [d for d in the_plan.drift if d.setting == "partitions"]
    if wrong:
        raise StreamsError(
            "; ".join(
                f"{d.topic} has {d.actual} partitions, the tables need {d.expected}: {d.remedy}"
                for d in wrong
            )
        )
    return created


def build_router(
    settings: KafkaSettings,
    *,
    policy: RoutingPolicy = DEFAULT_POLICY,
    data_dir: Path | None = None,
    web_port: int | None = None,
    store: str = "rocksdb://",
    app_id: str | None = None,
    clock: EscalationSettings | None = None,
    sla: SlaPolicy | None = None,
    keys: ApiKeyStore | None = None,
) -> Router:
    """Create the router's Faust app: agents, tables, directory view, ticks and status page.

    ``sla`` defaults to the policy's, else the shipped SLA policy; ``clock``
    to :class:`EscalationSettings` from the environment. ``keys``: the API
    keys the status page accepts (operators); None leaves it open, which
    only a dev profile allows (see ``safepassage worker``).
    """
    clock = clock if clock is not None else EscalationSettings()
    sla = sla or policy.sla or default_policy()
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
    ticks_name = tick_topic(settings)
    inputs = app.topic(
        f"{ns}.intake.v1",
        f"{ns}.provider-responses.v1",
        ticks_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    intake = f"{ns}.intake.v1"
    intake_route = raw_topic(app, intake)  # for routing web requests only
    deadletters = raw_topic(app, f"{ns}.deadletter.v1")
    audit = raw_topic(app, f"{ns}.audit.v1")
    status = raw_topic(app, f"{ns}.case-status.v1")
    ledger = raw_topic(app, f"{ns}.capacity-ledger.v1")
    outputs = {
        name: raw_topic(app, name)
        for name in [f"{ns}.escalations.v1", *(referral_topic(settings, c) for c in CATEGORIES)]
    }
    ticks = raw_topic(app, ticks_name)

    def table(name: str) -> Any:
        return app.Table(
            name,
            partitions=settings.partitions,
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
            options={"driver": "rocksdict"},
        )

    cases, ladder, deadlines = table("cases"), table("ladder"), table("deadlines")
    binding = _Binding(
        codec=codec,
        view=view,
        policy=policy,
        sla=sla,
        clock=clock,
        cases=cases,
        ladder=ladder,
        deadlines=deadlines,
        audit=audit,
        status=status,
        ledger=ledger,
        ticks=ticks,
        outputs=outputs,
        ordered_store=store.startswith("rocksdb:"),
        queues={},
    )

    async def forget_queues(_sender: Any, *_args: Any, **_kwargs: Any) -> None:  # Faust signal
        binding.queues.clear()

    app.on_partitions_revoked.connect(forget_queues)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(forget_queues)  # type: ignore[arg-type]

    @app.task  # type: ignore[untyped-decorator]
    async def follow_directory() -> None:
        await view.run()

    @app.agent(inputs, concurrency=1)
    async def route(stream: Any) -> None:
        await view.ready.wait()
        await process_records(
            stream,
            codec,
            binding.handle,
            FaustDeadLetterSink(deadletters),
            raw={ticks_name: binding.tick},
        )

    async def tick_owned_partitions() -> None:
        """Wall clock: tick each intake partition this worker owns (ticks are co-partitioned)."""
        now = datetime.now(UTC)
        owned = [tp.partition for tp in app.assignor.assigned_actives() if tp.topic == intake]
        for partition in owned:
            await ticks.send(key=TICK_KEY, value=encode_tick(now), partition=partition)

    if clock.clock is ClockMode.WALL:
        app.timer(clock.tick_interval_s)(tick_owned_partitions)

    @app.page("/v1/survivors/{survivor_id}/status")
    @_authenticated(keys)
    @_ready_or_503(app)
    # Routed by the owner of the survivor's *intake* partition (the table's
    # owner too: co-partitioned). Faust's table_route maps keys through the
    # changelog assignment, which includes standbys, and sent requests to a
    # worker that does not serve the key (seen with two workers; cf.
    # faust-streaming issue #514).
    @app.topic_route(topic=intake_route, match_info="survivor_id")
    async def survivor_status(web: View, request: Request, survivor_id: str) -> Response:
        try:
            survivor = UUID(survivor_id)
        except ValueError:
            return _problem(web, 400, "Not a survivor id", "the id must be a UUID")
        stored = cases.get(str(survivor))
        # Audited here, on the worker that owns the survivor (a forwarding worker
        # runs only the outer checks), and acknowledged before the answer.
        await _audit_read(audit, keys, request, survivor, 200 if stored else 404)
        if not stored:
            return _problem(web, 404, "Unknown survivor", "no case for this survivor id")
        return web.json(status_view(CaseState.from_dict(stored), datetime.now(UTC)).to_dict())

    del follow_directory, route, survivor_status  # registered on the app
    return Router(app=app, view=view, cases=cases, ladder=ladder, deadlines=deadlines)

"""Carries each input through the pure engine and its step out to the tables and topics.

Nothing is decided here: :mod:`processors.engine` decides, this module
only reads the survivor's stored state, calls it, and writes its
:class:`~processors.engine.Step` out in the engine's order (publish and
await every ack, add deadlines, store case and ladder, remove deadlines),
so a crash at any point replays the input harmlessly. It sees Faust only
through :mod:`processors.router.ports`, which is how the unit tests drive it
with in-memory tables and topics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processors.case import CaseState
from processors.deadlines import Deadline, StoredDeadlines, partition_prefix
from processors.effects import AuditRecord, Publish
from processors.engine import Step, on_due, on_event
from processors.escalation import EscalationState
from processors.exceptions import ProcessorsError
from processors.meta import EventMeta
from processors.policy import RoutingPolicy
from processors.router.ports import (
    WRITER_HEADER,
    DirectoryPort,
    Message,
    Scan,
    Table,
    Topic,
    json_bytes,
)
from processors.settings import EscalationSettings
from processors.sla import SlaPolicy
from processors.status import status_record
from schemas.models import Event, ReferralEscalated, SurvivorEvent
from streams.codec import Codec, Decoded
from streams.exceptions import RecordRejected, WrongEventType
from streams.logs import get_logger
from streams.metrics import ESCALATIONS, EVENTS_OUT, ROUTING_SECONDS
from streams.ticks import TICK_KEY, decode_tick, encode_tick
from streams.tracing import TRACEPARENT, span

__all__ = ["Binding"]

log = get_logger(__name__)


@dataclass
class Binding:
    """Carries each input through the pure engine and its step out to Kafka and the tables."""

    codec: Codec
    view: DirectoryPort
    policy: RoutingPolicy
    sla: SlaPolicy
    clock: EscalationSettings
    cases: Table
    """Survivor pseudonym → :meth:`CaseState.to_dict`."""
    ladder: Table
    """Survivor pseudonym → :meth:`EscalationState.to_dict`."""
    deadlines: Table
    """Partition-prefixed deadline key → :meth:`Deadline.to_dict`."""
    audit: Topic
    status: Topic
    keys: Topic
    """``survivor-keys.v1``, written only with a tombstone: an erased survivor's data key goes."""
    ledger: Topic
    ticks: Topic
    outputs: Mapping[str, Topic]
    """The topics events may be published to, by name (escalations, referral topics)."""
    scans: Callable[[int], Scan]
    """The ordered key scan of one partition of :attr:`deadlines` (see :mod:`.stores`)."""
    current_partition: Callable[[], int]
    """The partition of the record being handled (its table writes are changelogged there)."""
    queues: dict[int, StoredDeadlines] = field(default_factory=dict)
    """One deadline queue per owned partition; dropped at every rebalance (its low-water
    mark is only valid while this worker owned the partition throughout)."""

    def forget_queues(self) -> None:
        """Drop every partition's queue: call on each rebalance."""
        self.queues.clear()

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
            queue = StoredDeadlines(
                self.deadlines, self.scans(partition), partition_prefix(partition)
            )
            self.queues[partition] = queue
        return queue

    async def handle(self, decoded: Decoded) -> None:
        """Decide on one record; raise :class:`RecordRejected` when the core refused it."""
        event: Event = decoded.event
        if not isinstance(event, SurvivorEvent):
            raise WrongEventType(f"{event.event_type} does not belong to a survivor's case")
        survivor = str(event.survivor_id)
        started = time.perf_counter()
        try:
            with span("router.route", decoded.traceparent, event_type=event.event_type) as trace:
                await self._route(decoded, event, survivor, trace)
        finally:  # refusals are decisions too
            ROUTING_SECONDS.observe(time.perf_counter() - started)

    async def _route(
        self, decoded: Decoded, event: SurvivorEvent, survivor: str, trace: str
    ) -> None:
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
        await self._carry_out(survivor, step, self.current_partition(), trace)
        rejection = step.rejection
        log.info(
            "router.decided",
            event_type=event.event_type,
            survivor_id=survivor,
            published=[e.event.event_type for e in step.effects if isinstance(e, Publish)],
            refused=rejection.code.value if rejection is not None else None,
        )
        if rejection is not None:
            raise RecordRejected(f"{rejection.code.value}: {rejection.message}")

    async def tick(self, message: Message) -> None:
        """Escalate the deadlines of the message's partition due at the tick's instant.

        At most ``max_due_per_tick`` at once; when there may be more, a
        follow-up tick with the same instant goes to the back of the
        partition, so the partition's events are not held up by a burst.
        """
        now = decode_tick(message.value)
        partition = message.partition
        queue = self.queue(partition)
        limit = self.clock.max_due_per_tick
        due = queue.peek_due(now, limit)
        outcomes: dict[str, int] = {}
        for deadline in due:
            step = await self._escalate(deadline, now, partition)
            name = step.outcome.value if step.outcome else "none"
            outcomes[name] = outcomes.get(name, 0) + 1
        if len(due) >= limit:
            ack = await self.ticks.send(key=TICK_KEY, value=encode_tick(now), partition=partition)
            await ack
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

    async def _publish(self, published: Publish, trace: str | None) -> Awaitable[Any]:
        topics = [t for t in self.codec.contract.topics_for(published.event) if t in self.outputs]
        if len(topics) != 1:
            raise ProcessorsError(f"no single output topic for {published.event.event_type}")
        record = self.codec.encode(published.event, topics[0], event_id=published.event_id)
        headers = record.headers + ([(TRACEPARENT, trace.encode())] if trace else [])
        return await self.outputs[topics[0]].send(
            key=record.key, value=record.value, headers=headers
        )

    async def _carry_out(
        self, survivor: str, step: Step, partition: int, trace: str | None = None
    ) -> None:
        """Carry out a step in the order of :mod:`processors.engine`: add early, remove late.

        Records are all sent, then their acks awaited together (the
        idempotent producer keeps each partition's order), before any
        table write: a crash replays the input.
        """
        pending: list[Awaitable[Any]] = []
        for effect in step.effects:
            if isinstance(effect, Publish):
                pending.append(await self._publish(effect, trace))
            elif isinstance(effect, AuditRecord):
                pending.append(
                    await self.audit.send(key=survivor.encode(), value=json_bytes(effect.to_dict()))
                )
        for change in step.capacity:
            pending.append(
                await self.ledger.send(
                    key=str(change.provider_id).encode(),
                    value=change.model_dump_json().encode(),
                    headers=[(WRITER_HEADER, self.view.writer)],
                )
            )
        if step.case is not None and step.case.erased_at is not None:
            # Erased: the status goes, and so does the data key (crypto-shredding).
            pending.append(await self.status.send(key=survivor.encode(), value=None))
            pending.append(await self.keys.send(key=survivor.encode(), value=None))
        elif step.case is not None:
            # A function of the case alone (event times, consent terms with their
            # expiry): a replay of the same input publishes the same bytes.
            record = status_record(step.case)
            pending.append(
                await self.status.send(key=survivor.encode(), value=json_bytes(record.to_dict()))
            )
        await asyncio.gather(*pending)
        _count_published(step)
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


def _count_published(step: Step) -> None:
    """Count the step's events once their acks are in (metrics: ids never, types and levels)."""
    for effect in step.effects:
        if isinstance(effect, Publish):
            EVENTS_OUT.labels(type=effect.event.event_type).inc()
            if isinstance(effect.event, ReferralEscalated):
                ESCALATIONS.labels(level=str(effect.event.level)).inc()

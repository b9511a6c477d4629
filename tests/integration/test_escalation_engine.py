"""The escalation ladder on the real broker, with a driven clock and a ``kill -9``.

Offers are made by a real router worker (five referrals per survivor,
urgencies mixed, requests spread over a week so their deadlines are too):
1,000 of them in ``make test``, 10,000 in ``make test-long`` (marker
``long``). The test then drives the worker's clock with ticks
(``SAFEPASSAGE_ESCALATION_CLOCK=external``: nothing sleeps for an SLA
duration) and, once part of the escalations are out, kills the worker with
SIGKILL and starts it again on the same data folder.

The expected escalations come from the pure engine
(:mod:`processors.engine`) run in this process over the same events and
ticks. What must hold: the escalation topic carries exactly the expected
escalations (same CloudEvents ids, levels, referrals and missed deadlines),
none missing, none extra, and no escalation twice; copies of one record
(same id, re-published when the crash hit between the broker's ack and the
worker's table write) are counted and reported, and must stay below the
work one tick can have in flight.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer

from processors.case import CaseState
from processors.deadlines import MemoryDeadlines
from processors.directory import Directory, apply_capacity, apply_directory
from processors.engine import Step, on_due, on_event
from processors.escalation import EscalationState
from processors.meta import EventMeta
from processors.policy import RoutingPolicy
from processors.sla import default_policy
from schemas.models import Event, ProviderEvent, ReferralEscalated, ReferralOffered, SurvivorEvent
from schemas.types import ServiceCategory, Urgency
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.ticks import publish_ticks, tick_topic
from tests.integration.waits import TopicReader, wait_caught_up, wait_until
from tests.integration.workers import RunningWorker, start_worker
from tests.unit.domain_builders import consent, identified, provider, request, source_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_SURVIVOR = 5
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WEEK = timedelta(weeks=1)
"""The referral requests are spread evenly over it."""
TICKS = [T0 + timedelta(hours=6 * k) for k in range(1, 17)]
"""The driven clock: every 6 hours for 4 days."""
CATEGORIES = list(ServiceCategory)[1:5]
URGENCIES = [Urgency.ROUTINE, Urgency.PRIORITY, Urgency.EMERGENCY, Urgency.PRIORITY]
SOURCE = "/test/agency"


@dataclass
class Scenario:
    providers: list[ProviderEvent]
    events: list[tuple[SurvivorEvent, str]]
    """Intake events in publication order, with their CloudEvents ids."""


def generate(survivor_count: int) -> Scenario:
    offers = survivor_count * PER_SURVIVOR
    providers: list[ProviderEvent] = [
        provider(uuid.uuid4(), categories=[category], capacity=4 * offers)
        for category in CATEGORIES
        for _ in range(3)
    ]
    events: list[tuple[SurvivorEvent, str]] = []
    survivors = [uuid.uuid4() for _ in range(survivor_count)]
    for sid in survivors:
        opening: tuple[SurvivorEvent, ...] = (
            identified(sid, at=T0 - timedelta(hours=1)),
            consent(sid, at=T0),
        )
        events.extend((event, str(uuid.uuid4())) for event in opening)
    for i in range(offers):
        sid = survivors[i % survivor_count]
        requested = request(
            sid,
            uuid.uuid4(),
            category=CATEGORIES[i % len(CATEGORIES)],
            urgency=URGENCIES[(i // len(CATEGORIES)) % len(URGENCIES)],
            at=T0 + WEEK * i / offers,
        )
        events.append((requested, str(uuid.uuid4())))
    return Scenario(providers, events)


@dataclass
class Reference:
    """The pure engine over the same inputs: what the worker must publish."""

    policy: RoutingPolicy
    directory: Directory = field(default_factory=Directory)
    cases: dict[uuid.UUID, CaseState] = field(default_factory=dict)
    ladders: dict[uuid.UUID, EscalationState] = field(default_factory=dict)
    store: MemoryDeadlines = field(default_factory=MemoryDeadlines)
    escalations: dict[str, ReferralEscalated] = field(default_factory=dict)

    def _apply(self, survivor: uuid.UUID, step: Step) -> None:
        for published in step.published:
            if isinstance(published.event, ReferralEscalated):
                assert published.event_id not in self.escalations
                self.escalations[published.event_id] = published.event
        self.directory = apply_capacity(self.directory, step.capacity)
        for deadline in step.add:
            self.store.add(deadline)
        if step.case is not None:
            self.cases[survivor] = step.case
        if step.ladder is not None:
            self.ladders[survivor] = step.ladder
        for deadline in step.remove:
            self.store.discard(deadline)

    def run(self, scenario: Scenario, ticks: Iterable[datetime]) -> None:
        for entry in scenario.providers:
            self.directory = apply_directory(self.directory, entry)
        for event, event_id in scenario.events:
            sid = event.survivor_id
            step = on_event(
                self.cases.get(sid),
                self.ladders.get(sid),
                self.directory,
                event,
                EventMeta(source=source_for(event), id=event_id),
                now=event.occurred_at,
                policy=self.policy,
            )
            assert step.rejection is None
            self._apply(sid, step)
        for now in ticks:
            for deadline in self.store.peek_due(now):
                sid = deadline.survivor_id
                step = on_due(
                    deadline,
                    self.cases.get(sid),
                    self.ladders.get(sid),
                    self.directory,
                    now=now,
                    policy=self.policy,
                )
                self._apply(sid, step)


def read_until(
    reader: TopicReader, codec: Codec, until: Callable[[list[Any]], bool], what: str
) -> list[Any]:
    """Decoded records, up to the end of the topic each time, until ``until(records)`` holds."""
    out: list[Any] = []

    def enough() -> bool:
        out.extend(
            codec.decode(m.value(), m.headers(), topic=m.topic(), key=m.key())
            for m in reader.to_end()
        )
        return until(out)

    wait_until(enough, what, timeout_s=600, interval_s=0.5)
    return out


@pytest.mark.timeout(1200)
@pytest.mark.parametrize(
    "survivor_count",
    [
        pytest.param(80, id="400-offers"),
        pytest.param(2000, id="10000-offers", marks=pytest.mark.long),
    ],
)
def test_every_due_deadline_escalates_once_through_a_kill_9(
    survivor_count: int, bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    offers_expected = survivor_count * PER_SURVIVOR
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"esc-{uuid.uuid4().hex[:8]}"
    )
    ns = settings.topic_namespace
    provision(settings)
    sla = default_policy()
    policy = RoutingPolicy(sla=sla)
    scenario = generate(survivor_count)
    reference = Reference(policy)
    reference.run(scenario, TICKS)
    expected = reference.escalations
    offered_topics = [
        f"{ns}.referrals.{c}.v1" for c in ("housing", "health", "legal-aid", "financial-support")
    ]

    codec = Codec(settings, source=SOURCE)
    producer = Producer(producer_config(settings))

    def send(event: Event, topic: str, event_id: str | None = None) -> None:
        record = codec.encode(event, topic, event_id=event_id, source=source_for(event))
        producer.produce(
            record.topic, key=record.key, value=record.value, headers=list[Any](record.headers)
        )

    for entry in scenario.providers:
        send(entry, f"{ns}.providers.v1")
    assert producer.flush(30) == 0

    folder = tmp_path_factory.mktemp("escalation")
    worker: RunningWorker = start_worker(bootstrap, ns, folder)
    offers = TopicReader(settings, offered_topics)
    escalations = TopicReader(settings, [f"{ns}.escalations.v1"])
    try:
        started = time.monotonic()
        for event, event_id in scenario.events:
            send(event, f"{ns}.intake.v1", event_id)
        assert producer.flush(60) == 0

        def offered(records: list[Any]) -> bool:
            return sum(isinstance(r.event, ReferralOffered) for r in records) >= offers_expected

        read_until(offers, codec, offered, f"{offers_expected} offers")
        intake_s = time.monotonic() - started

        # Drive the clock: all ticks at once (each partition takes them in order).
        started = time.monotonic()
        for now in TICKS:
            publish_ticks(settings, now)
        seen = read_until(
            escalations,
            codec,
            lambda r: len(r) >= len(expected) * 0.35,
            f"a third of {len(expected)} escalations",
        )
        worker.kill()
        killed_at = len(seen)
        worker = start_worker(bootstrap, ns, folder)

        def complete(records: list[Any]) -> bool:
            return {r.envelope.id for r in seen + records} >= expected.keys()

        seen += read_until(escalations, codec, complete, "every expected escalation")
        escalate_s = time.monotonic() - started
        # Anything late (a duplicate or an extra) is out once the worker has handled every tick.
        wait_caught_up(
            settings,
            f"{ns}-router",
            [f"{ns}.intake.v1", tick_topic(settings)],
            on_timeout=worker.log_tail,
        )
        seen += read_until(escalations, codec, lambda _: True, "the rest of the escalations")
    finally:
        worker.stop()
        offers.close()
        escalations.close()

    ids = Counter(r.envelope.id for r in seen)
    published = {r.envelope.id: r.event for r in seen}
    missing = expected.keys() - published.keys()
    extra = published.keys() - expected.keys()
    copies = sum(n - 1 for n in ids.values())
    print(
        f"\n{offers_expected} offers made in {intake_s:.1f} s; {len(expected)} escalations "
        f"expected over {len(TICKS)} ticks, {len(published)} distinct published in "
        f"{escalate_s:.1f} s (kill -9 after {killed_at}); {copies} redelivered copies"
    )
    assert not missing, f"{len(missing)} escalations missing"
    assert not extra, f"{len(extra)} unexpected escalations"
    for event_id, event in expected.items():
        got = published[event_id]
        assert (got.referral_id, got.level, got.reason, got.missed_deadline) == (
            event.referral_id,
            event.level,
            event.reason,
            event.missed_deadline,
        )
    levels = Counter((e.referral_id, e.level) for e in published.values() if e.referral_id)
    assert max(levels.values()) == 1, "a referral escalated twice at one level"
    assert copies <= 500 * settings.partitions, "more copies than one tick per partition can make"

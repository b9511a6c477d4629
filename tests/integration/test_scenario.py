"""A generated scenario on the real broker, checked against an independent replay.

200 survivors in 3 jurisdictions, 12 providers, declines, silence,
cross-border cases, referrals waiting for consent, and consent withdrawals.
The driver answers offers the way providers would, in rounds, and waits for
the router to have handled every record between rounds. Every topic has one partition here,
so the router's processing order is the topics' order: the final status of
every survivor must then equal what the pure core computes when the same
records, read back from Kafka, are replayed through ``decide``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from processors.case import CaseState
from processors.core import decide
from processors.directory import Directory, apply_capacity, apply_directory
from processors.meta import EventMeta
from processors.settings import RouterSettings
from processors.status import status_record
from schemas.models import Event, ProviderEvent, ReferralOffered, SurvivorEvent
from schemas.types import AgeGroup, ServiceCategory, Urgency
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import CATEGORIES, referral_topic
from tests.integration.waits import TopicReader, read_to_end, wait_caught_up
from tests.integration.workers import RunningWorker, start_worker
from tests.unit.domain_builders import (
    accepted,
    consent,
    declined,
    identified,
    provider,
    request,
    source_for,
    withdrawal,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JURISDICTIONS = ("NL", "BE", "DE")
LANGUAGES = ("en", "nl", "fr", "de", "ro", "ar")
SURVIVORS = 200
PAIRS = [[a, b] for a in JURISDICTIONS for b in JURISDICTIONS if a != b]
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class Clock:
    """Event times that only move forward: the replay merges topics by them."""

    def __init__(self) -> None:
        self.now = T0

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Driver:
    """Publishes as agencies and providers do, and reads what the router wrote."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.ns = settings.topic_namespace
        self.codec = Codec(settings, source="/test/scenario")
        self.producer = Producer(producer_config(settings))
        self.seq = 0

    def send(self, suffix: str, event: Event) -> None:
        topic = f"{self.ns}.{suffix}"
        self.seq += 1
        record = self.codec.encode(
            event, topic, event_id=f"scenario-{self.seq}", source=source_for(event)
        )
        self.producer.produce(
            topic, key=record.key, value=record.value, headers=list[Any](record.headers)
        )

    def flush(self) -> None:
        assert self.producer.flush(60) == 0

    def caught_up(self, worker: RunningWorker) -> None:
        """Until the router has handled (and acknowledged the outputs of) all that was sent."""
        wait_caught_up(
            self.settings,
            f"{self.ns}-router",
            [f"{self.ns}.intake.v1", f"{self.ns}.provider-responses.v1"],
            on_timeout=worker.log_tail,
        )


@pytest.fixture
def scenario_settings(bootstrap: str) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"scn-{uuid.uuid4().hex[:8]}", partitions=1
    )
    provision(settings)
    return settings


@contextmanager
def scenario_worker(settings: KafkaSettings, folder: Path) -> Iterator[RunningWorker]:
    worker = start_worker(
        settings.bootstrap_servers,
        settings.topic_namespace,
        folder,
        SAFEPASSAGE_PARTITIONS="1",
        SAFEPASSAGE_ROUTER_CROSS_BORDER_PAIRS=json.dumps(PAIRS),
    )
    try:
        yield worker
    finally:
        worker.stop()


def generate(rng: random.Random, clock: Clock) -> tuple[list[ProviderEvent], list[SurvivorEvent]]:
    categories = list(ServiceCategory)[1:5]  # the four real ones (UNKNOWN is first)
    providers: list[ProviderEvent] = []
    for j in JURISDICTIONS:
        for n in range(4):
            providers.append(
                provider(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"scenario:{j}:{n}"),
                    categories=rng.sample(categories, 2) if n else categories,
                    languages=rng.sample(LANGUAGES, 2),
                    interpretation=n == 0,
                    jurisdictions=(j,),
                    child=n == 1,
                    cross_border=n in (0, 2),
                    capacity=400,
                    at=clock.tick(),
                )
            )
    intake: list[SurvivorEvent] = []
    for _ in range(SURVIVORS):
        sid = uuid.UUID(int=rng.getrandbits(128))
        home = rng.choice(JURISDICTIONS)
        age = rng.choices(list(AgeGroup)[1:], k=1)[0] if rng.random() < 0.2 else AgeGroup.ADULT
        abroad = rng.random() < 0.3
        wanted = rng.sample(categories, rng.randint(1, 3))
        asks = [
            (
                uuid.UUID(int=rng.getrandbits(128)),
                rng.choice(categories),
                rng.choice([Urgency.ROUTINE, Urgency.PRIORITY, Urgency.EMERGENCY]),
            )
            for _ in range(rng.randint(1, 2))
        ]

        early = rng.random() < 0.1  # a request that has to wait for consent
        languages = rng.sample(LANGUAGES, 2)
        events: list[SurvivorEvent] = [
            identified(sid, jurisdiction=home, age=age, languages=languages, at=clock.tick())
        ]
        if early:
            rid, category, urgency = asks.pop()
            events.append(
                request(
                    sid, rid, category=category, urgency=urgency, jurisdiction=home, at=clock.tick()
                )
            )
        events.append(
            consent(
                sid,
                categories=wanted,
                cross_border=abroad,
                jurisdictions=[j for j in JURISDICTIONS if j != home] if abroad else (),
                at=clock.tick(),
            )
        )
        for rid, category, urgency in asks:
            events.append(
                request(
                    sid, rid, category=category, urgency=urgency, jurisdiction=home, at=clock.tick()
                )
            )
        intake.extend(events)
    return providers, intake


def _diff(live: Any, expected: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as readable lines."""
    if isinstance(live, dict) and isinstance(expected, dict):
        return [
            line
            for k in sorted(set(live) | set(expected))
            for line in _diff(live.get(k), expected.get(k), f"{path}.{k}")
        ]
    if isinstance(live, list) and isinstance(expected, list) and len(live) == len(expected):
        return [
            line
            for i, (a, b) in enumerate(zip(live, expected, strict=True))
            for line in _diff(a, b, f"{path}[{i}]")
        ]
    return [] if live == expected else [f"{path}: live={live!r} replay={expected!r}"]


def replay(driver: Driver) -> dict[str, Any]:
    """Independent replay: the records as Kafka holds them, through the pure core."""
    settings = driver.settings
    topics = [
        f"{settings.topic_namespace}.{suffix}"
        for suffix in ("providers.v1", "intake.v1", "provider-responses.v1")
    ]
    replayed = [
        driver.codec.decode(m.value(), m.headers(), topic=m.topic(), key=m.key())
        for m in read_to_end(settings, *topics)
    ]
    directory = Directory()
    for item in replayed:
        if isinstance(item.event, ProviderEvent):
            directory = apply_directory(directory, item.event)
    survivor_events = sorted(
        (d for d in replayed if isinstance(d.event, SurvivorEvent)),
        key=lambda d: (d.event.occurred_at, d.envelope.id),
    )
    policy = RouterSettings(cross_border_pairs=tuple((a, b) for a, b in PAIRS)).to_policy()
    cases: dict[str, CaseState] = {}
    for item in survivor_events:
        event = item.event
        assert isinstance(event, SurvivorEvent)
        key = str(event.survivor_id)
        decision = decide(
            cases.get(key),
            directory,
            event,
            EventMeta.of(item.envelope),
            now=event.occurred_at,
            policy=policy,
        )
        directory = apply_capacity(directory, decision.capacity)
        if decision.changed:
            cases[key] = decision.state
    return {key: status_record(case).to_dict() for key, case in cases.items()}


def test_status_view_equals_an_independent_replay(
    scenario_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = scenario_settings
    rng = random.Random(2026)
    clock = Clock()
    driver = Driver(settings)
    providers, intake = generate(rng, clock)
    for entry in providers:
        driver.send("providers.v1", entry)
    driver.flush()
    # Started after the directory is written: a worker routes only once its view
    # has read what the directory held at its start.
    with (
        scenario_worker(settings, tmp_path / "worker") as worker,
        TopicReader(settings, [referral_topic(settings, c) for c in CATEGORIES]) as offers_in,
    ):
        counts, live = play(driver, worker, offers_in, rng=rng, clock=clock, intake=intake)

    expected = replay(driver)

    assert set(live) == set(expected)
    differing = [key for key in expected if live[key] != expected[key]]
    assert not differing, (
        f"{len(differing)} of {len(expected)} survivors differ; first: "
        + json.dumps(_diff(live[differing[0]], expected[differing[0]]), indent=1)
    )
    statuses = [r["status"] for view in live.values() for r in view["referrals"]]
    # The scenario really exercised what it claims to.
    assert len(live) == SURVIVORS
    assert counts["decline"] > 20 and counts["silence"] > 10 and counts["accept"] > 50
    assert {"accepted", "offered", "cancelled"} <= set(statuses), set(statuses)


def play(
    driver: Driver,
    worker: RunningWorker,
    offers_in: TopicReader,
    *,
    rng: random.Random,
    clock: Clock,
    intake: list[SurvivorEvent],
) -> tuple[dict[str, int], dict[str, Any]]:
    """Publish the intake, answer offers in rounds, withdraw; the status topic at the end.

    Each round waits until the router has handled everything sent so far,
    then takes the offers written meanwhile: no round can end early on a
    slow machine.
    """
    for event in intake:
        driver.send("intake.v1", event)
    driver.flush()
    answered: set[tuple[uuid.UUID, int]] = set()
    counts = {"accept": 0, "decline": 0, "silence": 0}
    for _ in range(12):  # answer in rounds until no new offer comes
        fresh = []
        driver.caught_up(worker)
        for message in offers_in.to_end():
            decoded = driver.codec.decode(message.value(), message.headers(), topic=message.topic())
            offer = decoded.event
            if (
                isinstance(offer, ReferralOffered)
                and (offer.referral_id, offer.attempt) not in answered
            ):
                answered.add((offer.referral_id, offer.attempt))
                fresh.append(offer)
        if not fresh:
            break
        for offer in fresh:
            roll = rng.random()
            if roll < 0.55:
                counts["accept"] += 1
                driver.send(
                    "provider-responses.v1",
                    accepted(
                        offer.survivor_id,
                        offer.referral_id,
                        offer.provider_id,
                        offer.attempt,
                        at=clock.tick(),
                    ),
                )
            elif roll < 0.85:
                counts["decline"] += 1
                driver.send(
                    "provider-responses.v1",
                    declined(
                        offer.survivor_id,
                        offer.referral_id,
                        offer.provider_id,
                        offer.attempt,
                        at=clock.tick(),
                    ),
                )
            else:
                counts["silence"] += 1
        driver.flush()

    withdrawn = rng.sample(sorted({e.survivor_id for e in intake}, key=str), SURVIVORS // 10)
    for sid in withdrawn:
        driver.send("intake.v1", withdrawal(sid, at=clock.tick()))
    driver.flush()
    driver.caught_up(worker)
    live: dict[str, Any] = {}
    for message in read_to_end(driver.settings, f"{driver.ns}.case-status.v1"):
        key, value = message.key(), message.value()
        assert key is not None and value is not None
        live[key.decode()] = json.loads(value)
    assert worker.alive(), worker.log_tail()
    return counts, live

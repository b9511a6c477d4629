"""The router's Faust worker on the real broker: offer, answer, status, escalation, refusal.

Status is read the way operators read it: through the intake, which keeps a
copy of the compacted ``case-status.v1`` the worker publishes to (the worker
itself serves no HTTP).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from connectors.auth import Role, add_key
from schemas.models import Event, ReferralEscalated
from schemas.types import AgeGroup, EscalationReason, UndeliveredEvent
from streams.clients import consumer_config, producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import referral_topic
from tests.integration.intake import StatusClient, running_intake
from tests.integration.waits import GENEROUS_S, wait_until
from tests.integration.workers import start_worker
from tests.unit.domain_builders import (
    accepted,
    consent,
    identified,
    provider,
    request,
    source_for,
    uid,
    undelivered,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def router(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    namespace = f"router-{uuid.uuid4().hex[:10]}"
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_namespace=namespace)
    provision(settings)
    home = uid(f"provider-{namespace}")
    # Registered before the worker starts: a worker routes only once its directory
    # view has read what the directory held at its start, so no race with the view.
    send(settings, "providers.v1", provider(home, capacity=3))
    folder = tmp_path_factory.mktemp("router")
    worker = start_worker(bootstrap, namespace, folder)
    try:
        with running_intake(settings, tmp_path_factory.mktemp("intake")) as intake:
            yield {
                "settings": settings,
                "worker": worker,
                "intake": intake,
                "home": home,
                "data": folder / "data",
            }
    finally:
        worker.stop()


def send(settings: KafkaSettings, topic_suffix: str, *events: Event) -> None:
    codec = Codec(settings, source="/safepassage/test")
    producer = Producer(producer_config(settings))
    topic = f"{settings.topic_namespace}.{topic_suffix}"
    for event in events:
        record = codec.encode(event, topic, source=source_for(event))
        producer.produce(
            topic, key=record.key, value=record.value, headers=list[Any](record.headers)
        )
    assert producer.flush(30) == 0


def read_until(
    settings: KafkaSettings, topic: str, done: Any, timeout_s: float = GENEROUS_S
) -> list[Any]:
    consumer = Consumer(consumer_config(settings, group_id=f"t-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    seen: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(seen)} records after {timeout_s:.0f} s")
            seen.extend(m for m in consumer.consume(100, timeout=0.5) if m.error() is None)
    finally:
        consumer.close()
    return seen


def test_offer_accept_status_escalation_and_refusal(router: dict[str, Any]) -> None:
    settings: KafkaSettings = router["settings"]
    codec = Codec(settings, source="/test/reader")
    home = router["home"]
    adult, child = uuid.uuid4(), uuid.uuid4()
    r_adult, r_child = uuid.uuid4(), uuid.uuid4()
    send(
        settings,
        "intake.v1",
        identified(adult),
        consent(adult),
        request(adult, r_adult),
        identified(child, age=AgeGroup.UNKNOWN),
        consent(child),
        request(child, r_child),
    )

    housing = referral_topic(settings, "housing")
    offers = read_until(settings, housing, lambda seen: len(seen) >= 1)
    offer = codec.decode(offers[0].value(), offers[0].headers(), topic=housing, key=offers[0].key())
    assert offer.event.event_type == "referral.offered"
    assert offer.event.referral_id == r_adult  # type: ignore[attr-defined]
    assert offers[0].key() == str(home).encode()  # addressed to the provider

    escalations = f"{settings.topic_namespace}.escalations.v1"
    found = read_until(settings, escalations, lambda seen: len(seen) >= 1)
    escalation = codec.decode(found[0].value(), found[0].headers(), topic=escalations).event
    assert escalation.survivor_id == child  # type: ignore[attr-defined]
    assert escalation.reason is EscalationReason.CHILD_PROTECTION  # type: ignore[attr-defined]
    assert escalation.level == 3  # type: ignore[attr-defined]

    send(settings, "provider-responses.v1", accepted(adult, r_adult, home, 1))
    intake: StatusClient = router["intake"]

    def accepted_status() -> Any:
        code, status = intake.status(adult)
        referrals: list[Any] = status.get("referrals") or [] if code == 200 else []
        accepted = bool(referrals) and referrals[0]["status"] == "accepted"
        return status if accepted else None

    status = wait_until(accepted_status, "the accepted referral in the status view")
    assert status["referrals"][0]["provider_id"] == str(home)
    assert status["consent"]["categories"]
    assert "personal_data" not in json.dumps(status)
    # Problems speak the intake's dialect (streams.problems): urn type, fixed title, media type.
    missing = uuid.uuid4()
    answer = intake.get(missing)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json() == {
        "type": "urn:safepassage:problem:unknown-survivor",
        "title": "Unknown survivor",
        "status": 404,
        "detail": "no case for this survivor id",
    }
    answer = intake.get("not-a-uuid")
    problem = answer.json()
    assert (
        answer.status_code == 400 and problem["type"] == "urn:safepassage:problem:invalid-request"
    )
    assert problem["errors"] == [{"location": "path:survivor_id", "message": "must be a UUID"}]
    # Only operators read status: no key is 401, another role's key 403.
    answer = intake.get(adult, key=None)
    problem = answer.json()
    assert (
        answer.status_code == 401 and problem["type"] == "urn:safepassage:problem:unauthenticated"
    )
    assert problem["status"] == 401 and "referrals" not in problem
    agency_key, _ = add_key(intake.keys_file, role=Role.AGENCY, principal="a", agency_id="ag-1")

    def as_agency() -> Any:
        answer = intake.get(adult, key=agency_key)
        return None if answer.status_code == 401 else answer  # until the keys file is reloaded

    answer = wait_until(as_agency, "the intake to load the changed keys file")
    problem = answer.json()
    # Not the agency that identified this survivor: answered like an unknown id.
    assert answer.status_code == 404 and "referrals" not in problem
    assert problem["type"] == "urn:safepassage:problem:unknown-survivor"

    # Every answered read is on the audit topic: who (principal, key id), whom, what status.
    def reads(seen: list[Any]) -> list[dict[str, Any]]:
        records = [json.loads(m.value()) for m in seen]
        return [r for r in records if r.get("kind") == "status.read"]

    audited = reads(
        read_until(
            settings,
            f"{settings.topic_namespace}.audit.v1",
            lambda seen: any(r["status"] == 404 for r in reads(seen)),
        )
    )
    mine = [r for r in audited if r["survivor_id"] == str(adult)]
    assert {r["principal"] for r in audited} == {"test-operator", "a"}
    operators = [r for r in mine if r["role"] == "operator"]
    assert operators[-1]["status"] == 200 and operators[-1]["refusal"] is None
    assert operators[-1]["key_id"].startswith("sp_operator_")
    refused = [r for r in mine if r["principal"] == "a"]
    assert [(r["status"], r["refusal"]) for r in refused] == [(404, "not-the-callers-survivor")]
    assert "referrals" not in json.dumps(audited)  # no case data in the audit of a read

    # An answer for a referral nobody requested is refused and dead-lettered.
    send(settings, "provider-responses.v1", accepted(adult, uuid.uuid4(), home, 1))
    letters = read_until(
        settings, f"{settings.topic_namespace}.deadletter.v1", lambda seen: len(seen) >= 1
    )
    reason = dict(letters[0].headers())
    assert reason["deadletter.error.class"] == b"RecordRejected"
    assert b"referral.unknown" in reason["deadletter.error.message"]
    assert router["worker"].alive(), router["worker"].log_tail()

    # The case state on disk (RocksDB) is the owner's alone, every file and directory of it.
    data: Path = router["data"]
    readable = [p for p in (data, *data.rglob("*")) if p.stat().st_mode & 0o077]
    assert not readable, readable[:5]


def test_an_offer_that_could_not_be_delivered_reaches_the_status_and_the_ladder(
    router: dict[str, Any],
) -> None:
    """The webhook connector's report goes through the router: escalated, moved on, shown."""
    settings: KafkaSettings = router["settings"]
    intake: StatusClient = router["intake"]
    home = router["home"]
    survivor, referral = uuid.uuid4(), uuid.uuid4()
    send(
        settings, "intake.v1", identified(survivor), consent(survivor), request(survivor, referral)
    )

    def offered() -> Any:
        code, status = intake.status(survivor)
        # 200 with no referral yet while only the identification is applied.
        return (
            code == 200
            and bool(status["referrals"])
            and (status["referrals"][0]["status"] == "offered")
        )

    wait_until(offered, "the referral offered to the only provider")
    report = undelivered(survivor, referral, home, 1, what=UndeliveredEvent.REFERRAL_OFFERED)
    send(settings, "provider-responses.v1", report)

    def escalated() -> Any:
        code, status = intake.status(survivor)
        return status if code == 200 and status["escalation_level"] == 3 else None

    status = wait_until(escalated, "the status to show the escalation")
    # Nobody else fits: the coordinator was alerted (2), then the operator (3, unroutable).
    (shown,) = status["referrals"]
    assert (shown["status"], shown["escalation_level"], shown["providers_tried"]) == (
        "unroutable",
        3,
        1,
    )
    assert status["last_update"] == report.occurred_at.isoformat().replace("+00:00", "Z")
    codec = Codec(settings, source="/test/reader")
    escalations = f"{settings.topic_namespace}.escalations.v1"

    def mine(seen: list[Any]) -> list[ReferralEscalated]:
        events = [codec.decode(m.value(), m.headers(), topic=escalations).event for m in seen]
        return [e for e in events if isinstance(e, ReferralEscalated) and e.referral_id == referral]

    found = mine(read_until(settings, escalations, lambda seen: len(mine(seen)) >= 2))
    assert [(e.level, e.reason) for e in found] == [
        (2, EscalationReason.DELIVERY_FAILED),
        (3, EscalationReason.UNROUTABLE),
    ]
    assert found[0].provider_id == home
    assert router["worker"].alive(), router["worker"].log_tail()

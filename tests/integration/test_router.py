"""The router's Faust worker on the real broker: offer, answer, status, escalation, refusal."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from connectors.auth import Role, add_key
from schemas.models import Event
from schemas.types import AgeGroup, EscalationReason
from streams.clients import consumer_config, producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import referral_topic
from tests.integration.waits import GENEROUS_S, wait_until
from tests.integration.workers import start_worker
from tests.unit.domain_builders import (
    accepted,
    consent,
    identified,
    provider,
    request,
    uid,
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
    worker = start_worker(bootstrap, namespace, tmp_path_factory.mktemp("router"))
    try:
        yield {
            "settings": settings,
            "port": worker.port,
            "worker": worker,
            "auth": worker.auth,
            "home": home,
        }
    finally:
        worker.stop()


def send(settings: KafkaSettings, topic_suffix: str, *events: Event) -> None:
    codec = Codec(settings, source="/test/agency")
    producer = Producer(producer_config(settings))
    topic = f"{settings.topic_namespace}.{topic_suffix}"
    for event in events:
        record = codec.encode(event, topic)
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


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    answer = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers or {}, timeout=30)
    return answer.status_code, answer.json() if answer.content else None


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

    def accepted_status() -> Any:
        code, status = http_get(router["port"], f"/v1/survivors/{adult}/status", router["auth"])
        accepted = code == 200 and status["referrals"][0]["status"] == "accepted"
        return status if accepted else None

    status = wait_until(accepted_status, "the accepted referral in the status view")
    assert status["referrals"][0]["provider_id"] == str(home)
    assert status["consent"]["categories"]
    assert "personal_data" not in json.dumps(status)
    # Problems speak the intake's dialect (streams.problems): urn type, fixed title, media type.
    unknown = f"/v1/survivors/{uuid.uuid4()}/status"
    answer = httpx.get(f"http://127.0.0.1:{router['port']}{unknown}", headers=router["auth"])
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json() == {
        "type": "urn:safepassage:problem:unknown-survivor",
        "title": "Unknown survivor",
        "status": 404,
        "detail": "no case for this survivor id",
        "instance": unknown,
    }
    code, problem = http_get(router["port"], "/v1/survivors/not-a-uuid/status", router["auth"])
    assert code == 400 and problem["type"] == "urn:safepassage:problem:invalid-request"
    assert problem["errors"] == [{"location": "path:survivor_id", "message": "must be a UUID"}]
    # Only operators read status: no key is 401, another role's key 403.
    worker = router["worker"]
    code, problem = http_get(router["port"], f"/v1/survivors/{adult}/status")
    assert code == 401 and problem["type"] == "urn:safepassage:problem:unauthenticated"
    assert problem["status"] == 401 and "referrals" not in problem
    agency_key, _ = add_key(worker.keys_file, role=Role.AGENCY, principal="a", agency_id="ag-1")

    def as_agency() -> tuple[int, Any] | None:
        answer = http_get(
            router["port"],
            f"/v1/survivors/{adult}/status",
            {"Authorization": f"Bearer {agency_key}"},
        )
        return None if answer[0] == 401 else answer  # 401 until the worker reloads its keys

    code, problem = wait_until(as_agency, "the worker to load the changed keys file")
    assert code == 403 and "referrals" not in problem
    assert problem["type"] == "urn:safepassage:problem:forbidden"

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
    assert mine and all(r["principal"] == "test-operator" for r in audited)
    assert mine[-1]["status"] == 200 and mine[-1]["role"] == "operator"
    assert mine[-1]["key_id"].startswith("sp_operator_")
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

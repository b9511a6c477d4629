"""The demo's provider simulator without a network: signed webhooks in, SDK answers out.

The webhooks are made as the delivery makes them (:func:`connectors.webhooks.payload`
and :func:`~connectors.webhooks.signed_headers`); the intake is an
``httpx.MockTransport`` that keeps every answer the simulated providers
post. The behaviours' delays are divided by 1,000.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors.demo.plan import BEHAVIOURS, DECLINE_REASONS, Behaviour
from connectors.demo.simulator import SimulatedProvider, Simulator
from connectors.directory.demo import PROVIDERS
from connectors.sdk import HttpTransport, ProviderClient
from connectors.webhooks import new_secret, payload, signed_headers
from schemas.models import ReferralCancelled, ReferralOffered
from schemas.types import Actor, CancelReason, ServiceCategory, Urgency
from streams.settings import KafkaSettings

NOW = datetime.now(UTC)


def _slug(behaviour: Behaviour) -> uuid.UUID:
    slug = next(s for s, b in BEHAVIOURS.items() if b is behaviour)
    return next(p.provider_id for p in PROVIDERS if p.slug == slug)


class Intake:
    """The intake API's /v1/events, keeping what each provider key posted."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, str, dict[str, object]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        event = json.loads(request.content)
        key = request.headers["Authorization"].removeprefix("Bearer ")
        self.answers.append((key, event["type"], event["data"]))
        return httpx.Response(202, json={"id": event["id"]})

    def types(self, key: str) -> list[str]:
        return [kind for k, kind, _ in self.answers if k == key]


def _simulator(intake: Intake, *ids: uuid.UUID) -> tuple[Simulator, dict[uuid.UUID, str]]:
    providers, secrets = {}, {}
    for pid in ids:
        secrets[pid] = new_secret()
        transport = HttpTransport(
            "https://intake.test",
            f"sp_provider_key-of-{pid}",
            http_transport=httpx.MockTransport(intake),
        )
        client = ProviderClient(pid, KafkaSettings(), transport=transport)
        providers[pid] = SimulatedProvider(pid, (secrets[pid],), client)
    return Simulator(providers, speed=1000.0), secrets


def _offer(
    pid: uuid.UUID, referral: uuid.UUID, urgency: Urgency = Urgency.ROUTINE
) -> ReferralOffered:
    return ReferralOffered(
        survivor_id=uuid.uuid4(),
        occurred_at=NOW,
        referral_id=referral,
        provider_id=pid,
        category=ServiceCategory.HOUSING,
        urgency=urgency,
        score=0.9,
        reasons=("category:housing",),
        attempt=1,
        deadline=NOW + timedelta(hours=1),
    )


async def _post(
    simulator: Simulator,
    pid: uuid.UUID,
    event: ReferralOffered | ReferralCancelled,
    secret: str,
    *,
    tamper: Callable[[bytes], bytes] = lambda body: body,
    delivery: str | None = None,
) -> int:
    delivery = delivery or str(uuid.uuid4())
    body = payload(event, delivery)
    headers = signed_headers(
        [secret],
        body,
        delivery=delivery,
        event_type=event.event_type,
        timestamp=int(NOW.timestamp()),
    )
    transport = httpx.ASGITransport(app=simulator.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as client:
        response = await client.post(f"/webhooks/{pid}", content=tamper(body), headers=headers)
    return response.status_code


async def _settle(simulator: Simulator) -> None:
    for _ in range(200):
        if not simulator.pending:
            return
        await asyncio.sleep(0.01)
    pytest.fail("answers still pending")


async def test_a_prompt_provider_accepts_starts_and_completes_with_its_own_key() -> None:
    intake = Intake()
    pid = _slug(Behaviour.PROMPT)
    simulator, secrets = _simulator(intake, pid)
    referral = uuid.uuid4()
    assert await _post(simulator, pid, _offer(pid, referral), secrets[pid]) == 204
    await _settle(simulator)
    key = f"sp_provider_key-of-{pid}"
    assert intake.types(key) == ["referral.accepted", "referral.started", "referral.completed"]
    assert all(data["referral_id"] == str(referral) for _, _, data in intake.answers)
    assert all(data["provider_id"] == str(pid) for _, _, data in intake.answers)


async def test_a_decliner_declines_with_its_reason_and_a_silent_provider_says_nothing() -> None:
    intake = Intake()
    decliner, silent = _slug(Behaviour.DECLINER), _slug(Behaviour.SILENT)
    simulator, secrets = _simulator(intake, decliner, silent)
    assert (
        await _post(simulator, decliner, _offer(decliner, uuid.uuid4()), secrets[decliner]) == 204
    )
    assert await _post(simulator, silent, _offer(silent, uuid.uuid4()), secrets[silent]) == 204
    await _settle(simulator)
    ((key, kind, data),) = intake.answers
    assert (key, kind) == (f"sp_provider_key-of-{decliner}", "referral.declined")
    slug = next(p.slug for p in PROVIDERS if p.provider_id == decliner)
    assert data["reason"] == DECLINE_REASONS[slug].value


async def test_a_forged_or_unknown_webhook_is_refused_and_a_repeat_answered_once() -> None:
    intake = Intake()
    pid = _slug(Behaviour.PROMPT)
    simulator, secrets = _simulator(intake, pid)
    offer = _offer(pid, uuid.uuid4())
    forged = await _post(
        simulator, pid, offer, secrets[pid], tamper=lambda b: b.replace(b"1", b"2")
    )
    assert forged == 401
    assert await _post(simulator, pid, offer, new_secret()) == 401  # another provider's secret
    assert await _post(simulator, uuid.uuid4(), offer, secrets[pid]) == 404
    delivery = str(uuid.uuid4())
    assert await _post(simulator, pid, offer, secrets[pid], delivery=delivery) == 204
    assert await _post(simulator, pid, offer, secrets[pid], delivery=delivery) == 204
    await _settle(simulator)
    assert [kind for _, kind, _ in intake.answers].count("referral.accepted") == 1


async def test_a_cancellation_ends_what_the_provider_still_meant_to_say() -> None:
    intake = Intake()
    pid = _slug(Behaviour.SLOW)  # answers after 8 s (8 ms here)
    simulator, secrets = _simulator(intake, pid)
    simulator.speed = 10.0  # 0.8 s: time enough to cancel first
    referral = uuid.uuid4()
    offer = _offer(pid, referral)
    assert await _post(simulator, pid, offer, secrets[pid]) == 204
    cancelled = ReferralCancelled(
        survivor_id=offer.survivor_id,
        occurred_at=NOW,
        referral_id=referral,
        reason=CancelReason.OTHER,
        cancelled_by=Actor.SYSTEM,
        provider_id=pid,
    )
    assert await _post(simulator, pid, cancelled, secrets[pid]) == 204
    await _settle(simulator)
    assert intake.answers == []
    await simulator.stop()

"""The agency and provider SDKs against a real broker.

The agency SDK writes every agency event type to the intake topic, and a
re-published id stays the same id on the wire. The provider SDK reads only
its own offers, each once, answers onto provider-responses under the
survivor's key, and after a restart in the same group does not see again
what it acknowledged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest
from confluent_kafka import Producer

from connectors.exceptions import SdkRetriesExhaustedError, SdkTransientError
from connectors.inbound_relay import InboundRelay
from connectors.offers_relay import OffersRelay
from connectors.sdk import (
    AgencyClient,
    Incoming,
    KafkaTransport,
    OfferRef,
    ProviderClient,
    RetryPolicy,
    answer_id,
)
from schemas.models import (
    Event,
    ReferralAccepted,
    ReferralCancelled,
    ReferralOffered,
)
from schemas.types import (
    Actor,
    AgeGroup,
    CancelReason,
    CaseOutcome,
    Gender,
    RiskLevel,
    ServiceCategory,
    Urgency,
)
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import Topics, party_spec, referral_topic
from tests.integration.conftest import free_port
from tests.integration.relay import relaying
from tests.integration.waits import read_to_end, wait_until
from tests.unit.domain_builders import (
    T0,
    cancelled,
    closed,
    consent,
    identified,
    request,
    risk,
    uid,
    withdrawal,
)

pytestmark = [pytest.mark.integration]

HOUSING = ServiceCategory.HOUSING


@pytest.fixture
def settings(bootstrap: str) -> KafkaSettings:
    """A namespace of the test's own, with every catalog topic provisioned."""
    ns = KafkaSettings(bootstrap_servers=bootstrap, topic_namespace=f"sdk-{uuid.uuid4().hex[:12]}")
    provision(ns)
    return ns


def offer(
    provider: UUID, referral: UUID, attempt: int = 1, survivor: UUID | None = None
) -> ReferralOffered:
    """A ``referral.offered`` as the router writes it (see processors/moves.py)."""
    return ReferralOffered(
        survivor_id=survivor or uid(f"survivor-of-{referral}"),
        occurred_at=T0,
        referral_id=referral,
        provider_id=provider,
        category=HOUSING,
        urgency=Urgency.ROUTINE,
        score=0.75,
        reasons=("language:en", "jurisdiction:nl"),
        attempt=attempt,
        deadline=T0 + timedelta(hours=72),
    )


def forwarded_cancel(provider: UUID, referral: UUID) -> ReferralCancelled:
    """The router's copy of a cancellation, addressed to the provider holding the offer."""
    return ReferralCancelled(
        survivor_id=uid(f"survivor-of-{referral}"),
        occurred_at=T0,
        referral_id=referral,
        reason=CancelReason.CONSENT_WITHDRAWN,
        cancelled_by=Actor.AGENCY,
        provider_id=provider,
        category=HOUSING,
    )


def route(settings: KafkaSettings, records: list[tuple[Event, str]]) -> None:
    """Write offers and cancellations to the housing topic as the router does."""
    codec = Codec(settings, source="/safepassage/router")
    topic = referral_topic(settings, "housing")
    producer = Producer(producer_config(settings))
    for event, ce_id in records:
        record = codec.encode(event, topic, event_id=ce_id)
        producer.produce(topic, key=record.key, value=record.value, headers=list(record.headers))
    assert producer.flush(30) == 0


def take(client: ProviderClient, count: int, idle_timeout_s: float = 20) -> list[Incoming]:
    """Up to ``count`` items, acknowledging none (the client is built with auto_ack off)."""
    return list(client.offers(idle_timeout_s=idle_timeout_s, max_items=count))


# --------------------------------------------------------------------------- agency SDK


KAFKA_AGENCY = "nl-police"
"""An agency id that can name a topic of its own (the builders' ``AGENCY`` has a colon)."""


def as_kafka_agency(event: Event) -> Event:
    return (
        event.model_copy(update={"agency_id": KAFKA_AGENCY})
        if hasattr(event, "agency_id")
        else event
    )


def test_agency_sdk_over_kafka_publishes_every_agency_event(settings: KafkaSettings) -> None:
    """Onto the agency's own topic; the inbound relay checks each and moves it onto intake."""
    sid, rid = uid(f"sdk-survivor-{settings.topic_namespace}"), uid("sdk-referral")
    expected = [
        (ce_id, as_kafka_agency(event))
        for ce_id, event in [
            ("7e21b3c6-2bd8-5741-91bf-b85476c26189", identified(sid)),
            ("063313d6-60b2-55e2-b896-24e77f14b310", consent(sid, categories=(HOUSING,))),
            ("38016771-fcaa-59fb-9089-9535aca2e37f", risk(sid, RiskLevel.HIGH)),
            ("090d6cbc-60ea-5d01-9860-f738ce7dd94f", request(sid, rid)),
            ("0c5e75c2-c556-5260-9de1-49636ca07f5b", cancelled(sid, rid)),
            ("4f4e0854-71f2-5b7c-9a85-9521b5c52084", withdrawal(sid)),
            ("5fcd463e-5a97-5cda-84f2-27a4f3d5dd54", closed(sid)),
        ]
    ]
    provision(settings, [party_spec(settings, f"/agencies/{KAFKA_AGENCY}")])  # as acl apply does
    relay = InboundRelay(settings, poll_interval_s=0.05)
    with relaying(relay), AgencyClient.over_kafka(KAFKA_AGENCY, settings) as client:
        ids = [
            client.identify_survivor(
                sid,
                jurisdiction="NL",
                age_group=AgeGroup.ADULT,
                languages=["en"],
                gender=Gender.FEMALE,
                occurred_at=T0,
                event_id="7e21b3c6-2bd8-5741-91bf-b85476c26189",
            ),
            client.grant_consent(
                sid,
                consent_id=uid(f"consent:{sid}"),
                categories=[HOUSING],
                cross_border_allowed=False,
                occurred_at=T0,
                event_id="063313d6-60b2-55e2-b896-24e77f14b310",
            ),
            client.assess_risk(
                sid,
                level=RiskLevel.HIGH,
                occurred_at=T0,
                event_id="38016771-fcaa-59fb-9089-9535aca2e37f",
            ),
            client.request_referral(
                sid,
                referral_id=rid,
                category=HOUSING,
                urgency=Urgency.ROUTINE,
                jurisdiction="NL",
                occurred_at=T0,
                event_id="090d6cbc-60ea-5d01-9860-f738ce7dd94f",
            ),
            client.cancel_referral(
                sid,
                referral_id=rid,
                occurred_at=T0,
                event_id="0c5e75c2-c556-5260-9de1-49636ca07f5b",
            ),
            client.withdraw_consent(
                sid,
                consent_id=uid(f"consent:{sid}"),
                occurred_at=T0,
                event_id="4f4e0854-71f2-5b7c-9a85-9521b5c52084",
            ),
            client.close_case(
                sid,
                outcome=CaseOutcome.SUPPORT_COMPLETED,
                occurred_at=T0,
                event_id="5fcd463e-5a97-5cda-84f2-27a4f3d5dd54",
            ),
        ]
        # A caller retrying its logical "close case" step passes the same id again.
        again = client.close_case(
            sid,
            outcome=CaseOutcome.SUPPORT_COMPLETED,
            occurred_at=T0,
            event_id="5fcd463e-5a97-5cda-84f2-27a4f3d5dd54",
        )
        wait_until(lambda: relay.stats.relayed == 8, "the relay to move all 8 records")

    assert ids == [ce_id for ce_id, _ in expected]
    assert again == "5fcd463e-5a97-5cda-84f2-27a4f3d5dd54"
    intake = f"{settings.topic_namespace}.intake.v1"
    records = read_to_end(settings, intake)  # the SDK returns after the broker's ack
    codec = Codec(settings, source="/test/reader")
    decoded = [codec.decode(r.value(), r.headers(), topic=intake, key=r.key()) for r in records]
    # One survivor, one partition: the order is the order of the calls.
    assert [(d.envelope.id, d.event) for d in decoded] == [*expected, expected[-1]]
    assert {d.envelope.source for d in decoded} == {f"/agencies/{KAFKA_AGENCY}"}
    assert relay.stats.dead_lettered == 0
    assert {r.key() for r in records} == {str(sid).encode()}
    # The retry is a second record with the same CloudEvents id: the platform
    # (the router's idempotency window on source + id) drops it downstream.
    assert records[-1].offset() != records[-2].offset()
    assert (
        decoded[-1].envelope.id == decoded[-2].envelope.id == "5fcd463e-5a97-5cda-84f2-27a4f3d5dd54"
    )


# --------------------------------------------------------------------------- provider SDK


def test_provider_sdk_yields_its_own_offers_once_answers_and_resumes(
    settings: KafkaSettings,
) -> None:
    provider_a, provider_b = uid("sdk-provider-a"), uid("sdk-provider-b")
    r1, r2, r3, r4 = (uid(f"sdk-r{n}") for n in range(1, 5))
    a1, b1, a2 = offer(provider_a, r1), offer(provider_b, r2), offer(provider_a, r3, attempt=2)
    route(
        settings,
        [
            (a1, "offer-a1"),
            (b1, "offer-b1"),
            (a1, "offer-a1"),  # the router re-published after a crash: same record again
            (a2, "offer-a2"),
            (forwarded_cancel(provider_b, r2), "cancel-b1"),
            (forwarded_cancel(provider_a, r4), "cancel-a4"),
            (forwarded_cancel(provider_a, r4), "cancel-a4-copy"),  # same fact, another id
        ],
    )
    group = f"provider-a-{uuid.uuid4().hex[:8]}"
    provision(settings, [party_spec(settings, f"/providers/{provider_a}")])  # as acl apply does
    inbound = InboundRelay(settings, poll_interval_s=0.05)
    with (
        relaying(OffersRelay(settings, poll_interval_s=0.05)) as relay,
        relaying(inbound),
    ):
        client = ProviderClient(provider_a, settings, group_id=group, auto_ack=False)
        try:
            items = take(client, 3)
            assert [(i.event_id, type(i.event).__name__) for i in items] == [
                ("offer-a1", "ReferralOffered"),
                ("offer-a2", "ReferralOffered"),
                ("cancel-a4", "ReferralCancelled"),
            ]
            assert [i.event for i in items[:2]] == [a1, a2]
            assert take(client, 1, idle_timeout_s=3) == []  # nothing else: copies dropped
            assert (client.stats.duplicates, client.stats.not_addressed) == (2, 0)

            ce_id = client.accept(items[0])
            client.ack(items[0])
        finally:
            client.close()
        # B's offer and cancellation went to B's own topic, which A cannot read on a
        # secured broker (test_security.py); every record was relayed once.
        theirs = read_to_end(settings, Topics.of(settings).offers(provider_b))
        assert [dict(m.headers() or [])["ce_id"] for m in theirs] == [b"offer-b1", b"cancel-b1"]
        assert relay.stats.relayed == 7
        # The answer went onto A's own topic; the inbound relay moved it on.
        wait_until(lambda: inbound.stats.relayed == 1, "the inbound relay to move the answer")

    responses = f"{settings.topic_namespace}.provider-responses.v1"
    [record] = read_to_end(settings, responses)
    assert record.key() == str(a1.survivor_id).encode()
    answer = Codec(settings, source="/test/reader").decode(
        record.value(), record.headers(), topic=responses, key=record.key()
    )
    assert isinstance(answer.event, ReferralAccepted)
    assert answer.event.provider_id == provider_a
    assert (answer.event.referral_id, answer.event.attempt) == (r1, 1)
    assert (
        answer.envelope.id == ce_id == answer_id(provider_a, OfferRef.of(a1), "referral.accepted")
    )
    assert answer.envelope.source == f"/providers/{provider_a}"

    # A restart in the same group: the acknowledged offer does not come again,
    # the two that were handed out but not acknowledged do.
    restarted = ProviderClient(provider_a, settings, group_id=group, auto_ack=False)
    try:
        again = take(restarted, 2)
        assert take(restarted, 1, idle_timeout_s=3) == []
    finally:
        restarted.close()
    assert [i.event_id for i in again] == ["offer-a2", "cancel-a4"]


def test_auto_ack_acknowledges_an_item_when_the_next_is_asked_for(
    settings: KafkaSettings,
) -> None:
    provider_a = uid("sdk-auto-a")
    offers = [offer(provider_a, uid(f"sdk-auto-r{n}")) for n in range(3)]
    route(settings, [(event, f"auto-{n}") for n, event in enumerate(offers)])
    group = f"provider-auto-{uuid.uuid4().hex[:8]}"

    def first_two(client: ProviderClient) -> Iterator[str]:
        for item in client.offers(idle_timeout_s=20):
            yield item.event_id
            if item.event_id == "auto-1":
                return  # leave the loop holding auto-1: it is not acknowledged

    with relaying(OffersRelay(settings, poll_interval_s=0.05)):
        client = ProviderClient(provider_a, settings, group_id=group)
        try:
            assert list(first_two(client)) == ["auto-0", "auto-1"]
            # The same client hands auto-1 back after rewind(), without a restart;
            # taking one item and not asking for the next leaves it unacknowledged.
            client.rewind()
            assert next(client.offers(idle_timeout_s=10)).event_id == "auto-1"
        finally:
            client.close()

    # auto-0 was acknowledged (the loop asked for auto-1); auto-1 never was.
    restarted = ProviderClient(provider_a, settings, group_id=group)
    try:
        rest = [i.event_id for i in restarted.offers(idle_timeout_s=15, max_items=2)]
    finally:
        restarted.close()
    assert rest == ["auto-1", "auto-2"]


def test_an_unreachable_broker_is_transient_and_retried_under_the_same_id() -> None:
    """librdkafka's own verdict (``_MSG_TIMED_OUT``) on a port nobody listens on."""
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic_namespace="gone")
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=2, initial_wait_s=0, max_wait_s=0, sleep=waits.append)
    transport = KafkaTransport(settings, retry=policy, delivery_timeout_s=1.0)
    client = AgencyClient(KAFKA_AGENCY, transport)

    with pytest.raises(SdkRetriesExhaustedError) as caught:
        client.close_case(
            uid("nobody"),
            outcome=CaseOutcome.OTHER,
            event_id="1cdd845f-f296-5c7a-b945-5b5b75e892b7",
        )

    assert caught.value.attempts == 2 and waits == [0.0]
    assert caught.value.event_ids == ("1cdd845f-f296-5c7a-b945-5b5b75e892b7",)
    assert isinstance(caught.value.__cause__, SdkTransientError)
    assert "MSG_TIMED_OUT" in str(caught.value.__cause__)

"""The agency and provider SDKs without a broker or a server.

Event building and validation, which failures are retried, the HTTP
transport against httpx's own test transport (CloudEvents structured
mode, problem+json, Retry-After), the Kafka transport's retry and ordering
logic with a scripted stand-in for the producer, and the provider side's
pure de-duplication and offset bookkeeping.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from confluent_kafka import KafkaError, Message, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from tenacity import RetryCallState, Retrying

from connectors.exceptions import (
    SdkConsumeError,
    SdkNotAddressedError,
    SdkRejectedError,
    SdkRetriesExhaustedError,
    SdkTransientError,
    SdkValidationError,
)
from connectors.sdk import (
    AgencyClient,
    HttpTransport,
    Incoming,
    KafkaTransport,
    OfferRef,
    Outgoing,
    ProviderClient,
    RetryPolicy,
    answer_id,
    build_event,
)
from connectors.sdk.disclosures import DisclosureClient
from connectors.sdk.keys import KeyClient
from connectors.sdk.offers import Deduplicator, dedupe_keys
from schemas.models import (
    CaseClosed,
    CaseShared,
    CaseUnshared,
    ConsentGranted,
    ConsentWithdrawn,
    Event,
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralDeclined,
    ReferralFailed,
    ReferralOffered,
    ReferralRequested,
    ReferralStarted,
    RiskAssessed,
    SurvivorErasureRequested,
    SurvivorEvent,
    SurvivorIdentified,
    model_for,
)
from schemas.personal import PersonalData
from schemas.types import (
    Actor,
    AgeBand,
    AgeGroup,
    CancelReason,
    CaseOutcome,
    DeclineReason,
    FailureReason,
    Gender,
    ImmediateNeed,
    ReferralOutcome,
    RiskLevel,
    SealAlgorithm,
    Sealed,
    ServiceCategory,
    Urgency,
)
from streams.cloudevents import BATCH_MEDIA_TYPE, CE_ID, STRUCTURED_MEDIA_TYPE, structured
from streams.codec import Codec
from streams.producing import kafka_error_is_transient
from streams.provider_sealing import (
    SUITE_NAME,
    DisclosureContext,
    ProviderKey,
    public_key_from_b64,
    seal_disclosure,
)
from streams.retry import parse_retry_after
from streams.sealing import DataKey, SealContext, open_sealed
from streams.settings import KafkaSettings
from tests.doubles import Recorder, ScriptedConsumer, ScriptedProducer
from tests.unit.domain_builders import AGENCY, T0, closed, identified, uid

SID = uid("survivor")
RID = uid("referral")

_NAMES: dict[str, str] = {}


def eid(name: str) -> str:
    """A CloudEvents id (a UUID, as the platform wants) that reads back as ``name``."""
    value = str(uid(f"event:{name}"))
    _NAMES[value] = name
    return value


def named(event_id: str) -> str:
    """The name :func:`eid` was given for ``event_id`` (the id itself if none)."""
    return _NAMES.get(event_id, event_id)


CID = uid("consent")
PROVIDER_A = uid("provider-a")
PROVIDER_B = uid("provider-b")
NO_WAIT = RetryPolicy(initial_wait_s=0, max_wait_s=0, max_attempts=5)


def agency(transport: Any = None) -> tuple[AgencyClient, Recorder]:
    recorder = transport or Recorder()
    return AgencyClient(AGENCY, recorder, clock=lambda: T0), recorder


def offer(provider: UUID = PROVIDER_A, attempt: int = 1, rid: UUID = RID) -> ReferralOffered:
    """A ``referral.offered`` as the router writes it."""
    return ReferralOffered(
        survivor_id=SID,
        occurred_at=T0,
        referral_id=rid,
        provider_id=provider,
        category=ServiceCategory.HOUSING,
        urgency=Urgency.ROUTINE,
        score=0.8,
        reasons=("language:en",),
        attempt=attempt,
        deadline=T0 + timedelta(hours=72),
    )


# --------------------------------------------------------------------------- agency SDK: events


AGENCY_CALLS: dict[str, tuple[str, dict[str, Any], type[Event]]] = {
    "identify": (
        "identify_survivor",
        {
            "jurisdiction": "NL",
            "age_group": AgeGroup.ADULT,
            "languages": ["en", "ro"],
            "gender": Gender.FEMALE,
            "age_band": AgeBand.FROM_25_TO_34,
        },
        SurvivorIdentified,
    ),
    "consent": (
        "grant_consent",
        {
            "consent_id": uid("consent"),
            "categories": [ServiceCategory.HOUSING, "HEALTH"],
            "cross_border_allowed": False,
        },
        ConsentGranted,
    ),
    "withdraw": ("withdraw_consent", {"consent_id": uid("consent")}, ConsentWithdrawn),
    "risk": (
        "assess_risk",
        {"level": RiskLevel.HIGH, "immediate_needs": [ImmediateNeed.EMERGENCY_SHELTER]},
        RiskAssessed,
    ),
    "request": (
        "request_referral",
        {
            "referral_id": RID,
            "category": ServiceCategory.HOUSING,
            "urgency": Urgency.PRIORITY,
            "jurisdiction": "NL",
            "languages": ["en"],
        },
        ReferralRequested,
    ),
    "cancel": ("cancel_referral", {"referral_id": RID}, ReferralCancelled),
    "close": ("close_case", {"outcome": CaseOutcome.SUPPORT_COMPLETED}, CaseClosed),
    "share": ("share_case", {"with_agency": "agency:second", "consent_id": CID}, CaseShared),
    "unshare": ("unshare_case", {"with_agency": "agency:second"}, CaseUnshared),
    "erase": ("request_erasure", {}, SurvivorErasureRequested),
}


@pytest.mark.parametrize("name", sorted(AGENCY_CALLS))
def test_each_agency_method_builds_its_event_with_the_agency_identity(name: str) -> None:
    method, kwargs, model = AGENCY_CALLS[name]
    client, sent = agency()

    ce_id = getattr(client, method)(str(SID), **kwargs)

    [item] = sent.sent
    assert type(item.event) is model
    assert isinstance(item.event, SurvivorEvent)
    assert item.event.survivor_id == SID
    assert item.event.occurred_at == T0
    assert item.source == f"/agencies/{AGENCY}"
    assert item.event_id == ce_id
    assert UUID(ce_id).version == 4
    if hasattr(item.event, "agency_id"):
        assert item.event.agency_id == AGENCY


def test_a_caller_retrying_passes_its_own_id_and_gets_the_same_event() -> None:
    client, sent = agency()
    for _ in range(2):
        client.close_case(
            SID,
            outcome="TRANSFERRED",
            event_id="7e7a551d-9f7b-57b1-a3ec-ebdfe3acac01",
            occurred_at=T0,
        )
    first, second = sent.sent
    assert first == second
    assert first.event_id == "7e7a551d-9f7b-57b1-a3ec-ebdfe3acac01"


def test_an_id_passed_again_keeps_its_first_time_so_the_retry_is_the_same_event() -> None:
    """The intake API would answer the same id with another ``occurred_at`` with a 409."""
    ticks = iter(T0 + timedelta(seconds=n) for n in range(10))
    recorder = Recorder()
    client = AgencyClient(AGENCY, recorder, clock=lambda: next(ticks))
    client.close_case(SID, outcome="OTHER", event_id="31b94fef-0dbb-58c8-bf15-0eafe19eb047")
    client.close_case(SID, outcome="OTHER", event_id="31b94fef-0dbb-58c8-bf15-0eafe19eb047")
    client.close_case(SID, outcome="OTHER")
    first, retried, fresh = recorder.sent
    assert retried == first and first.event.occurred_at == T0
    assert fresh.event.occurred_at == T0 + timedelta(seconds=1)


def test_request_referral_puts_the_requirements_together() -> None:
    client, sent = agency()
    client.request_referral(
        SID,
        referral_id=RID,
        category="LEGAL_AID",
        urgency="EMERGENCY",
        jurisdiction="BE",
        gender_specific=True,
        child_specialised=True,
    )
    event = sent.sent[0].event
    assert isinstance(event, ReferralRequested)
    assert event.category is ServiceCategory.LEGAL_AID
    assert event.requirements.jurisdiction == "BE"
    assert event.requirements.child_specialised and event.requirements.gender_specific
    assert not event.requirements.accessibility


def test_cancel_referral_is_by_the_agency_without_a_provider() -> None:
    client, sent = agency()
    client.cancel_referral(SID, referral_id=RID, reason=CancelReason.SURVIVOR_REQUEST)
    event = sent.sent[0].event
    assert isinstance(event, ReferralCancelled)
    assert event.cancelled_by is Actor.AGENCY
    assert event.provider_id is None and event.category is None


def test_invalid_fields_raise_a_typed_error_before_anything_is_sent() -> None:
    client, sent = agency()
    with pytest.raises(SdkValidationError) as caught:
        client.identify_survivor(
            SID,
            jurisdiction="Netherlands",
            age_group=AgeGroup.ADULT,
            languages=["English"],
            gender=Gender.FEMALE,
        )
    assert sent.sent == []
    assert isinstance(caught.value, ValueError)
    locs = {error["loc"] for error in caught.value.errors}
    assert {"jurisdiction", "languages.0"} <= locs
    # Values never appear in the message: they may be personal data.
    assert "Netherlands" not in str(caught.value) and "English" not in str(caught.value)


def test_a_band_contradicting_the_age_group_is_refused() -> None:
    client, sent = agency()
    with pytest.raises(SdkValidationError, match=r"survivor\.identified"):
        client.identify_survivor(
            SID,
            jurisdiction="NL",
            age_group=AgeGroup.ADULT,
            age_band=AgeBand.FROM_12_TO_15,
            languages=["en"],
            gender=Gender.FEMALE,
        )
    assert sent.sent == []


def test_bad_requirements_and_bad_ids_are_validation_errors() -> None:
    client, sent = agency()
    with pytest.raises(SdkValidationError) as caught:
        client.request_referral(
            SID, referral_id=RID, category="HOUSING", urgency="ROUTINE", jurisdiction="nl"
        )
    assert caught.value.errors[0]["loc"] == "jurisdiction"
    with pytest.raises(SdkValidationError):
        client.close_case("not-a-uuid", outcome="OTHER")
    with pytest.raises(SdkValidationError):
        client.close_case(SID, outcome="OTHER", event_id="has a space")
    with pytest.raises(SdkValidationError):
        client.close_case(SID, outcome="OTHER", event_id="")
    with pytest.raises(SdkValidationError, match="UUID or a ULID"):  # an id that names someone
        client.close_case(SID, outcome="OTHER", event_id="maria-popescu-0712345678")
    client.close_case(SID, outcome="OTHER", event_id="01JF8Z5K7QX4M2N3P4R5S6T7V8")  # a ULID
    assert [item.event_id for item in sent.sent] == ["01JF8Z5K7QX4M2N3P4R5S6T7V8"]


def test_an_agency_publishes_only_its_own_agency_events() -> None:
    client, sent = agency()
    with pytest.raises(SdkValidationError, match="not an agency event"):
        client.publish(offer())
    other = build_event(
        CaseClosed,
        survivor_id=SID,
        occurred_at=T0,
        agency_id="agency:be-ngo",
        outcome=CaseOutcome.OTHER,
    )
    with pytest.raises(SdkValidationError, match="another agency"):
        client.publish(other)
    with pytest.raises(SdkValidationError):
        AgencyClient("has spaces", Recorder())
    assert sent.sent == []


def test_build_event_gives_the_sdk_error_type() -> None:
    with pytest.raises(SdkValidationError) as caught:
        build_event(CaseClosed, survivor_id=SID, occurred_at=T0, agency_id=AGENCY)
    assert caught.value.errors[0]["loc"] == "outcome"


def test_publish_many_checks_everything_first_and_pairs_ids() -> None:
    client, sent = agency()
    events = [identified(SID), closed(SID)]
    assert client.publish_many(
        events,
        event_ids=["0b02666e-7c03-54cf-bbf7-e7aab1a32dcc", "dc9732e7-7332-510e-a0a4-e465ccd0f1eb"],
    ) == ["0b02666e-7c03-54cf-bbf7-e7aab1a32dcc", "dc9732e7-7332-510e-a0a4-e465ccd0f1eb"]
    with pytest.raises(SdkValidationError):
        client.publish_many(events, event_ids=["fce5c564-46a0-55f7-ad59-e15ae0af067f"])
    with pytest.raises(SdkValidationError):
        client.publish_many([closed(SID), offer()])
    assert [item.event_id for item in sent.sent] == [
        "0b02666e-7c03-54cf-bbf7-e7aab1a32dcc",
        "dc9732e7-7332-510e-a0a4-e465ccd0f1eb",
    ]


async def test_publish_async_goes_through_the_transport() -> None:
    client, sent = agency()
    ce_id = await client.publish_async(closed(SID), event_id="66d9cd39-5082-5ec6-accb-8b1a238702a4")
    assert (
        ce_id == "66d9cd39-5082-5ec6-accb-8b1a238702a4"
        and sent.sent[0].event_id == "66d9cd39-5082-5ec6-accb-8b1a238702a4"
    )


def test_the_client_closes_its_transport() -> None:
    recorder = Recorder()
    with AgencyClient(AGENCY, recorder):
        pass
    assert recorder.closed


# --------------------------------------------------------------------------- retries


def test_transient_kafka_errors() -> None:
    transient = [
        KafkaError(KafkaError._MSG_TIMED_OUT),
        KafkaError(KafkaError._TRANSPORT),
        KafkaError(KafkaError.BROKER_NOT_AVAILABLE),
        KafkaError(KafkaError.NOT_ENOUGH_REPLICAS),
        KafkaError(KafkaError._ALL_BROKERS_DOWN),
        KafkaError(KafkaError.UNKNOWN, retriable=True),
    ]
    permanent = [
        KafkaError(KafkaError.MSG_SIZE_TOO_LARGE),
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
        KafkaError(KafkaError._INVALID_ARG),
        KafkaError(KafkaError._MSG_TIMED_OUT, fatal=True),
        KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True, retriable=True),
    ]
    assert all(kafka_error_is_transient(error) for error in transient)
    assert not any(kafka_error_is_transient(error) for error in permanent)


def test_the_policy_retries_transient_errors_only() -> None:
    waits: list[float] = []
    policy = RetryPolicy(initial_wait_s=0, max_wait_s=0, max_attempts=4, sleep=waits.append)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise SdkTransientError("busy", event_ids=("x",))
        return "ok"

    assert policy.run(flaky, event_ids=("x",)) == "ok"
    assert len(calls) == 3 and waits == [0.0, 0.0]

    calls.clear()

    def refused() -> None:
        calls.append(1)
        raise SdkRejectedError("no", status=400)

    with pytest.raises(SdkRejectedError):
        policy.run(refused, event_ids=("x",))
    assert len(calls) == 1


def test_the_policy_gives_up_with_the_last_error_as_cause() -> None:
    policy = RetryPolicy(initial_wait_s=0, max_wait_s=0, max_attempts=3, sleep=lambda _: None)

    def down() -> None:
        raise SdkTransientError("still down", event_ids=("9440a82f-b941-555f-8705-6d9ef8846655",))

    with pytest.raises(SdkRetriesExhaustedError) as caught:
        policy.run(down, event_ids=("9440a82f-b941-555f-8705-6d9ef8846655",))
    assert caught.value.attempts == 3
    assert caught.value.event_ids == ("9440a82f-b941-555f-8705-6d9ef8846655",)
    assert isinstance(caught.value.__cause__, SdkTransientError)


def test_backoff_is_exponential_with_full_jitter_and_bounded() -> None:
    policy = RetryPolicy(initial_wait_s=1.0, max_wait_s=4.0)

    def state(attempt: int) -> RetryCallState:
        retry_state = RetryCallState(Retrying(), lambda: None, (), {})
        retry_state.attempt_number = attempt
        retry_state.set_exception((SdkTransientError, SdkTransientError("x"), None))
        return retry_state

    for attempt in range(1, 8):
        waits = [policy.wait(state(attempt)) for _ in range(50)]
        assert all(0 <= w <= min(4.0, 2 ** (attempt - 1)) for w in waits)
    assert len({policy.wait(state(3)) for _ in range(20)}) > 1  # jittered


def test_a_longer_retry_after_than_the_policy_allows_stops_at_once() -> None:
    waits: list[float] = []
    policy = RetryPolicy(initial_wait_s=0, max_retry_after_s=30, sleep=waits.append)
    calls: list[int] = []

    def throttled() -> None:
        calls.append(1)
        raise SdkTransientError("slow down", retry_after=3600, status=429)

    with pytest.raises(SdkRetriesExhaustedError):
        policy.run(throttled, event_ids=("x",))
    assert len(calls) == 1 and waits == []


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None


# --------------------------------------------------------------------------- HTTP transport


class Server:
    """Scripted intake API answers for httpx.MockTransport, keeping every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def accepted() -> httpx.Response:
    return httpx.Response(202, json={"id": "ignored"})


def problem(status: int, title: str, detail: str, **more: Any) -> httpx.Response:
    body: dict[str, Any] = {"type": f"https://safepassage.example/problems/{status}"}
    body["title"] = title
    body |= {"status": status, "detail": detail, **more}
    return httpx.Response(
        status, content=json.dumps(body), headers={"Content-Type": "application/problem+json"}
    )


def http(server: Server, **kwargs: Any) -> tuple[HttpTransport, list[float]]:
    waits: list[float] = []
    policy = RetryPolicy(initial_wait_s=0, max_wait_s=0, max_attempts=5, sleep=waits.append)
    transport = HttpTransport(
        "https://intake.example.org/api",
        "sk-agency-123",
        retry=policy,
        http_transport=httpx.MockTransport(server),
        **kwargs,
    )
    return transport, waits


def test_http_posts_a_structured_cloudevent_with_the_api_key() -> None:
    server = Server(accepted())
    transport, _ = http(server)
    client = AgencyClient(AGENCY, transport, clock=lambda: T0)

    ce_id = client.grant_consent(
        SID,
        consent_id=uid("consent"),
        categories=[ServiceCategory.HOUSING],
        cross_border_allowed=True,
        jurisdictions=["NL", "BE"],
        expires_at=T0 + timedelta(days=90),
        event_id="063313d6-60b2-55e2-b896-24e77f14b310",
    )

    assert ce_id == "063313d6-60b2-55e2-b896-24e77f14b310"
    [request] = server.requests
    assert request.method == "POST"
    assert str(request.url) == "https://intake.example.org/api/v1/events"
    assert request.headers["Content-Type"] == STRUCTURED_MEDIA_TYPE
    assert request.headers["Authorization"] == "Bearer sk-agency-123"
    body = json.loads(request.content)
    assert body == {
        "specversion": "1.0",
        "id": "063313d6-60b2-55e2-b896-24e77f14b310",
        "source": f"/agencies/{AGENCY}",
        "type": "consent.granted",
        "time": "2025-03-01T09:00:00.000Z",
        "subject": str(SID),
        "datacontenttype": "application/json",
        "data": body["data"],
    }
    # What the intake API does with data: validate it back into the model.
    assert ConsentGranted.model_validate(body["data"]) == ConsentGranted(
        survivor_id=SID,
        occurred_at=T0,
        consent_id=uid("consent"),
        agency_id=AGENCY,
        categories=(ServiceCategory.HOUSING,),
        cross_border_allowed=True,
        jurisdictions=("NL", "BE"),
        expires_at=T0 + timedelta(days=90),
    )


def test_http_503_then_202_is_retried_with_the_same_id() -> None:
    server = Server(problem(503, "Service Unavailable", "Kafka is not answering"), accepted())
    transport, waits = http(server)

    ce_id = transport.publish(
        closed(SID), event_id="49e8f9b9-b037-562a-b8ab-2c9305ecef52", source="/agencies/x"
    )

    assert ce_id == "49e8f9b9-b037-562a-b8ab-2c9305ecef52"
    assert [body["id"] for body in server.bodies()] == [
        "49e8f9b9-b037-562a-b8ab-2c9305ecef52",
        "49e8f9b9-b037-562a-b8ab-2c9305ecef52",
    ]
    assert server.requests[0].content == server.requests[1].content
    assert waits == [0.0]


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("eof")],
)
def test_http_timeouts_and_connection_errors_are_retried(failure: Exception) -> None:
    server = Server(failure, accepted())
    transport, waits = http(server)
    transport.publish(
        closed(SID), event_id="9440a82f-b941-555f-8705-6d9ef8846655", source="/agencies/x"
    )
    assert len(server.requests) == 2 and len(waits) == 1


@pytest.mark.parametrize("status", [502, 504])
def test_http_gateway_errors_are_retried(status: int) -> None:
    server = Server(httpx.Response(status, text="bad gateway"), accepted())
    transport, _ = http(server)
    transport.publish(
        closed(SID), event_id="9440a82f-b941-555f-8705-6d9ef8846655", source="/agencies/x"
    )
    assert len(server.requests) == 2


def test_http_400_problem_is_a_typed_error_without_retry() -> None:
    errors = [{"loc": "/data/jurisdiction", "msg": "does not match"}]
    server = Server(problem(400, "Invalid event", "data does not fit the model", errors=errors))
    transport, waits = http(server)

    with pytest.raises(SdkRejectedError) as caught:
        transport.publish(
            closed(SID), event_id="5fe2205e-676d-51ae-abd6-236a8c48212c", source="/agencies/x"
        )

    error = caught.value
    assert (error.status, error.title) == (400, "Invalid event")
    assert error.detail == "data does not fit the model"
    assert error.type == "https://safepassage.example/problems/400"
    assert error.errors == tuple(errors)
    assert error.event_ids == ("5fe2205e-676d-51ae-abd6-236a8c48212c",)
    assert len(server.requests) == 1 and waits == []


@pytest.mark.parametrize("status", [401, 403, 409, 413, 415, 500])
def test_http_other_failures_are_permanent(status: int) -> None:
    server = Server(httpx.Response(status, text="<html>nope</html>"))
    transport, _ = http(server)
    with pytest.raises(SdkRejectedError) as caught:
        transport.publish(
            closed(SID), event_id="9440a82f-b941-555f-8705-6d9ef8846655", source="/agencies/x"
        )
    assert caught.value.status == status
    assert caught.value.title == httpx.codes.get_reason_phrase(status)
    assert len(server.requests) == 1


def test_http_429_retry_after_is_honoured() -> None:
    throttled = httpx.Response(429, headers={"Retry-After": "7"}, json={"title": "Slow down"})
    server = Server(throttled, accepted())
    transport, waits = http(server)
    transport.publish(
        closed(SID), event_id="9440a82f-b941-555f-8705-6d9ef8846655", source="/agencies/x"
    )
    assert waits == [7.0]
    assert [body["id"] for body in server.bodies()] == [
        "9440a82f-b941-555f-8705-6d9ef8846655",
        "9440a82f-b941-555f-8705-6d9ef8846655",
    ]


def test_http_gives_up_after_the_attempts() -> None:
    server = Server(httpx.Response(503, headers={"Retry-After": "1"}))
    transport, waits = http(server)
    with pytest.raises(SdkRetriesExhaustedError) as caught:
        transport.publish(
            closed(SID), event_id="9440a82f-b941-555f-8705-6d9ef8846655", source="/agencies/x"
        )
    assert caught.value.attempts == 5 and len(server.requests) == 5
    assert waits == [1.0] * 4


def test_http_batch_is_a_json_array_in_order_and_chunked() -> None:
    server = Server(accepted())
    transport, _ = http(server, batch_size=2)
    client = AgencyClient(AGENCY, transport, clock=lambda: T0)
    events = [identified(SID), closed(SID), closed(uid("other"))]

    ids = client.publish_many(
        events,
        event_ids=[
            "4137b62c-fde7-59c1-b140-0586ebe73213",
            "527fb4d4-6d34-5e40-a099-a342e8e404e2",
            "d9ac6391-bdf1-5a3d-a2b7-d4351388957c",
        ],
    )

    assert ids == [
        "4137b62c-fde7-59c1-b140-0586ebe73213",
        "527fb4d4-6d34-5e40-a099-a342e8e404e2",
        "d9ac6391-bdf1-5a3d-a2b7-d4351388957c",
    ]
    assert [r.headers["Content-Type"] for r in server.requests] == [BATCH_MEDIA_TYPE] * 2
    assert [[doc["id"] for doc in body] for body in server.bodies()] == [
        ["4137b62c-fde7-59c1-b140-0586ebe73213", "527fb4d4-6d34-5e40-a099-a342e8e404e2"],
        ["d9ac6391-bdf1-5a3d-a2b7-d4351388957c"],
    ]
    assert server.bodies()[0][0]["type"] == "survivor.identified"


def test_http_batch_failure_names_the_ids_not_accepted() -> None:
    server = Server(accepted(), problem(413, "Too large", "batch too large"))
    transport, _ = http(server, batch_size=1)
    items = [Outgoing(closed(SID), eid(f"b-{n}"), "/agencies/x") for n in range(3)]
    with pytest.raises(SdkRejectedError) as caught:
        transport.publish_many(items)
    assert [named(i) for i in caught.value.event_ids] == ["b-1", "b-2"]


def test_sealed_ciphertext_travels_as_base64_and_comes_back_equal() -> None:
    """Ciphertext is arbitrary bytes: pydantic's JSON form (UTF-8 text) would fail or corrupt."""
    sealed = Sealed(
        ciphertext=b"\xfa\xfb\x00\x01" + bytes(range(256)),
        key_id="key-1",
        algorithm=SealAlgorithm.AES_256_GCM,
        recipient="agency:nl-police",
    )
    server = Server(accepted())
    transport, _ = http(server)
    client = AgencyClient(AGENCY, transport, clock=lambda: T0)

    client.request_referral(
        SID,
        referral_id=RID,
        category="HOUSING",
        urgency="ROUTINE",
        jurisdiction="NL",
        notes=sealed,
        event_id="18eaae57-f893-5a5f-b6d1-5f00f3b88d53",
    )

    data = server.bodies()[0]["data"]
    notes = data["notes"]
    assert notes["key_id"] == "key-1" and notes["algorithm"] == "AES_256_GCM"
    assert base64.b64decode(notes["ciphertext"], validate=True) == sealed.ciphertext
    # What the intake API does: decode the base64, then validate into the model.
    data["notes"] = {**notes, "ciphertext": base64.b64decode(notes["ciphertext"])}
    assert ReferralRequested.model_validate(data).notes == sealed


def test_http_409_in_progress_is_retried_but_an_id_conflict_is_not() -> None:
    busy = httpx.Response(
        409,
        json={"type": "urn:safepassage:problem:in-progress", "title": "Event is being published"},
        headers={"Retry-After": "1"},
    )
    server = Server(busy, accepted())
    transport, waits = http(server)
    transport.publish(
        closed(SID), event_id="9440a82f-b941-555f-8705-6d9ef8846655", source="/agencies/x"
    )
    assert len(server.requests) == 2 and waits == [1.0]

    conflict = problem(409, "Event id already used", "use a new id")
    server = Server(conflict)
    transport, waits = http(server)
    with pytest.raises(SdkRejectedError) as caught:
        transport.publish(
            closed(SID), event_id="9440a82f-b941-555f-8705-6d9ef8846655", source="/agencies/x"
        )
    assert caught.value.status == 409 and len(server.requests) == 1 and waits == []


async def test_http_publish_async() -> None:
    server = Server(problem(503, "busy", "later"), accepted())
    transport, _ = http(server)
    assert (
        await transport.publish_async(
            closed(SID), event_id="0b02666e-7c03-54cf-bbf7-e7aab1a32dcc", source="/a"
        )
        == "0b02666e-7c03-54cf-bbf7-e7aab1a32dcc"
    )
    assert len(server.requests) == 2


def test_structured_cloudevent_of_a_provider_answer_has_the_survivor_as_subject() -> None:
    answer = ReferralAccepted(
        survivor_id=SID, occurred_at=T0, referral_id=RID, provider_id=PROVIDER_A, attempt=2
    )
    document = json.loads(structured(answer, event_id="x", source="/providers/p"))
    assert document["subject"] == str(SID)
    assert document["data"]["attempt"] == 2
    assert document["data"]["provider_id"] == str(PROVIDER_A)


# --------------------------------------------------------------------------- Kafka transport


def kafka(script: Callable[[int, dict[str, Any]], KafkaError | None]) -> tuple[Any, Any]:
    producer = ScriptedProducer(script)
    settings = KafkaSettings(topic_namespace="unit")
    transport = KafkaTransport(settings, retry=NO_WAIT, producer=producer)
    return transport, producer


def ce_id_of(record: dict[str, Any]) -> str:
    return str(dict(record["headers"])[CE_ID].decode())


def test_kafka_retries_a_timed_out_record_under_the_same_id() -> None:
    transport, producer = kafka(
        lambda n, _: KafkaError(KafkaError._MSG_TIMED_OUT) if n == 1 else None
    )
    ce_id = transport.publish(
        closed(SID), event_id="6b750474-e419-50a9-831a-4dcb87c46750", source="/agencies/x"
    )
    assert ce_id == "6b750474-e419-50a9-831a-4dcb87c46750"
    first, second = producer.produced
    assert first == second
    assert first["topic"] == "unit.from.agencies.x.v1"  # the sender's own topic
    assert first["key"] == str(SID).encode()
    assert ce_id_of(first) == "6b750474-e419-50a9-831a-4dcb87c46750"
    decoded = Codec(KafkaSettings(topic_namespace="unit"), source="/x").decode(
        first["value"], first["headers"], topic=first["topic"], key=first["key"]
    )
    assert decoded.envelope.source == "/agencies/x"
    assert decoded.event == closed(SID)


def test_kafka_permanent_errors_are_not_retried() -> None:
    transport, producer = kafka(lambda *_: KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    with pytest.raises(SdkRejectedError) as caught:
        transport.publish(
            closed(SID), event_id="6b750474-e419-50a9-831a-4dcb87c46750", source="/agencies/x"
        )
    assert caught.value.title == "MSG_SIZE_TOO_LARGE" and caught.value.status is None
    assert caught.value.event_ids == ("6b750474-e419-50a9-831a-4dcb87c46750",)
    assert len(producer.produced) == 1


def test_kafka_writes_on_the_senders_own_topic_and_refuses_what_no_party_sends() -> None:
    transport, producer = kafka(lambda *_: None)
    answer = ReferralAccepted(
        survivor_id=SID, occurred_at=T0, referral_id=RID, provider_id=PROVIDER_A, attempt=1
    )
    transport.publish(
        answer, event_id="0b02666e-7c03-54cf-bbf7-e7aab1a32dcc", source=f"/providers/{PROVIDER_A}"
    )
    assert producer.produced[0]["topic"] == f"unit.from.providers.{PROVIDER_A}.v1"
    refused = [
        (offer(), "/router"),  # the platform's own event
        (closed(SID), "/safepassage/router"),  # no party's source
        (closed(SID), "/agencies/a.b"),  # an id that cannot name a topic of its own
        (answer, "/agencies/x"),  # an answer is not an agency's to publish on its topic
    ]
    for event, source in refused:
        with pytest.raises(SdkValidationError):
            transport.publish(event, event_id="18eaae57-f893-5a5f-b6d1-5f00f3b88d53", source=source)
    assert len(producer.produced) == 1


def test_kafka_batch_keeps_each_survivors_order_across_a_failure() -> None:
    """The first event of survivor 1 fails once: its second waits; survivor 2 goes on."""
    other = uid("survivor-2")

    def script(n: int, record: dict[str, Any]) -> KafkaError | None:
        failing = named(ce_id_of(record)) == "s1-a" and n == 1
        return KafkaError(KafkaError._TRANSPORT) if failing else None

    transport, producer = kafka(script)
    items = [
        Outgoing(identified(SID), eid("s1-a"), "/agencies/x"),
        Outgoing(closed(SID), eid("s1-b"), "/agencies/x"),
        Outgoing(identified(other), eid("s2-a"), "/agencies/x"),
        Outgoing(closed(other), eid("s2-b"), "/agencies/x"),
    ]

    published = transport.publish_many(items)
    assert [named(i) for i in published] == ["s1-a", "s1-b", "s2-a", "s2-b"]

    sent = [named(ce_id_of(record)) for record in producer.produced]
    assert [i for i in sent if i.startswith("s1")] == ["s1-a", "s1-a", "s1-b"]
    assert [i for i in sent if i.startswith("s2")] == ["s2-a", "s2-b"]


def test_kafka_batch_refused_names_the_events_not_acknowledged() -> None:
    """One survivor's first record is refused for good; what was acknowledged is not named."""
    survivors = [uid(f"batch-{n}") for n in range(3)]

    def script(n: int, record: dict[str, Any]) -> KafkaError | None:
        refused = named(ce_id_of(record)) == "s1-a"
        return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if refused else None

    transport, producer = kafka(script)
    items = [
        Outgoing(event, eid(f"s{n}-{step}"), "/agencies/x")
        for n, sid in enumerate(survivors)
        for step, event in (("a", identified(sid)), ("b", closed(sid)))
    ]
    with pytest.raises(SdkRejectedError) as caught:
        transport.publish_many(items)
    # s0-a's acknowledgement let s0-b go before s1-a's refusal was read; s2-a
    # was acknowledged meanwhile; s2-b was never sent.
    assert [named(ce_id_of(r)) for r in producer.produced] == ["s0-a", "s1-a", "s2-a", "s0-b"]
    assert [named(i) for i in caught.value.event_ids] == ["s1-a", "s1-b", "s2-b"]


def test_kafka_gives_up_after_the_policys_attempts() -> None:
    transport, producer = kafka(lambda *_: KafkaError(KafkaError.BROKER_NOT_AVAILABLE))
    with pytest.raises(SdkRetriesExhaustedError) as caught:
        transport.publish(
            closed(SID), event_id="6b750474-e419-50a9-831a-4dcb87c46750", source="/agencies/x"
        )
    assert caught.value.attempts == 5 and len(producer.produced) == 5
    assert {ce_id_of(r) for r in producer.produced} == {"6b750474-e419-50a9-831a-4dcb87c46750"}


# --------------------------------------------------------------------------- provider side: pure


OfferKey = tuple[int, int]


@st.composite
def offer_streams(draw: st.DrawFn) -> tuple[list[tuple[OfferKey, str]], list[OfferKey]]:
    """Distinct offers and a stream of their records with copies, in any interleaving.

    A copy is either the same record again (same CloudEvents id) or another
    record of the same (referral, attempt) under a new id.
    """
    keys = draw(
        st.lists(
            st.tuples(st.integers(0, 5), st.integers(1, 3)), min_size=1, max_size=12, unique=True
        )
    )
    copies = draw(st.lists(st.sampled_from(keys), max_size=30))
    order = draw(st.permutations([*keys, *copies]))
    stream: list[tuple[OfferKey, str]] = []
    ids: dict[OfferKey, str] = {}
    for n, key in enumerate(order):
        if key not in ids or draw(st.booleans()):
            ids.setdefault(key, f"ce-{n}")
            stream.append((key, ids[key] if draw(st.booleans()) else f"ce-{n}"))
        else:
            stream.append((key, ids[key]))
    first_seen = list(dict.fromkeys(key for key, _ in stream))
    return stream, first_seen


@given(offer_streams())
@settings(max_examples=200, deadline=None)
def test_every_offer_is_yielded_once_in_first_seen_order(
    case: tuple[list[tuple[OfferKey, str]], list[OfferKey]],
) -> None:
    stream, first_seen = case
    dedupe = Deduplicator(capacity=1000)
    yielded: list[OfferKey] = []
    for (referral, attempt), ce_id in stream:
        event = offer(rid=UUID(int=referral + 1), attempt=attempt)
        if dedupe.first_time(dedupe_keys(event, event_id=ce_id, source="/router")):
            yielded.append((referral, attempt))
    assert yielded == first_seen


def test_a_cancellation_is_yielded_once_per_referral() -> None:
    dedupe = Deduplicator()
    cancel = ReferralCancelled(
        survivor_id=SID,
        occurred_at=T0,
        referral_id=RID,
        reason=CancelReason.CONSENT_WITHDRAWN,
        cancelled_by=Actor.SYSTEM,
        provider_id=PROVIDER_A,
        category=ServiceCategory.HOUSING,
    )
    assert dedupe.first_time(dedupe_keys(cancel, event_id="c-1", source="/router"))
    assert not dedupe.first_time(dedupe_keys(cancel, event_id="c-2", source="/router"))
    # The offer of the same referral is another fact.
    assert dedupe.first_time(dedupe_keys(offer(), event_id="o-1", source="/router"))


def test_the_memory_is_bounded_and_least_recently_seen_goes_first() -> None:
    dedupe = Deduplicator(capacity=2)
    assert dedupe.first_time(["a"]) and dedupe.first_time(["b"])
    assert not dedupe.first_time(["a"])  # refreshes a
    assert dedupe.first_time(["c"])  # evicts b
    assert len(dedupe) == 2
    assert not dedupe.first_time(["a"])
    assert dedupe.first_time(["b"])
    dedupe.forget(["b"])
    assert dedupe.first_time(["b"])


def test_answer_ids_are_stable_per_provider_offer_and_answer() -> None:
    ref = OfferRef(SID, RID, 1)
    same = answer_id(PROVIDER_A, ref, "referral.accepted")
    assert same == answer_id(PROVIDER_A, OfferRef(SID, RID, 1), "referral.accepted")
    others = {
        answer_id(PROVIDER_B, ref, "referral.accepted"),
        answer_id(PROVIDER_A, OfferRef(SID, RID, 2), "referral.accepted"),
        answer_id(PROVIDER_A, ref, "referral.declined"),
    }
    assert same not in others and len(others) == 3


# --------------------------------------------------------------------------- provider answers


def provider(recorder: Recorder) -> ProviderClient:
    # Nothing connects: the consumer is created by offers(), the transport is the recorder.
    return ProviderClient(
        PROVIDER_A,
        KafkaSettings(topic_namespace="unit"),
        transport=recorder,
        clock=lambda: T0,
    )


def incoming(event: ReferralOffered | ReferralCancelled) -> Incoming:
    return Incoming(event, "ce-1", "/router", "unit.referrals.housing.v1", 0, 7)


def test_provider_client_reads_its_own_offer_topic_in_its_own_group() -> None:
    client = provider(Recorder())
    assert client.topics == (f"unit.offers.{PROVIDER_A}.v1",)
    assert client.group_id == f"safepassage-provider-{PROVIDER_A}"
    assert client.source == f"/providers/{PROVIDER_A}"
    with pytest.raises(SdkValidationError):
        ProviderClient("p-1", KafkaSettings())


@pytest.mark.parametrize(
    ("method", "args", "model"),
    [
        ("accept", (), ReferralAccepted),
        ("decline", (DeclineReason.NO_CAPACITY,), ReferralDeclined),
        ("start", (), ReferralStarted),
        ("complete", (ReferralOutcome.PARTIALLY_PROVIDED,), ReferralCompleted),
        ("fail", ("LOST_CONTACT",), ReferralFailed),
    ],
)
def test_each_answer_names_the_offer_and_has_a_stable_id(
    method: str, args: tuple[Any, ...], model: type[Event]
) -> None:
    recorder = Recorder()
    client = provider(recorder)
    the_offer = offer(attempt=3)

    first = getattr(client, method)(incoming(the_offer), *args)
    again = getattr(client, method)(OfferRef(SID, RID, 3), *args)

    assert first == again == answer_id(PROVIDER_A, OfferRef(SID, RID, 3), model.event_type)
    answer = recorder.sent[0].event
    assert type(answer) is model
    assert model_for(answer.event_type) is model
    fields = answer.model_dump()
    assert (fields["survivor_id"], fields["referral_id"], fields["attempt"]) == (SID, RID, 3)
    assert fields["provider_id"] == PROVIDER_A
    assert recorder.sent[0].source == f"/providers/{PROVIDER_A}"


def test_answering_again_in_the_same_process_is_the_very_same_event() -> None:
    ticks = iter(T0 + timedelta(minutes=n) for n in range(10))
    recorder = Recorder()
    client = ProviderClient(
        PROVIDER_A,
        KafkaSettings(topic_namespace="unit"),
        transport=recorder,
        clock=lambda: next(ticks),
    )
    client.decline(offer(), DeclineReason.NO_CAPACITY)
    client.decline(offer(), DeclineReason.NO_CAPACITY)
    client.accept(offer(attempt=2))
    first, again, other = recorder.sent
    assert again == first and first.event.occurred_at == T0
    assert other.event.occurred_at == T0 + timedelta(minutes=1)


def test_a_provider_cannot_answer_another_providers_offer_or_a_cancellation() -> None:
    recorder = Recorder()
    client = provider(recorder)
    with pytest.raises(SdkNotAddressedError):
        client.accept(offer(provider=PROVIDER_B))
    cancel = ReferralCancelled(
        survivor_id=SID,
        occurred_at=T0,
        referral_id=RID,
        reason=CancelReason.CASE_CLOSED,
        cancelled_by=Actor.AGENCY,
        provider_id=PROVIDER_A,
        category=ServiceCategory.HOUSING,
    )
    with pytest.raises(SdkValidationError):
        client.accept(incoming(cancel))
    with pytest.raises(SdkValidationError):
        client.decline(offer(), "BUSY")
    with pytest.raises(SdkValidationError):
        client.fail(offer(), FailureReason.OTHER, occurred_at=datetime(2025, 1, 1))  # naive
    assert recorder.sent == []


def test_incoming_knows_offers_from_cancellations() -> None:
    item = incoming(offer())
    assert item.is_offer and item.ref == OfferRef(SID, RID, 1)
    assert uuid.UUID(answer_id(PROVIDER_A, item.ref, "referral.accepted")).version == 5


# --------------------------------------------------------------------------- provider: records in


HOUSING_TOPIC = f"unit.offers.{PROVIDER_A}.v1"
"""Provider A's own offer topic (the name predates it: the offers tested are housing's)."""


def routed(events: list[tuple[Event, str]], partition: int = 0) -> list[Message]:
    """Records as the router writes them on the housing topic and the relay copies them
    byte for byte onto provider A's own topic, at offsets 0, 1, 2..."""
    codec = Codec(KafkaSettings(topic_namespace="unit"), source="/safepassage/router")
    messages = []
    for offset, (event, ce_id) in enumerate(events):
        record = codec.encode(event, "unit.referrals.housing.v1", event_id=ce_id)
        messages.append(
            Message(
                topic=HOUSING_TOPIC,
                partition=partition,
                offset=offset,
                key=record.key,
                value=record.value,
                headers=list(record.headers),
            )
        )
    return messages


def consuming(messages: list[Message], **kwargs: Any) -> tuple[ProviderClient, ScriptedConsumer]:
    consumer = ScriptedConsumer(messages)
    client = ProviderClient(
        PROVIDER_A,
        KafkaSettings(topic_namespace="unit"),
        transport=Recorder(),
        consumer=consumer,
        poll_interval_s=0,
        **kwargs,
    )
    return client, consumer


def test_offers_are_this_providers_each_once_and_bad_records_are_skipped() -> None:
    a1, a2 = offer(rid=uid("r1")), offer(rid=uid("r2"), attempt=2)
    garbage = Message(topic=HOUSING_TOPIC, partition=0, offset=99, key=b"x", value=b"junk")
    eof = Message(error=KafkaError(KafkaError._PARTITION_EOF))
    messages = [
        *routed(
            [
                (a1, "o-1"),
                (offer(provider=PROVIDER_B), "o-b"),  # on A's topic: breaks its contract
                (a1, "o-1"),  # re-published: same id
                (a1, "o-1-bis"),  # same (referral, attempt), another id
                (a2, "o-2"),
            ]
        ),
        garbage,
        eof,
    ]
    client, consumer = consuming(messages)

    items = list(client.offers(idle_timeout_s=0.05))

    assert [(i.event, i.event_id, i.offset) for i in items] == [(a1, "o-1", 0), (a2, "o-2", 4)]
    assert (client.stats.duplicates, client.stats.not_addressed, client.stats.undecodable) == (
        2,
        0,
        2,
    )
    # Auto-ack: a1 when a2 was asked for, a2 when the loop asked for more; then
    # the skipped garbage at 99: everything up to it is committed.
    assert consumer.commits[-1] == {(HOUSING_TOPIC, 0): 100}
    client.close()
    assert consumer.closed


def test_with_auto_ack_the_item_in_hand_is_not_committed() -> None:
    messages = routed([(offer(rid=uid(f"r{n}")), f"o-{n}") for n in range(3)])
    client, consumer = consuming(messages)
    stream = client.offers(idle_timeout_s=0.05)
    assert next(stream).event_id == "o-0"
    assert consumer.commits == []  # o-0 is in hand
    assert next(stream).event_id == "o-1"
    assert consumer.commits == [{(HOUSING_TOPIC, 0): 1}]  # o-0 done, o-1 in hand
    stream.close()  # the caller leaves the loop (break, exception) holding o-1
    client.close()
    assert consumer.commits[-1] == {(HOUSING_TOPIC, 0): 1}


def test_explicit_acks_out_of_order_commit_up_to_the_oldest_in_hand() -> None:
    messages = routed([(offer(rid=uid(f"r{n}")), f"o-{n}") for n in range(3)])
    client, consumer = consuming(messages, auto_ack=False)
    first, second, third = client.offers(max_items=3)
    client.ack(third)
    client.ack(second)
    # first is still in hand: nothing past it is committed
    assert all(commit == {(HOUSING_TOPIC, 0): 0} for commit in consumer.commits)
    client.ack(first)
    assert consumer.commits[-1] == {(HOUSING_TOPIC, 0): 3}
    count = len(consumer.commits)
    client.ack(first)  # twice: nothing more
    assert len(consumer.commits) == count


def test_rewind_gives_back_what_was_not_acknowledged() -> None:
    messages = routed([(offer(rid=uid(f"r{n}")), f"o-{n}") for n in range(3)])
    client, consumer = consuming(messages, auto_ack=False)
    first, _, third = client.offers(max_items=3)
    client.ack(first)
    client.ack(third)

    client.rewind()

    assert consumer.seeks == [(HOUSING_TOPIC, 0, 1)]
    again = list(client.offers(idle_timeout_s=0.05))
    assert [i.event_id for i in again] == ["o-1"]  # o-2 was acknowledged: a copy now
    client.ack(again[0])
    assert consumer.commits[-1] == {(HOUSING_TOPIC, 0): 3}


def test_a_revoked_partitions_items_are_forgotten_for_whoever_reads_it_next() -> None:
    messages = routed([(offer(rid=uid(f"r{n}")), f"o-{n}") for n in range(2)])
    client, consumer = consuming(messages, auto_ack=False)
    first, _ = client.offers(max_items=2)
    client.ack(first)

    consumer.revoke([TopicPartition(HOUSING_TOPIC, 0)])

    assert consumer.commits[-1] == {(HOUSING_TOPIC, 0): 1}
    # Assigned again by the next poll and read from the committed offset: o-1 is new again.
    assert [i.event_id for i in client.offers(idle_timeout_s=0.05)] == ["o-1"]


@pytest.mark.parametrize(
    "code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED]
)
def test_a_refused_acl_ends_the_offers_with_a_clear_error(code: int) -> None:
    """Waiting does not cure a missing ACL: the caller learns at once, not from silence."""
    client, _ = consuming([Message(error=KafkaError(code))])
    with pytest.raises(SdkConsumeError, match=r"not authorised to read unit\.offers\."):
        list(client.offers(idle_timeout_s=5))
    client.close()


# --------------------------------------------------------------------------- sealing at the edge


def identify_adult(client: AgencyClient, personal_data: dict[str, str]) -> str:
    """``survivor.identified`` for SID with ``personal_data`` in clear, for the SDK to seal."""
    return client.identify_survivor(
        SID,
        jurisdiction="NL",
        age_group="ADULT",
        languages=["ro"],
        gender="FEMALE",
        personal_data=personal_data,
    )


def key_answer(survivor: UUID, material: bytes, key_id: str = "dk-1") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "survivor_id": str(survivor),
            "key_id": key_id,
            "algorithm": "AES_256_GCM",
            "recipient": "platform",
            "key": base64.b64encode(material).decode(),
            "created": True,
        },
    )


def test_personal_data_in_clear_is_sealed_before_it_leaves_and_opens_for_the_platform() -> None:
    material = bytes(range(32))
    server = Server(key_answer(SID, material), accepted())
    transport, _ = http(server)
    client = AgencyClient(AGENCY, transport, clock=lambda: T0, keys=KeyClient(transport))
    canary = {"name": "Maria Popescu", "location": "Hotel Astoria room 12"}

    identify_adult(client, canary)

    key_request, publish = server.requests
    assert key_request.url.path.endswith(f"/v1/survivors/{SID}/data-key")
    assert b"Astoria" not in publish.content and b"Popescu" not in publish.content
    sealed = Sealed.model_validate(
        {
            **json.loads(publish.content)["data"]["personal_data"],
            "ciphertext": base64.b64decode(
                json.loads(publish.content)["data"]["personal_data"]["ciphertext"]
            ),
        }
    )
    context = SealContext(SID, "survivor.identified", "personal_data", "platform")
    opened = open_sealed(DataKey("dk-1", SID, material), sealed, context)
    assert PersonalData.from_bytes(opened).values() == canary


def test_personal_data_outside_the_vocabulary_is_refused_before_anything_is_sent() -> None:
    server = Server(key_answer(SID, bytes(32)))
    transport, _ = http(server)
    client = AgencyClient(AGENCY, transport, clock=lambda: T0, keys=KeyClient(transport))
    with pytest.raises(SdkValidationError, match="nickname: not a personal field") as caught:
        identify_adult(client, {"nickname": "Mia"})
    assert "Mia" not in str(caught.value)
    assert not server.requests


def test_the_key_is_fetched_once_per_survivor_and_kept_in_memory_only() -> None:
    answers = (accepted(), accepted(), accepted())
    server = Server(key_answer(SID, bytes(32)), *answers, key_answer(SID, bytes(32)))
    transport, _ = http(server)
    keys = KeyClient(transport)
    client = AgencyClient(AGENCY, transport, clock=lambda: T0, keys=keys)
    for n in range(3):
        client.request_referral(
            SID,
            referral_id=uid(f"r{n}"),
            category=ServiceCategory.HOUSING,
            urgency=Urgency.ROUTINE,
            jurisdiction="NL",
            notes=b"needs a ground-floor room",
        )
    paths = [r.url.path for r in server.requests]
    assert sum(p.endswith("/data-key") for p in paths) == 1
    keys.forget(SID)
    assert keys.key(SID).key_id == "dk-1"
    assert sum(r.url.path.endswith("/data-key") for r in server.requests) == 2


def test_clear_personal_data_without_a_key_service_is_refused_before_anything_is_sent() -> None:
    client, sent = agency()
    with pytest.raises(SdkValidationError, match="key service"):
        identify_adult(client, {"name": "Maria"})
    assert not sent.sent


def test_a_refused_key_is_an_sdk_error_and_nothing_is_published() -> None:
    server = Server(problem(404, "Unknown survivor", "no case for this survivor id"))
    transport, _ = http(server)
    client = AgencyClient(AGENCY, transport, keys=KeyClient(transport))
    with pytest.raises(SdkRejectedError):
        identify_adult(client, {"name": "x"})
    assert [r.url.path.endswith("/data-key") for r in server.requests] == [True]


# --------------------------------------------------------------------------- disclosure


def disclosure_answer(
    key: ProviderKey, offer: OfferRef, provider_id: UUID, document: dict[str, Any]
) -> httpx.Response:
    context = DisclosureContext(offer.survivor_id, offer.referral_id, provider_id)
    sealed = seal_disclosure(
        public_key_from_b64(key.public_b64()), json.dumps(document).encode(), context
    )
    return httpx.Response(
        200,
        json={
            "survivor_id": str(offer.survivor_id),
            "referral_id": str(offer.referral_id),
            "provider_id": str(provider_id),
            "category": "HOUSING",
            "suite": SUITE_NAME,
            "fields": sorted(document["personal_data"]),
            "notes": document["notes"] is not None,
            "sealed": base64.b64encode(sealed).decode(),
        },
    )


def test_a_provider_fetches_its_disclosure_sends_only_its_public_key_and_opens_it() -> None:
    pid, key = uid("disclosure-p"), ProviderKey.generate()
    offer = OfferRef(SID, uid("disclosure-r"), 1)
    document = {"personal_data": {"name": "Maria"}, "notes": "ground floor"}
    server = Server(
        problem(404, "No such offer", "not yet"),  # the intake's copy is a moment behind
        disclosure_answer(key, offer, pid, document),
    )
    transport, _ = http(server)
    client = ProviderClient(
        pid, KafkaSettings(), disclosures=DisclosureClient(transport, pid, key=key)
    )
    disclosure = client.disclosure(offer, wait_s=5)
    assert (disclosure.personal_data, disclosure.notes) == ({"name": "Maria"}, "ground floor")
    assert disclosure.fields == ("name",) and "Maria" not in repr(disclosure)
    _, second = server.requests
    assert second.url.path.endswith(f"/v1/survivors/{SID}/referrals/{offer.referral_id}/disclosure")
    assert json.loads(second.content) == {"public_key": key.public_b64()}


def test_a_disclosure_for_another_key_or_a_refusal_is_an_sdk_error() -> None:
    pid, offer = uid("disclosure-p"), OfferRef(SID, uid("disclosure-r"), 1)
    document = {"personal_data": {"name": "Maria"}, "notes": None}
    elsewhere = disclosure_answer(ProviderKey.generate(), offer, pid, document)
    transport, _ = http(Server(elsewhere))
    with pytest.raises(SdkRejectedError, match="does not open"):
        DisclosureClient(transport, pid).fetch(offer)
    refused = problem(409, "Disclosure refused", "consent withdrawn", reason="consent-not-active")
    transport, _ = http(Server(refused))
    with pytest.raises(SdkRejectedError) as caught:
        DisclosureClient(transport, pid).fetch(offer)
    assert caught.value.status == 409
    odd = httpx.Response(200, json={"suite": "rot13"})
    transport, _ = http(Server(odd))
    with pytest.raises(SdkRejectedError, match="rot13"):
        DisclosureClient(transport, pid).fetch(offer)
    with pytest.raises(SdkValidationError, match="disclosures="):
        ProviderClient(pid, KafkaSettings()).disclosure(offer)

"""What the webhook connector reports when it gives up: a fact for the router, not an escalation.

The router acts on ``referral.undelivered`` (tests/unit/test_undelivered.py);
here: what the report says, that its id survives a crash, and that it goes
to the router's input keyed by survivor, never to ``escalations.v1``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.delivery import REPORT_ID_NAMESPACE, SOURCE, failure_reason, report_for, report_id
from connectors.exceptions import WebhookRejectedError, WebhookUndeliverableError
from processors.escalation import ESCALATION_ID_NAMESPACE as LADDER_NAMESPACE
from processors.meta import EFFECT_ID_NAMESPACE
from schemas.models import ReferralCancelled, ReferralOffered, ReferralUndelivered
from schemas.types import Actor, CancelReason, DeliveryFailure, UndeliveredEvent, Urgency
from streams.codec import Codec
from streams.exceptions import StreamsError
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.unit.domain_builders import HOUSING, T0, uid

SETTINGS = KafkaSettings()
TOPICS = Topics.of(SETTINGS)
SID, RID, PID = uid("report-survivor"), uid("report-referral"), uid("report-provider")
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def offer(attempt: int = 2) -> ReferralOffered:
    return ReferralOffered(
        survivor_id=SID,
        occurred_at=T0,
        referral_id=RID,
        provider_id=PID,
        category=HOUSING,
        urgency=Urgency.PRIORITY,
        score=0.5,
        reasons=("category",),
        attempt=attempt,
        deadline=T0,
    )


def cancellation() -> ReferralCancelled:
    return ReferralCancelled(
        survivor_id=SID,
        occurred_at=T0,
        referral_id=RID,
        reason=CancelReason.CONSENT_WITHDRAWN,
        cancelled_by=Actor.SYSTEM,
        provider_id=PID,
        category=HOUSING,
    )


def test_an_undelivered_offer_names_the_provider_and_the_attempt() -> None:
    report = report_for(offer(), provider_id=PID, failure=WebhookRejectedError("410"), now=NOW)

    assert report == ReferralUndelivered(
        survivor_id=SID,
        occurred_at=NOW,
        referral_id=RID,
        provider_id=PID,
        undelivered=UndeliveredEvent.REFERRAL_OFFERED,
        attempt=2,
        reason=DeliveryFailure.REJECTED,
    )


def test_an_undelivered_cancellation_has_no_attempt() -> None:
    report = report_for(
        cancellation(), provider_id=PID, failure=WebhookUndeliverableError("horizon"), now=NOW
    )

    assert report.undelivered is UndeliveredEvent.REFERRAL_CANCELLED
    assert report.attempt is None and report.reason is DeliveryFailure.UNREACHABLE


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (WebhookRejectedError("HTTP 410"), DeliveryFailure.REJECTED),
        (WebhookUndeliverableError("no 2xx"), DeliveryFailure.UNREACHABLE),
        (RuntimeError("a bug of ours"), DeliveryFailure.ERROR),
    ],
)
def test_the_reason_says_refused_out_of_time_or_ours(
    failure: BaseException, reason: DeliveryFailure
) -> None:
    assert failure_reason(failure) is reason


def test_the_report_id_is_stable_per_delivery_and_apart_from_every_other_namespace() -> None:
    assert report_id("d-1") == report_id("d-1") != report_id("d-2")
    assert len({REPORT_ID_NAMESPACE, LADDER_NAMESPACE, EFFECT_ID_NAMESPACE}) == 3


def test_the_report_goes_to_the_routers_input_keyed_by_survivor_never_to_escalations() -> None:
    codec = Codec(SETTINGS, source=SOURCE)
    report = report_for(offer(), provider_id=PID, failure=WebhookRejectedError("410"), now=NOW)

    record = codec.encode(report, TOPICS.provider_responses, event_id=report_id("d-1"))

    assert record.topic == TOPICS.provider_responses and record.key == str(SID).encode()
    decoded = codec.decode(record.value, record.headers, topic=record.topic, key=record.key)
    assert decoded.event == report
    assert (decoded.envelope.id, decoded.envelope.source) == (report_id("d-1"), SOURCE)
    with pytest.raises(StreamsError):
        codec.encode(report, TOPICS.escalations)
    # Not something an agency or a provider may publish: the intake and SDKs refuse it.
    assert "referral.undelivered" not in TOPICS.inbound_by_type

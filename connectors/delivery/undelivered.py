"""The report of a given-up delivery: ``referral.undelivered``, for the router to act on.

A provider that never received an offer or a cancellation is a safety
problem, but the connector does not decide what follows: it reports the
fact on ``provider-responses.v1`` and the router moves the referral on and
escalates it. The report's id derives from the delivery id, so a report
repeated after a crash is applied once. Pure functions; publishing is the
sender's job.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from connectors.exceptions import WebhookRejectedError, WebhookUndeliverableError
from connectors.webhooks import WebhookEvent
from schemas.models import ReferralOffered, ReferralUndelivered
from schemas.types import DeliveryFailure, UndeliveredEvent

__all__ = ["REPORT_ID_NAMESPACE", "SOURCE", "failure_reason", "report_for", "report_id"]

SOURCE = "/safepassage/webhooks"
"""CloudEvents source of the reports this connector publishes."""

REPORT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:safepassage:webhooks:undelivered")
"""UUIDv5 namespace of report ids (derived from the delivery id)."""


def report_id(delivery: str) -> str:
    """CloudEvents id of the report of a failed delivery: the same after a crash."""
    return str(uuid5(REPORT_ID_NAMESPACE, delivery))


def failure_reason(failure: BaseException) -> DeliveryFailure:
    """What the report says went wrong: refused, out of time, or a failure of ours."""
    if isinstance(failure, WebhookRejectedError):
        return DeliveryFailure.REJECTED
    if isinstance(failure, WebhookUndeliverableError):
        return DeliveryFailure.UNREACHABLE
    return DeliveryFailure.ERROR


def report_for(
    event: WebhookEvent, *, provider_id: UUID, failure: BaseException, now: datetime
) -> ReferralUndelivered:
    """The fact that ``event`` never reached ``provider_id`` (given up at ``now``)."""
    offer = isinstance(event, ReferralOffered)
    return ReferralUndelivered(
        survivor_id=event.survivor_id,
        occurred_at=now,
        referral_id=event.referral_id,
        provider_id=provider_id,
        undelivered=(
            UndeliveredEvent.REFERRAL_OFFERED if offer else UndeliveredEvent.REFERRAL_CANCELLED
        ),
        attempt=event.attempt if isinstance(event, ReferralOffered) else None,
        reason=failure_reason(failure),
    )

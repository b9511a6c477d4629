"""The escalation a given-up delivery raises to the survivor's case coordinator.

A provider that never received an offer or cancellation is a safety
problem, not just a failed HTTP call, so every give-up is escalated
(level :data:`COORDINATOR_LEVEL`, ``DELIVERY_FAILED``). The escalation id
is derived from the delivery id, so a crash that repeats the escalation
repeats it under the same CloudEvents id and consumers deduplicate it.
Pure functions; publishing is the sender's job.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from connectors.webhooks import WebhookEvent
from schemas.models import ReferralEscalated
from schemas.types import EscalationReason

__all__ = [
    "COORDINATOR_LEVEL",
    "ESCALATION_ID_NAMESPACE",
    "SOURCE",
    "escalation_for",
    "escalation_id",
]

SOURCE = "/safepassage/webhooks"
"""CloudEvents source of the escalations this connector publishes."""

COORDINATOR_LEVEL = 2
"""Rung of the escalation ladder that alerts the survivor's case coordinator."""

ESCALATION_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:safepassage:webhooks:escalation")
"""UUIDv5 namespace of escalation ids; apart from the ladder's, so the two never collide."""


def escalation_id(delivery: str) -> str:
    """CloudEvents id of the escalation of a failed delivery: the same after a crash."""
    return str(uuid5(ESCALATION_ID_NAMESPACE, delivery))


def escalation_for(
    event: WebhookEvent, *, provider_id: UUID, jurisdiction: str, now: datetime
) -> ReferralEscalated:
    """The coordinator's alert that ``event`` could not be delivered to its provider."""
    return ReferralEscalated(
        survivor_id=event.survivor_id,
        occurred_at=now,
        referral_id=event.referral_id,
        level=COORDINATOR_LEVEL,
        reason=EscalationReason.DELIVERY_FAILED,
        provider_id=provider_id,
        category=event.category,
        jurisdiction=jurisdiction,
    )

"""Which event types belong together on the wire: who publishes them, where they travel.

Plain sets of CloudEvents ``type`` names, with no Kafka and no topic names,
so that both :mod:`streams.topics` (the inbound rule: which topic an
agency's or provider's event goes to) and :mod:`streams.contract` (what
each topic may carry) read them from one place.
"""

from __future__ import annotations

__all__ = [
    "AGENCY_EVENTS",
    "DELIVERY_REPORTS",
    "DIRECTORY_EVENTS",
    "ESCALATION_EVENTS",
    "OFFER_EVENTS",
    "PROVIDER_ANSWERS",
]

AGENCY_EVENTS = frozenset(
    {
        "survivor.identified",
        "consent.granted",
        "consent.withdrawn",
        "risk.assessed",
        "referral.requested",
        "referral.cancelled",
        "case.closed",
    }
)
"""What agencies publish on ``intake.v1``."""

PROVIDER_ANSWERS = frozenset(
    {
        "referral.accepted",
        "referral.declined",
        "referral.started",
        "referral.completed",
        "referral.failed",
    }
)
"""What providers answer on ``provider-responses.v1``."""

DELIVERY_REPORTS = frozenset({"referral.undelivered"})
"""What the webhook delivery connector reports on ``provider-responses.v1`` (the router's
input, co-partitioned with intake). Not an agency's or provider's to publish: the intake
and the SDKs refuse it."""

DIRECTORY_EVENTS = frozenset({"provider.registered", "provider.updated", "provider.capacity"})
"""The compacted directory, ``providers.v1``."""

OFFER_EVENTS = frozenset({"referral.offered", "referral.cancelled"})
"""What a provider receives on its category's ``referrals.<category>.v1``."""

ESCALATION_EVENTS = frozenset({"referral.escalated"})
"""What operators watch on ``escalations.v1``."""

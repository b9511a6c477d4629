"""The live status view of one survivor's case: what operators and agencies read.

Derived from :class:`~processors.case.CaseState` only, so it can be
rebuilt from the topics at any time and compared with an independent
replay. It carries ids, statuses, times and codes: never sealed data,
names, contacts or notes (the case state holds none to begin with).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from processors.case import CaseState
from processors.consent import ConsentSummary, consent_summary
from processors.lifecycle import ReferralStatus
from schemas.types import CaseOutcome, RiskLevel, ServiceCategory, Urgency

__all__ = ["ReferralView", "StatusRead", "StatusView", "status_view"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReferralView(_View):
    """One referral as the status view shows it."""

    referral_id: UUID
    category: ServiceCategory
    urgency: Urgency
    status: ReferralStatus
    provider_id: UUID | None
    attempts: int
    providers_tried: int
    escalation_level: int
    deadline: datetime | None
    reason: str | None
    updated_at: datetime


class StatusView(_View):
    """Everything the status endpoint and the compacted status topic carry."""

    survivor_id: UUID
    identified: bool
    referrals: tuple[ReferralView, ...]
    consent: ConsentSummary
    risk_level: RiskLevel
    escalation_level: int
    closed: CaseOutcome | None
    last_update: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the status topic and the HTTP answer)."""
        return self.model_dump(mode="json")


def status_view(case: CaseState, now: datetime) -> StatusView:
    """The view of a case at ``now`` (consents may have expired since the last event)."""
    referrals = tuple(
        ReferralView(
            referral_id=r.referral_id,
            category=r.category,
            urgency=r.urgency,
            status=r.status,
            provider_id=r.provider_id,
            attempts=r.attempt,
            providers_tried=len(r.tried),
            escalation_level=r.escalation_level,
            deadline=r.deadline,
            reason=r.reason,
            updated_at=r.updated_at,
        )
        for r in sorted(case.referrals.values(), key=lambda r: (r.requested_at, str(r.referral_id)))
    )
    return StatusView(
        survivor_id=case.survivor_id,
        identified=case.profile is not None,
        referrals=referrals,
        consent=consent_summary(case.consents.values(), now),
        risk_level=case.risk,
        escalation_level=max(
            [case.escalation_level, *(r.escalation_level for r in case.referrals.values())]
        ),
        closed=case.closed,
        last_update=case.updated_at,
    )


class StatusRead(_View):
    """One read of a survivor's status, for ``audit.v1``: who looked, when, with what answer.

    DESIGN.md wants status reads accountable like routing decisions. The
    record names the caller by its keys-file principal and key id (never
    the key) and carries no case data.
    """

    kind: str = "status.read"
    survivor_id: UUID
    at: datetime
    principal: str | None
    """None when the worker runs without API keys (dev profile only)."""
    role: str | None
    key_id: str | None
    status: int
    """The HTTP status answered (200, or 404 for an unknown survivor)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the audit topic."""
        return self.model_dump(mode="json")

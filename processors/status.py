"""The status of one survivor's case: what the router publishes and what operators read.

Two steps, so that a replay publishes the same bytes and expiry is still
judged when it matters:

* :func:`status_record` is what the router publishes to the compacted
  ``case-status.v1`` on every change of a case. It is a function of the
  :class:`~processors.case.CaseState` alone: its times are event times (the
  ``occurred_at`` of the input applied, or a tick's instant for an
  escalation), never the wall clock, and consents are published as their
  terms and expiry (:class:`~processors.consent.ConsentTerms`) rather than
  as a summary taken at some instant.
* :func:`status_view` is what a reader answers: the record as of the instant
  it is read at (consents that have expired since the last event count for
  nothing). The intake's status store calls it on every read.

Both carry ids, statuses, times and codes: never sealed data, names,
contacts or notes (the case state holds none to begin with).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from processors.case import CaseState
from processors.consent import ConsentSummary, ConsentTerms, consent_summary
from processors.lifecycle import ReferralStatus
from processors.senders import owner_of
from schemas.types import (
    CaseOutcome,
    Identifier,
    Jurisdiction,
    RiskLevel,
    ServiceCategory,
    Urgency,
)

__all__ = [
    "ReferralView",
    "ShareView",
    "StatusRead",
    "StatusRecord",
    "StatusView",
    "status_record",
    "status_view",
]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReferralView(_View):
    """One referral as the status shows it."""

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


class ShareView(_View):
    """An agency the case is shared with, until the consent grant of the sharing expires."""

    agency_id: Identifier
    until: datetime | None
    """Expiry of the grant the sharing is bound to; None while it lasts until withdrawn."""

    def is_active(self, now: datetime) -> bool:
        """Whether the sharing still counts at ``now``."""
        return self.until is None or now < self.until


class StatusRecord(_View):
    """One survivor's status as the compacted ``case-status.v1`` carries it (JSON value).

    Everything here is fixed by the events applied so far; what depends on
    the instant of reading (which consents are still active) is left to
    :func:`status_view`.
    """

    survivor_id: UUID
    agency_id: Identifier | None = None
    """The agency the survivor belongs to: besides operators, the one that may read it."""
    identified: bool
    referrals: tuple[ReferralView, ...]
    consents: tuple[ConsentTerms, ...]
    """Every grant on the case, narrowed by its withdrawals, expired ones included."""
    risk_level: RiskLevel
    escalation_level: int
    closed: CaseOutcome | None
    last_update: datetime | None
    """Event time of the last input that changed the case: the record's stamp."""
    shares: tuple[ShareView, ...] = ()
    """Agencies the owner shared the case with (``case.shared``), by agency id."""
    jurisdiction: Jurisdiction | None = None
    """Where the survivor was identified (ISO 3166 code), for counts per jurisdiction
    (the operator console's funnel); None until identified, and in older records."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the value on the status topic)."""
        return self.model_dump(mode="json")

    def agencies_at(self, now: datetime) -> frozenset[str]:
        """The agencies that may read this status at ``now``: the owner and active shares."""
        owner = {self.agency_id} if self.agency_id is not None else set()
        return frozenset(owner | {s.agency_id for s in self.shares if s.is_active(now)})


class StatusView(_View):
    """The answer of ``GET /v1/survivors/{id}/status``: the record as of one instant."""

    survivor_id: UUID
    identified: bool
    referrals: tuple[ReferralView, ...]
    consent: ConsentSummary
    risk_level: RiskLevel
    escalation_level: int
    closed: CaseOutcome | None
    last_update: datetime | None
    shared_with: tuple[Identifier, ...] = ()
    """Agencies besides the owner that may act on the case now."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the HTTP answer)."""
        return self.model_dump(mode="json")


def status_record(case: CaseState) -> StatusRecord:
    """The record of a case: the same case always gives the same record (and bytes)."""
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
    grants = sorted(case.consents.values(), key=lambda g: str(g.consent_id))
    shares = tuple(
        ShareView(agency_id=agency, until=case.consents[share.consent_id].expires_at)
        for agency, share in sorted(case.shares.items())
        if share.consent_id in case.consents
    )
    return StatusRecord(
        survivor_id=case.survivor_id,
        agency_id=owner_of(case),
        identified=case.profile is not None,
        referrals=referrals,
        consents=tuple(ConsentTerms.of(g) for g in grants),
        risk_level=case.risk,
        escalation_level=max(
            [case.escalation_level, *(r.escalation_level for r in case.referrals.values())]
        ),
        closed=case.closed,
        last_update=case.updated_at,
        shares=shares,
        jurisdiction=case.profile.jurisdiction if case.profile is not None else None,
    )


def status_view(record: StatusRecord, now: datetime) -> StatusView:
    """The status as read at ``now``: consents may have expired since the last event."""
    return StatusView(
        survivor_id=record.survivor_id,
        identified=record.identified,
        referrals=record.referrals,
        consent=consent_summary(record.consents, now),
        risk_level=record.risk_level,
        escalation_level=record.escalation_level,
        closed=record.closed,
        last_update=record.last_update,
        shared_with=tuple(s.agency_id for s in record.shares if s.is_active(now)),
    )


class StatusRead(_View):
    """One read of a survivor's status, for ``audit.v1``: who looked, when, with what answer.

    DESIGN.md wants status reads accountable like routing decisions. The
    record names the caller by its keys-file principal and key id (never
    the key) and carries no case data.
    """

    kind: str = "status.read"
    survivor_id: UUID | None
    """None when the path held no survivor id (never the text it held instead)."""
    at: datetime
    principal: str
    role: str
    key_id: str
    status: int
    """The HTTP status answered: 200, 404 (unknown, or not the caller's), 403 or 400."""
    refusal: str | None = None
    """Why a read was refused: ``role``, ``not-a-uuid``, ``not-the-callers-survivor``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the audit topic."""
        return self.model_dump(mode="json")

"""Per-survivor case state: the value a Faust table keeps under each survivor pseudonym.

It holds only what routing and the status view need, never personal data:
no sealed fields, no names, no notes. Every piece is a frozen pydantic
model, so a state is a value: :meth:`CaseState.to_dict` gives JSON-ready
data and :meth:`CaseState.from_dict` validates it back (round trips are
exact, which the replay tests rely on).

**Idempotency window.** ``applied`` keeps a digest of the CloudEvents
``source`` and ``id`` of the last :attr:`RoutingPolicy.idempotency_window`
(default 1000) events applied to this survivor, oldest first. A redelivery
of any of them changes nothing. Kafka redelivers only records whose offsets
were not committed, a few at most per survivor, so a thousand is a wide
margin; a bounded window keeps the state of a long-running case small.
Refused events are not recorded (their state is untouched by definition),
so a redelivered refusal is refused again with the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from processors.consent import ConsentGrant
from processors.lifecycle import HOLDING, OPEN, ReferralStatus
from schemas.models import SurvivorIdentified
from schemas.types import (
    AgeGroup,
    CaseOutcome,
    Gender,
    Identifier,
    ImmediateNeed,
    Jurisdiction,
    LanguageCode,
    ReasonCode,
    Requirements,
    RiskLevel,
    ServiceCategory,
    Urgency,
    UtcDatetime,
)

__all__ = ["CaseShare", "CaseState", "EscalationRung", "ReferralState", "SurvivorProfile"]

EscalationRung = Annotated[int, Field(ge=0, le=3)]
"""0 when nothing escalated, else the highest rung of the ladder reached (1 to 3)."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SurvivorProfile(_Value):
    """What matching needs from ``survivor.identified``; the sealed personal data stays out."""

    agency_id: Identifier
    jurisdiction: Jurisdiction
    age_group: AgeGroup
    languages: tuple[LanguageCode, ...]
    gender: Gender
    identified_at: UtcDatetime

    @classmethod
    def from_event(cls, event: SurvivorIdentified) -> SurvivorProfile:
        """The profile an identification records."""
        return cls(
            agency_id=event.agency_id,
            jurisdiction=event.jurisdiction,
            age_group=event.age_group,
            languages=event.languages,
            gender=event.gender,
            identified_at=event.occurred_at,
        )

    @property
    def treated_as_child(self) -> bool:
        """Minors and people of uncertain age (EU Directive 2011/36/EU, Art. 13(2))."""
        return self.age_group is not AgeGroup.ADULT


class ReferralState(_Value):
    """One referral of the survivor, as the router and the status view see it."""

    referral_id: UUID
    agency_id: Identifier
    category: ServiceCategory
    urgency: Urgency
    requirements: Requirements
    requested_at: UtcDatetime
    status: ReferralStatus
    provider_id: UUID | None = None
    """Provider of the current (or last) offer; None before the first offer."""
    provider_jurisdiction: Jurisdiction | None = None
    """Where the data went with the current offer (checked again on consent withdrawal)."""
    cross_border: bool = False
    attempt: Annotated[int, Field(ge=0)] = 0
    """Number of the current offer; 0 before the first."""
    tried: tuple[UUID, ...] = ()
    """Providers offered so far, in order; none is offered twice."""
    undelivered_to: tuple[UUID, ...] = ()
    """Providers whose offer was reported undelivered (``referral.undelivered``): they never
    received it, so a cancellation that cannot reach them either withdraws nothing."""
    deadline: UtcDatetime | None = None
    """Deadline of the open offer, as told to the provider (``RoutingPolicy.offer_deadline``)."""
    escalation_level: EscalationRung = 0
    reason: ReasonCode | None = None
    """Why it is in its status (e.g. ``consent.missing``, ``declined:no_capacity``)."""
    updated_at: UtcDatetime
    """Last change of any kind, a noted escalation or a new hold reason included."""
    status_since: UtcDatetime | None = None
    """When it entered its current status (set by every status move).

    SLA clocks run from here, not from :attr:`updated_at`: an escalation
    noted on an accepted referral must not push its service-start deadline
    later. None in states stored before the field existed; readers then
    fall back to :attr:`updated_at`.
    """

    @property
    def holds_place(self) -> bool:
        """Whether a place is reserved for it at its provider."""
        return self.status in HOLDING and self.provider_id is not None

    @property
    def is_open(self) -> bool:
        """Whether cancellation, withdrawal or case closure still affects it."""
        return self.status in OPEN


class CaseShare(_Value):
    """A second agency's right to act on the case (``case.shared``), bound to one consent grant.

    It counts only while that grant is active: a whole withdrawal removes
    the share, an expiry silences it (:meth:`CaseState.shared_with`).
    """

    consent_id: UUID
    shared_at: UtcDatetime


class CaseState(_Value):
    """Everything the router knows of one survivor."""

    survivor_id: UUID
    owner: Identifier | None = None
    """The agency the survivor belongs to: the one whose event about them was applied first."""
    profile: SurvivorProfile | None = None
    consents: dict[UUID, ConsentGrant] = Field(default_factory=dict)
    withdrawn_consents: tuple[UUID, ...] = ()
    """Ids of grants withdrawn whole; a late copy of one is refused."""
    risk: RiskLevel = RiskLevel.UNKNOWN
    immediate_needs: tuple[ImmediateNeed, ...] = ()
    referrals: dict[UUID, ReferralState] = Field(default_factory=dict)
    escalation_level: EscalationRung = 0
    closed: CaseOutcome | None = None
    closed_at: UtcDatetime | None = None
    """When the case was first closed: the retention period runs from here.

    A second ``case.closed`` (a corrected outcome) does not move it, so it
    cannot postpone the erasure. None for an open case, and in states stored
    before the field existed; :attr:`retained_since` then falls back."""
    shares: dict[Identifier, CaseShare] = Field(default_factory=dict)
    """Agencies the owner shared the case with, by agency id (see :class:`CaseShare`)."""
    erased_at: UtcDatetime | None = None
    """When the survivor's data was erased (their key shredded, their status tombstoned).

    What stays is what accountability needs: ids, codes and times of the
    referrals; every later event about the survivor is refused."""
    updated_at: UtcDatetime | None = None
    applied: tuple[str, ...] = ()
    """Digests of recently applied events (see the module docstring)."""

    @classmethod
    def new(cls, survivor_id: UUID) -> CaseState:
        """The empty state of a survivor the router has not seen yet."""
        return cls(survivor_id=survivor_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the Faust table (no personal data in it)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseState:
        """Inverse of :meth:`to_dict`; validates everything."""
        return cls.model_validate(data)

    @property
    def retained_since(self) -> datetime | None:
        """Where the retention period of a closed case counts from; None while it is open.

        :attr:`closed_at`, or for a state closed before that field existed its
        :attr:`updated_at`: the last change, at or after the closure, so the
        erasure then comes late rather than early.
        """
        if self.closed is None:
            return None
        return self.closed_at or self.updated_at

    def shared_with(self, agency_id: str, now: datetime) -> bool:
        """Whether ``agency_id`` may act on the case at ``now`` through a share.

        Only while the consent grant the share is bound to is still held
        (not withdrawn whole) and not expired.
        """
        share = self.shares.get(agency_id)
        if share is None:
            return False
        grant = self.consents.get(share.consent_id)
        return grant is not None and grant.is_active(now)

    def with_referral(self, referral: ReferralState) -> CaseState:
        """This state with one referral added or replaced."""
        return self.model_copy(
            update={"referrals": {**self.referrals, referral.referral_id: referral}}
        )

    def open_referrals(self) -> tuple[ReferralState, ...]:
        """Open referrals, oldest request first (the order a decision handles them in)."""
        return tuple(
            sorted(
                (r for r in self.referrals.values() if r.is_open),
                key=lambda r: (r.requested_at, str(r.referral_id)),
            )
        )

    def holdings(self) -> Iterator[tuple[UUID, ServiceCategory, UUID]]:
        """(provider, category, referral) of every place a referral of this case holds."""
        for r in self.referrals.values():
            if r.holds_place and r.provider_id is not None:
                yield r.provider_id, r.category, r.referral_id

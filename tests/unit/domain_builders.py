"""Test-data builders for the pure domain core: typed events with sensible defaults.

Each builder returns a :mod:`schemas.models` event (never a dict), so tests
read as the story they tell: a provider registers, a survivor is identified,
consents, a referral is requested, a provider answers. :class:`Harness`
feeds them through ``decide`` / ``apply_directory`` the way the Faust
binding will, one survivor table entry per pseudonym.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from processors.case import CaseState, ReferralState
from processors.core import EventMeta, decide
from processors.directory import Directory, apply_directory
from processors.effects import Decision
from processors.policy import DEFAULT_POLICY, RoutingPolicy
from processors.senders import PROVIDER_ANSWERS
from schemas.models import (
    CaseClosed,
    CaseShared,
    CaseUnshared,
    ConsentGranted,
    ConsentWithdrawn,
    Event,
    ProviderCapacity,
    ProviderEvent,
    ProviderRegistered,
    ProviderUpdated,
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralDeclined,
    ReferralEscalated,
    ReferralFailed,
    ReferralRequested,
    ReferralStarted,
    ReferralUndelivered,
    RiskAssessed,
    SurvivorEvent,
    SurvivorIdentified,
)
from schemas.types import (
    Actor,
    AgeGroup,
    CancelReason,
    CaseOutcome,
    DeclineReason,
    DeliveryFailure,
    EscalationReason,
    FailureReason,
    Gender,
    ReferralOutcome,
    Requirements,
    RiskLevel,
    ServiceCategory,
    UndeliveredEvent,
    Urgency,
)

__all__ = [
    "AGENCY",
    "HOUSING",
    "T0",
    "Harness",
    "accepted",
    "capacity",
    "closed",
    "completed",
    "consent",
    "declined",
    "failed",
    "identified",
    "provider",
    "request",
    "risk",
    "started",
    "timeout",
    "uid",
    "undelivered",
    "updated",
    "withdrawal",
]

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
AGENCY = "agency:nl-police"
HOUSING = ServiceCategory.HOUSING


def uid(name: str) -> UUID:
    """A stable UUID per readable name (``uid("p1")``), so tests can compare ids."""
    return uuid5(NAMESPACE_URL, f"safepassage-test:{name}")


# --------------------------------------------------------------------------- directory


def provider(
    pid: UUID,
    *,
    categories: Iterable[ServiceCategory] = (HOUSING,),
    languages: Iterable[str] = ("en",),
    interpretation: bool = False,
    jurisdictions: Iterable[str] = ("NL",),
    child: bool = False,
    gender: Gender | None = None,
    accessible: bool = False,
    cross_border: bool = False,
    capacity: int = 5,
    at: datetime = T0,
) -> ProviderRegistered:
    """A ``provider.registered``: an English-speaking Dutch housing service by default."""
    return ProviderRegistered(
        provider_id=pid,
        occurred_at=at,
        organization_name=f"Provider {str(pid)[:8]}",
        categories=tuple(categories),
        languages=tuple(languages),
        offers_interpretation=interpretation,
        jurisdictions=tuple(jurisdictions),
        child_specialised=child,
        gender_specific=gender,
        accessible=accessible,
        cross_border=cross_border,
        capacity=capacity,
    )


def updated(registered: ProviderRegistered, **changes: object) -> ProviderUpdated:
    """The ``provider.updated`` replacing ``registered`` with some fields changed."""
    return ProviderUpdated.model_validate({**registered.model_dump(), **changes})


def capacity(
    pid: UUID,
    total: int,
    available: int,
    *,
    category: ServiceCategory = HOUSING,
    at: datetime = T0,
) -> ProviderCapacity:
    """A ``provider.capacity`` report for one category."""
    return ProviderCapacity(
        provider_id=pid, occurred_at=at, category=category, total=total, available=available
    )


# --------------------------------------------------------------------------- agency


def identified(
    sid: UUID,
    *,
    jurisdiction: str = "NL",
    age: AgeGroup = AgeGroup.ADULT,
    languages: Iterable[str] = ("en",),
    gender: Gender = Gender.FEMALE,
    at: datetime = T0,
) -> SurvivorIdentified:
    """A ``survivor.identified``: an adult English-speaking woman identified in NL by default."""
    return SurvivorIdentified(
        survivor_id=sid,
        occurred_at=at,
        agency_id=AGENCY,
        jurisdiction=jurisdiction,
        age_group=age,
        languages=tuple(languages),
        gender=gender,
    )


def consent(
    sid: UUID,
    *,
    consent_id: UUID | None = None,
    categories: Iterable[ServiceCategory] = tuple(ServiceCategory),
    cross_border: bool = False,
    jurisdictions: Iterable[str] = (),
    expires_at: datetime | None = None,
    at: datetime = T0,
) -> ConsentGranted:
    """A ``consent.granted``: every category, home jurisdiction only, no expiry by default."""
    return ConsentGranted(
        survivor_id=sid,
        occurred_at=at,
        consent_id=consent_id or uid(f"consent:{sid}"),
        agency_id=AGENCY,
        categories=tuple(categories),
        cross_border_allowed=cross_border,
        jurisdictions=tuple(jurisdictions),
        expires_at=expires_at,
    )


def withdrawal(
    sid: UUID,
    *,
    consent_id: UUID | None = None,
    categories: Iterable[ServiceCategory] = (),
    jurisdictions: Iterable[str] = (),
    cross_border: bool = False,
    at: datetime = T0,
) -> ConsentWithdrawn:
    """A ``consent.withdrawn``: the whole default grant by default."""
    return ConsentWithdrawn(
        survivor_id=sid,
        occurred_at=at,
        consent_id=consent_id or uid(f"consent:{sid}"),
        agency_id=AGENCY,
        categories=tuple(categories),
        jurisdictions=tuple(jurisdictions),
        cross_border_withdrawn=cross_border,
    )


def risk(sid: UUID, level: RiskLevel, *, at: datetime = T0) -> RiskAssessed:
    """A ``risk.assessed`` without immediate needs."""
    return RiskAssessed(
        survivor_id=sid, occurred_at=at, agency_id=AGENCY, level=level, immediate_needs=()
    )


def request(
    sid: UUID,
    rid: UUID,
    *,
    category: ServiceCategory = HOUSING,
    urgency: Urgency = Urgency.ROUTINE,
    languages: Iterable[str] = (),
    gender_specific: bool = False,
    child: bool = False,
    accessible: bool = False,
    jurisdiction: str = "NL",
    at: datetime = T0,
) -> ReferralRequested:
    """A ``referral.requested`` for housing in NL with no special requirement by default."""
    return ReferralRequested(
        survivor_id=sid,
        occurred_at=at,
        referral_id=rid,
        agency_id=AGENCY,
        category=category,
        urgency=urgency,
        requirements=Requirements(
            languages=tuple(languages),
            gender_specific=gender_specific,
            child_specialised=child,
            accessibility=accessible,
            jurisdiction=jurisdiction,
        ),
    )


def cancelled(
    sid: UUID, rid: UUID, *, reason: CancelReason = CancelReason.AGENCY_REQUEST, at: datetime = T0
) -> ReferralCancelled:
    """An agency's ``referral.cancelled`` on intake (it does not know the provider)."""
    return ReferralCancelled(
        survivor_id=sid, occurred_at=at, referral_id=rid, reason=reason, cancelled_by=Actor.AGENCY
    )


def closed(sid: UUID, *, at: datetime = T0) -> CaseClosed:
    """A ``case.closed``."""
    return CaseClosed(
        survivor_id=sid, occurred_at=at, agency_id=AGENCY, outcome=CaseOutcome.SUPPORT_COMPLETED
    )


# --------------------------------------------------------------------------- provider answers


def accepted(
    sid: UUID, rid: UUID, pid: UUID, attempt: int, *, at: datetime = T0
) -> ReferralAccepted:
    """``referral.accepted``."""
    return ReferralAccepted(
        survivor_id=sid, occurred_at=at, referral_id=rid, provider_id=pid, attempt=attempt
    )


def declined(
    sid: UUID,
    rid: UUID,
    pid: UUID,
    attempt: int,
    *,
    reason: DeclineReason = DeclineReason.NO_CAPACITY,
    at: datetime = T0,
) -> ReferralDeclined:
    """``referral.declined``."""
    return ReferralDeclined(
        survivor_id=sid,
        occurred_at=at,
        referral_id=rid,
        provider_id=pid,
        attempt=attempt,
        reason=reason,
    )


def started(sid: UUID, rid: UUID, pid: UUID, attempt: int, *, at: datetime = T0) -> ReferralStarted:
    """``referral.started``."""
    return ReferralStarted(
        survivor_id=sid, occurred_at=at, referral_id=rid, provider_id=pid, attempt=attempt
    )


def completed(
    sid: UUID, rid: UUID, pid: UUID, attempt: int, *, at: datetime = T0
) -> ReferralCompleted:
    """``referral.completed``."""
    return ReferralCompleted(
        survivor_id=sid,
        occurred_at=at,
        referral_id=rid,
        provider_id=pid,
        attempt=attempt,
        outcome=ReferralOutcome.SERVICE_PROVIDED,
    )


def failed(sid: UUID, rid: UUID, pid: UUID, attempt: int, *, at: datetime = T0) -> ReferralFailed:
    """``referral.failed``."""
    return ReferralFailed(
        survivor_id=sid,
        occurred_at=at,
        referral_id=rid,
        provider_id=pid,
        attempt=attempt,
        reason=FailureReason.LOST_CONTACT,
    )


def timeout(
    sid: UUID, rid: UUID, pid: UUID | None, *, jurisdiction: str = "NL", at: datetime = T0
) -> ReferralEscalated:
    """The escalation engine's rung-1 ``DEADLINE_MISSED`` for the offer held by ``pid``."""
    return ReferralEscalated(
        survivor_id=sid,
        occurred_at=at,
        referral_id=rid,
        level=1,
        reason=EscalationReason.DEADLINE_MISSED,
        missed_deadline=at - timedelta(minutes=1),
        provider_id=pid,
        category=HOUSING,
        jurisdiction=jurisdiction,
    )


def undelivered(
    sid: UUID,
    rid: UUID,
    pid: UUID,
    attempt: int | None = 1,
    *,
    what: UndeliveredEvent = UndeliveredEvent.REFERRAL_OFFERED,
    reason: DeliveryFailure = DeliveryFailure.UNREACHABLE,
    at: datetime = T0,
) -> ReferralUndelivered:
    """The webhook connector's ``referral.undelivered``: an offer (by default) never arrived."""
    return ReferralUndelivered(
        survivor_id=sid,
        occurred_at=at,
        referral_id=rid,
        provider_id=pid,
        undelivered=what,
        attempt=attempt if what is UndeliveredEvent.REFERRAL_OFFERED else None,
        reason=reason,
    )


def shared(
    sid: UUID,
    with_agency: str,
    *,
    consent_id: UUID | None = None,
    by: str = AGENCY,
    at: datetime = T0,
) -> CaseShared:
    """A ``case.shared`` by the test agency under the default grant of :func:`consent`."""
    return CaseShared(
        survivor_id=sid,
        occurred_at=at,
        agency_id=by,
        shared_with=with_agency,
        consent_id=consent_id or uid(f"consent:{sid}"),
    )


def unshared(sid: UUID, with_agency: str, *, by: str = AGENCY, at: datetime = T0) -> CaseUnshared:
    """A ``case.unshared`` by the test agency (or ``by``, e.g. the agency stepping back)."""
    return CaseUnshared(survivor_id=sid, occurred_at=at, agency_id=by, shared_with=with_agency)


# --------------------------------------------------------------------------- harness


def source_for(event: Event) -> str:
    """The CloudEvents source the event's rightful sender publishes under.

    Agency events under their agency (``/agencies/<agency_id>``; the test
    agency for a cancellation, which names none), provider answers under
    the provider they name, everything else under the platform's.
    """
    if isinstance(event, ReferralCancelled):
        return f"/agencies/{AGENCY}"
    agency_id = getattr(event, "agency_id", None)
    if isinstance(agency_id, str):
        return f"/agencies/{agency_id}"
    provider_id = getattr(event, "provider_id", None)
    if provider_id is not None and isinstance(event, PROVIDER_ANSWERS):
        return f"/providers/{provider_id}"
    return "/safepassage/test"


@dataclass
class Harness:
    """The binding in miniature: a case table, a directory, and an input log.

    ``feed`` decodes nothing and publishes nothing; it applies decisions
    exactly as the Faust agent will (store the state only when changed,
    apply capacity to the directory) and returns them for inspection.
    """

    policy: RoutingPolicy = DEFAULT_POLICY
    directory: Directory = field(default_factory=Directory)
    cases: dict[UUID, CaseState] = field(default_factory=dict)
    log: list[tuple[Event, EventMeta]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def meta(self, event: Event | None = None) -> EventMeta:
        """Metadata of a new, never-seen event, under the source its sender would use."""
        source = source_for(event) if event is not None else f"/agencies/{AGENCY}"
        return EventMeta(source=source, id=f"evt-{next(self._ids)}")

    def feed(self, event: Event, meta: EventMeta | None = None) -> Decision | None:
        """Apply one event; the decision for a survivor event, None for a directory event."""
        meta = meta or self.meta(event)
        self.log.append((event, meta))
        if isinstance(event, ProviderEvent):
            self.directory = apply_directory(self.directory, event)
            return None
        assert isinstance(event, SurvivorEvent)
        decision = decide(
            self.cases.get(event.survivor_id),
            self.directory,
            event,
            meta,
            now=event.occurred_at,
            policy=self.policy,
        )
        if decision.changed:
            self.cases[event.survivor_id] = decision.state
        self.directory = decision.directory
        return decision

    def survivor(self, event: SurvivorEvent, meta: EventMeta | None = None) -> Decision:
        """``feed`` for a survivor event (never None)."""
        decision = self.feed(event, meta)
        assert decision is not None
        return decision

    def all(self, *events: Event) -> list[Decision]:
        """Feed several events in order; the survivor decisions."""
        return [d for d in (self.feed(e) for e in events) if d is not None]

    def referral(self, sid: UUID, rid: UUID) -> ReferralState:
        """The stored state of one referral."""
        return self.cases[sid].referrals[rid]

    def ledger_matches_cases(self) -> bool:
        """Whether the directory's reservations are exactly the places the cases hold.

        The invariant between the two projections: every (provider, category,
        referral) a case holds a place for is reserved in the directory, and
        nothing else is (holdings at places the directory does not know
        cannot be reserved, and are left out).
        """
        directory = self.directory
        reserved = {
            (provider_id, category, referral_id)
            for provider_id, entry in directory.providers.items()
            for category, places in entry.places.items()
            for referral_id in places.holders
        }
        held = {
            (provider_id, category, referral_id)
            for case in self.cases.values()
            for provider_id, category, referral_id in case.holdings()
            if provider_id in directory.providers
            and category in directory.providers[provider_id].places
        }
        return reserved == held

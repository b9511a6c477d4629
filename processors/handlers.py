"""One handler per input event type: judge the event, refuse it or call the moves.

A handler returns a :class:`~processors.effects.Rejection` *before* changing
anything when the input must be refused (unknown referral, illegal
transition, answer for an offer that is not current, ...); otherwise it
updates the working state through :mod:`processors.moves` and returns None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from uuid import UUID

from processors.case import CaseShare, ReferralState, SurvivorProfile
from processors.consent import ConsentGrant, is_whole_withdrawal
from processors.directory import CapacityAction
from processors.effects import AuditAction, Rejection, RejectionCode
from processors.lifecycle import ReferralStatus, Trigger, next_status
from processors.moves import (
    cancel,
    next_provider,
    resume_held,
    route,
    still_permitted,
    tell_to_erase,
    undelivered_cancellation,
    undelivered_offer,
)
from processors.work import Work, moved
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
    ReferralEscalated,
    ReferralFailed,
    ReferralOffered,
    ReferralRequested,
    ReferralStarted,
    ReferralUndelivered,
    RiskAssessed,
    SurvivorErasureRequested,
    SurvivorIdentified,
)
from schemas.types import (
    Actor,
    CancelReason,
    EscalationReason,
    RiskLevel,
    ServiceCategory,
    UndeliveredEvent,
)

__all__ = ["HANDLERS", "Handler", "erase"]

Handler = Callable[[Work, Any], Rejection | None]
"""Applies one event to the work in progress; a Rejection means "refuse, change nothing"."""


def _on_identified(work: Work, event: SurvivorIdentified) -> Rejection | None:
    work.case = work.case.model_copy(update={"profile": SurvivorProfile.from_event(event)})
    resume_held(work)
    return None


def _on_consent_granted(work: Work, event: ConsentGranted) -> Rejection | None:
    if event.consent_id in work.case.withdrawn_consents:
        return work.reject(
            RejectionCode.CONSENT_WITHDRAWN_EARLIER, "consent.granted for a grant withdrawn earlier"
        )
    grant = ConsentGrant.from_event(event)
    existing = work.case.consents.get(event.consent_id)
    if existing is not None:
        if existing.same_terms(grant):
            return None  # the same grant published again: nothing new
        return work.reject(
            RejectionCode.CONSENT_DUPLICATE,
            "consent.granted reuses the id of a grant with other terms; issue a new consent_id",
        )
    consents = {**work.case.consents, grant.consent_id: grant}
    work.case = work.case.model_copy(update={"consents": consents})
    resume_held(work)
    return None


def _on_consent_withdrawn(work: Work, event: ConsentWithdrawn) -> Rejection | None:
    case = work.case
    grant = case.consents.get(event.consent_id)
    whole = is_whole_withdrawal(event)
    consents = dict(case.consents)
    withdrawn_ids = case.withdrawn_consents
    if whole:
        consents.pop(event.consent_id, None)
        if event.consent_id not in withdrawn_ids:
            withdrawn_ids = (*withdrawn_ids, event.consent_id)
    elif grant is not None:
        consents[event.consent_id] = grant.narrowed(event)
    work.case = case.model_copy(update={"consents": consents, "withdrawn_consents": withdrawn_ids})
    if whole:
        _end_shares(work, event.consent_id, "consent.withdrawn")
    if event.erasure_requested:
        erase(work, "consent.withdrawn")
        return None
    affected: set[ServiceCategory] = set(event.categories) or (
        set(grant.categories) if grant is not None else set(ServiceCategory)
    )
    crossing = event.cross_border_withdrawn or whole
    for referral in work.case.open_referrals():
        touched = referral.category in affected or (crossing and referral.cross_border)
        if touched and not still_permitted(work.case, referral, work.now):
            cancel(work, referral, CancelReason.CONSENT_WITHDRAWN, Actor.SYSTEM)
    return None


def _on_risk(work: Work, event: RiskAssessed) -> Rejection | None:
    work.case = work.case.model_copy(
        update={"risk": event.level, "immediate_needs": event.immediate_needs}
    )
    return None


def _on_requested(work: Work, event: ReferralRequested) -> Rejection | None:
    if work.case.closed is not None:
        return work.reject(
            RejectionCode.CASE_CLOSED, "referral.requested for a closed case", event.referral_id
        )
    if event.referral_id in work.case.referrals:
        return work.reject(
            RejectionCode.REFERRAL_DUPLICATE,
            "referral.requested reuses an existing referral_id",
            event.referral_id,
        )
    if event.category is ServiceCategory.UNKNOWN:
        return work.reject(
            RejectionCode.CATEGORY_UNKNOWN,
            "referral.requested for a category this router does not know (newer schema?)",
            event.referral_id,
        )
    referral = ReferralState(
        referral_id=event.referral_id,
        agency_id=event.agency_id,
        category=event.category,
        urgency=event.urgency,
        requirements=event.requirements,
        requested_at=event.occurred_at,
        status=ReferralStatus.REQUESTED,
        updated_at=work.now,
        status_since=work.now,
    )
    route(work, referral, before=None)
    return None


_ANSWERS: Mapping[type[Event], Trigger] = MappingProxyType(
    {
        ReferralAccepted: Trigger.ACCEPT,
        ReferralDeclined: Trigger.DECLINE,
        ReferralStarted: Trigger.START,
        ReferralCompleted: Trigger.COMPLETE,
        ReferralFailed: Trigger.FAIL,
    }
)

_Answer = ReferralAccepted | ReferralDeclined | ReferralStarted | ReferralCompleted | ReferralFailed


def _known(work: Work, referral_id: UUID) -> ReferralState | Rejection:
    referral = work.case.referrals.get(referral_id)
    if referral is None:
        return work.reject(
            RejectionCode.REFERRAL_UNKNOWN,
            f"{work.event.event_type} for a referral this survivor does not have",
            referral_id,
        )
    return referral


def _legal(work: Work, referral: ReferralState, trigger: Trigger) -> Rejection | None:
    if next_status(referral.status, trigger) is None:
        return work.reject(
            RejectionCode.TRANSITION_ILLEGAL,
            f"{work.event.event_type} is not allowed for a referral that is {referral.status}",
            referral.referral_id,
        )
    return None


def _current(
    work: Work, referral: ReferralState, provider_id: UUID | None, attempt: int | None
) -> Rejection | None:
    if (provider_id is not None and provider_id != referral.provider_id) or (
        attempt is not None and attempt != referral.attempt
    ):
        return work.reject(
            RejectionCode.ANSWER_NOT_CURRENT,
            f"{work.event.event_type} does not name the provider and attempt of the "
            f"current offer (attempt {referral.attempt})",
            referral.referral_id,
        )
    return None


def _on_answer(work: Work, event: _Answer) -> Rejection | None:
    trigger = _ANSWERS[type(event)]
    referral = _known(work, event.referral_id)
    if isinstance(referral, Rejection):
        return referral
    refused = _legal(work, referral, trigger) or _current(
        work, referral, event.provider_id, event.attempt
    )
    if refused is not None:
        return refused
    if isinstance(event, ReferralDeclined):
        next_provider(work, referral, trigger, f"declined:{event.reason.value.lower()}")
        return None
    changes: dict[str, Any] = {"deadline": None}
    if isinstance(event, ReferralCompleted):
        changes["reason"] = f"completed:{event.outcome.value.lower()}"
    elif isinstance(event, ReferralFailed):
        changes["reason"] = f"failed:{event.reason.value.lower()}"
    after = moved(referral, trigger, work.now, **changes)
    work.store(after)
    if not after.holds_place:
        work.change_capacity(CapacityAction.RELEASE, referral)
    work.record(AuditAction.MOVED, after, before=referral.status, reasons=(trigger.value,))
    return None


def _on_cancelled(work: Work, event: ReferralCancelled) -> Rejection | None:
    referral = _known(work, event.referral_id)
    if isinstance(referral, Rejection):
        return referral
    refused = _legal(work, referral, Trigger.CANCEL)
    if refused is not None:
        return refused
    cancel(work, referral, event.reason, event.cancelled_by)
    return None


def _answered_before(referral: ReferralState, event: ReferralEscalated) -> bool:
    """Whether a rung-1 timeout names an offer that was made but is no longer open.

    The escalation engine and the provider race: the engine may find the
    deadline due and publish just before the provider's answer (or an
    agency's cancellation) reaches the router. That is no error of anyone's,
    so the timeout is audited and otherwise ignored rather than refused and
    dead-lettered. A timeout naming a provider this referral was never
    offered to, or none at all, is not such a race and is still refused.
    """
    if event.provider_id is None or event.provider_id not in referral.tried:
        return False
    still_open = referral.status is ReferralStatus.OFFERED
    return not (still_open and event.provider_id == referral.provider_id)


def _on_escalated(work: Work, event: ReferralEscalated) -> Rejection | None:
    if event.referral_id is None:  # a case-level clock: remember the rung only
        level = max(work.case.escalation_level, event.level)
        work.case = work.case.model_copy(update={"escalation_level": level})
        return None
    referral = _known(work, event.referral_id)
    if isinstance(referral, Rejection):
        return referral
    if event.reason is EscalationReason.DEADLINE_MISSED and event.level == 1:
        if _answered_before(referral, event):
            work.note(referral, "escalated:1", "offer.no-longer-current")
            return None
        refused = _legal(work, referral, Trigger.TIMEOUT) or _current(
            work, referral, event.provider_id, None
        )
        if refused is not None:
            return refused
        referral = referral.model_copy(
            update={"escalation_level": max(referral.escalation_level, 1)}
        )
        next_provider(work, referral, Trigger.TIMEOUT, "timeout")
    else:
        noted = referral.model_copy(
            update={
                "escalation_level": max(referral.escalation_level, event.level),
                "updated_at": work.now,
            }
        )
        work.store(noted)
        work.record(
            AuditAction.NOTED, noted, before=referral.status, reasons=(f"escalated:{event.level}",)
        )
    level = max(work.case.escalation_level, event.level)
    work.case = work.case.model_copy(update={"escalation_level": level})
    return None


def _on_undelivered(work: Work, event: ReferralUndelivered) -> Rejection | None:
    """The webhook connector could not deliver an offer or a cancellation to its provider."""
    referral = _known(work, event.referral_id)
    if isinstance(referral, Rejection):
        return referral
    if event.provider_id not in referral.tried:
        return work.reject(
            RejectionCode.PROVIDER_NOT_OFFERED,
            "referral.undelivered names a provider this referral was never offered to",
            referral.referral_id,
        )
    why = f"undelivered:{event.reason.value.lower()}"
    if event.undelivered is UndeliveredEvent.REFERRAL_OFFERED:
        undelivered_offer(work, referral, event.provider_id, event.attempt, why)
    else:  # a cancellation (or a kind this router does not know: alert, to be safe)
        undelivered_cancellation(work, referral, event.provider_id, why)
    return None


def _on_offered(work: Work, event: ReferralOffered) -> Rejection | None:
    return work.reject(
        RejectionCode.EVENT_UNEXPECTED,
        "referral.offered is the router's own output, not an input",
        event.referral_id,
    )


def _on_closed(work: Work, event: CaseClosed) -> Rejection | None:
    # The first closure starts the retention period; a later one (a corrected
    # outcome) must not postpone the erasure.
    closed_at = work.case.retained_since or work.now
    work.case = work.case.model_copy(update={"closed": event.outcome, "closed_at": closed_at})
    for referral in work.case.open_referrals():
        cancel(work, referral, CancelReason.CASE_CLOSED, Actor.AGENCY)
    _end_shares(work, None, "case.closed")
    return None


def _on_erasure_requested(work: Work, event: SurvivorErasureRequested) -> Rejection | None:
    erase(work, "erasure.requested")
    return None


def erase(work: Work, why: str, by: Actor = Actor.AGENCY) -> None:
    """Erase the survivor: referrals cancelled, every provider ever offered one told to erase,
    everything but ids, codes and times of the referrals dropped, the case marked erased.

    The binding then tombstones the status and the survivor's data key: every
    sealed value about them, on every topic, can no longer be opened. ``by``
    is who the notices name: the agency that asked, or the platform when a
    retention period ran out (:func:`processors.core.expire`).
    """
    told = {(referral_id, provider_id) for provider_id, _, referral_id in work.case.holdings()}
    for referral in work.case.open_referrals():
        cancel(work, referral, CancelReason.ERASURE, by)  # tells the provider holding a place
    tell_to_erase(work, by, told=told)
    _end_shares(work, None, "erased")
    work.case = work.case.model_copy(
        update={
            "profile": None,
            "consents": {},
            "withdrawn_consents": (*work.case.withdrawn_consents, *work.case.consents),
            "risk": RiskLevel.UNKNOWN,
            "immediate_needs": (),
            "erased_at": work.now,
        }
    )
    work.record(AuditAction.ERASED, reasons=(why,))


def _on_shared(work: Work, event: CaseShared) -> Rejection | None:
    case = work.case
    if case.closed is not None:
        return work.reject(RejectionCode.CASE_CLOSED, "case.shared for a closed case")
    grant = case.consents.get(event.consent_id)
    if grant is None or not grant.is_active(work.now):
        return work.reject(
            RejectionCode.CONSENT_NOT_ACTIVE,
            "case.shared names a consent grant the survivor does not hold now "
            "(unknown, withdrawn or expired)",
        )
    existing = case.shares.get(event.shared_with)
    if existing is not None and existing.consent_id == event.consent_id:
        return None  # shared already, under the same grant
    share = CaseShare(consent_id=event.consent_id, shared_at=work.now)
    work.case = case.model_copy(update={"shares": {**case.shares, event.shared_with: share}})
    work.record(AuditAction.SHARED, agency_id=event.shared_with)
    return None


def _on_unshared(work: Work, event: CaseUnshared) -> Rejection | None:
    shares = dict(work.case.shares)
    if shares.pop(event.shared_with, None) is None:
        return work.reject(
            RejectionCode.SHARE_UNKNOWN,
            "case.unshared names an agency the case is not shared with",
        )
    work.case = work.case.model_copy(update={"shares": shares})
    why = "stepped-back" if event.agency_id == event.shared_with else "taken-back"
    work.record(AuditAction.UNSHARED, agency_id=event.shared_with, reasons=(why,))
    return None


def _end_shares(work: Work, consent_id: UUID | None, why: str) -> None:
    """End the shares bound to ``consent_id`` (None: every share), each audited."""
    ending = sorted(
        agency
        for agency, share in work.case.shares.items()
        if consent_id is None or share.consent_id == consent_id
    )
    if not ending:
        return
    shares = {a: s for a, s in work.case.shares.items() if a not in ending}
    work.case = work.case.model_copy(update={"shares": shares})
    for agency in ending:
        work.record(AuditAction.UNSHARED, agency_id=agency, reasons=(why,))


HANDLERS: Mapping[type[Event], Handler] = MappingProxyType(
    {
        SurvivorIdentified: _on_identified,
        ConsentGranted: _on_consent_granted,
        ConsentWithdrawn: _on_consent_withdrawn,
        RiskAssessed: _on_risk,
        ReferralRequested: _on_requested,
        ReferralCancelled: _on_cancelled,
        CaseClosed: _on_closed,
        CaseShared: _on_shared,
        CaseUnshared: _on_unshared,
        SurvivorErasureRequested: _on_erasure_requested,
        ReferralOffered: _on_offered,
        ReferralEscalated: _on_escalated,
        ReferralUndelivered: _on_undelivered,
        **dict.fromkeys(_ANSWERS, _on_answer),
    }
)

"""The handler of each input event type; a type not listed is not an input of ``decide``."""

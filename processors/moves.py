"""The router's own moves: route, hold, offer, escalate, re-offer, cancel, undelivered.

These are what happens *to* a referral once an input has been judged
acceptable; the handlers in :mod:`processors.handlers` decide which move an
event calls for. Every move updates the working state, the capacity ledger
and the effects together, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime
from uuid import UUID

from processors.case import CaseState, ReferralState
from processors.consent import has_consent_for, permitting_grant
from processors.directory import CapacityAction
from processors.effects import AuditAction
from processors.escalation import first_rung
from processors.lifecycle import ReferralStatus, Trigger
from processors.routing import Match, Need, match
from processors.work import NO_OFFER, Work, moved
from schemas.models import ReferralCancelled, ReferralEscalated, ReferralOffered
from schemas.types import (
    Actor,
    CancelReason,
    EscalationReason,
    RiskLevel,
    Urgency,
)

__all__ = [
    "cancel",
    "hold_reason",
    "next_provider",
    "resume_held",
    "route",
    "still_permitted",
    "tell_to_erase",
    "undelivered_cancellation",
    "undelivered_offer",
]


def route(work: Work, referral: ReferralState, before: ReferralStatus | None) -> None:
    """Route a ``requested`` referral: offer, hold or declare it unroutable."""
    why = hold_reason(work, referral)
    if why is not None or work.case.profile is None:
        _hold(work, referral, before, why or "survivor.unidentified")
        return
    need = Need.of(work.case.profile, referral)
    result = match(need, work.case.consents.values(), work.directory, work.now, work.policy)
    if result.best is None:
        _unroutable(work, referral, before, need, result)
    else:
        _offer(work, referral, before, need, result)


def _hold(work: Work, referral: ReferralState, before: ReferralStatus | None, why: str) -> None:
    held = moved(referral, Trigger.HOLD, work.now, reason=why, **NO_OFFER)
    work.store(held)
    work.record(AuditAction.HELD, held, before=before, reasons=(why,))


def _offer(
    work: Work, referral: ReferralState, before: ReferralStatus | None, need: Need, result: Match
) -> None:
    best = result.candidates[0]  # the caller routes here only when someone fits
    deadline = work.policy.offer_deadline(
        referral.urgency, referral.category, child=need.child, risk=work.case.risk, now=work.now
    )
    offered = moved(
        referral,
        Trigger.OFFER,
        work.now,
        provider_id=best.provider_id,
        provider_jurisdiction=best.jurisdiction,
        cross_border=best.cross_border,
        attempt=referral.attempt + 1,
        tried=(*referral.tried, best.provider_id),
        deadline=deadline,
        reason=None,
    )
    work.store(offered)
    work.change_capacity(CapacityAction.RESERVE, offered)
    work.publish(
        ReferralOffered(
            survivor_id=work.case.survivor_id,
            occurred_at=work.now,
            referral_id=offered.referral_id,
            provider_id=best.provider_id,
            category=offered.category,
            urgency=offered.urgency,
            score=best.score,
            reasons=best.reasons,
            attempt=offered.attempt,
            deadline=deadline,
        )
    )
    work.record(AuditAction.OFFERED, offered, before=before, reasons=best.reasons, result=result)


TOP_RUNG = 3
"""The operator on duty: the ladder's highest rung (as in ``referral.escalated``)."""


def _unroutable(
    work: Work, referral: ReferralState, before: ReferralStatus | None, need: Need, result: Match
) -> None:
    """No provider fits: mark the referral unroutable and escalate it one rung it has not seen.

    The rung is the higher of the rung the situation calls for (2, or 3 for
    a child, an emergency or critical risk) and one above the highest rung
    the referral already reached (a re-offer's 1, a coordinator's 2, noted
    from the ladder), capped at 3: whoever was alerted before has been told
    already, and a second event at the same rung would page them twice. At
    the cap nothing is published (the operator already has the referral);
    the audit record says so.

    Only the referral's own rung counts, not the case's: the case's rung
    also collects legal clocks and other referrals, and taking it would
    silence the alert for a new referral nobody has seen yet.
    """
    if need.child:
        wanted, reason, why = (
            TOP_RUNG,
            EscalationReason.CHILD_PROTECTION,
            "no-candidate:child-protection",
        )
    else:
        severe = referral.urgency is Urgency.EMERGENCY or work.case.risk is RiskLevel.CRITICAL
        wanted, reason, why = (
            (TOP_RUNG if severe else 2),
            EscalationReason.UNROUTABLE,
            "no-candidate",
        )
    reached = referral.escalation_level
    level = min(TOP_RUNG, max(wanted, reached + 1))
    stuck = moved(
        referral,
        Trigger.NO_CANDIDATE,
        work.now,
        reason=why,
        escalation_level=max(reached, level),
        **NO_OFFER,
    )
    work.store(stuck)
    work.case = work.case.model_copy(
        update={"escalation_level": max(work.case.escalation_level, level)}
    )
    reasons: tuple[str, ...] = (why,)
    if level > reached:
        work.publish(
            ReferralEscalated(
                survivor_id=work.case.survivor_id,
                occurred_at=work.now,
                referral_id=stuck.referral_id,
                level=level,
                reason=reason,
                category=stuck.category,
                jurisdiction=need.home,
            )
        )
    else:
        reasons = (why, f"escalation.already-at:{reached}")
    work.record(AuditAction.UNROUTABLE, stuck, before=before, reasons=reasons, result=result)


def next_provider(
    work: Work,
    referral: ReferralState,
    trigger: Trigger,
    why: str,
    *,
    extra_reasons: tuple[str, ...] = (),
) -> None:
    """A decline or a timeout: give the place back and offer the next-best provider."""
    before = referral.status
    declined = moved(referral, trigger, work.now, reason=why, deadline=None)
    work.store(declined)
    work.change_capacity(CapacityAction.RELEASE, referral)
    if trigger is Trigger.TIMEOUT:
        # The silent provider must learn the offer is gone before the next one gets it.
        _forward_cancel(work, referral, CancelReason.OTHER, Actor.SYSTEM)
    work.record(AuditAction.MOVED, declined, before=before, reasons=(why, *extra_reasons))
    route(work, moved(declined, Trigger.RETRY, work.now), before=ReferralStatus.DECLINED)


def hold_reason(work: Work, referral: ReferralState) -> str | None:
    """Why ``referral`` cannot be routed yet, or None when it can."""
    if work.case.profile is None:
        return "survivor.unidentified"
    if not has_consent_for(work.case.consents.values(), referral.category, work.now):
        return "consent.missing"
    return None


def resume_held(work: Work) -> None:
    """Route every held referral whose hold is lifted; keep the others' reason current."""
    for referral in work.case.open_referrals():
        if referral.status is not ReferralStatus.ON_HOLD:
            continue
        why = hold_reason(work, referral)
        if why is None:
            route(work, moved(referral, Trigger.RESUME, work.now), before=ReferralStatus.ON_HOLD)
        elif why != referral.reason:
            waiting = referral.model_copy(update={"reason": why, "updated_at": work.now})
            work.store(waiting)
            work.record(AuditAction.HELD, waiting, before=referral.status, reasons=(why,))


def cancel(work: Work, referral: ReferralState, reason: CancelReason, by: Actor) -> None:
    before = referral.status
    why = f"cancelled:{reason.value.lower()}"
    cancelled = moved(referral, Trigger.CANCEL, work.now, reason=why, deadline=None)
    work.store(cancelled)
    if referral.holds_place:
        work.change_capacity(CapacityAction.RELEASE, referral)
        _forward_cancel(work, referral, reason, by)
    work.record(AuditAction.MOVED, cancelled, before=before, reasons=(why,))


def _forward_cancel(
    work: Work,
    referral: ReferralState,
    reason: CancelReason,
    by: Actor,
    provider_id: UUID | None = None,
) -> None:
    """Tell the provider holding the offer (or ``provider_id``); provider and category route it
    to their topic."""
    work.publish(
        ReferralCancelled(
            survivor_id=work.case.survivor_id,
            occurred_at=work.now,
            referral_id=referral.referral_id,
            reason=reason,
            cancelled_by=by,
            provider_id=provider_id or referral.provider_id,
            category=referral.category,
        )
    )


def tell_to_erase(work: Work, by: Actor, *, told: Set[tuple[UUID, UUID]]) -> None:
    """Send an ``ERASURE`` cancellation to every provider any referral was ever offered to.

    Any of them may have fetched what the offer let it see, so cancelling
    the open referrals is not enough: a provider whose referral is already
    completed, failed, declined or cancelled, and every provider an earlier
    offer of a referral went to (``tried``), must learn the survivor's data
    is to be erased too. Each hears it once per referral; ``told`` holds the
    (referral, provider) pairs already told by this erasure's own
    cancellations. Notices only: no referral moves (a completed referral
    cannot be cancelled), and the category and provider route each notice
    to that provider's topic as any cancellation.
    """
    for referral in sorted(
        work.case.referrals.values(), key=lambda r: (r.requested_at, str(r.referral_id))
    ):
        for provider_id in dict.fromkeys(referral.tried):  # tried never repeats; to be safe
            if (referral.referral_id, provider_id) not in told:
                _forward_cancel(work, referral, CancelReason.ERASURE, by, provider_id)


def still_permitted(case: CaseState, referral: ReferralState, now: datetime) -> bool:
    grants = case.consents.values()
    if not referral.holds_place:
        return has_consent_for(grants, referral.category, now)
    if case.profile is None or referral.provider_jurisdiction is None:
        return False
    grant = permitting_grant(
        grants,
        referral.category,
        referral.provider_jurisdiction,
        home=case.profile.jurisdiction,
        abroad=referral.cross_border,
        now=now,
    )
    return grant is not None


# --------------------------------------------------------------------------- undelivered


def _delivery_alert(work: Work, referral: ReferralState, provider_id: UUID, level: int) -> None:
    """Publish a ``DELIVERY_FAILED`` escalation at ``level`` for ``referral``; raise the case's."""
    profile = work.case.profile
    jurisdiction = profile.jurisdiction if profile else referral.requirements.jurisdiction
    work.publish(
        ReferralEscalated(
            survivor_id=work.case.survivor_id,
            occurred_at=work.now,
            referral_id=referral.referral_id,
            level=level,
            reason=EscalationReason.DELIVERY_FAILED,
            provider_id=provider_id,
            category=referral.category,
            jurisdiction=jurisdiction,
        )
    )
    work.case = work.case.model_copy(
        update={"escalation_level": max(work.case.escalation_level, level)}
    )


def undelivered_offer(
    work: Work, referral: ReferralState, provider_id: UUID, attempt: int | None, why: str
) -> None:
    """An offer its provider never received: like a missed acknowledgement, and louder.

    The referral moves on to the next-best provider at once (as after a
    timeout, the ladder's rung 1; the silent provider is sent a
    cancellation), and an alert climbs the ladder: the case coordinator, or
    the referral's first rung when it starts higher (emergency, critical
    risk, child), and always above the rung the referral already reached; at
    the top nothing new is published (the operator already has it). The
    re-offer itself is the ``referral.offered`` that follows, so no rung-1
    event is published (the ladder publishes rung 1 at most once per referral
    under its own id). An offer that no longer stands (answered, timed out,
    cancelled meanwhile) was withdrawn anyway: audited only.
    """
    current = (
        referral.status is ReferralStatus.OFFERED
        and referral.provider_id == provider_id
        and referral.attempt == attempt
    )
    if not current:
        work.note(referral, why, "offer.no-longer-current")
        return
    reached = referral.escalation_level
    level = min(TOP_RUNG, max(2, first_rung(work.case, referral), reached + 1))
    if level > reached:
        _delivery_alert(work, referral, provider_id, level)
        reasons: tuple[str, ...] = (f"escalated:{level}",)
    else:
        reasons = (f"escalation.already-at:{reached}",)
    noted = referral.model_copy(
        update={
            "escalation_level": max(reached, level),
            "undelivered_to": (*referral.undelivered_to, provider_id),
        }
    )
    next_provider(work, noted, Trigger.TIMEOUT, why, extra_reasons=reasons)


def undelivered_cancellation(
    work: Work, referral: ReferralState, provider_id: UUID, why: str
) -> None:
    """A cancellation its provider never received: it may still act on the offer or service.

    The case coordinator is alerted (or the next rung up, if the referral
    already reached the coordinator's); at the top nothing new is published.
    A provider that never received the offer either is told nothing it
    could act on: audited only.
    """
    if provider_id in referral.undelivered_to:
        work.note(referral, why, "offer.never-delivered")
        return
    reached = referral.escalation_level
    level = min(TOP_RUNG, max(2, reached + 1))
    if level <= reached:
        work.note(referral, why, f"escalation.already-at:{reached}")
        return
    _delivery_alert(work, referral, provider_id, level)
    noted = referral.model_copy(update={"escalation_level": level, "updated_at": work.now})
    work.store(noted)
    work.record(
        AuditAction.NOTED, noted, before=referral.status, reasons=(why, f"escalated:{level}")
    )

"""``referral.undelivered``: a webhook that never arrived reaches the case, ladder and status.

An offer its provider never received is treated like a missed
acknowledgement (the next provider is offered at once) and climbs the
ladder with a ``DELIVERY_FAILED`` alert; a cancellation that never arrived
alerts the coordinator unless that provider never received the offer
either. The status view and the ladder's plan see the rungs.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.case import CaseState
from processors.core import EventMeta
from processors.deadlines import DeadlineKind
from processors.effects import AuditAction, Decision, RejectionCode
from processors.engine import on_event
from processors.escalation import EscalationState
from processors.lifecycle import ReferralStatus
from processors.policy import RoutingPolicy
from processors.sla import default_policy
from processors.status import status_record
from schemas.models import ReferralCancelled, ReferralEscalated, ReferralOffered
from schemas.types import (
    AgeGroup,
    DeliveryFailure,
    EscalationReason,
    UndeliveredEvent,
    Urgency,
)

from .domain_builders import (
    T0,
    Harness,
    accepted,
    cancelled,
    consent,
    identified,
    provider,
    request,
    uid,
    undelivered,
)

S, R = uid("undelivered-survivor"), uid("undelivered-referral")
P1, P2, P3, P4 = (uid(f"undelivered-p{i}") for i in range(1, 5))
LATER = T0 + timedelta(minutes=5)
CANCELLATION = UndeliveredEvent.REFERRAL_CANCELLED


def offered(*providers: UUID, **survivor: object) -> Harness:
    """A survivor whose housing referral is offered to the first of ``providers`` (by id)."""
    h = Harness()
    h.all(
        *(provider(p) for p in providers),
        identified(S, **survivor),  # type: ignore[arg-type]
        consent(S),
        request(S, R, urgency=Urgency.ROUTINE),
    )
    assert h.referral(S, R).status is ReferralStatus.OFFERED
    return h


def escalations(d: Decision) -> list[ReferralEscalated]:
    return [e for e in d.events if isinstance(e, ReferralEscalated)]


def holder(h: Harness) -> UUID:
    current = h.referral(S, R).provider_id
    assert current is not None
    return current


# --------------------------------------------------------------------------- offers


def test_an_undelivered_offer_goes_to_the_next_provider_and_alerts_the_coordinator() -> None:
    h = offered(P1, P2)
    first = holder(h)

    d = h.survivor(undelivered(S, R, first, 1, at=LATER))

    (alert,) = escalations(d)
    assert (alert.level, alert.reason) == (2, EscalationReason.DELIVERY_FAILED)
    assert (alert.referral_id, alert.provider_id, alert.occurred_at) == (R, first, LATER)
    assert alert.category is not None and alert.jurisdiction == "NL"
    (cancel,) = [e for e in d.events if isinstance(e, ReferralCancelled)]
    assert cancel.provider_id == first  # the silent provider learns the offer is gone
    (offer,) = [e for e in d.events if isinstance(e, ReferralOffered)]
    assert offer.provider_id != first and offer.attempt == 2
    # Escalation first, then the cancellation, then the new offer (the binding's order).
    assert [type(e) for e in d.events] == [ReferralEscalated, ReferralCancelled, ReferralOffered]
    referral = h.referral(S, R)
    assert (referral.status, referral.escalation_level) == (ReferralStatus.OFFERED, 2)
    assert referral.undelivered_to == (first,) and referral.tried == (first, offer.provider_id)
    assert [c.action.value for c in d.capacity] == ["release", "reserve"]
    (moved,) = [a for a in d.audits if a.action is AuditAction.MOVED]
    assert moved.reasons == ("undelivered:unreachable", "escalated:2")
    # The status says so: the case and the referral at rung 2.
    record = status_record(h.cases[S])
    assert record.escalation_level == 2 and record.referrals[0].escalation_level == 2
    assert h.ledger_matches_cases()


@pytest.mark.parametrize(
    "survivor",
    [{"age": AgeGroup.MINOR}, {"age": AgeGroup.UNKNOWN}],
    ids=["minor", "age-unknown"],
)
def test_an_emergency_for_a_child_starts_higher_and_pages_the_operator(
    survivor: dict[str, object],
) -> None:
    h = Harness()
    h.all(
        provider(P1, child=True),
        provider(P2, child=True),
        identified(S, **survivor),  # type: ignore[arg-type]
        consent(S),
        request(S, R, urgency=Urgency.EMERGENCY),
    )

    d = h.survivor(undelivered(S, R, holder(h), 1))

    assert [e.level for e in escalations(d)] == [3]  # the referral's first rung (1 + 2 factors)


def test_each_provider_that_cannot_be_reached_climbs_one_rung_then_none() -> None:
    h = offered(P1, P2, P3, P4)
    levels: list[list[int]] = []
    for attempt in (1, 2, 3):
        d = h.survivor(undelivered(S, R, holder(h), attempt))
        levels.append([e.level for e in escalations(d)])
        assert h.referral(S, R).attempt == attempt + 1  # offered on every time

    assert levels == [[2], [3], []]  # at the top the operator already has it
    (moved,) = [a for a in d.audits if a.action is AuditAction.MOVED]
    assert moved.reasons == ("undelivered:unreachable", "escalation.already-at:3")
    assert h.referral(S, R).undelivered_to == h.referral(S, R).tried[:3]


def test_with_nobody_left_the_referral_is_unroutable_one_rung_higher() -> None:
    h = offered(P1)

    d = h.survivor(undelivered(S, R, P1, 1))

    assert [(e.level, e.reason) for e in escalations(d)] == [
        (2, EscalationReason.DELIVERY_FAILED),
        (3, EscalationReason.UNROUTABLE),
    ]
    referral = h.referral(S, R)
    assert (referral.status, referral.escalation_level) == (ReferralStatus.UNROUTABLE, 3)


@pytest.mark.parametrize(
    ("answered", "attempt"),
    [(True, 1), (False, 2)],
    ids=["accepted-meanwhile", "another-attempt"],
)
def test_an_offer_that_no_longer_stands_is_only_audited(answered: bool, attempt: int) -> None:
    h = offered(P1, P2)
    first = holder(h)
    if answered:
        h.survivor(accepted(S, R, first, 1))
    before = h.referral(S, R)

    d = h.survivor(undelivered(S, R, first, attempt))

    assert d.changed and d.events == () and d.capacity == ()
    (audit,) = d.audits
    assert audit.action is AuditAction.NOTED
    assert audit.reasons == ("undelivered:unreachable", "offer.no-longer-current")
    assert h.referral(S, R) == before


# --------------------------------------------------------------------------- cancellations


def test_an_undelivered_cancellation_alerts_the_coordinator_then_climbs() -> None:
    h = offered(P1, P2)
    first = holder(h)
    h.survivor(accepted(S, R, first, 1))
    h.survivor(cancelled(S, R))

    d = h.survivor(undelivered(S, R, first, what=CANCELLATION, at=LATER))

    (alert,) = escalations(d)
    assert (alert.level, alert.provider_id) == (2, first)
    referral = h.referral(S, R)
    assert (referral.status, referral.escalation_level) == (ReferralStatus.CANCELLED, 2)
    assert referral.updated_at == LATER and h.cases[S].escalation_level == 2
    assert d.audits[-1].reasons == ("undelivered:unreachable", "escalated:2")

    again = h.survivor(undelivered(S, R, first, what=CANCELLATION, reason=DeliveryFailure.ERROR))
    assert [e.level for e in escalations(again)] == [3]
    last = h.survivor(undelivered(S, R, first, what=CANCELLATION))
    assert escalations(last) == [] and last.audits[-1].reasons == (
        "undelivered:unreachable",
        "escalation.already-at:3",
    )


def test_a_kind_this_router_does_not_know_is_alerted_like_a_cancellation() -> None:
    h = offered(P1, P2)

    d = h.survivor(undelivered(S, R, holder(h), what=UndeliveredEvent.UNKNOWN))

    assert [e.level for e in escalations(d)] == [2]
    assert h.referral(S, R).status is ReferralStatus.OFFERED  # nothing moves on a guess


def test_a_cancellation_to_a_provider_that_never_got_the_offer_is_only_audited() -> None:
    h = offered(P1, P2)
    first = holder(h)
    h.survivor(undelivered(S, R, first, 1))  # the offer failed: rung 2, re-offered
    before = h.referral(S, R)

    d = h.survivor(undelivered(S, R, first, what=CANCELLATION))  # so did its cancellation

    assert d.events == ()
    assert d.audits[-1].reasons == ("undelivered:unreachable", "offer.never-delivered")
    assert h.referral(S, R) == before


# --------------------------------------------------------------------------- refusals, copies


def test_a_provider_never_offered_or_an_unknown_referral_is_refused() -> None:
    h = offered(P1, P2)

    stranger = h.survivor(undelivered(S, R, P3, 1))
    unknown = h.survivor(undelivered(S, uid("no-such-referral"), holder(h), 1))

    assert stranger.rejection is not None and not stranger.changed
    assert stranger.rejection.code is RejectionCode.PROVIDER_NOT_OFFERED
    assert unknown.rejection is not None
    assert unknown.rejection.code is RejectionCode.REFERRAL_UNKNOWN


def test_a_redelivered_report_changes_nothing_and_emits_nothing() -> None:
    h = offered(P1, P2)
    meta = EventMeta(source="/safepassage/webhooks", id="undelivered-1")
    event = undelivered(S, R, holder(h), 1)
    h.survivor(event, meta)
    case = h.cases[S]

    again = h.survivor(event, meta)

    assert again.duplicate and again.effects == () and h.cases[S] is case


# --------------------------------------------------------------------------- the ladder


def test_the_ladder_plans_the_next_offer_one_rung_above_the_alert() -> None:
    h = offered(P1, P2)
    policy = RoutingPolicy(sla=default_policy())
    case: CaseState = h.cases[S]

    step = on_event(
        case,
        EscalationState.new(S),
        h.directory,
        undelivered(S, R, holder(h), 1, at=LATER),
        EventMeta(source="/safepassage/webhooks", id="u-1"),
        now=LATER,
        policy=policy,
    )

    assert step.case is not None
    (deadline,) = [d for d in step.add if d.referral_id == R]
    assert deadline.kind is DeadlineKind.ACKNOWLEDGE
    assert (deadline.attempt, deadline.level) == (2, 3)  # no second re-offer: the operator next
    assert step.case.referrals[R].deadline == deadline.due_at


@given(failures=st.lists(st.sampled_from(list(DeliveryFailure)), min_size=1, max_size=6))
def test_no_rung_is_published_twice_and_the_status_shows_the_highest(
    failures: list[DeliveryFailure],
) -> None:
    h = offered(P1, P2, P3)
    published: list[int] = []
    for index, reason in enumerate(failures):
        referral = h.referral(S, R)
        current = referral.provider_id
        if current is None:  # unroutable now: report a cancellation to the last one tried
            event = undelivered(S, R, referral.tried[-1], what=CANCELLATION, reason=reason)
        else:
            event = undelivered(S, R, current, referral.attempt, reason=reason)
        d = h.survivor(event, EventMeta(source="/safepassage/webhooks", id=f"u-{index}"))
        published += [e.level for e in d.events if isinstance(e, ReferralEscalated)]

    assert len(published) == len(set(published))
    assert published == sorted(published)
    record = status_record(h.cases[S])
    assert record.escalation_level == max(published) == h.referral(S, R).escalation_level
    assert h.ledger_matches_cases()

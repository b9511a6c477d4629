"""The referral lifecycle: every (status, event) pair of the table, and the flows around it.

The pairs are generated from :data:`processors.lifecycle.TRANSITIONS`, so a
row added to the table is tested without anyone remembering to add a case:
legal pairs move exactly as the table says, illegal ones are refused with
the state, the directory and the outbox untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from processors.case import CaseState, ReferralState
from processors.core import EventMeta, decide
from processors.directory import CapacityAction, CapacityChange, apply_capacity
from processors.effects import AuditAction, RejectionCode
from processors.exceptions import ProcessorsError, SurvivorMismatchError, UnsupportedEventError
from processors.lifecycle import (
    EXTERNAL_TRIGGERS,
    HOLDING,
    OPEN,
    TERMINAL,
    TRANSIENT,
    TRANSITIONS,
    ReferralStatus,
    Trigger,
    next_status,
)
from processors.policy import RoutingPolicy
from processors.work import Work, moved
from schemas.models import (
    ReferralCancelled,
    ReferralEscalated,
    ReferralOffered,
    SurvivorEvent,
)
from schemas.types import (
    Actor,
    AgeGroup,
    CancelReason,
    EscalationReason,
    Requirements,
    RiskLevel,
    ServiceCategory,
    Urgency,
)

from .domain_builders import (
    AGENCY,
    HOUSING,
    T0,
    Harness,
    accepted,
    cancelled,
    closed,
    completed,
    consent,
    declined,
    failed,
    identified,
    provider,
    request,
    risk,
    started,
    timeout,
    uid,
)

S, R = uid("survivor"), uid("referral")
P1, P2 = uid("provider-1"), uid("provider-2")

EventFor = Callable[[UUID, int], SurvivorEvent]
EVENTS: dict[Trigger, EventFor] = {
    Trigger.ACCEPT: lambda pid, n: accepted(S, R, pid, n),
    Trigger.DECLINE: lambda pid, n: declined(S, R, pid, n),
    Trigger.START: lambda pid, n: started(S, R, pid, n),
    Trigger.COMPLETE: lambda pid, n: completed(S, R, pid, n),
    Trigger.FAIL: lambda pid, n: failed(S, R, pid, n),
    Trigger.CANCEL: lambda pid, n: cancelled(S, R),
    Trigger.TIMEOUT: lambda pid, n: timeout(S, R, pid),
}
"""The input event of each external trigger, naming provider ``pid`` and attempt ``n``."""


def _ready() -> Harness:
    """Two fitting providers (P1 the better), an identified, consenting survivor."""
    h = Harness()
    h.all(
        provider(P1, languages=("en",)),
        provider(P2, languages=("fr",), interpretation=True),
        identified(S),
        consent(S),
    )
    return h


def _in_status(status: ReferralStatus) -> Harness:
    """A harness whose referral R is in ``status``, offered to P1 once where that applies.

    Built directly (not through events) so that even the transient statuses
    the core never stores can be tested against every event.
    """
    h = _ready()
    offered_once = status not in {ReferralStatus.REQUESTED, ReferralStatus.ON_HOLD}
    has_provider = offered_once and status is not ReferralStatus.UNROUTABLE
    referral = ReferralState(
        referral_id=R,
        agency_id="agency:nl-police",
        category=HOUSING,
        urgency=Urgency.ROUTINE,
        requirements=Requirements(
            languages=(),
            gender_specific=False,
            child_specialised=False,
            accessibility=False,
            jurisdiction="NL",
        ),
        requested_at=T0,
        status=status,
        provider_id=P1 if has_provider else None,
        provider_jurisdiction="NL" if has_provider else None,
        attempt=1 if offered_once else 0,
        tried=(P1,) if offered_once else (),
        updated_at=T0,
    )
    h.cases[S] = h.cases[S].with_referral(referral)
    if status in HOLDING:
        change = CapacityChange(
            action=CapacityAction.RESERVE, provider_id=P1, category=HOUSING, referral_id=R
        )
        h.directory = apply_capacity(h.directory, (change,))
    return h


def _ledger_matches(h: Harness) -> bool:
    return h.ledger_matches_cases()


# --------------------------------------------------------------------------- the table


def test_table_speaks_only_of_known_statuses_and_triggers() -> None:
    for (status, trigger), target in TRANSITIONS.items():
        assert isinstance(status, ReferralStatus)
        assert isinstance(trigger, Trigger)
        assert isinstance(target, ReferralStatus)


def test_terminal_statuses_only_allow_cancelling_an_unroutable_referral() -> None:
    leaving_terminal = {(s, t) for (s, t) in TRANSITIONS if s in TERMINAL}
    assert leaving_terminal == {(ReferralStatus.UNROUTABLE, Trigger.CANCEL)}


def test_transient_statuses_always_lead_on() -> None:
    for status in TRANSIENT:
        assert any(s is status for s, _ in TRANSITIONS), status
    assert TRANSIENT <= OPEN


def test_every_status_is_reachable_from_requested() -> None:
    reached = {ReferralStatus.REQUESTED}
    frontier = [ReferralStatus.REQUESTED]
    while frontier:
        status = frontier.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is status and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(ReferralStatus)


# --------------------------------------------------------------------------- every pair

PAIRS = [(status, trigger) for status in ReferralStatus for trigger in EXTERNAL_TRIGGERS]


@pytest.mark.parametrize(("status", "trigger"), PAIRS, ids=[f"{s}+{t}" for s, t in PAIRS])
def test_every_status_and_event(status: ReferralStatus, trigger: Trigger) -> None:
    h = _in_status(status)
    case_before, directory_before = h.cases[S], h.directory
    decision = h.survivor(EVENTS[trigger](P1, 1))
    target = next_status(status, trigger)
    if target is None and trigger is Trigger.TIMEOUT and P1 in case_before.referrals[R].tried:
        # The ladder raced P1's answer (or a cancellation): audited, otherwise a no-op.
        assert decision.rejection is None
        assert h.cases[S].referrals == case_before.referrals
        assert h.cases[S].escalation_level == case_before.escalation_level
        assert h.directory == directory_before
        assert decision.capacity == () and decision.events == ()
        assert [a.action for a in decision.audits] == [AuditAction.NOTED]
        return
    if target is None:
        assert decision.rejection is not None
        assert decision.rejection.code is RejectionCode.TRANSITION_ILLEGAL
        assert not decision.changed
        assert h.cases[S] is case_before
        assert h.directory == directory_before
        assert decision.capacity == () and decision.events == ()
        assert [a.action for a in decision.audits] == [AuditAction.REJECTED]
        return
    assert decision.rejection is None and decision.changed
    first = decision.audits[0]
    assert (first.from_status, first.to_status) == (status, target)
    final = h.referral(S, R)
    if target is ReferralStatus.DECLINED:  # straight on to the next provider
        assert final.status is ReferralStatus.OFFERED and final.provider_id == P2
        assert final.attempt == 2 and final.tried == (P1, P2)
    else:
        assert final.status is target
    assert final.status not in TRANSIENT
    assert _ledger_matches(h)


def _provider_pairs() -> list[tuple[ReferralStatus, Trigger]]:
    answers = set(EXTERNAL_TRIGGERS) - {Trigger.CANCEL}
    return [(s, t) for (s, t) in TRANSITIONS if t in answers]


@pytest.mark.parametrize(("status", "trigger"), _provider_pairs())
def test_an_answer_from_another_provider_is_refused(
    status: ReferralStatus, trigger: Trigger
) -> None:
    h = _in_status(status)
    before = h.cases[S]
    decision = h.survivor(EVENTS[trigger](P2, 1))
    assert decision.rejection is not None
    assert decision.rejection.code is RejectionCode.ANSWER_NOT_CURRENT
    assert h.cases[S] is before and decision.events == ()


@pytest.mark.parametrize(
    ("status", "trigger"), [(s, t) for s, t in _provider_pairs() if t is not Trigger.TIMEOUT]
)
def test_an_answer_for_another_attempt_is_refused(status: ReferralStatus, trigger: Trigger) -> None:
    h = _in_status(status)
    before = h.cases[S]
    decision = h.survivor(EVENTS[trigger](P1, 2))
    assert decision.rejection is not None
    assert decision.rejection.code is RejectionCode.ANSWER_NOT_CURRENT
    assert h.cases[S] is before


@pytest.mark.parametrize("trigger", EXTERNAL_TRIGGERS)
def test_an_event_for_an_unknown_referral_is_refused(trigger: Trigger) -> None:
    h = _ready()
    before = h.cases[S]
    decision = h.survivor(EVENTS[trigger](P1, 1))
    assert decision.rejection is not None
    assert decision.rejection.code is RejectionCode.REFERRAL_UNKNOWN
    assert decision.rejection.referral_id == R
    assert h.cases[S] is before


def test_a_refused_first_event_stores_nothing() -> None:
    decision = decide(
        None,
        _ready().directory,
        accepted(uid("stranger"), R, P1, 1),
        EventMeta("/test", "1"),
        now=T0,
    )
    assert not decision.changed
    assert decision.state == CaseState.new(uid("stranger"))


# --------------------------------------------------------------------------- flows


def test_closed_loop_happy_path_reserves_then_releases_the_place() -> None:
    h = _ready()
    offer = h.survivor(request(S, R))
    assert [type(e) for e in offer.events] == [ReferralOffered]
    assert offer.capacity == (
        CapacityChange(
            action=CapacityAction.RESERVE, provider_id=P1, category=HOUSING, referral_id=R
        ),
    )
    assert h.directory.providers[P1].places[HOUSING].reserved == 1
    for event in (accepted(S, R, P1, 1), started(S, R, P1, 1)):
        assert h.survivor(event).capacity == ()
    done = h.survivor(completed(S, R, P1, 1))
    assert done.capacity[0].action is CapacityAction.RELEASE
    assert h.referral(S, R).status is ReferralStatus.COMPLETED
    assert h.referral(S, R).reason == "completed:service_provided"
    assert h.directory.providers[P1].places[HOUSING].reserved == 0


def test_failure_after_acceptance_releases_the_place() -> None:
    h = _ready()
    h.all(request(S, R), accepted(S, R, P1, 1), failed(S, R, P1, 1))
    assert h.referral(S, R).status is ReferralStatus.FAILED
    assert h.directory.providers[P1].places[HOUSING].reserved == 0


def test_declines_walk_the_ranking_then_escalate_as_unroutable() -> None:
    h = _ready()
    h.survivor(request(S, R))
    second = h.survivor(declined(S, R, P1, 1))
    offer = second.events[0]
    assert isinstance(offer, ReferralOffered)
    assert (offer.provider_id, offer.attempt) == (P2, 2)
    last = h.survivor(declined(S, R, P2, 2))
    (escalation,) = last.events
    assert isinstance(escalation, ReferralEscalated)
    assert escalation.reason is EscalationReason.UNROUTABLE
    assert escalation.level == 2 and escalation.referral_id == R
    assert escalation.jurisdiction == "NL" and escalation.category is HOUSING
    referral = h.referral(S, R)
    assert referral.status is ReferralStatus.UNROUTABLE and referral.escalation_level == 2
    assert h.cases[S].escalation_level == 2
    assert h.directory.providers[P2].places[HOUSING].reserved == 0


@pytest.mark.parametrize(
    ("age", "level", "reason"),
    [
        (AgeGroup.MINOR, 3, EscalationReason.CHILD_PROTECTION),
        (AgeGroup.UNKNOWN, 3, EscalationReason.CHILD_PROTECTION),
        (AgeGroup.ADULT, 2, EscalationReason.UNROUTABLE),
    ],
)
def test_escalation_level_when_nobody_fits(
    age: AgeGroup, level: int, reason: EscalationReason
) -> None:
    h = Harness()
    h.all(identified(S, age=age), consent(S))
    (escalation,) = h.survivor(request(S, R)).events
    assert isinstance(escalation, ReferralEscalated)
    assert (escalation.level, escalation.reason) == (level, reason)


def test_an_emergency_or_critical_risk_escalates_to_the_operator() -> None:
    h = Harness()
    h.all(identified(S), consent(S))
    (emergency,) = h.survivor(request(S, R, urgency=Urgency.EMERGENCY)).events
    h.survivor(risk(S, RiskLevel.CRITICAL))
    (critical,) = h.survivor(request(S, uid("r2"))).events
    assert isinstance(emergency, ReferralEscalated) and isinstance(critical, ReferralEscalated)
    assert emergency.level == critical.level == 3


def test_a_timeout_withdraws_the_offer_and_offers_the_next_provider() -> None:
    h = _ready()
    h.survivor(request(S, R))
    decision = h.survivor(timeout(S, R, P1))
    withdrawn, offer = decision.events
    assert isinstance(withdrawn, ReferralCancelled)
    assert (withdrawn.provider_id, withdrawn.category) == (P1, HOUSING)
    assert withdrawn.cancelled_by is Actor.SYSTEM
    assert isinstance(offer, ReferralOffered) and offer.provider_id == P2
    assert h.referral(S, R).escalation_level == 1
    late = h.survivor(accepted(S, R, P1, 1))
    assert late.rejection is not None
    assert late.rejection.code is RejectionCode.ANSWER_NOT_CURRENT


def test_a_timeout_for_an_offer_already_declined_does_not_touch_the_new_offer() -> None:
    """The ladder found P1 silent just as P1's decline arrived: a race, not an error."""
    h = _ready()
    h.survivor(request(S, R))
    h.survivor(declined(S, R, P1, 1))
    offer = h.referral(S, R)
    assert (offer.provider_id, offer.attempt) == (P2, 2)
    late = h.survivor(timeout(S, R, P1))
    assert late.rejection is None and late.events == () and late.capacity == ()
    assert [(a.action, a.reasons) for a in late.audits] == [
        (AuditAction.NOTED, ("escalated:1", "offer.no-longer-current"))
    ]
    assert h.referral(S, R) == offer  # P2 keeps its offer and its deadline
    assert h.cases[S].escalation_level == 0
    # A timeout naming a provider that was never offered this referral is still refused.
    stranger = h.survivor(timeout(S, R, uid("provider-3")))
    assert stranger.rejection is not None
    assert stranger.rejection.code is RejectionCode.ANSWER_NOT_CURRENT


def test_a_timeout_after_the_router_declared_the_referral_unroutable_is_only_audited() -> None:
    h = _ready()
    h.survivor(request(S, R))
    h.survivor(declined(S, R, P1, 1))
    h.survivor(declined(S, R, P2, 2))
    assert h.referral(S, R).status is ReferralStatus.UNROUTABLE
    late = h.survivor(timeout(S, R, P2))
    assert late.rejection is None and late.events == ()
    assert h.referral(S, R).escalation_level == 2  # the router's own rung, unchanged


def test_unroutable_after_a_re_offer_escalates_above_it() -> None:
    h = _ready()
    h.survivor(request(S, R))
    h.survivor(timeout(S, R, P1))  # rung 1: re-offered to P2
    (escalation,) = h.survivor(declined(S, R, P2, 2)).events
    assert isinstance(escalation, ReferralEscalated)
    assert escalation.level == 2
    h2 = _ready()
    h2.survivor(request(S, R))
    h2.survivor(
        ReferralEscalated(
            survivor_id=S,
            occurred_at=T0,
            referral_id=R,
            level=3,
            reason=EscalationReason.DELIVERY_FAILED,
            provider_id=P1,
            category=HOUSING,
            jurisdiction="NL",
        )
    )
    h2.survivor(declined(S, R, P1, 1))
    silent = h2.survivor(declined(S, R, P2, 2))  # the operator already has it: no new event
    assert silent.events == ()
    assert [a.reasons for a in silent.audits if a.action is AuditAction.UNROUTABLE] == [
        ("no-candidate", "escalation.already-at:3")
    ]
    assert h2.referral(S, R).status is ReferralStatus.UNROUTABLE


def test_every_status_move_records_when_it_happened() -> None:
    h = Harness()
    h.feed(provider(P1))
    h.survivor(request(S, R, at=T0))
    assert h.referral(S, R).status_since == T0  # on hold
    h.survivor(identified(S, at=T0 + timedelta(hours=1)))  # new hold reason, same status
    held = h.referral(S, R)
    assert (held.status_since, held.updated_at) == (T0, T0 + timedelta(hours=1))
    h.survivor(consent(S, at=T0 + timedelta(hours=2)))
    assert h.referral(S, R).status is ReferralStatus.OFFERED
    assert h.referral(S, R).status_since == T0 + timedelta(hours=2)
    h.survivor(accepted(S, R, P1, 1, at=T0 + timedelta(hours=3)))
    assert h.referral(S, R).status_since == T0 + timedelta(hours=3)
    h.survivor(started(S, R, P1, 1, at=T0 + timedelta(hours=4)))
    assert h.referral(S, R).status_since == T0 + timedelta(hours=4)


def test_higher_escalation_rungs_are_noted_without_moving_the_referral() -> None:
    h = _ready()
    h.survivor(request(S, R))
    alert = ReferralEscalated(
        survivor_id=S,
        occurred_at=T0,
        referral_id=R,
        level=2,
        reason=EscalationReason.DEADLINE_MISSED,
        provider_id=P1,
        category=HOUSING,
        jurisdiction="NL",
    )
    decision = h.survivor(alert)
    assert decision.events == () and decision.audits[0].action is AuditAction.NOTED
    assert h.referral(S, R).status is ReferralStatus.OFFERED
    assert h.referral(S, R).escalation_level == 2
    case_clock = alert.model_copy(update={"referral_id": None, "level": 3})
    h.survivor(case_clock)
    assert h.cases[S].escalation_level == 3


def test_an_agency_cancellation_reaches_the_provider_holding_the_offer() -> None:
    h = _ready()
    h.survivor(request(S, R))
    decision = h.survivor(cancelled(S, R))
    (forwarded,) = decision.events
    assert isinstance(forwarded, ReferralCancelled)
    assert (forwarded.provider_id, forwarded.category) == (P1, HOUSING)
    assert forwarded.reason is CancelReason.AGENCY_REQUEST
    assert forwarded.cancelled_by is Actor.AGENCY
    assert h.directory.providers[P1].places[HOUSING].reserved == 0


def test_cancelling_a_held_referral_tells_no_provider() -> None:
    h = Harness()
    h.survivor(request(S, R))
    decision = h.survivor(cancelled(S, R))
    assert decision.events == () and decision.capacity == ()
    assert h.referral(S, R).status is ReferralStatus.CANCELLED


def test_closing_the_case_cancels_open_referrals_and_refuses_new_ones() -> None:
    h = _ready()
    h.feed(provider(uid("p-health"), categories=[ServiceCategory.HEALTH]))
    h.all(request(S, R), request(S, uid("r2"), category=ServiceCategory.HEALTH))
    decision = h.survivor(closed(S))
    assert [type(e) for e in decision.events] == [ReferralCancelled, ReferralCancelled]
    statuses = {r.status for r in h.cases[S].referrals.values()}
    assert statuses == {ReferralStatus.CANCELLED}
    assert all(e.reason is CancelReason.CASE_CLOSED for e in decision.events)  # type: ignore[attr-defined]
    assert _ledger_matches(h)
    refused = h.survivor(request(S, uid("r3")))
    assert refused.rejection is not None
    assert refused.rejection.code is RejectionCode.CASE_CLOSED


# --------------------------------------------------------------------------- survivor first


def test_a_request_before_identification_waits_then_routes() -> None:
    h = Harness()
    h.feed(provider(P1))
    held = h.survivor(request(S, R))
    assert held.events == () and held.capacity == ()
    assert h.referral(S, R).status is ReferralStatus.ON_HOLD
    assert h.referral(S, R).reason == "survivor.unidentified"
    h.survivor(identified(S))
    assert h.referral(S, R).status is ReferralStatus.ON_HOLD
    assert h.referral(S, R).reason == "consent.missing"
    routed = h.survivor(consent(S))
    assert [type(e) for e in routed.events] == [ReferralOffered]
    assert h.referral(S, R).status is ReferralStatus.OFFERED


def test_a_request_without_consent_for_its_category_waits() -> None:
    h = _ready()
    h.survivor(consent(S, consent_id=uid("c-health"), categories=[ServiceCategory.HEALTH]))
    h.cases[S] = h.cases[S].model_copy(
        update={"consents": {uid("c-health"): h.cases[S].consents[uid("c-health")]}}
    )
    decision = h.survivor(request(S, R))
    assert decision.events == ()
    assert h.referral(S, R).reason == "consent.missing"


# --------------------------------------------------------------------------- refusals


def test_a_duplicate_referral_id_is_refused() -> None:
    h = _ready()
    h.survivor(request(S, R))
    again = h.survivor(request(S, R, category=ServiceCategory.HEALTH))
    assert again.rejection is not None
    assert again.rejection.code is RejectionCode.REFERRAL_DUPLICATE


def test_a_category_this_reader_does_not_know_is_refused() -> None:
    h = _ready()
    decision = h.survivor(request(S, R, category=ServiceCategory.UNKNOWN))
    assert decision.rejection is not None
    assert decision.rejection.code is RejectionCode.CATEGORY_UNKNOWN
    assert R not in h.cases[S].referrals


def test_the_routers_own_offer_is_not_an_input() -> None:
    h = _ready()
    offer = h.survivor(request(S, R)).events[0]
    assert isinstance(offer, SurvivorEvent)
    decision = h.survivor(offer)
    assert decision.rejection is not None
    assert decision.rejection.code is RejectionCode.EVENT_UNEXPECTED


def test_rejections_and_their_audit_carry_no_personal_data() -> None:
    h = _ready()
    decision = h.survivor(accepted(S, R, P1, 1))
    assert decision.rejection is not None
    text = decision.rejection.message + str(decision.audits[0].to_dict())
    assert "Provider" not in text  # no organisation names, no survivor attributes
    assert decision.rejection.code is RejectionCode.REFERRAL_UNKNOWN


# --------------------------------------------------------------------------- idempotency


def test_a_redelivered_event_changes_nothing_and_emits_nothing() -> None:
    h = _ready()
    meta = h.meta()
    first = h.survivor(request(S, R), meta)
    state, directory = h.cases[S], h.directory
    again = h.survivor(request(S, R), meta)
    assert again.duplicate and not again.changed
    assert again.effects == () and again.capacity == ()
    assert h.cases[S] is state and h.directory == directory
    assert first.events


def test_effect_ids_are_stable_for_the_same_input() -> None:
    h = _ready()
    case, directory, meta = h.cases[S], h.directory, EventMeta(f"/agencies/{AGENCY}", "req-1")
    one = decide(case, directory, request(S, R), meta, now=T0)
    two = decide(case, directory, request(S, R), meta, now=T0)
    assert [p.event_id for p in one.published] == [p.event_id for p in two.published]
    other = decide(
        case, directory, request(S, R), EventMeta(f"/agencies/{AGENCY}", "req-2"), now=T0
    )
    assert one.published[0].event_id != other.published[0].event_id


def test_the_idempotency_window_is_bounded() -> None:
    h = Harness(policy=RoutingPolicy(idempotency_window=2))
    for n in range(5):
        h.survivor(risk(S, RiskLevel.LOW, at=T0 + timedelta(minutes=n)))
    assert len(h.cases[S].applied) == 2


def test_state_round_trips_through_its_dict_form() -> None:
    h = _ready()
    h.all(request(S, R), declined(S, R, P1, 1), risk(S, RiskLevel.HIGH))
    state = h.cases[S]
    assert CaseState.from_dict(state.to_dict()) == state
    assert type(h.directory).from_dict(h.directory.to_dict()) == h.directory


# --------------------------------------------------------------------------- programming errors


def test_directory_events_do_not_go_through_decide() -> None:
    h = _ready()
    with pytest.raises(UnsupportedEventError):
        decide(None, h.directory, provider(P1), EventMeta("/a", "1"), now=T0)  # type: ignore[arg-type]


def test_a_case_of_another_survivor_is_a_wiring_error() -> None:
    h = _ready()
    with pytest.raises(SurvivorMismatchError):
        decide(h.cases[S], h.directory, risk(uid("other"), RiskLevel.LOW), h.meta(), now=T0)


def test_an_internal_move_outside_the_table_is_a_bug_of_the_core() -> None:
    later = T0 + timedelta(minutes=5)
    for status in ReferralStatus:
        referral = _in_status(status).referral(S, R)
        for trigger in Trigger:
            target = next_status(status, trigger)
            if target is None:
                message = f"internal move {status}+{trigger} is not in the table"
                with pytest.raises(ProcessorsError, match=re.escape(message)):
                    moved(referral, trigger, later, reason="x")
                continue
            after = moved(referral, trigger, later, reason="x")
            assert (after.status, after.reason) == (target, "x")
            assert after.updated_at == after.status_since == later
            assert referral.status is status  # the input is left as it was


def test_a_capacity_change_needs_the_provider_holding_the_place() -> None:
    h = _in_status(ReferralStatus.REQUESTED)
    event = request(S, R)
    work = Work(h.cases[S], h.directory, event=event, meta=h.meta(), now=T0, policy=RoutingPolicy())
    referral = h.referral(S, R)
    assert referral.provider_id is None
    for action in CapacityAction:
        with pytest.raises(ProcessorsError, match="capacity change for a referral without a"):
            work.change_capacity(action, referral)
    assert (work.capacity, work.directory) == ([], h.directory)
    offered = referral.model_copy(update={"provider_id": P1})
    work.change_capacity(CapacityAction.RESERVE, offered)
    assert [(c.action, c.provider_id) for c in work.capacity] == [(CapacityAction.RESERVE, P1)]
    assert work.directory.providers[P1].places[HOUSING].holders == {R}


def test_now_must_be_aware() -> None:
    h = _ready()
    with pytest.raises(ProcessorsError):
        naive = datetime(2025, 1, 1)
        decide(h.cases[S], h.directory, risk(S, RiskLevel.LOW), h.meta(), now=naive)


def test_event_meta_needs_source_and_id() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        EventMeta("", "x")
    assert EventMeta.of(EventMeta("/a", "b")) == EventMeta("/a", "b")
    assert len(EventMeta("/a", "b").key) == 32


def test_offer_deadlines_follow_urgency_and_vulnerability() -> None:
    h = _ready()
    emergency = h.survivor(request(S, R, urgency=Urgency.EMERGENCY)).events[0]
    assert isinstance(emergency, ReferralOffered)
    assert emergency.deadline == T0 + timedelta(hours=1)
    h2 = Harness()
    h2.all(provider(P1, child=True), identified(S, age=AgeGroup.MINOR), consent(S))
    child = h2.survivor(request(S, R, urgency=Urgency.ROUTINE)).events[0]
    assert isinstance(child, ReferralOffered)
    assert child.deadline == T0 + timedelta(hours=36)
    assert child.deadline.tzinfo is UTC

"""Sharing a case with a second agency: explicit, audited, bound to one consent grant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from processors.core import EventMeta
from processors.effects import AuditAction, RejectionCode
from processors.status import status_record, status_view
from schemas.models import SurvivorEvent
from schemas.types import AgeGroup, RiskLevel, ServiceCategory

from .domain_builders import (
    AGENCY,
    T0,
    Harness,
    cancelled,
    closed,
    consent,
    identified,
    provider,
    request,
    risk,
    shared,
    uid,
    unshared,
    withdrawal,
)

S, P = uid("sharing-survivor"), uid("sharing-provider")
SECOND, THIRD = "agency:be-ngo", "agency:de-clinic"
GRANT = uid(f"consent:{S}")


def _by(event: SurvivorEvent, agency: str) -> SurvivorEvent:
    """The same event with ``agency`` in its data (where it names one)."""
    if "agency_id" in type(event).model_fields:
        return event.model_copy(update={"agency_id": agency})
    return event


def _from(h: Harness, event: SurvivorEvent, agency: str, event_id: str) -> Any:
    """Apply ``event`` as sent by ``agency`` (source and data)."""
    return h.survivor(_by(event, agency), EventMeta(f"/agencies/{agency}", event_id))


def _code(decision: Any) -> RejectionCode | None:
    return decision.rejection.code if decision.rejection is not None else None


def _ready(*, expires_in: timedelta | None = None) -> Harness:
    h = Harness()
    expiry = T0 + expires_in if expires_in is not None else None
    h.all(provider(P, capacity=5), identified(S), consent(S, expires_at=expiry))
    return h


def test_the_owner_shares_and_the_second_agency_may_then_work_on_the_case() -> None:
    h = _ready()
    before = _from(h, risk(S, RiskLevel.HIGH), SECOND, "early")
    assert _code(before) is RejectionCode.SURVIVOR_NOT_OWNED

    share = h.survivor(shared(S, SECOND))
    assert share.rejection is None
    assert [(a.action, a.agency_id) for a in share.audits] == [(AuditAction.SHARED, SECOND)]
    assert h.cases[S].owner == AGENCY  # sharing does not move ownership

    assert _code(_from(h, risk(S, RiskLevel.HIGH), SECOND, "r")) is None
    assert h.cases[S].risk is RiskLevel.HIGH
    theirs = uid("second-referral")
    assert _code(_from(h, request(S, theirs), SECOND, "q")) is None
    assert h.referral(S, theirs).status.value == "offered"
    assert h.referral(S, theirs).agency_id == SECOND


def test_what_stays_the_owners_alone() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    for i, event in enumerate(
        (
            identified(S, age=AgeGroup.ADULT),
            consent(S, consent_id=uid("their-grant")),
            closed(S),
            shared(S, THIRD),
        )
    ):
        decision = _from(h, event, SECOND, f"owner-only-{i}")
        assert _code(decision) is RejectionCode.SENDER_NOT_ALLOWED, event.event_type
        assert [a.action for a in decision.audits] == [AuditAction.REJECTED]
    assert h.cases[S].shares.keys() == {SECOND}


def test_the_second_agency_cancels_only_its_own_referrals_the_owner_any() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    owners, theirs = uid("owners-referral"), uid("their-referral")
    h.survivor(request(S, owners))
    _from(h, request(S, theirs), SECOND, "q")
    assert _code(_from(h, cancelled(S, owners), SECOND, "c1")) is RejectionCode.SENDER_NOT_ALLOWED
    assert h.referral(S, owners).status.value == "offered"
    assert _code(_from(h, cancelled(S, theirs), SECOND, "c2")) is None
    assert h.referral(S, theirs).status.value == "cancelled"
    assert h.survivor(cancelled(S, owners)).rejection is None


def test_a_sharing_needs_a_consent_grant_the_survivor_holds_now() -> None:
    h = _ready(expires_in=timedelta(days=1))
    unknown = h.survivor(shared(S, SECOND, consent_id=uid("no-such-grant")))
    assert _code(unknown) is RejectionCode.CONSENT_NOT_ACTIVE
    late = h.survivor(shared(S, SECOND, at=T0 + timedelta(days=2)))
    assert _code(late) is RejectionCode.CONSENT_NOT_ACTIVE
    h.survivor(withdrawal(S))
    gone = h.survivor(shared(S, SECOND, at=T0 + timedelta(hours=1)))
    assert _code(gone) is RejectionCode.CONSENT_NOT_ACTIVE
    assert h.cases[S].shares == {}


def test_only_the_owner_shares() -> None:
    h = _ready()
    stranger = _from(h, shared(S, THIRD), SECOND, "s")
    assert _code(stranger) is RejectionCode.SURVIVOR_NOT_OWNED
    assert h.cases[S].shares == {}


def test_a_whole_withdrawal_of_its_grant_ends_the_sharing_a_narrowing_does_not() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    h.survivor(withdrawal(S, categories=(ServiceCategory.HEALTH,)))
    assert h.cases[S].shared_with(SECOND, T0)
    ended = h.survivor(withdrawal(S))
    assert [(a.action, a.agency_id, a.reasons) for a in ended.audits] == [
        (AuditAction.UNSHARED, SECOND, ("consent.withdrawn",))
    ]
    assert (
        _code(_from(h, risk(S, RiskLevel.LOW), SECOND, "after")) is RejectionCode.SURVIVOR_NOT_OWNED
    )


def test_the_second_agency_may_withdraw_consent_which_ends_its_own_sharing() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    assert _code(_from(h, withdrawal(S), SECOND, "w")) is None
    assert h.cases[S].consents == {}
    assert h.cases[S].shares == {}


def test_an_expired_grant_silences_the_sharing_without_any_event() -> None:
    h = _ready(expires_in=timedelta(days=1))
    h.survivor(shared(S, SECOND))
    assert _code(_from(h, risk(S, RiskLevel.LOW, at=T0 + timedelta(hours=23)), SECOND, "a")) is None
    later = _from(h, risk(S, RiskLevel.HIGH, at=T0 + timedelta(days=1)), SECOND, "b")
    assert _code(later) is RejectionCode.SURVIVOR_NOT_OWNED
    record = status_record(h.cases[S])
    assert record.agencies_at(T0) == {AGENCY, SECOND}
    assert record.agencies_at(T0 + timedelta(days=1)) == {AGENCY}
    assert status_view(record, T0).shared_with == (SECOND,)
    assert status_view(record, T0 + timedelta(days=1)).shared_with == ()


def test_unsharing_by_the_owner_or_by_the_second_agency_itself() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    h.survivor(shared(S, THIRD))
    third_for_second = _from(h, unshared(S, SECOND), THIRD, "u0")
    assert _code(third_for_second) is RejectionCode.SENDER_NOT_ALLOWED
    stepped = _from(h, unshared(S, SECOND), SECOND, "u1")
    assert [(a.action, a.reasons) for a in stepped.audits] == [
        (AuditAction.UNSHARED, ("stepped-back",))
    ]
    taken = h.survivor(unshared(S, THIRD))
    assert [(a.action, a.agency_id, a.reasons) for a in taken.audits] == [
        (AuditAction.UNSHARED, THIRD, ("taken-back",))
    ]
    assert h.cases[S].shares == {}
    again = h.survivor(unshared(S, THIRD))
    assert _code(again) is RejectionCode.SHARE_UNKNOWN


def test_closing_the_case_ends_every_sharing() -> None:
    h = _ready()
    h.survivor(shared(S, THIRD))
    h.survivor(shared(S, SECOND))
    ended = h.survivor(closed(S))
    unshares = [(a.agency_id, a.reasons) for a in ended.audits if a.action is AuditAction.UNSHARED]
    assert unshares == [(SECOND, ("case.closed",)), (THIRD, ("case.closed",))]
    assert status_record(h.cases[S]).agencies_at(T0) == {AGENCY}
    assert _code(h.survivor(shared(S, SECOND))) is RejectionCode.CASE_CLOSED


def test_sharing_again_under_the_same_grant_changes_nothing_under_another_rebinds() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    again = h.survivor(shared(S, SECOND))
    assert again.rejection is None and again.audits == ()
    other = uid("second-grant")
    h.survivor(consent(S, consent_id=other))
    rebound = h.survivor(shared(S, SECOND, consent_id=other))
    assert [a.action for a in rebound.audits] == [AuditAction.SHARED]
    h.survivor(withdrawal(S))  # the first grant: the sharing no longer depends on it
    assert h.cases[S].shared_with(SECOND, T0)


def test_the_status_record_keeps_the_shares_and_old_records_still_read() -> None:
    h = _ready(expires_in=timedelta(days=3))
    h.survivor(shared(S, SECOND))
    record = status_record(h.cases[S])
    assert [(s.agency_id, s.until) for s in record.shares] == [(SECOND, T0 + timedelta(days=3))]
    old = record.to_dict()
    del old["shares"]
    assert type(record).model_validate(old).agencies_at(T0) == {AGENCY}


AGENCIES = (AGENCY, SECOND, THIRD)
ACTIONS = ("risk", "request", "cancel", "withdraw", "share", "unshare", "grant")


def _event(action: str, sender: str, target: str, n: int) -> SurvivorEvent:
    at = T0 + timedelta(minutes=n)
    referral = uid(f"inv-{n % 3}")
    build: dict[str, Callable[[], SurvivorEvent]] = {
        "risk": lambda: risk(S, RiskLevel.MEDIUM, at=at),
        "request": lambda: request(S, referral, at=at),
        "cancel": lambda: cancelled(S, referral, at=at),
        "withdraw": lambda: withdrawal(S, at=at),
        "share": lambda: shared(S, target, by=sender, at=at),
        "unshare": lambda: unshared(S, target, by=sender, at=at),
        "grant": lambda: consent(S, consent_id=uid(f"grant-{n % 2}"), at=at),
    }
    return _by(build[action](), sender)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.sampled_from(AGENCIES), st.sampled_from(AGENCIES)),
        max_size=25,
    )
)
def test_no_agency_changes_a_case_it_was_not_shared(
    steps: list[tuple[str, str, str]],
) -> None:
    """Whatever the sequence: an agency other than the owner changes the case only while
    a sharing with it stands, and never shares, grants, identifies or closes."""
    h = _ready()
    for n, (action, sender, target) in enumerate(steps):
        if action == "share" and sender == target:
            continue  # not even a valid event (the model refuses it)
        before = h.cases[S]
        decision = _from(h, _event(action, sender, target, n), sender, f"inv-{n}")
        if sender == AGENCY or not decision.changed:
            continue
        assert before.shared_with(sender, T0 + timedelta(minutes=n)), (action, sender)
        assert action not in {"share", "grant"}


def test_an_agency_does_not_share_with_itself() -> None:
    with pytest.raises(ValidationError, match="sharing agency itself"):
        shared(S, AGENCY)

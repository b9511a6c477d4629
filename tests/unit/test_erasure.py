"""Erasure in the pure core: asked by the owner, irreversible, providers told to erase."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import EventMeta
from processors.effects import AuditAction, RejectionCode
from processors.lifecycle import ReferralStatus
from schemas.models import SurvivorErasureRequested, SurvivorEvent
from schemas.types import CancelReason, RiskLevel

from .domain_builders import (
    AGENCY,
    T0,
    Harness,
    accepted,
    closed,
    consent,
    identified,
    provider,
    request,
    risk,
    shared,
    uid,
    withdrawal,
)

S, P = uid("erasure-survivor"), uid("erasure-provider")
R1, R2 = uid("erasure-r1"), uid("erasure-r2")
SECOND = "agency:be-ngo"


def erasure(at: Any = T0) -> SurvivorErasureRequested:
    return SurvivorErasureRequested(survivor_id=S, occurred_at=at, agency_id=AGENCY)


def _ready() -> Harness:
    h = Harness()
    h.all(provider(P, capacity=5), identified(S), consent(S), request(S, R1), request(S, R2))
    h.survivor(accepted(S, R2, P, 1))
    return h


def _from(h: Harness, event: SurvivorEvent, agency: str, event_id: str) -> Any:
    named = event.model_copy(update={"agency_id": agency}) if hasattr(event, "agency_id") else event
    return h.survivor(named, EventMeta(f"/agencies/{agency}", event_id))


def test_an_erasure_cancels_every_open_referral_telling_providers_and_keeps_only_codes() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    decision = h.survivor(erasure())

    cancelled = [e for e in decision.events if e.event_type == "referral.cancelled"]
    assert {e.referral_id for e in cancelled} == {R1, R2}  # type: ignore[attr-defined]
    assert {e.reason for e in cancelled} == {CancelReason.ERASURE}  # type: ignore[attr-defined]
    case = h.cases[S]
    assert case.erased_at == T0
    assert (case.profile, case.consents, case.shares, case.risk) == (
        None,
        {},
        {},
        RiskLevel.UNKNOWN,
    )
    assert {r.status for r in case.referrals.values()} == {ReferralStatus.CANCELLED}
    actions = [a.action for a in decision.audits]
    assert AuditAction.ERASED in actions and AuditAction.UNSHARED in actions
    assert h.ledger_matches_cases()  # the places held are released


def test_a_withdrawal_asking_for_erasure_erases() -> None:
    h = _ready()
    h.survivor(withdrawal(S).model_copy(update={"erasure_requested": True}))
    assert h.cases[S].erased_at is not None


def test_nothing_is_applied_after_an_erasure_not_even_the_owners_events() -> None:
    h = _ready()
    h.survivor(erasure())
    for n, event in enumerate(
        (risk(S, RiskLevel.HIGH), consent(S, consent_id=uid("again")), closed(S), erasure())
    ):
        decision = h.survivor(event, EventMeta(f"/agencies/{AGENCY}", f"after-{n}"))
        assert decision.rejection is not None
        assert decision.rejection.code is RejectionCode.SURVIVOR_ERASED
        assert not decision.changed


def test_only_the_owner_asks_for_erasure() -> None:
    h = _ready()
    h.survivor(shared(S, SECOND))
    explicit = _from(h, erasure(), SECOND, "e1")
    assert explicit.rejection.code is RejectionCode.SENDER_NOT_ALLOWED
    via_withdrawal = _from(
        h, withdrawal(S).model_copy(update={"erasure_requested": True}), SECOND, "e2"
    )
    assert via_withdrawal.rejection.code is RejectionCode.SENDER_NOT_ALLOWED
    stranger = _from(h, erasure(), "agency:other", "e3")
    assert stranger.rejection.code is RejectionCode.SURVIVOR_NOT_OWNED
    assert h.cases[S].erased_at is None


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["risk", "request", "grant", "withdraw", "close"]), max_size=8))
def test_after_an_erasure_the_case_never_changes_again(later: list[str]) -> None:
    h = _ready()
    h.survivor(erasure())
    erased = h.cases[S]
    for n, what in enumerate(later):
        decision = h.survivor(_late(what, n), EventMeta(f"/agencies/{AGENCY}", f"late-{n}"))
        assert not decision.changed and decision.events == ()
    assert h.cases[S] == erased


def _late(what: str, n: int) -> SurvivorEvent:
    at = T0 + timedelta(minutes=n + 1)
    if what == "risk":
        return risk(S, RiskLevel.LOW, at=at)
    if what == "request":
        return request(S, uid(f"late-{n}"), at=at)
    if what == "grant":
        return consent(S, consent_id=uid(f"late-{n}"), at=at)
    if what == "withdraw":
        return withdrawal(S, at=at)
    return closed(S, at=at)

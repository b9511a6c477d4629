"""Erasure after the retention period, and every provider ever offered a referral told to erase.

Two gaps of issue 13 closed in the pure core: a closed case plans a
retention deadline (``retention.after_closure`` of the SLA policy after the
first ``case.closed``) whose tick erases the survivor exactly as an erasure
request does; and an erasure, however triggered, sends one ``ERASURE``
cancellation per (referral, provider) the referral was ever offered to,
terminal referrals included, without moving any referral that already ended.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from uuid import UUID

import pytest
import yaml
from hypothesis import event as observe
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.case import CaseState, ReferralState
from processors.core import RETENTION_REASON, RETENTION_SOURCE, expire
from processors.deadlines import Deadline, DeadlineKind
from processors.directory import Directory
from processors.effects import AuditAction, Decision
from processors.engine import on_due
from processors.escalation import RETENTION_LEVEL, EscalationState, Outcome, escalate, plan
from processors.exceptions import ProcessorsError
from processors.lifecycle import OPEN, ReferralStatus
from processors.meta import EventMeta
from processors.sla import (
    DEFAULT_RETENTION,
    MAX_RETENTION,
    SlaPolicyError,
    default_policy,
    policy_from_mapping,
)
from schemas.models import ReferralCancelled, SurvivorErasureRequested, SurvivorEvent
from schemas.types import Actor, CancelReason, CaseOutcome
from tests.unit.domain_builders import (
    AGENCY,
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
    started,
    uid,
)
from tests.unit.test_engine import POLICY, RID, SID, Binding, offered

SLA = default_policy()
PROVIDERS = tuple(uid(f"retention-p{i}") for i in range(4))
S = uid("retention-survivor")


def erasure(at: datetime = T0) -> SurvivorErasureRequested:
    return SurvivorErasureRequested(survivor_id=S, occurred_at=at, agency_id=AGENCY)


def notices(decision_or_effects: Any) -> list[ReferralCancelled]:
    """The ``ERASURE`` cancellations among published events, in order."""
    events = [p.event for p in decision_or_effects.published]
    found = [e for e in events if isinstance(e, ReferralCancelled)]
    assert all(e.reason is CancelReason.ERASURE for e in found)
    return found


def pairs(cancellations: list[ReferralCancelled]) -> Counter[tuple[UUID, UUID | None]]:
    return Counter((c.referral_id, c.provider_id) for c in cancellations)


def ever_offered(case: CaseState) -> set[tuple[UUID, UUID | None]]:
    return {(r.referral_id, p) for r in case.referrals.values() for p in r.tried}


def raw_policy(**changes: Any) -> dict[str, Any]:
    text = resources.files("processors").joinpath("sla_policy.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    data = copy.deepcopy(data)
    data.update(changes)
    return data


# --------------------------------------------------------------------------- the setting


def test_retention_defaults_to_a_year_when_the_file_does_not_say() -> None:
    assert SLA.retention.after_closure == DEFAULT_RETENTION  # the shipped policy
    loaded = policy_from_mapping({k: v for k, v in raw_policy().items() if k != "retention"})
    assert loaded.retention.after_closure == DEFAULT_RETENTION == timedelta(days=365)


@pytest.mark.parametrize("value", ["0d", "-1d", "36501d", 30])
def test_a_retention_that_is_not_positive_or_too_long_is_refused_naming_the_key(
    value: object,
) -> None:
    with pytest.raises(SlaPolicyError) as caught:
        policy_from_mapping(raw_policy(retention={"after_closure": value}))
    (problem,) = caught.value.problems
    assert problem.startswith("retention.after_closure: ")


def test_a_misspelt_retention_key_is_refused_not_ignored() -> None:
    with pytest.raises(SlaPolicyError) as caught:
        policy_from_mapping(raw_policy(retention={"after_closing": "30d"}))
    assert caught.value.problems == ("retention.after_closing: unknown key",)


def test_the_bounds_themselves_are_accepted() -> None:
    for value, expected in (("1s", timedelta(seconds=1)), ("36500d", MAX_RETENTION)):
        policy = policy_from_mapping(raw_policy(retention={"after_closure": value}))
        assert policy.retention.after_closure == expected


def test_the_retention_end_is_scaled_like_every_clock() -> None:
    demo = policy_from_mapping(raw_policy(time_scale=60, retention={"after_closure": "30d"}))
    assert demo.retention_end(T0) == T0 + timedelta(hours=12)
    assert SLA.retention_end(T0) == T0 + timedelta(days=365)


# --------------------------------------------------------------------------- case state


def _closed_case() -> CaseState:
    h = Harness()
    h.all(provider(PROVIDERS[0]), identified(S), consent(S), request(S, RID))
    h.survivor(closed(S, at=T0 + timedelta(days=2)))
    return h.cases[S]


def test_the_first_closure_is_recorded_and_a_second_does_not_postpone_the_erasure() -> None:
    h = Harness()
    h.all(identified(S), consent(S))
    assert h.cases[S].closed_at is None and h.cases[S].retained_since is None
    first = T0 + timedelta(days=2)
    h.survivor(closed(S, at=first))
    again = closed(S, at=first + timedelta(days=10)).model_copy(
        update={"outcome": CaseOutcome.TRANSFERRED}
    )
    h.survivor(again)
    case = h.cases[S]
    assert (case.closed, case.closed_at, case.retained_since) == (
        CaseOutcome.TRANSFERRED,
        first,
        first,
    )


def test_a_state_stored_before_closed_at_loads_and_counts_from_its_last_change() -> None:
    stored = _closed_case().to_dict()
    del stored["closed_at"]  # the JSON a worker wrote before the field existed
    old = CaseState.from_dict(stored)
    assert old.closed_at is None and old.updated_at is not None
    assert old.retained_since == old.updated_at
    (deadline,) = plan(old, EscalationState.new(S), SLA)
    assert deadline.due_at == old.updated_at + DEFAULT_RETENTION
    # Closed again later: the retention keeps counting from what the state knew.
    h = Harness(cases={S: old})
    h.survivor(closed(S, at=old.updated_at + timedelta(days=5)))
    assert h.cases[S].closed_at == old.updated_at


def test_an_open_case_plans_no_retention_and_an_erased_one_none_any_more() -> None:
    h = Harness()
    h.all(identified(S), consent(S))
    assert not [d for d in plan(h.cases[S], EscalationState.new(S), SLA) if d.kind.case_clock]
    h.survivor(closed(S))
    (deadline,) = plan(h.cases[S], EscalationState.new(S), SLA)
    assert deadline == Deadline(
        due_at=T0 + DEFAULT_RETENTION,
        kind=DeadlineKind.RETENTION,
        survivor_id=S,
        level=RETENTION_LEVEL,
    )
    assert deadline.key.split("|")[1] == "retention"
    erased = h.cases[S].model_copy(update={"erased_at": T0 + timedelta(days=1)})
    assert plan(erased, EscalationState.new(S), SLA) == ()


def test_a_retention_deadline_is_a_case_clock_and_names_no_referral() -> None:
    assert DeadlineKind.RETENTION.case_clock
    with pytest.raises(ValueError, match="case clock"):
        Deadline(due_at=T0, kind=DeadlineKind.RETENTION, survivor_id=S, referral_id=RID, level=1)


# --------------------------------------------------------------------------- every provider told


def _offer_of(h: Harness, rid: UUID) -> tuple[UUID, int]:
    referral = h.referral(S, rid)
    assert referral.provider_id is not None
    return referral.provider_id, referral.attempt


def _history() -> Harness:
    """Four referrals: completed after a decline, open after a decline, cancelled, failed."""
    h = Harness()
    h.all(*(provider(p, capacity=5) for p in PROVIDERS), identified(S), consent(S))
    done, live, dropped, lost = (uid(f"retention-{n}") for n in ("done", "live", "drop", "lost"))
    h.survivor(request(S, done))
    h.survivor(declined(S, done, *_offer_of(h, done)))
    h.survivor(accepted(S, done, *_offer_of(h, done)))
    h.survivor(started(S, done, *_offer_of(h, done)))
    h.survivor(completed(S, done, *_offer_of(h, done)))
    h.survivor(request(S, live))
    h.survivor(declined(S, live, *_offer_of(h, live)))
    h.survivor(request(S, dropped))
    h.survivor(cancelled(S, dropped))
    h.survivor(request(S, lost))
    h.survivor(accepted(S, lost, *_offer_of(h, lost)))
    h.survivor(failed(S, lost, *_offer_of(h, lost)))
    statuses = {r.status for r in h.cases[S].referrals.values()}
    assert statuses == {
        ReferralStatus.COMPLETED,
        ReferralStatus.OFFERED,
        ReferralStatus.CANCELLED,
        ReferralStatus.FAILED,
    }
    return h


def test_an_erasure_tells_every_provider_ever_offered_a_referral_once_per_referral() -> None:
    h = _history()
    before = h.cases[S]
    assert len(ever_offered(before)) == 6  # two referrals went to a second provider
    decision = h.survivor(erasure())
    told = pairs(notices(decision))
    assert set(told) == ever_offered(before)
    assert set(told.values()) == {1}  # the open offer's holder too: once, not twice
    assert {c.cancelled_by for c in notices(decision)} == {Actor.AGENCY}
    for c in notices(decision):
        assert c.category is before.referrals[c.referral_id].category  # routes to its topic


def test_terminal_referrals_keep_their_state_and_only_the_open_one_is_cancelled() -> None:
    h = _history()
    before = h.cases[S]
    decision = h.survivor(erasure())
    after = h.cases[S]
    for rid, referral in before.referrals.items():
        if referral.is_open:
            assert after.referrals[rid].status is ReferralStatus.CANCELLED
            assert after.referrals[rid].reason == "cancelled:erasure"
        else:
            assert after.referrals[rid] == referral  # not even updated_at moved
    moved = [a.referral_id for a in decision.audits if a.action is AuditAction.MOVED]
    assert moved == [r.referral_id for r in before.open_referrals()]
    assert h.ledger_matches_cases()


def test_a_provider_told_to_drop_an_offer_earlier_is_still_told_to_erase() -> None:
    h = Harness()
    h.all(*(provider(p, capacity=5) for p in PROVIDERS), identified(S), consent(S))
    h.survivor(request(S, RID))
    first, _ = _offer_of(h, RID)
    h.survivor(cancelled(S, RID))  # the provider was told: cancelled, AGENCY_REQUEST
    decision = h.survivor(erasure())
    assert pairs(notices(decision)) == Counter({(RID, first): 1})


def test_a_referral_never_offered_tells_nobody() -> None:
    h = Harness()
    h.all(identified(S), request(S, RID))  # no consent: held
    decision = h.survivor(erasure())
    assert notices(decision) == []
    assert h.cases[S].referrals[RID].status is ReferralStatus.CANCELLED


_STEPS = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["request", "accept", "decline", "start", "complete", "fail", "cancel"]),
    ),
    max_size=25,
)


def _apply(h: Harness, index: int, what: str, at: datetime) -> None:
    rid = uid(f"retention-prop-{index}")
    referral = h.cases[S].referrals.get(rid)
    if what == "request":
        h.survivor(request(S, rid, at=at))
        return
    if referral is None:
        return
    if what == "cancel":
        h.survivor(cancelled(S, rid, at=at))
        return
    make: dict[str, Callable[..., SurvivorEvent]] = {
        "accept": accepted,
        "decline": declined,
        "start": started,
        "complete": completed,
        "fail": failed,
    }
    pid = referral.provider_id or PROVIDERS[0]
    h.survivor(make[what](S, rid, pid, max(1, referral.attempt), at=at))  # refused when illegal


@settings(max_examples=120, deadline=None)
@given(steps=_STEPS, by_retention=st.booleans())
def test_any_history_then_an_erasure_tells_each_provider_once_and_moves_no_ended_referral(
    steps: list[tuple[int, str]], by_retention: bool
) -> None:
    h = Harness()
    h.all(*(provider(p, capacity=2) for p in PROVIDERS), identified(S), consent(S))
    for n, (index, what) in enumerate(steps):
        _apply(h, index, what, T0 + timedelta(minutes=n))
    at = T0 + timedelta(days=1)
    if by_retention:
        h.survivor(closed(S, at=at))
        before = h.cases[S]
        decision = expire(before, h.directory, now=at + DEFAULT_RETENTION, policy=h.policy)
        h.cases[S], h.directory = decision.state, decision.directory
    else:
        before = h.cases[S]
        decision = h.survivor(erasure(at))
    told = pairs(notices(decision))
    assert set(told) == ever_offered(before)
    assert all(count == 1 for count in told.values())
    observe(f"told:{min(len(told), 4)}")
    observe(
        f"ended-and-offered:{any(r.tried and not r.is_open for r in before.referrals.values())}"
    )
    after = h.cases[S]
    assert after.erased_at is not None
    for rid, referral in before.referrals.items():
        if referral.status in OPEN:
            assert after.referrals[rid].status is ReferralStatus.CANCELLED
        else:
            assert after.referrals[rid] == referral
    assert h.ledger_matches_cases()


# --------------------------------------------------------------------------- expire (the core)


def test_expire_erases_like_a_request_with_its_own_reason_and_stable_ids() -> None:
    case = _closed_case()
    directory = Directory()
    due = SLA.retention_end(case.retained_since or T0)
    first = expire(case, directory, now=due)
    again = expire(case, directory, now=due)
    assert first.changed and first.state.erased_at == due
    assert (first.state.profile, first.state.consents) == (None, {})
    assert [p.event_id for p in first.published] == [p.event_id for p in again.published]
    (audit,) = [a for a in first.audits if a.action is AuditAction.ERASED]
    assert audit.reasons == (RETENTION_REASON,)
    assert audit.input_type == "survivor.erasure_requested"
    assert EventMeta(RETENTION_SOURCE, audit.input_id).key in first.state.applied
    assert {c.cancelled_by for c in notices(first)} == {Actor.SYSTEM}
    assert pairs(notices(first)) == Counter(ever_offered(case))


def test_expire_leaves_an_erased_survivor_alone_and_refuses_an_open_case() -> None:
    case = _closed_case()
    erased = expire(case, Directory(), now=T0 + DEFAULT_RETENTION * 2).state
    assert expire(erased, Directory(), now=T0 + DEFAULT_RETENTION * 3) == Decision(
        state=erased, directory=Directory()
    )
    with pytest.raises(ProcessorsError, match="closed"):
        expire(CaseState.new(S), Directory(), now=T0)
    with pytest.raises(ProcessorsError, match="timezone"):
        expire(case, Directory(), now=datetime(2030, 1, 1))


def test_a_case_that_names_no_agency_still_expires() -> None:
    """A state from before owners were recorded, never identified: the platform stands in."""
    case = CaseState(survivor_id=S, closed=CaseOutcome.OTHER, closed_at=T0, updated_at=T0)
    decision = expire(case, Directory(), now=T0 + DEFAULT_RETENTION)
    assert decision.state.erased_at == T0 + DEFAULT_RETENTION
    assert [a.action for a in decision.audits] == [AuditAction.ERASED]


# --------------------------------------------------------------------------- the tick path


def _closed_binding() -> tuple[Binding, Deadline]:
    binding, _ = offered()
    binding.now += timedelta(hours=1)
    holder = binding.referral().provider_id
    binding.feed(closed(SID))
    (deadline,) = binding.store
    assert deadline.kind is DeadlineKind.RETENTION
    assert deadline.due_at == binding.now + SLA.retention.after_closure
    assert binding.referral().status is ReferralStatus.CANCELLED
    assert binding.referral().tried == (holder,)
    return binding, deadline


def test_closing_a_case_schedules_its_erasure_after_the_retention_period() -> None:
    binding, deadline = _closed_binding()
    assert binding.case is not None and binding.case.closed_at == binding.now
    assert deadline.due_at == binding.case.closed_at + timedelta(days=365)


def test_a_tick_before_the_end_of_retention_does_nothing() -> None:
    binding, deadline = _closed_binding()
    assert binding.tick(DEFAULT_RETENTION - timedelta(milliseconds=1)) == []
    assert binding.case is not None and binding.case.erased_at is None
    early = on_due(
        deadline, binding.case, binding.ladder, binding.directory, now=binding.now, policy=POLICY
    )
    assert (early.outcome, early.case, early.effects, early.remove) == (
        Outcome.EARLY,
        None,
        (),
        (),
    )
    assert list(binding.store) == [deadline]


def test_the_tick_at_the_end_of_retention_erases_the_survivor_and_tells_the_provider() -> None:
    binding, deadline = _closed_binding()
    holder = binding.referral().provider_id
    (step,) = binding.tick(DEFAULT_RETENTION)
    assert step.outcome is Outcome.ERASED
    assert step.case is not None and step.case.erased_at == deadline.due_at  # binding shreds
    assert step.case.profile is None and step.ladder is None
    assert step.remove == (deadline,) and step.add == ()
    (audit,) = [a for a in step.audits if a.action is AuditAction.ERASED]
    assert audit.reasons == (RETENTION_REASON,)
    assert pairs(notices(step)) == Counter({(RID, holder): 1})
    assert binding.referral().status is ReferralStatus.CANCELLED  # as the closure left it
    assert list(binding.store) == []
    # The same deadline again (a redelivered tick): stale, nothing told twice.
    again = binding.compute(binding.history[-1][0])
    assert (again.outcome, again.effects, again.case) == (Outcome.STALE, (), None)


def test_an_erasure_asked_before_the_end_of_retention_makes_the_deadline_a_no_op() -> None:
    binding, deadline = _closed_binding()
    binding.now += timedelta(days=10)
    step = binding.feed(erasure_of(SID))
    assert step.remove == (deadline,) and list(binding.store) == []
    binding.now = deadline.due_at
    late = on_due(
        deadline, binding.case, binding.ladder, binding.directory, now=binding.now, policy=POLICY
    )
    assert (late.outcome, late.effects, late.case, late.add) == (Outcome.STALE, (), None, ())


def test_the_ladder_reports_a_due_retention_without_publishing_a_rung() -> None:
    binding, deadline = _closed_binding()
    assert binding.case is not None
    result = escalate(deadline, binding.case, binding.ladder, SLA, deadline.due_at)
    assert (result.outcome, result.published, result.remove) == (Outcome.ERASED, (), (deadline,))
    assert result.state == (binding.ladder or EscalationState.new(SID))


def erasure_of(sid: UUID) -> SurvivorErasureRequested:
    return SurvivorErasureRequested(survivor_id=sid, occurred_at=T0, agency_id=AGENCY)


def test_a_case_erased_while_open_never_gets_a_retention_deadline() -> None:
    binding, _ = offered()
    binding.feed(erasure_of(SID))
    assert list(binding.store) == []
    assert binding.case is not None
    referral: ReferralState = binding.referral()
    assert referral.status is ReferralStatus.CANCELLED

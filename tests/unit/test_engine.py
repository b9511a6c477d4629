"""The engine (router + escalation ladder per survivor) driven by an in-test binding.

:class:`Binding` carries out every :class:`~processors.engine.Step` in the
order :mod:`processors.engine` prescribes (publish and ledger, add, store
case and ladder, remove) over a :class:`~processors.deadlines.MemoryDeadlines`
store. It can also crash between adding and storing (then re-run the same
input from the stored state, as a restarted worker would) and redeliver an
input after storing its step, so the tests check what at-least-once delivery
does to the engine, not only what one call returns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as observe
from hypothesis import strategies as st

from processors.case import CaseState, ReferralState
from processors.deadlines import Deadline, DeadlineKind, MemoryDeadlines
from processors.directory import Directory, apply_capacity, apply_directory
from processors.effects import AuditAction, Publish
from processors.engine import ESCALATION_SOURCE, Step, on_due, on_event
from processors.escalation import ESCALATION_ID_NAMESPACE, EscalationState, Outcome, plan
from processors.lifecycle import ReferralStatus
from processors.meta import EventMeta
from processors.policy import RoutingPolicy
from processors.sla import SlaPolicy, default_policy
from schemas.models import (
    ReferralAccepted,
    ReferralCancelled,
    ReferralDeclined,
    ReferralEscalated,
    ReferralOffered,
    SurvivorEvent,
)
from schemas.types import (
    AgeGroup,
    EscalationReason,
    RiskLevel,
    ServiceCategory,
    UndeliveredEvent,
    Urgency,
)
from tests.unit.domain_builders import (
    T0,
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
    source_for,
    started,
    uid,
    undelivered,
)

SLA = default_policy()
POLICY = RoutingPolicy(sla=SLA)
SID = uid("engine-survivor")
RID = uid("engine-referral")
HOUSING = ServiceCategory.HOUSING
CATEGORIES = tuple(c for c in ServiceCategory if c is not ServiceCategory.UNKNOWN)
LADDER_REASONS = frozenset({EscalationReason.DEADLINE_MISSED, EscalationReason.LEGAL_CLOCK})
"""Reasons only the ladder publishes (the router's own escalations are unroutable ones)."""


# --------------------------------------------------------------------------- the binding


@dataclass(frozen=True)
class EventInput:
    """An agency or provider event as delivered (same meta on every redelivery)."""

    event: SurvivorEvent
    meta: EventMeta


@dataclass(frozen=True)
class DueInput:
    """A deadline a tick found due."""

    deadline: Deadline


Input = EventInput | DueInput


@dataclass(frozen=True)
class Snapshot:
    """Everything a binding stores, comparable."""

    case: CaseState | None
    ladder: EscalationState | None
    directory: Directory
    store: frozenset[Deadline]


@dataclass
class Binding:
    """One survivor's worker in miniature: tables, directory, deadline store, outbox."""

    directory: Directory
    policy: RoutingPolicy = POLICY
    sla: SlaPolicy = SLA
    case: CaseState | None = None
    ladder: EscalationState | None = None
    store: MemoryDeadlines = field(default_factory=MemoryDeadlines)
    now: datetime = T0
    published: list[Publish] = field(default_factory=list)
    """Every publication, copies from replays included."""
    history: list[tuple[Input, Step, datetime]] = field(default_factory=list)
    """(input, step, instant) of every step carried out to its end, replays included."""
    next_id: int = 0

    # ------------------------------------------------------------------ construction

    @classmethod
    def with_providers(
        cls, providers: int = 3, *, capacity: int = 5, child: bool = True, jurisdiction: str = "NL"
    ) -> Binding:
        """A binding whose directory has ``providers`` providers of every category."""
        directory = Directory()
        for i in range(providers):
            directory = apply_directory(
                directory,
                provider(
                    uid(f"engine-p{i}:{child}"),
                    categories=CATEGORIES,
                    jurisdictions=(jurisdiction,),
                    child=child,
                    capacity=capacity,
                ),
            )
        return cls(directory=directory)

    def fork(self) -> Binding:
        """An independent copy (values are immutable; the store and lists are copied)."""
        return replace(
            self,
            store=MemoryDeadlines(iter(self.store)),
            published=list(self.published),
            history=list(self.history),
        )

    def snapshot(self) -> Snapshot:
        return Snapshot(self.case, self.ladder, self.directory, frozenset(self.store))

    # ------------------------------------------------------------------ inputs

    def meta(self, event: SurvivorEvent) -> EventMeta:
        self.next_id += 1
        return EventMeta(source=source_for(event), id=f"engine-evt-{self.next_id}")

    def event(self, event: SurvivorEvent) -> EventInput:
        """An input for ``event`` happening now."""
        return EventInput(event.model_copy(update={"occurred_at": self.now}), self.meta(event))

    def compute(self, item: Input) -> Step:
        """The pure call, on what is stored now."""
        if isinstance(item, EventInput):
            step = on_event(
                self.case,
                self.ladder,
                self.directory,
                item.event,
                item.meta,
                now=item.event.occurred_at,
                policy=self.policy,
                sla=self.sla,
            )
            assert step.outcome is None
        else:
            step = on_due(
                item.deadline,
                self.case,
                self.ladder,
                self.directory,
                now=self.now,
                policy=self.policy,
                sla=self.sla,
            )
            assert step.outcome is not None
            if step.outcome is Outcome.ESCALATED:  # the due deadline goes (or was replaced)
                due = item.deadline
                assert due in step.remove or due.key in {d.key for d in step.add}
        check_step(step, self.directory)
        return step

    # ------------------------------------------------------------------ carrying out

    def carry_out(self, step: Step, *, crash_after_add: bool = False) -> None:
        """The engine's order: publish (and ledger), add, store, remove."""
        # 1. publish and append the ledger changes; their acks are awaited here. The
        # directory view takes them with the tables below, so a crash rolls it back too
        # (test_a_replay_after_the_ledger_was_written_makes_the_same_offer: not so in agents).
        self.published.extend(step.published)
        ledger = apply_capacity(self.directory, step.capacity)
        # 2. add
        for deadline in step.add:
            self.store.add(deadline)
        if crash_after_add:
            return  # the worker dies: no table saw the step (the outbox did)
        # 3. store the case, the ladder state and the directory view
        if step.case is not None:
            self.case = step.case
        if step.ladder is not None:
            self.ladder = step.ladder
        self.directory = ledger
        # 4. remove
        for deadline in step.remove:
            self.store.discard(deadline)

    def run(self, item: Input) -> Step:
        """Compute and carry out one input; the store must then hold exactly the plan."""
        step = self.compute(item)
        self.carry_out(step)
        self.history.append((item, step, self.now))
        assert_store_is_plan(self)
        return step

    def feed(self, event: SurvivorEvent) -> Step:
        """Deliver an event happening now."""
        return self.run(self.event(event))

    def due(self, deadline: Deadline) -> Step:
        return self.run(DueInput(deadline))

    def tick(self, advance: timedelta = timedelta(0)) -> list[Step]:
        """Move the clock and run every deadline due, earliest first (as the agent does)."""
        self.now += advance
        return [self.due(deadline) for deadline in self.store.peek_due(self.now)]

    # ------------------------------------------------------------------ reading

    def referral(self, rid: UUID = RID) -> ReferralState:
        assert self.case is not None
        return self.case.referrals[rid]

    def deadlines(self, rid: UUID = RID) -> list[Deadline]:
        return [d for d in self.store if d.referral_id == rid]


def check_step(step: Step, directory: Directory) -> None:
    """What holds of every step, whatever the input."""
    removed = {d.key for d in step.remove}
    assert removed.isdisjoint(d.key for d in step.add), "a removal would undo an addition"
    assert len({d.key for d in step.add}) == len(step.add)
    if step.decisions:
        assert apply_capacity(directory, step.capacity) == step.decisions[-1].directory
    if step.case is None:
        assert step.capacity == ()


def the_plan(binding: Binding) -> set[Deadline]:
    case = binding.case
    if case is None:
        return set()
    ladder = binding.ladder if binding.ladder is not None else EscalationState.new(case.survivor_id)
    return set(plan(case, ladder, binding.sla))


def assert_store_is_plan(binding: Binding) -> None:
    assert set(binding.store) == the_plan(binding)


def ids(step: Step) -> list[str]:
    return [p.event_id for p in step.published]


def escalations(step: Step) -> list[ReferralEscalated]:
    return [p.event for p in step.published if isinstance(p.event, ReferralEscalated)]


def offers(step: Step) -> list[ReferralOffered]:
    return [p.event for p in step.published if isinstance(p.event, ReferralOffered)]


def rungs(step: Step) -> list[tuple[int, EscalationReason]]:
    return [(e.level, e.reason) for e in escalations(step)]


def offered(
    urgency: Urgency = Urgency.ROUTINE,
    *,
    age: AgeGroup = AgeGroup.ADULT,
    level: RiskLevel | None = None,
    providers: int = 3,
) -> tuple[Binding, Step]:
    """A survivor identified, consenting, and a referral requested; the request's step."""
    binding = Binding.with_providers(providers)
    binding.feed(identified(SID, age=age))
    binding.feed(consent(SID))
    if level is not None:
        binding.feed(risk(SID, level))
    return binding, binding.feed(request(SID, RID, urgency=urgency))


def ack(binding: Binding, rid: UUID = RID) -> Deadline:
    (deadline,) = [d for d in binding.deadlines(rid) if d.kind is DeadlineKind.ACKNOWLEDGE]
    return deadline


def answer(binding: Binding, make: Callable[..., SurvivorEvent], rid: UUID = RID) -> Step:
    current = binding.referral(rid)
    assert current.provider_id is not None
    return binding.feed(make(SID, rid, current.provider_id, current.attempt))


# --------------------------------------------------------------------------- 1. an offer


def test_an_offer_adds_exactly_its_acknowledge_deadline() -> None:
    binding, step = offered()
    (offer,) = offers(step)
    referral = binding.referral()
    expected = SLA.referral_deadline(
        urgency=Urgency.ROUTINE,
        category=HOUSING,
        child=False,
        risk=binding.case.risk if binding.case else RiskLevel.UNKNOWN,
        status=ReferralStatus.OFFERED,
        at=T0,
    )
    assert expected == T0 + timedelta(hours=72)
    assert offer.deadline == referral.deadline == expected
    assert step.add == (
        Deadline(
            due_at=expected,
            kind=DeadlineKind.ACKNOWLEDGE,
            survivor_id=SID,
            referral_id=RID,
            level=1,
            attempt=1,
        ),
    )
    assert step.remove == ()
    assert step.case is not None and step.ladder is None  # the ladder state did not change
    assert len(step.capacity) == 1 and step.decisions[0].changed
    assert ack(binding) in set(binding.store)


def test_an_accepted_offer_loses_its_deadline_and_never_escalates() -> None:
    binding, _ = offered()
    deadline = ack(binding)
    binding.now = deadline.due_at - timedelta(minutes=1)
    step = answer(binding, accepted)
    assert step.remove == (deadline,)
    (start,) = step.add
    assert (start.kind, start.level, start.attempt) == (DeadlineKind.START, 2, 1)
    assert start.due_at == binding.now + timedelta(days=7)
    assert [d.kind for d in binding.deadlines()] == [DeadlineKind.START]

    before = len(binding.published)
    assert binding.tick(timedelta(hours=1)) == []  # past the old deadline: nothing is due
    assert binding.published[before:] == []
    # Even a copy of the old deadline that a store kept (a lost removal) changes nothing.
    stale = binding.compute(DueInput(deadline))
    assert (stale.outcome, stale.published, stale.case, stale.ladder) == (
        Outcome.STALE,
        (),
        None,
        None,
    )
    assert stale.remove == (deadline,) and stale.add == (start,)


def test_a_decline_re_offers_and_moves_the_deadline_to_the_new_offer() -> None:
    binding, _ = offered()
    first = ack(binding)
    binding.now += timedelta(hours=5)
    step = answer(binding, declined)
    (offer,) = offers(step)
    assert offer.attempt == 2 and offer.provider_id != binding.referral().tried[0]
    (second,) = step.add
    assert step.remove == (first,)
    assert (second.attempt, second.level, second.due_at) == (2, 1, offer.deadline)
    assert offer.deadline == binding.now + timedelta(hours=72)


# --------------------------------------------------------------------------- 2. a silent offer


def test_a_silent_offer_escalates_to_rung_one_and_is_offered_to_another_provider() -> None:
    binding, _ = offered()
    deadline = ack(binding)
    silent = binding.referral().provider_id
    binding.now = deadline.due_at + timedelta(minutes=3)  # a late tick still escalates
    step = binding.due(deadline)

    assert step.outcome is Outcome.ESCALATED
    (rung,) = escalations(step)
    assert (rung.level, rung.reason) == (1, EscalationReason.DEADLINE_MISSED)
    assert (rung.referral_id, rung.provider_id, rung.missed_deadline) == (
        RID,
        silent,
        deadline.due_at,
    )
    assert step.published[0].event is rung  # escalations first
    cancel = [p.event for p in step.published if isinstance(p.event, ReferralCancelled)]
    assert [c.provider_id for c in cancel] == [silent]  # the silent provider learns first
    (offer,) = offers(step)
    assert offer.attempt == 2 and offer.provider_id != silent
    assert offer.deadline == binding.now + timedelta(hours=72)

    referral = binding.referral()
    assert referral.escalation_level >= 1
    assert (referral.attempt, referral.provider_id) == (2, offer.provider_id)
    assert step.case is not None and step.ladder is not None
    assert step.ladder.referrals[RID].level == 1
    (new,) = step.add
    assert (new.due_at, new.attempt, new.level) == (offer.deadline, 2, 2)
    assert deadline in step.remove
    assert binding.deadlines() == [new]
    # The directory moved the place from the silent provider to the new one.
    assert len(step.capacity) == 2
    assert binding.directory == step.decisions[-1].directory


def test_the_second_silent_offer_alerts_the_coordinator_then_the_operator() -> None:
    binding, _ = offered()
    binding.tick(timedelta(hours=72))
    assert binding.referral().attempt == 2
    (step,) = binding.tick(timedelta(hours=72))
    assert rungs(step) == [(2, EscalationReason.DEADLINE_MISSED)]
    assert offers(step) == [] and binding.referral().attempt == 2  # one automatic re-offer
    (follow_up,) = step.add
    assert (follow_up.level, follow_up.due_at) == (3, binding.now + timedelta(hours=72))
    assert binding.tick(timedelta(hours=71)) == []
    (top,) = binding.tick(timedelta(hours=1))
    assert rungs(top) == [(3, EscalationReason.DEADLINE_MISSED)]
    assert binding.deadlines() == []  # rung 3: in human hands
    assert binding.referral().escalation_level == 3


# --------------------------------------------------------------------------- 3. stale and early


def test_on_due_twice_is_stale_the_second_time() -> None:
    binding, _ = offered()
    deadline = ack(binding)
    binding.now = deadline.due_at
    first = binding.due(deadline)
    assert first.outcome is Outcome.ESCALATED and first.published
    stored = binding.snapshot()
    again = binding.due(deadline)  # redelivered after the first step was stored
    assert again.outcome is Outcome.STALE
    assert again.published == () and again.effects == () and again.capacity == ()
    assert (again.case, again.ladder, again.decisions) == (None, None, ())
    assert deadline in again.remove
    assert binding.snapshot() == stored


def test_on_due_before_due_is_early_and_does_nothing() -> None:
    binding, _ = offered()
    deadline = ack(binding)
    stored = binding.snapshot()
    for now in (T0, deadline.due_at - timedelta(milliseconds=1)):
        binding.now = now
        step = binding.due(deadline)
        assert step == Step(case=None, ladder=None, outcome=Outcome.EARLY)
    assert binding.snapshot() == stored


def test_a_deadline_of_an_unknown_survivor_is_stale_and_removed() -> None:
    binding = Binding.with_providers()
    deadline = Deadline(
        due_at=T0, kind=DeadlineKind.ACKNOWLEDGE, survivor_id=SID, referral_id=RID, level=1
    )
    binding.store.add(deadline)
    step = binding.due(deadline)
    assert (step.outcome, step.remove, step.add, step.effects) == (
        Outcome.STALE,
        (deadline,),
        (),
        (),
    )
    assert list(binding.store) == []


# --------------------------------------------------------------------------- 4. starting higher


@pytest.mark.parametrize(
    ("urgency", "age", "level", "first", "window"),
    [
        (Urgency.EMERGENCY, AgeGroup.MINOR, None, 3, timedelta(minutes=30)),
        (Urgency.ROUTINE, AgeGroup.UNKNOWN, RiskLevel.CRITICAL, 3, timedelta(hours=36)),
        (Urgency.EMERGENCY, AgeGroup.ADULT, None, 2, timedelta(hours=1)),
        (Urgency.PRIORITY, AgeGroup.ADULT, RiskLevel.CRITICAL, 2, timedelta(hours=12)),
        (Urgency.ROUTINE, AgeGroup.MINOR, None, 2, timedelta(hours=36)),
    ],
)
def test_a_referral_starting_higher_publishes_the_re_offer_and_its_first_rung_together(
    urgency: Urgency, age: AgeGroup, level: RiskLevel | None, first: int, window: timedelta
) -> None:
    binding, _ = offered(urgency, age=age, level=level)
    deadline = ack(binding)
    assert (deadline.level, deadline.due_at) == (first, T0 + window)
    (step,) = binding.tick(window)
    assert rungs(step) == [
        (1, EscalationReason.DEADLINE_MISSED),
        (first, EscalationReason.DEADLINE_MISSED),
    ]
    assert len(step.decisions) == 2 and all(d.changed for d in step.decisions)
    (offer,) = offers(step)
    assert offer.attempt == 2
    # Both rungs are recorded: on the referral (the router) and in the ladder state.
    referral = binding.referral()
    assert referral.escalation_level == first
    assert binding.case is not None and binding.case.escalation_level >= first
    assert binding.ladder is not None and binding.ladder.referrals[RID].level == first
    noted = [a for a in step.audits if a.action is AuditAction.NOTED]
    assert [a.reasons for a in noted] == [(f"escalated:{first}",)]
    if first == 3:
        assert binding.deadlines() == []  # the operator has it: nothing more scheduled
    else:
        (nxt,) = binding.deadlines()
        assert (nxt.level, nxt.attempt, nxt.due_at) == (3, 2, offer.deadline)


def test_an_unroutable_re_offer_does_not_page_the_operator_twice() -> None:
    binding, _ = offered(Urgency.EMERGENCY, age=AgeGroup.MINOR, providers=1)
    (step,) = binding.tick(timedelta(minutes=30))
    assert binding.referral().status is ReferralStatus.UNROUTABLE
    at_three = [e for e in escalations(step) if e.level == 3]
    assert len(at_three) == 1, [(e.level, e.reason) for e in escalations(step)]


# --------------------------------------------------------------------------- 5. same keys


def test_a_removal_never_deletes_an_addition_with_the_same_key() -> None:
    binding, _ = offered()
    first = ack(binding)
    step = answer(binding, declined)  # at the offer's own instant: same due time and rung
    (second,) = step.add
    assert second.key == first.key and second != first
    assert (first.attempt, second.attempt) == (1, 2)
    assert first not in step.remove  # the addition already replaced it
    assert binding.deadlines() == [second]  # not deleted by a late removal

    # A tick that still held the first offer's deadline finds it stale; removing it must
    # not delete the second offer's deadline under the same key either.
    binding.now = first.due_at
    stale = binding.compute(DueInput(first))
    assert stale.outcome is Outcome.STALE and stale.published == ()
    assert stale.add == (second,) and stale.remove == ()
    binding.carry_out(stale)
    assert binding.deadlines() == [second]
    # And the second offer's deadline escalates normally.
    (escalated,) = binding.tick()
    (rung,) = escalations(escalated)
    assert (rung.level, rung.provider_id) == (1, binding.referral().tried[1])


# --------------------------------------------------------------------------- legal clocks


def test_a_legal_clock_alert_is_recorded_on_the_case() -> None:
    binding, _ = offered()
    answer(binding, accepted)
    answer(binding, started)
    (alert,) = [d for d in binding.store if d.kind is DeadlineKind.REFLECTION and d.level == 2]
    steps = binding.tick(alert.due_at - binding.now)
    (step,) = [s for s in steps if s.outcome is Outcome.ESCALATED]
    (event,) = escalations(step)
    assert (event.level, event.reason, event.referral_id) == (2, EscalationReason.LEGAL_CLOCK, None)
    assert step.published[0].event_id == str(
        uuid5(ESCALATION_ID_NAMESPACE, f"{SID}|{DeadlineKind.REFLECTION.value}|2")
    )
    assert binding.case is not None and binding.case.escalation_level >= 2
    assert binding.ladder is not None
    assert binding.ladder.clocks[DeadlineKind.REFLECTION].level == 2


def test_a_closed_case_loses_every_deadline_but_its_retention() -> None:
    binding, _ = offered()
    before = set(binding.store)
    assert ack(binding) in before
    step = binding.feed(closed(SID))
    assert set(step.remove) == before
    assert [d.kind for d in step.add] == [DeadlineKind.RETENTION]
    assert [d.kind for d in binding.store] == [DeadlineKind.RETENTION]
    assert binding.tick(timedelta(days=90)) == []


# --------------------------------------------------------------------------- other inputs


def test_a_copy_from_the_escalation_topic_is_a_duplicate() -> None:
    binding, _ = offered(Urgency.EMERGENCY, age=AgeGroup.MINOR)
    (step,) = binding.tick(timedelta(minutes=30))
    stored = binding.snapshot()
    for publication in step.published[:2]:
        event = publication.event
        assert isinstance(event, ReferralEscalated)
        meta = EventMeta(source=ESCALATION_SOURCE, id=publication.event_id)
        copy = binding.run(EventInput(event, meta))
        assert copy.decisions[0].duplicate
        assert (copy.case, copy.ladder, copy.effects, copy.add, copy.remove) == (
            None,
            None,
            (),
            (),
            (),
        )
    assert binding.snapshot() == stored


def test_a_refused_event_stores_nothing_and_says_why() -> None:
    binding, _ = offered()
    current = binding.referral()
    assert current.provider_id is not None
    stored = binding.snapshot()
    wrong = binding.feed(accepted(SID, RID, current.provider_id, current.attempt + 1))
    assert wrong.rejection is not None
    assert (wrong.case, wrong.ladder, wrong.add, wrong.remove, wrong.published) == (
        None,
        None,
        (),
        (),
        (),
    )
    assert binding.snapshot() == stored


def test_an_unknown_survivors_refused_event_creates_nothing() -> None:
    binding = Binding.with_providers()
    step = binding.feed(accepted(SID, RID, uid("nobody"), 1))
    assert step.rejection is not None and step.case is None and step.ladder is None
    assert binding.case is None and list(binding.store) == []


def test_the_ladder_needs_an_sla_policy() -> None:
    binding = Binding.with_providers()
    item = binding.event(identified(SID))
    with pytest.raises(ValueError, match="SLA policy"):
        on_event(
            None, None, binding.directory, item.event, item.meta, now=T0, policy=RoutingPolicy()
        )
    deadline = Deadline(due_at=T0, kind=DeadlineKind.REFLECTION, survivor_id=SID, level=2)
    with pytest.raises(ValueError, match="SLA policy"):
        on_due(deadline, None, None, binding.directory, now=T0, policy=RoutingPolicy())


def test_the_sla_defaults_to_the_policys_and_an_explicit_one_wins() -> None:
    data = SLA.model_dump()
    data["time_scale"] = 60
    demo = SlaPolicy.model_validate(data)
    binding = Binding.with_providers()
    item = binding.event(identified(SID))

    def identify(sla: SlaPolicy | None) -> Step:
        return on_event(
            None, None, binding.directory, item.event, item.meta, now=T0, policy=POLICY, sla=sla
        )

    assert identify(None) == identify(SLA)
    alert = T0 + timedelta(days=23)  # 30-day reflection period, alert 7 days before its end
    assert min(d.due_at for d in identify(None).add) == alert
    assert min(d.due_at for d in identify(demo).add) == T0 + (alert - T0) / 60


# --------------------------------------------------------------------------- 7. crash safety


def crash_and_rerun(binding: Binding, item: Input) -> tuple[Step, Step]:
    """Carry out ``item`` up to its additions, die, and run it again from what is stored."""
    first = binding.compute(item)
    binding.carry_out(first, crash_after_add=True)
    again = binding.compute(item)
    binding.carry_out(again)
    binding.history.append((item, again, binding.now))
    assert_store_is_plan(binding)
    return first, again


def _request(binding: Binding) -> Input:
    return binding.event(request(SID, uid("another"), urgency=Urgency.PRIORITY))


def _decline(binding: Binding) -> Input:
    current = binding.referral()
    assert current.provider_id is not None
    return binding.event(declined(SID, RID, current.provider_id, current.attempt))


def _timeout(binding: Binding) -> Input:
    deadline = ack(binding)
    binding.now = deadline.due_at
    return DueInput(deadline)


@pytest.mark.parametrize("make", [_request, _decline, _timeout], ids=["request", "decline", "due"])
def test_a_crash_between_adding_and_storing_replays_to_the_same_end(
    make: Callable[[Binding], Input],
) -> None:
    binding, _ = offered()
    item = make(binding)
    reference = binding.fork()
    expected = reference.run(item)
    first, again = crash_and_rerun(binding, item)
    assert first == expected and again == first
    assert ids(again) == ids(first) and ids(first)
    assert binding.snapshot() == reference.snapshot()
    assert [p.event_id for p in binding.published] == [
        p.event_id for p in reference.published
    ] + ids(first)


def test_a_crash_between_storing_and_removing_leaves_a_deadline_dropped_as_stale() -> None:
    binding, _ = offered()
    deadline = ack(binding)
    binding.now = deadline.due_at - timedelta(hours=1)
    pid = binding.referral().provider_id
    assert pid is not None
    step = binding.compute(binding.event(accepted(SID, RID, pid, 1)))
    # 1-3 carried out, the removal (4) lost with the worker:
    binding.carry_out(replace(step, remove=()))
    assert deadline in set(binding.store)
    (stale,) = [s for s in binding.tick(timedelta(hours=1)) if s.remove == (deadline,)]
    assert stale.outcome is Outcome.STALE and stale.published == ()
    assert deadline not in set(binding.store)
    assert_store_is_plan(binding)


def test_a_replay_after_the_ledger_was_written_makes_the_same_offer() -> None:
    binding, _ = offered()
    item = _request(binding)
    first = binding.compute(item)
    binding.directory = apply_capacity(binding.directory, first.capacity)  # the ledger replayed
    again = binding.compute(item)
    assert ids(again) == ids(first)  # same CloudEvents ids: consumers keep only the first...
    assert [o.provider_id for o in offers(again)] == [o.provider_id for o in offers(first)]


# --------------------------------------------------------------------------- 6. properties

ANSWERS: dict[str, Callable[..., SurvivorEvent]] = {
    "accept": accepted,
    "decline": declined,
    "start": started,
    "complete": completed,
    "fail": failed,
}
URGENCIES = [u for u in Urgency if u is not Urgency.UNKNOWN]
_REQUEST_ARGS = st.tuples(
    st.sampled_from(URGENCIES), st.sampled_from(CATEGORIES[:3]), st.booleans()
)
_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "tick": st.integers(1, 4000),  # minutes
    "short-tick": st.integers(1, 180),
    "leap": st.integers(1, 20),  # days
    "request": _REQUEST_ARGS,
    "answer": st.tuples(st.integers(0, 5), st.integers(0, 7)),
    "stale-answer": st.tuples(st.integers(0, 5), st.integers(0, 7)),
    "wild-answer": st.tuples(st.integers(0, 5), st.integers(0, 7)),
    "risk": st.sampled_from(list(RiskLevel)),
    "cancel": st.integers(0, 7),
    "identify": st.just(0),
    "copy": st.integers(0, 20),
    "undelivered": st.tuples(st.booleans(), st.integers(0, 7)),
}
_WEIGHTS = {"tick": 2, "short-tick": 3, "leap": 1, "request": 2, "answer": 6}
OPS = st.sampled_from([op for op in _ARGS for _ in range(_WEIGHTS.get(op, 1))]).flatmap(
    lambda op: _ARGS[op].map(lambda arg: ("tick" if op == "short-tick" else op, arg))
)
"""One input or clock move, weighted: answers and short ticks come most often."""
FITTING: dict[ReferralStatus, tuple[str, ...]] = {
    ReferralStatus.OFFERED: ("accept", "decline"),
    ReferralStatus.ACCEPTED: ("start", "start", "fail"),
    ReferralStatus.IN_PROGRESS: ("complete", "fail"),
}
"""What a well-behaved provider answers in each status; "wild" answers pick any."""
MODES = st.sampled_from(["plain", "plain", "plain", "redeliver", "crash"])


@dataclass
class Trace:
    """What the property checks collect while a binding runs."""

    known: set[str] = field(default_factory=set)
    """Ids published so far."""
    owners: dict[tuple[str, int], list[tuple[str, EscalationReason, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """(referral or clock, rung) -> (event id, reason, input number) of every fresh publication."""
    answered: set[tuple[UUID, int]] = field(default_factory=set)
    """(referral, attempt) of offers answered before their deadline."""
    answered_events: set[tuple[UUID, UUID, datetime]] = field(default_factory=set)
    """(referral, provider, offer deadline) of the same offers."""
    missed: list[tuple[UUID | None, int | None]] = field(default_factory=list)
    """(referral, attempt) of every escalated acknowledge deadline."""
    ladder: list[Publish] = field(default_factory=list)
    inputs: int = 0


def _note_fresh(trace: Trace, binding: Binding, item: Input, step: Step) -> None:
    """Record a first run's publications and check none of them was published before."""
    trace.inputs += 1
    for publication in step.published:
        assert publication.event_id not in trace.known, "a new input republished an old id"
        event = publication.event
        if isinstance(event, ReferralEscalated):
            if event.referral_id is not None:
                owner = str(event.referral_id)
            else:
                assert isinstance(item, DueInput)
                owner = item.deadline.kind.value
            trace.owners[(owner, event.level)].append(
                (publication.event_id, event.reason, trace.inputs)
            )
            if event.reason in LADDER_REASONS:
                trace.ladder.append(publication)
    trace.known.update(ids(step))
    if (
        isinstance(item, DueInput)
        and step.outcome is Outcome.ESCALATED
        and item.deadline.kind is DeadlineKind.ACKNOWLEDGE
    ):
        trace.missed.append((item.deadline.referral_id, item.deadline.attempt))
    if isinstance(item, EventInput) and step.case is not None and binding.case is not None:
        event = item.event
        if isinstance(event, ReferralAccepted | ReferralDeclined):
            before = binding.case.referrals.get(event.referral_id)
            if (
                before is not None
                and before.status is ReferralStatus.OFFERED
                and before.attempt == event.attempt
                and before.provider_id == event.provider_id
                and before.deadline is not None
                and event.occurred_at < before.deadline
            ):
                trace.answered.add((event.referral_id, event.attempt))
                trace.answered_events.add((event.referral_id, event.provider_id, before.deadline))


def process(binding: Binding, trace: Trace, item: Input, mode: str) -> None:
    """One input: delivered once, or replayed after a crash; then redelivered after storing.

    Every input is redelivered to the pure engine once its step is stored (a copy from an
    at-least-once consumer must change nothing); in "redeliver" mode that copy's step is
    also carried out.
    """
    if mode == "crash":
        reference = binding.fork()
        expected = reference.compute(item)
        _note_fresh(trace, binding, item, expected)
        reference.carry_out(expected)
        first, again = crash_and_rerun(binding, item)
        assert first == expected == again
        assert ids(again) == ids(first)
        assert binding.snapshot() == reference.snapshot()
    else:
        step = binding.compute(item)
        _note_fresh(trace, binding, item, step)
        binding.carry_out(step)
        binding.history.append((item, step, binding.now))
        assert_store_is_plan(binding)
    stored = binding.snapshot()
    copy = binding.compute(item)
    assert set(ids(copy)) <= trace.known, "a redelivery published a new id"
    assert (copy.case, copy.ladder, copy.capacity) == (None, None, ())
    assert set(copy.add) <= stored.store  # a stale deadline re-adds its owner's plan only
    if mode == "redeliver":
        binding.carry_out(copy)
        binding.history.append((item, copy, binding.now))
        assert binding.snapshot() == stored


def _pick(options: list[UUID], index: int) -> UUID | None:
    return options[index % len(options)] if options else None


def _undelivered(binding: Binding, referrals: list[UUID], arg: tuple[bool, int]) -> list[Input]:
    """The webhook connector gave up on the current offer, or on a cancellation."""
    offer, index = arg
    rid = _pick(referrals, index)
    if rid is None or binding.case is None or rid not in binding.case.referrals:
        return []
    current = binding.case.referrals[rid]
    if offer and current.provider_id is not None:
        report = undelivered(SID, rid, current.provider_id, current.attempt)
    elif current.tried:
        what = UndeliveredEvent.REFERRAL_CANCELLED
        report = undelivered(SID, rid, current.tried[-1], what=what)
    else:
        return []
    return [binding.event(report)]


def play(binding: Binding, trace: Trace, ops: list[tuple[tuple[str, Any], str]]) -> None:
    referrals: list[UUID] = []
    for (op, arg), mode in ops:
        inputs: list[Input] = []
        if op in ("tick", "leap"):
            advance = timedelta(minutes=arg) if op == "tick" else timedelta(days=arg)
            binding.now += advance
            for deadline in binding.store.peek_due(binding.now):
                process(binding, trace, DueInput(deadline), mode)
            continue
        if op == "request":
            urgency, category, child = arg
            new = uid(f"engine-r{len(referrals)}")
            referrals.append(new)
            inputs.append(
                binding.event(request(SID, new, urgency=urgency, category=category, child=child))
            )
        elif op in ("answer", "stale-answer", "wild-answer"):
            choice, index = arg
            rid = _pick(referrals, index)
            if rid is None or binding.case is None or rid not in binding.case.referrals:
                continue
            current = binding.case.referrals[rid]
            fitting = FITTING.get(current.status, ()) if op == "answer" else ()
            kinds = fitting or tuple(sorted(ANSWERS))
            kind = kinds[choice % len(kinds)]
            pid = current.provider_id or uid("engine-stranger")
            attempt = max(1, current.attempt - 1 if op == "stale-answer" else current.attempt)
            inputs.append(binding.event(ANSWERS[kind](SID, rid, pid, attempt)))
        elif op == "risk":
            inputs.append(binding.event(risk(SID, arg)))
        elif op in ("cancel", "identify"):
            rid = _pick(referrals, arg)
            event = identified(SID) if op == "identify" else rid and cancelled(SID, rid)
            inputs.extend([binding.event(event)] if event else [])
        elif op == "undelivered":
            inputs.extend(_undelivered(binding, referrals, arg))
        elif op == "copy" and trace.ladder:
            publication = trace.ladder[arg % len(trace.ladder)]
            event = publication.event
            assert isinstance(event, SurvivorEvent)
            meta = EventMeta(source=ESCALATION_SOURCE, id=publication.event_id)
            copy = binding.run(EventInput(event, meta))
            assert copy.decisions[0].duplicate and copy.effects == () and copy.case is None
        for item in inputs:
            process(binding, trace, item, mode)


def check_trace(trace: Trace) -> None:
    # No referral or clock escalates twice at one rung: one id, published by one input.
    for (owner, level), entries in trace.owners.items():
        ladder = [e for e in entries if e[1] in LADDER_REASONS]
        assert len(ladder) <= 1, (owner, level, entries)
        assert len(entries) == 1, (owner, level, entries)
    # An offer answered before its deadline never has that deadline missed.
    assert trace.answered.isdisjoint(trace.missed), trace.answered & set(trace.missed)
    for publication in trace.ladder:
        event = publication.event
        assert isinstance(event, ReferralEscalated)
        if event.reason is EscalationReason.DEADLINE_MISSED:
            assert event.referral_id is not None and event.provider_id is not None
            missed = (event.referral_id, event.provider_id, event.missed_deadline)
            assert missed not in trace.answered_events


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    age=st.sampled_from([AgeGroup.ADULT, AgeGroup.MINOR, AgeGroup.UNKNOWN]),
    jurisdiction=st.sampled_from(["NL", "GB"]),
    first=_REQUEST_ARGS,
    ops=st.lists(st.tuples(OPS, MODES), min_size=8, max_size=30),
)
def test_any_interleaving_of_events_and_ticks_keeps_the_engine_honest(
    age: AgeGroup,
    jurisdiction: str,
    first: tuple[Urgency, ServiceCategory, bool],
    ops: list[tuple[tuple[str, Any], str]],
) -> None:
    binding = Binding.with_providers(2, capacity=2, jurisdiction=jurisdiction)
    extra = Binding.with_providers(1, capacity=1, child=False, jurisdiction=jurisdiction)
    binding.directory = Directory(
        providers={**binding.directory.providers, **extra.directory.providers}
    )
    trace = Trace()
    for event in (identified(SID, jurisdiction=jurisdiction, age=age), consent(SID)):
        process(binding, trace, binding.event(event), "plain")
    play(binding, trace, [(("request", first), "plain"), *ops])
    # Let everything fall due: a step may plan a deadline already due (e.g. a clock alert
    # re-planned at a higher rung), which the next tick finds.
    for days in (20, 20, 20, 20, 0, 0, 0):
        play(binding, trace, [(("leap", days), "plain")])
    assert binding.store.peek_due(binding.now) == []
    check_trace(trace)
    assert_store_is_plan(binding)
    _observe(binding, trace)


def _observe(binding: Binding, trace: Trace) -> None:
    """What the generator reached (``--hypothesis-show-statistics``)."""
    for item, step, _ in binding.history:
        if step.outcome is not None:
            observe(f"due:{step.outcome.value}")
        if isinstance(item, EventInput) and step.rejection is not None:
            observe(f"rejected:{step.rejection.code.value}")
        if isinstance(item, EventInput) and item.meta.source == ESCALATION_SOURCE:
            observe("copy-delivered")
    for (_, level), entries in trace.owners.items():
        for _, reason, _ in entries:
            observe(f"escalated:{reason.value}:{level}")
        if len(entries) > 1:
            observe("known-double-page")
    observe(f"answered-in-time:{min(len(trace.answered), 3)}")
    observe(f"referrals:{min(len(binding.case.referrals) if binding.case else 0, 4)}")
    for item, step, _ in binding.history:
        if isinstance(item, EventInput) and step.case is not None:
            observe(f"event:{type(item.event).__name__}")

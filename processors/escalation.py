"""The escalation ladder, pure: which deadlines a case should have, and what a due one does.

One idea carries everything: :func:`plan` derives, from a survivor's case
state and escalation state alone, the deadlines that *should* exist. The
binding keeps the deadline store in step with it (:func:`schedule` after
every decision) and, when a deadline falls due, :func:`escalate` acts only
if that deadline is still part of the plan. So:

* a provider's answer, a cancellation, a re-offer or a case closure changes
  the case, the plan no longer holds the old deadline, and it does nothing
  even if the store still had it (the binding also cancels it);
* an escalation raises the recorded rung, the plan moves to the next rung,
  and a redelivered or replayed deadline is no longer planned: ``escalate``
  is idempotent, and no referral or legal clock escalates twice at a rung;
* after a restore (or a new policy), ``plan`` rebuilds every deadline.

**The ladder (rungs as in ``referral.escalated``).**

1. re-offer to the next-best provider: a rung-1 ``DEADLINE_MISSED`` naming
   the silent provider, which :func:`processors.core.decide` turns into a
   timeout and a new offer (or, if the provider answered meanwhile, only
   audits); the event on the escalation stream is also the
   case coordinator's note. Used at most once per referral, and only for
   an unanswered offer (an accepted referral cannot be re-offered).
2. alert the case coordinator;
3. alert the operator on duty.

**Where a referral starts.** Aggravating factors: urgency ``EMERGENCY``,
the case's last risk assessment ``CRITICAL``, and a child (minor, unknown
age, not yet identified, or a child-specialised request). The first rung
is 1 + the number of factors, at most 3: none → 1, one → 2, two or three
→ 3. A missed *service start* begins at rung 2 or more (there is no
re-offer for an accepted referral).

**How it climbs.** Each due deadline escalates to the rung planned for it:
one above the highest rung the referral has reached (the ladder's own
record or the case's, e.g. rung 1 of a re-offer), and at least the first
rung. At the first miss of a referral starting above 1, the re-offer
(rung 1) and the alert (the first rung) are published together. After an
alert without a re-offer, the next rung is due one acknowledgement window
later (as long as a provider has to answer an offer of that urgency and
category), if nothing moved; a new offer or an acceptance gets its own SLA
deadline instead (the offer's ``deadline``, or the policy's start window
counted from the referral's ``status_since``: the acceptance itself, not
its last update, so an escalation noted on the accepted referral does not
postpone its start deadline; a state stored before ``status_since`` existed
falls back to ``updated_at``).
Rung 3 is the top: after it the referral is in human hands and the ladder
schedules nothing more for it. Levels are fixed when a deadline is
planned; a new risk assessment re-plans open deadlines at once.

**Unroutable referrals** escalate in :func:`~processors.core.decide` (rung 2,
or 3 for a child, an emergency or critical risk, and always above the rung
the referral already reached; nothing new at rung 3). Their status is
``unroutable`` and the plan has nothing for them, so the ladder never
escalates them again.

**Legal clocks** (reason ``LEGAL_CLOCK``, no referral, no category) start at
rung 2, or 3 for a child or critical risk, counted from the case's first
identification (a later ``survivor.identified`` does not restart them):

* recovery and reflection period: an alert ``alert_before`` its end, and
  rung 3 at its end, while no legal-aid referral is accepted, in progress
  or completed (if one is accepted later and then fails, the clock is
  planned again);
* reasonable-grounds decision target (where it applies): one alert when it
  passes. The event contract has no "decision made" event yet, so only a
  case closure clears it.

**Retention.** A closed case has one deadline only: the end of its
retention period (``retention.after_closure`` of the SLA policy, counted
from the first ``case.closed``; :meth:`CaseState.retained_since`). It
escalates nothing: when it is due and still planned, :func:`escalate`
says :attr:`Outcome.ERASED` and :func:`processors.engine.on_due` erases the
survivor exactly as an erasure request would. An erasure before it (asked
by the agency) takes it out of the plan, so it is then stale.

**Event ids** are UUIDv5 of (survivor, referral or clock, rung): any copy of
one escalation, whatever run published it, has the same CloudEvents id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from processors.case import CaseState, EscalationRung, ReferralState
from processors.deadlines import Deadline, DeadlineKind
from processors.effects import Publish
from processors.lifecycle import ReferralStatus
from processors.sla import SlaPolicy
from schemas.models import ReferralEscalated
from schemas.types import (
    Attempt,
    EscalationReason,
    RiskLevel,
    ServiceCategory,
    Urgency,
    UtcDatetime,
    utc_millis,
)

__all__ = [
    "ESCALATION_ID_NAMESPACE",
    "RETENTION_LEVEL",
    "TOP",
    "Escalation",
    "EscalationState",
    "Outcome",
    "Reached",
    "Schedule",
    "clock_level",
    "diff_plans",
    "escalate",
    "first_rung",
    "plan",
    "schedule",
]

TOP = 3
"""The operator on duty: the highest rung."""

ESCALATION_ID_NAMESPACE = UUID("8a3f6f0e-4c1b-5b7e-9d52-e5ca1a7e0a11")
"""UUIDv5 namespace of the CloudEvents ids of ladder escalations."""

RETENTION_LEVEL = 1
"""The ``level`` of every retention deadline: it escalates nothing, but keys need a rung."""

_LEGAL_AID_SECURED = frozenset(
    {ReferralStatus.ACCEPTED, ReferralStatus.IN_PROGRESS, ReferralStatus.COMPLETED}
)


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reached(_Value):
    """The highest rung a referral or a legal clock reached, when, and at which step."""

    level: EscalationRung
    at: UtcDatetime
    kind: DeadlineKind
    attempt: Attempt | None = None
    """Offer the rung was reached at (referral deadlines only)."""


class EscalationState(_Value):
    """What the ladder remembers of one survivor (a table entry keyed by pseudonym).

    No personal data: ids, rungs, instants.
    """

    survivor_id: UUID
    referrals: dict[UUID, Reached] = Field(default_factory=dict)
    clocks: dict[DeadlineKind, Reached] = Field(default_factory=dict)
    clocks_started_at: UtcDatetime | None = None
    """First identification of the case: where its legal clocks count from."""

    @classmethod
    def new(cls, survivor_id: UUID) -> EscalationState:
        """The state of a survivor the ladder has not seen."""
        return cls(survivor_id=survivor_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for a table."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EscalationState:
        """Inverse of :meth:`to_dict`; validates everything."""
        return cls.model_validate(data)


# --------------------------------------------------------------------------- rungs


def _child(case: CaseState, referral: ReferralState | None) -> bool:
    """A minor, unknown age or not yet identified (as routing treats them), or a child service."""
    profile_child = case.profile is None or case.profile.treated_as_child
    return profile_child or (referral is not None and referral.requirements.child_specialised)


def first_rung(case: CaseState, referral: ReferralState) -> int:
    """1 + the number of aggravating factors (emergency, critical risk, child), at most 3."""
    factors = (
        referral.urgency is Urgency.EMERGENCY,
        case.risk is RiskLevel.CRITICAL,
        _child(case, referral),
    )
    return min(TOP, 1 + sum(factors))


def clock_level(case: CaseState) -> int:
    """Rung of a legal-clock alert: 2 (coordinator), 3 for a child or critical risk."""
    return TOP if _child(case, None) or case.risk is RiskLevel.CRITICAL else 2


# --------------------------------------------------------------------------- the plan


def _follow_up(case: CaseState, referral: ReferralState, policy: SlaPolicy) -> timedelta:
    return policy.ack_window(
        referral.urgency, referral.category, child=_child(case, referral), risk=case.risk
    )


def _referral_plan(
    case: CaseState, referral: ReferralState, state: EscalationState, policy: SlaPolicy
) -> tuple[Deadline, ...]:
    if referral.status is ReferralStatus.OFFERED:
        kind, floor = DeadlineKind.ACKNOWLEDGE, 1
    elif referral.status is ReferralStatus.ACCEPTED:
        kind, floor = DeadlineKind.START, 2
    else:
        return ()
    reached = state.referrals.get(referral.referral_id)
    highest = max(reached.level if reached else 0, referral.escalation_level)
    level = max(floor, first_rung(case, referral), highest + 1)
    if level > TOP:
        return ()
    if reached is not None and reached.kind is kind and reached.attempt == referral.attempt:
        due: datetime | None = reached.at + _follow_up(case, referral, policy)
    elif kind is DeadlineKind.ACKNOWLEDGE and referral.deadline is not None:
        due = referral.deadline  # what the provider was told
    else:
        due = policy.referral_deadline(
            urgency=referral.urgency,
            category=referral.category,
            child=_child(case, referral),
            risk=case.risk,
            status=referral.status,
            at=referral.status_since or referral.updated_at,  # older states lack status_since
        )
    if due is None:  # pragma: no cover - offered and accepted always have an SLA
        return ()
    return (
        Deadline(
            due_at=utc_millis(due),
            kind=kind,
            survivor_id=case.survivor_id,
            referral_id=referral.referral_id,
            level=level,
            attempt=referral.attempt,
        ),
    )


def _clock_plan(case: CaseState, state: EscalationState, policy: SlaPolicy) -> tuple[Deadline, ...]:
    anchor = state.clocks_started_at
    if anchor is None or case.profile is None or case.closed is not None:
        return ()
    level = clock_level(case)
    points: list[tuple[DeadlineKind, datetime, int]] = []
    secured = any(
        r.category is ServiceCategory.LEGAL_AID and r.status in _LEGAL_AID_SECURED
        for r in case.referrals.values()
    )
    if not secured:
        points.append((DeadlineKind.REFLECTION, policy.reflection_alert(anchor), level))
        if level < TOP:
            points.append((DeadlineKind.REFLECTION, policy.reflection_end(anchor), TOP))
    grounds = policy.reasonable_grounds_due(anchor, case.profile.jurisdiction)
    if grounds is not None:
        points.append((DeadlineKind.REASONABLE_GROUNDS, grounds, level))
    deadlines = []
    for kind, due, rung in points:
        reached = state.clocks.get(kind)
        if reached is None or rung > reached.level:
            deadlines.append(
                Deadline(due_at=due, kind=kind, survivor_id=case.survivor_id, level=rung)
            )
    return tuple(deadlines)


def _retention_plan(case: CaseState, policy: SlaPolicy) -> tuple[Deadline, ...]:
    """The erasure of a closed case, unless it was erased already (it is never reopened)."""
    since = case.retained_since
    if since is None or case.erased_at is not None:
        return ()
    return (
        Deadline(
            due_at=policy.retention_end(since),
            kind=DeadlineKind.RETENTION,
            survivor_id=case.survivor_id,
            level=RETENTION_LEVEL,
        ),
    )


def plan(case: CaseState, state: EscalationState, policy: SlaPolicy) -> tuple[Deadline, ...]:
    """Every deadline the case should have now, earliest first.

    Pure and cheap (linear in the survivor's referrals), so the binding may
    rebuild a survivor's deadlines from the case and escalation tables at
    any time, e.g. after a restore or a policy change.
    """
    if state.survivor_id != case.survivor_id:
        raise ValueError("escalation state and case belong to different survivors")
    deadlines: list[Deadline] = []
    if case.closed is None:
        for referral in case.referrals.values():
            deadlines += _referral_plan(case, referral, state, policy)
    deadlines += _clock_plan(case, state, policy)
    deadlines += _retention_plan(case, policy)
    return tuple(sorted(deadlines, key=lambda d: d.key))


def diff_plans(
    old: tuple[Deadline, ...], new: tuple[Deadline, ...]
) -> tuple[tuple[Deadline, ...], tuple[Deadline, ...]]:
    """(to remove, to add), each earliest first."""
    kept = set(old) & set(new)
    return tuple(d for d in old if d not in kept), tuple(d for d in new if d not in kept)


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    """What the deadline store must do after a decision: remove, *then* add.

    The order matters: a deadline may be replaced by one with the same key
    (same due time and rung, another offer attempt).
    """

    remove: tuple[Deadline, ...]
    add: tuple[Deadline, ...]
    state: EscalationState
    """The escalation state to store (it records where legal clocks start)."""
    changed: bool
    """Whether ``state`` differs from the one passed in (write it only then)."""


def schedule(
    before: CaseState | None,
    after: CaseState,
    state: EscalationState | None,
    policy: SlaPolicy,
) -> Schedule:
    """Keep the deadline store in step with one decision (``before`` → ``after``).

    The store holds ``plan(before)``; it must come to hold ``plan(after)``:
    an answer removes the answered offer's deadline, an offer or an
    acceptance adds the next one, a closure removes everything but adds
    the retention deadline, an erasure removes that too. Pass
    ``before=None`` to build a survivor's deadlines from scratch.

    Apply the result *before* writing the case state: if the worker dies in
    between, the redelivered input gives the same schedule again, whereas
    the other order would lose it (the core would see a duplicate).
    """
    current = state if state is not None else EscalationState.new(after.survivor_id)
    anchored = current
    if current.clocks_started_at is None and after.profile is not None:
        anchored = current.model_copy(update={"clocks_started_at": after.profile.identified_at})
    old = plan(before, current, policy) if before is not None else ()
    remove, add = diff_plans(old, plan(after, anchored, policy))
    return Schedule(remove=remove, add=add, state=anchored, changed=anchored != state)


# --------------------------------------------------------------------------- escalate


class Outcome(StrEnum):
    """What :func:`escalate` made of a due deadline."""

    ESCALATED = "escalated"
    STALE = "stale"
    """No longer planned: answered, moved on, closed, or already escalated (a redelivery)."""
    EARLY = "early"
    """Not due yet at ``now``; nothing done."""
    ERASED = "erased"
    """A planned retention deadline: the survivor is to be erased (:func:`~processors.engine.on_due`
    does it through the core); nothing is published on the ladder."""


@dataclass(frozen=True)
class Escalation:
    """The result of one due deadline.

    The binding publishes :attr:`published`, stores :attr:`state`, then
    removes :attr:`remove` (which includes the due deadline unless it was
    early) and adds :attr:`add`, in that order.
    """

    outcome: Outcome
    published: tuple[Publish, ...]
    """``referral.escalated`` events for the escalation topic, in order."""
    state: EscalationState
    remove: tuple[Deadline, ...]
    add: tuple[Deadline, ...]

    @property
    def events(self) -> tuple[ReferralEscalated, ...]:
        """The published events without their ids."""
        return tuple(p.event for p in self.published if isinstance(p.event, ReferralEscalated))


def _event_id(survivor_id: UUID, owner: str, level: int) -> str:
    return str(uuid5(ESCALATION_ID_NAMESPACE, f"{survivor_id}|{owner}|{level}"))


def _referral_events(
    deadline: Deadline, case: CaseState, referral: ReferralState, highest: int, now: datetime
) -> tuple[Publish, ...]:
    profile = case.profile
    jurisdiction = profile.jurisdiction if profile else referral.requirements.jurisdiction
    rungs = [deadline.level]
    if deadline.kind is DeadlineKind.ACKNOWLEDGE and highest < 1 < deadline.level:
        rungs.insert(0, 1)  # first miss of a referral starting higher: re-offer too
    return tuple(
        Publish(
            event=ReferralEscalated(
                survivor_id=case.survivor_id,
                occurred_at=now,
                referral_id=referral.referral_id,
                level=rung,
                reason=EscalationReason.DEADLINE_MISSED,
                missed_deadline=deadline.due_at,
                provider_id=referral.provider_id,
                category=referral.category,
                jurisdiction=jurisdiction,
            ),
            event_id=_event_id(case.survivor_id, str(referral.referral_id), rung),
        )
        for rung in rungs
    )


def _clock_event(
    deadline: Deadline, survivor_id: UUID, jurisdiction: str, now: datetime
) -> Publish:
    return Publish(
        event=ReferralEscalated(
            survivor_id=survivor_id,
            occurred_at=now,
            level=deadline.level,
            reason=EscalationReason.LEGAL_CLOCK,
            missed_deadline=deadline.due_at,
            jurisdiction=jurisdiction,
        ),
        event_id=_event_id(survivor_id, deadline.kind.value, deadline.level),
    )


def escalate(
    deadline: Deadline,
    case: CaseState | None,
    state: EscalationState | None,
    policy: SlaPolicy,
    now: datetime,
) -> Escalation:
    """Act on one due deadline: events to publish, the new state, the store's changes.

    The deadline escalates only if it is still planned (see the module
    docstring); otherwise it is ``STALE`` and the result merely removes it
    and re-adds its owner's planned deadlines (adding is idempotent, and
    this heals a store that missed a change). Idempotent: once the result
    is stored, the same deadline is no longer planned. If the binding
    crashes after publishing but before storing the state, the replay
    publishes the same events under the same ids.
    """
    current = state if state is not None else EscalationState.new(deadline.survivor_id)
    if deadline.due_at > now:
        return Escalation(Outcome.EARLY, (), current, (), ())
    if case is None:
        return Escalation(Outcome.STALE, (), current, (deadline,), ())
    owner = deadline.referral_id
    planned = tuple(d for d in plan(case, current, policy) if d.referral_id == owner)
    if deadline not in planned:
        return Escalation(Outcome.STALE, (), current, (deadline,), planned)
    if deadline.kind is DeadlineKind.RETENTION:
        # Not a rung: the ladder's state is untouched, and the erasure takes the
        # deadline out of the plan (the engine diffs the plans around it).
        return Escalation(Outcome.ERASED, (), current, (deadline,), ())
    at = utc_millis(now)
    if owner is None:
        if case.profile is None:  # pragma: no cover - clocks are planned for identified cases only
            return Escalation(Outcome.STALE, (), current, (deadline,), planned)
        published: tuple[Publish, ...] = (
            _clock_event(deadline, case.survivor_id, case.profile.jurisdiction, at),
        )
        reached = Reached(level=deadline.level, at=at, kind=deadline.kind)
        after = current.model_copy(update={"clocks": {**current.clocks, deadline.kind: reached}})
    else:
        referral = case.referrals[owner]  # planned, so the case has it
        previous = current.referrals.get(owner)
        highest = max(previous.level if previous else 0, referral.escalation_level)
        published = _referral_events(deadline, case, referral, highest, at)
        reached = Reached(level=deadline.level, at=at, kind=deadline.kind, attempt=deadline.attempt)
        after = current.model_copy(update={"referrals": {**current.referrals, owner: reached}})
    replanned = tuple(d for d in plan(case, after, policy) if d.referral_id == owner)
    remove, add = diff_plans(planned, replanned)
    return Escalation(Outcome.ESCALATED, published, after, remove, add)

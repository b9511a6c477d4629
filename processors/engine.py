"""The router and the escalation ladder together, per survivor: what one input does.

A worker owns a survivor's partition and so both the survivor's case and
its deadlines. Two kinds of input reach that partition, in order:

* an event (agency or provider): :func:`on_event` decides it with
  :func:`processors.core.decide` and keeps the deadlines in step with
  :func:`processors.escalation.schedule`;
* a due deadline, found by a tick: :func:`on_due` escalates it with
  :func:`processors.escalation.escalate` and hands every escalation it
  publishes straight back to :func:`~processors.core.decide` (rung 1 with
  ``DEADLINE_MISSED`` re-offers to the next-best provider, every rung is
  recorded on the referral), then re-plans the survivor's deadlines. A due
  retention deadline of a closed case erases the survivor instead
  (:func:`processors.core.expire`): the step's case then has ``erased_at``,
  and the binding shreds the data key and tombstones the status as for an
  erasure request.

Both return a :class:`Step`: everything the binding must carry out, and the
order that keeps a crash harmless (**add early, remove late**):

1. publish :attr:`Step.published` and the ledger changes, and wait for acks;
2. add :attr:`Step.add` to the deadline store;
3. write the case (:attr:`Step.case`) and the ladder state
   (:attr:`Step.ladder`) when they changed;
4. remove :attr:`Step.remove` from the deadline store.

A crash before 3 replays the input: the same events with the same ids, no
harm done (consumers drop copies by CloudEvents id). A deadline added but
never justified by a stored state is harmless: when due, ``escalate`` finds
it unplanned and drops it. Only a *removal* before its state is stored could
lose an escalation, and removals come last. A crash between 3 and 4 leaves
a deadline the plan no longer holds; when due, it is dropped as stale.

Pure: no I/O, no clock; ``now`` is the tick's instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from processors.case import CaseState
from processors.core import decide, expire
from processors.deadlines import Deadline
from processors.directory import CapacityChange, Directory
from processors.effects import Decision, Effect, Effects, Publish
from processors.escalation import (
    EscalationState,
    Outcome,
    diff_plans,
    escalate,
    plan,
    schedule,
)
from processors.meta import EventMeta
from processors.policy import RoutingPolicy
from processors.sla import SlaPolicy
from schemas.models import ReferralEscalated, SurvivorEvent

__all__ = ["ESCALATION_SOURCE", "Step", "on_due", "on_event"]

ESCALATION_SOURCE = "/safepassage/escalation"
"""CloudEvents source of the ladder's escalations (their ids are stable per rung)."""


@dataclass(frozen=True)
class Step(Effects):
    """What one input asks of the binding; carry it out in the module's order."""

    case: CaseState | None
    """The case to store, or None when it did not change (or the survivor is unknown)."""
    ladder: EscalationState | None
    """The ladder state to store, or None when it did not change."""
    effects: tuple[Effect, ...] = ()
    """Events to publish and audit records, in order (escalations first)."""
    capacity: tuple[CapacityChange, ...] = ()
    """Capacity ledger changes (reservations and releases), in order."""
    add: tuple[Deadline, ...] = ()
    remove: tuple[Deadline, ...] = ()
    decisions: tuple[Decision, ...] = ()
    """The router's decisions behind it (one per event decided), for tests and audit."""
    outcome: Outcome | None = None
    """What became of a due deadline (:func:`on_due` only)."""


def _sla(policy: RoutingPolicy, sla: SlaPolicy | None) -> SlaPolicy:
    if sla is not None:
        return sla
    if policy.sla is None:
        raise ValueError("the ladder needs an SLA policy: pass sla= or a policy with one")
    return policy.sla


def _re_offer_last(published: Publish) -> bool:
    event = published.event
    return isinstance(event, ReferralEscalated) and event.level == 1


def _late_removals(remove: tuple[Deadline, ...], add: tuple[Deadline, ...]) -> tuple[Deadline, ...]:
    """Removals that do not undo an addition.

    Removing comes *after* adding (see the module docstring), and a deadline
    may be replaced by another with the same key (same due time and rung,
    another offer attempt): adding already overwrote it, removing it would
    delete the replacement.
    """
    added = {d.key for d in add}
    return tuple(d for d in remove if d.key not in added)


def on_event(
    case: CaseState | None,
    ladder: EscalationState | None,
    directory: Directory,
    event: SurvivorEvent,
    meta: EventMeta,
    *,
    now: datetime,
    policy: RoutingPolicy,
    sla: SlaPolicy | None = None,
) -> Step:
    """Decide one agency or provider event and keep the survivor's deadlines in step.

    ``sla`` defaults to the policy's own (offer deadlines and the ladder
    must agree on it).
    """
    decision = decide(case, directory, event, meta, now=now, policy=policy)
    if not decision.changed:
        return Step(case=None, ladder=None, effects=decision.effects, decisions=(decision,))
    planned = schedule(case, decision.state, ladder, _sla(policy, sla))
    return Step(
        case=decision.state,
        ladder=planned.state if planned.changed else None,
        effects=decision.effects,
        capacity=decision.capacity,
        add=planned.add,
        remove=_late_removals(planned.remove, planned.add),
        decisions=(decision,),
    )


def on_due(
    deadline: Deadline,
    case: CaseState | None,
    ladder: EscalationState | None,
    directory: Directory,
    *,
    now: datetime,
    policy: RoutingPolicy,
    sla: SlaPolicy | None = None,
) -> Step:
    """Escalate one due deadline and let the router act on every rung it publishes.

    The escalations are decided as events of :data:`ESCALATION_SOURCE` with
    their own stable ids, so a replay after a crash is recognised by the
    core as well. A refusal by the router (which a planned deadline should
    never meet) is returned as an effect for the binding to log and audit;
    there is no input record to dead-letter.
    """
    policy_sla = _sla(policy, sla)
    escalation = escalate(deadline, case, ladder, policy_sla, now)
    if escalation.outcome is Outcome.ERASED and case is not None:
        return _expire(case, ladder, directory, now=now, policy=policy, sla=policy_sla)
    if escalation.outcome is not Outcome.ESCALATED or case is None:
        return Step(
            case=None,
            ladder=None,
            add=escalation.add,
            remove=_late_removals(escalation.remove, escalation.add),
            outcome=escalation.outcome,
        )
    current = ladder if ladder is not None else EscalationState.new(case.survivor_id)
    effects: list[Effect] = list(escalation.published)
    capacity: list[CapacityChange] = []
    decisions: list[Decision] = []
    after = case
    # The router hears the alert rungs before the rung-1 re-offer: should the
    # re-offer find nobody, the referral already stands at its highest rung and
    # the router's unroutable escalation does not page that rung a second time.
    for published in sorted(escalation.published, key=_re_offer_last):
        event = published.event
        if not isinstance(event, ReferralEscalated):  # pragma: no cover - escalate emits only these
            continue
        meta = EventMeta(source=ESCALATION_SOURCE, id=published.event_id)
        decision = decide(after, directory, event, meta, now=event.occurred_at, policy=policy)
        decisions.append(decision)
        effects.extend(decision.effects)
        if decision.changed:
            after = decision.state
            directory = decision.directory
            capacity.extend(decision.capacity)
    # The due deadline was planned (or it would be stale) and is not planned any more
    # (the ladder now records its rung), so the diff removes it.
    remove, add = diff_plans(
        plan(case, current, policy_sla), plan(after, escalation.state, policy_sla)
    )
    return Step(
        case=after if after is not case else None,
        ladder=escalation.state,
        effects=tuple(effects),
        capacity=tuple(capacity),
        add=add,
        remove=_late_removals(remove, add),
        decisions=tuple(decisions),
        outcome=Outcome.ESCALATED,
    )


def _expire(
    case: CaseState,
    ladder: EscalationState | None,
    directory: Directory,
    *,
    now: datetime,
    policy: RoutingPolicy,
    sla: SlaPolicy,
) -> Step:
    """A closed case's retention period ran out: erase the survivor, drop what it planned.

    The ladder state is left alone (retention is no rung); the erased case
    plans nothing, so the diff removes the due deadline with everything else.
    """
    current = ladder if ladder is not None else EscalationState.new(case.survivor_id)
    decision = expire(case, directory, now=now, policy=policy)
    remove, add = diff_plans(plan(case, current, sla), plan(decision.state, current, sla))
    return Step(
        case=decision.state if decision.changed else None,
        ladder=None,
        effects=decision.effects,
        capacity=decision.capacity,
        add=add,
        remove=_late_removals(remove, add),
        decisions=(decision,),
        outcome=Outcome.ERASED,
    )

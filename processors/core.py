"""The one entry point the Faust binding calls per survivor event: :func:`decide`.

``decide`` is deterministic and side-effect free: the same case state,
directory, event, metadata, instant and policy always give the same
:class:`~processors.effects.Decision`. That is what makes at-least-once
delivery safe (a redelivered event is recognised by its CloudEvents source
and id and changes nothing) and what lets a status view be checked against
an independent replay of the same events.

Pass ``now = event.occurred_at`` (the CloudEvents ``time``) rather than the
wall clock: consent expiry and offer deadlines then depend on the event
stream only, and a replay reproduces every decision exactly.

Survivor-first rules decided here:

* A ``referral.requested`` before ``survivor.identified``, or without active
  consent for its category, is accepted and kept **on hold**, nothing is
  offered and nothing shared; it is routed as soon as identification and
  consent are both present (``survivor.identified`` / ``consent.granted``
  resume it). It is not refused: the agency's request is a fact worth
  keeping, and refusing would force it to re-send after consent.
* ``consent.withdrawn`` cancels every open referral of the affected
  categories (or crossing borders, when that is withdrawn) that the
  remaining consents no longer permit; the provider holding the offer gets a
  ``referral.cancelled`` and the place is released.
* Consent expiry is checked at every routing decision; an offer already
  made is not recalled when its consent merely lapses.
* A referral no provider fits becomes ``unroutable`` and escalates: level 3
  with reason ``CHILD_PROTECTION`` for a child (minor, unknown age, or a
  request for a child-specialised service), level 3 for an emergency or a
  critical risk, level 2 (the case coordinator) otherwise; always one rung
  above any the referral already reached, and no new event once it is at 3.
* A rung-1 timeout for an offer that is no longer open (the provider
  answered, or the referral moved on, before the timeout arrived) is only
  audited: a race between the escalation engine and the provider, not an
  error to dead-letter.
* Who sent an input is read from its CloudEvents source, which only the
  platform's components can set (:mod:`processors.senders`): a survivor
  belongs to the first agency that published about them, and every other
  agency's events about that survivor are refused (``survivor.not-owned``);
  provider answers count only from the provider they name, delivery reports
  and escalations only from the platform (``sender.not-allowed``).
* ``referral.undelivered`` (the webhook connector gave up): an offer its
  provider never received is treated like a missed acknowledgement (the
  next provider is offered at once) and climbs the ladder
  (``DELIVERY_FAILED``: rung 1 for the re-offer, then an alert above the rung
  the referral reached); a cancellation that never arrived alerts the case
  coordinator (or the next rung up), unless that provider never received the
  offer either. The status view and the ladder see the rungs like any other.
* An erasure (asked by the owner, or by the platform through :func:`expire`
  when a closed case's retention period ran out) cancels the open
  referrals and tells every provider any referral was ever offered to,
  once per referral, to erase; only ids, codes and times stay.
"""

from __future__ import annotations

from datetime import datetime
from uuid import uuid5

from processors.case import CaseState
from processors.directory import Directory
from processors.effects import AuditAction, Decision
from processors.exceptions import ProcessorsError, SurvivorMismatchError, UnsupportedEventError
from processors.handlers import HANDLERS, erase
from processors.meta import EFFECT_ID_NAMESPACE, EventMeta
from processors.policy import DEFAULT_POLICY, RoutingPolicy
from processors.senders import SenderKind, erased, owner_of, refusal, sender_of
from processors.work import Work
from schemas.models import SurvivorErasureRequested, SurvivorEvent
from schemas.types import Actor, utc_millis

__all__ = ["RETENTION_REASON", "RETENTION_SOURCE", "EventMeta", "decide", "expire"]

RETENTION_SOURCE = "/safepassage/retention"
"""CloudEvents source of the erasure a retention period asks for (see :func:`expire`)."""
RETENTION_REASON = "retention.elapsed"
"""Reason of the ``erased`` audit record of such an erasure."""
PLATFORM_AGENCY = "safepassage"
"""Stands for the agency in the erasure record of a case that names none (see :func:`expire`)."""


def decide(
    case: CaseState | None,
    directory: Directory,
    event: SurvivorEvent,
    meta: EventMeta,
    *,
    now: datetime,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> Decision:
    """Apply one survivor event to that survivor's case; say what to store and publish.

    ``case`` is None for a survivor without state yet. Events handled: every
    agency event of the intake topic, every provider answer, and
    ``referral.escalated`` from the escalation engine (rung 1 with
    ``DEADLINE_MISSED`` re-routes like a decline; others are recorded) and
    ``referral.undelivered`` from the webhook connector.
    ``referral.offered`` is refused (it is the router's own output).

    Raises :class:`UnsupportedEventError` for a directory event (use
    :func:`~processors.directory.apply_directory`) and
    :class:`SurvivorMismatchError` when ``case`` is another survivor's.
    """
    handler = HANDLERS.get(type(event))
    if handler is None or not isinstance(event, SurvivorEvent):
        raise UnsupportedEventError(f"decide does not handle {type(event).__name__}")
    if now.tzinfo is None:
        raise ProcessorsError("now must be timezone-aware")
    state = case if case is not None else CaseState.new(event.survivor_id)
    if state.survivor_id != event.survivor_id:
        raise SurvivorMismatchError("the event belongs to another survivor than the case state")
    key = meta.key
    if key in state.applied:
        return Decision(state=state, directory=directory, duplicate=True)
    work = Work(state, directory, event=event, meta=meta, now=utc_millis(now), policy=policy)
    sender = sender_of(meta.source)
    refused = erased(state) or refusal(state, event, sender, work.now)
    rejection = work.reject(*refused) if refused is not None else handler(work, event)
    if rejection is not None:
        audit = work.record(
            AuditAction.REJECTED,
            referral_id=rejection.referral_id,
            reasons=(rejection.code.value,),
        )
        return Decision(state=state, directory=directory, effects=(rejection, audit))
    applied = (*state.applied, key)[-policy.idempotency_window :]
    update: dict[str, object] = {"applied": applied, "updated_at": work.now}
    if sender.kind is SenderKind.AGENCY and work.case.owner is None:
        # The first agency to publish about the survivor (or, for a state from before
        # owners were recorded, the agency that identified them).
        update["owner"] = owner_of(work.case) or sender.id
    new_state = work.case.model_copy(update=update)
    return Decision(
        state=new_state,
        directory=work.directory,
        capacity=tuple(work.capacity),
        effects=tuple(work.effects),
        changed=True,
    )


def expire(
    case: CaseState,
    directory: Directory,
    *,
    now: datetime,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> Decision:
    """Erase a closed case whose retention period ran out, as an erasure request would.

    Nobody sends an event for it: the engine calls this when the case's
    retention deadline is due and still planned (:func:`processors.engine.on_due`).
    So it bypasses :func:`decide`'s sender checks (an erasure request is the
    owning agency's alone) and records the erasure as a request of the
    platform's on the owner's behalf: the audit names ``survivor.erasure_requested``
    with the reason :data:`RETENTION_REASON`, the input id is stable per survivor
    (:data:`RETENTION_SOURCE`), and the providers' notices name the system as
    the canceller. The effects are otherwise exactly an erasure request's, so
    the binding shreds the key and tombstones the status the same way.

    Unchanged for a survivor erased already (a second erasure would tell the
    providers twice). :class:`ProcessorsError` for a case that is not closed:
    retention runs from the closure only.
    """
    if now.tzinfo is None:
        raise ProcessorsError("now must be timezone-aware")
    if case.retained_since is None:
        raise ProcessorsError("only a closed case has a retention period to expire")
    if case.erased_at is not None:
        return Decision(state=case, directory=directory)
    at = utc_millis(now)
    request = SurvivorErasureRequested(
        survivor_id=case.survivor_id,
        occurred_at=at,
        # The owner's retention period: recorded as theirs (a state from before owners
        # were recorded, with no profile either, names the platform instead).
        agency_id=owner_of(case) or PLATFORM_AGENCY,
    )
    meta = EventMeta(
        source=RETENTION_SOURCE,
        id=str(uuid5(EFFECT_ID_NAMESPACE, f"{RETENTION_SOURCE}\x00{case.survivor_id}")),
    )
    work = Work(case, directory, event=request, meta=meta, now=at, policy=policy)
    erase(work, RETENTION_REASON, Actor.SYSTEM)
    applied = (*case.applied, meta.key)[-policy.idempotency_window :]
    return Decision(
        state=work.case.model_copy(update={"applied": applied, "updated_at": at}),
        directory=work.directory,
        capacity=tuple(work.capacity),
        effects=tuple(work.effects),
        changed=True,
    )

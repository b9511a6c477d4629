"""What a decision asks the outside world to do: publish, audit, dead-letter.

The core never performs I/O; it returns effects, in order, and the Faust
binding carries them out:

* :class:`Publish`: an event of :mod:`schemas.models` (``referral.offered``
  and forwarded ``referral.cancelled`` go to the provider's category topic,
  ``referral.escalated`` to the escalations topic) with a *deterministic*
  CloudEvents id, so that re-running the same input after a crash publishes
  the same ids and consumers can drop the copies;
* :class:`AuditRecord`: one per routing decision, lifecycle move or
  refusal, for ``safepassage.audit.v1``;
* :class:`Rejection`: the input is refused (illegal transition, unknown
  referral, ...); the binding dead-letters the original record with
  :attr:`Rejection.code` and :attr:`Rejection.message`.

Neither audit records nor rejections carry personal data: ids (random
UUIDs), codes, statuses and scores only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from processors.case import CaseState
from processors.directory import CapacityChange, Directory
from processors.lifecycle import ReferralStatus
from processors.routing import Candidate, Exclusion
from schemas.models import Event
from schemas.types import Attempt, Identifier, ReasonCode, UtcDatetime

__all__ = [
    "AuditAction",
    "AuditRecord",
    "Decision",
    "Effect",
    "Effects",
    "Publish",
    "Rejection",
    "RejectionCode",
]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuditAction(StrEnum):
    """What kind of decision an audit record describes."""

    OFFERED = "offered"
    HELD = "held"
    UNROUTABLE = "unroutable"
    MOVED = "moved"
    """A provider answer or a cancellation moved the referral."""
    NOTED = "noted"
    """An escalation was recorded without a status change."""
    SHARED = "shared"
    """The owning agency shared the case with the agency the record names."""
    UNSHARED = "unshared"
    """A sharing with the agency the record names ended (the reason says why)."""
    ERASED = "erased"
    """The survivor's data was erased: key shredded, status tombstoned, providers told."""
    REJECTED = "rejected"


class RejectionCode(StrEnum):
    """Why an input was refused; the dead-letter reason."""

    REFERRAL_UNKNOWN = "referral.unknown"
    REFERRAL_DUPLICATE = "referral.duplicate"
    TRANSITION_ILLEGAL = "transition.illegal"
    ANSWER_NOT_CURRENT = "answer.not-current"
    CASE_CLOSED = "case.closed"
    CATEGORY_UNKNOWN = "category.unknown"
    CONSENT_DUPLICATE = "consent.duplicate"
    CONSENT_WITHDRAWN_EARLIER = "consent.withdrawn-earlier"
    EVENT_UNEXPECTED = "event.unexpected"
    PROVIDER_NOT_OFFERED = "provider.not-offered"
    SENDER_NOT_ALLOWED = "sender.not-allowed"
    """The source names no sender that may send this event (or not the one its data names)."""
    SURVIVOR_NOT_OWNED = "survivor.not-owned"
    """The survivor belongs to another agency (the one that first published about them)."""
    CONSENT_NOT_ACTIVE = "consent.not-active"
    """``case.shared`` names a consent grant the survivor does not hold now."""
    SHARE_UNKNOWN = "share.unknown"
    """``case.unshared`` names an agency the case is not shared with."""
    SURVIVOR_ERASED = "survivor.erased"
    """The survivor's data was erased: nothing about them is applied any more."""


class AuditRecord(_Value):
    """Why the router did what it did, for one referral (or one refused input)."""

    survivor_id: UUID
    referral_id: UUID | None = None
    at: UtcDatetime
    input_type: str
    """CloudEvents type of the input event."""
    input_id: str
    """CloudEvents id of the input event."""
    action: AuditAction
    from_status: ReferralStatus | None = None
    to_status: ReferralStatus | None = None
    provider_id: UUID | None = None
    attempt: Attempt | None = None
    reasons: tuple[ReasonCode, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    """The best-ranked candidates (at most ``RoutingPolicy.audit_candidates``), best first."""
    exclusions: tuple[Exclusion, ...] = ()
    agency_id: Identifier | None = None
    """The agency a sharing names (``shared`` and ``unshared`` records)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the audit topic."""
        return self.model_dump(mode="json")


class Rejection(_Value):
    """The input was refused and must be dead-lettered; the state is untouched."""

    code: RejectionCode
    message: str
    """Names event types, statuses and ids only; safe for headers and logs."""
    event_type: str
    referral_id: UUID | None = None


@dataclass(frozen=True)
class Publish:
    """An event to publish, with the CloudEvents id to publish it under."""

    event: Event
    event_id: str


Effect = Publish | AuditRecord | Rejection
"""Anything a decision asks the binding to do, in order."""


class Effects:
    """Views of an ``effects`` tuple by kind, for a :class:`Decision` and an engine ``Step``."""

    effects: tuple[Effect, ...]

    @property
    def published(self) -> tuple[Publish, ...]:
        """Events to publish, in order."""
        return tuple(e for e in self.effects if isinstance(e, Publish))

    @property
    def audits(self) -> tuple[AuditRecord, ...]:
        """Audit records, in order."""
        return tuple(e for e in self.effects if isinstance(e, AuditRecord))

    @property
    def rejection(self) -> Rejection | None:
        """The router's refusal of the input, if it refused it (at most one per decision)."""
        return next((e for e in self.effects if isinstance(e, Rejection)), None)


@dataclass(frozen=True)
class Decision(Effects):
    """The outcome of applying one event to one survivor's case.

    ``state`` is what the survivor's table entry should become and
    ``changed`` whether to write it (False for a duplicate or a refusal:
    for a survivor with no entry yet, nothing must be stored, so an unknown
    survivor stays unknown). ``directory`` is the input directory with
    ``capacity`` applied, for a binding that keeps the ledger with it.
    """

    state: CaseState
    directory: Directory
    capacity: tuple[CapacityChange, ...] = ()
    effects: tuple[Effect, ...] = ()
    changed: bool = False
    duplicate: bool = False

    @property
    def events(self) -> tuple[Event, ...]:
        """The events of :attr:`published`, without their ids."""
        return tuple(p.event for p in self.published)

"""The accumulator one ``decide`` call builds its decision in, and the one way to move a referral.

Every status change goes through :func:`moved`, which consults the
transition table; a move the table does not allow is a bug of the core and
raises, so the table really is the single source of truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

from processors.case import CaseState, ReferralState
from processors.directory import CapacityAction, CapacityChange, Directory, apply_capacity
from processors.effects import AuditAction, AuditRecord, Effect, Publish, Rejection, RejectionCode
from processors.exceptions import ProcessorsError
from processors.lifecycle import ReferralStatus, Trigger, next_status
from processors.meta import EventMeta
from processors.policy import RoutingPolicy
from processors.routing import Match
from schemas.models import Event, SurvivorEvent

__all__ = ["NO_OFFER", "Work", "moved"]


class Work:
    """The decision being built: a working state plus the effects so far.

    Internal to the core and short-lived (one per ``decide`` call), so it may
    be mutable; everything it hands out is frozen.
    """

    def __init__(
        self,
        case: CaseState,
        directory: Directory,
        *,
        event: SurvivorEvent,
        meta: EventMeta,
        now: datetime,
        policy: RoutingPolicy,
    ) -> None:
        self.case = case
        self.directory = directory
        self.event = event
        self.meta = meta
        self.now = now
        self.policy = policy
        self.capacity: list[CapacityChange] = []
        self.effects: list[Effect] = []
        self._published = 0

    def store(self, referral: ReferralState) -> None:
        self.case = self.case.with_referral(referral)

    def publish(self, event: Event) -> None:
        self.effects.append(Publish(event=event, event_id=self.meta.effect_id(self._published)))
        self._published += 1

    def change_capacity(self, action: CapacityAction, referral: ReferralState) -> None:
        if referral.provider_id is None:
            raise ProcessorsError("capacity change for a referral without a provider")
        change = CapacityChange(
            action=action,
            provider_id=referral.provider_id,
            category=referral.category,
            referral_id=referral.referral_id,
        )
        self.capacity.append(change)
        self.directory = apply_capacity(self.directory, (change,))

    def record(
        self,
        action: AuditAction,
        referral: ReferralState | None = None,
        *,
        referral_id: UUID | None = None,
        before: ReferralStatus | None = None,
        reasons: tuple[str, ...] = (),
        result: Match | None = None,
        agency_id: str | None = None,
    ) -> AuditRecord:
        audit = AuditRecord(
            survivor_id=self.case.survivor_id,
            referral_id=referral.referral_id if referral is not None else referral_id,
            at=self.now,
            input_type=self.event.event_type,
            input_id=self.meta.id,
            action=action,
            from_status=before,
            to_status=referral.status if referral is not None else None,
            provider_id=referral.provider_id if referral is not None else None,
            attempt=referral.attempt or None if referral is not None else None,
            reasons=reasons,
            candidates=result.candidates[: self.policy.audit_candidates] if result else (),
            exclusions=result.exclusions if result else (),
            agency_id=agency_id,
        )
        self.effects.append(audit)
        return audit

    def note(self, referral: ReferralState, *reasons: str) -> AuditRecord:
        """Audit ``referral`` as it stands (``noted``: looked at, not moved), and why."""
        return self.record(AuditAction.NOTED, referral, before=referral.status, reasons=reasons)

    def reject(
        self, code: RejectionCode, message: str, referral_id: UUID | None = None
    ) -> Rejection:
        return Rejection(
            code=code,
            message=message,
            event_type=self.event.event_type,
            referral_id=referral_id,
        )


def moved(
    referral: ReferralState, trigger: Trigger, now: datetime, **changes: Any
) -> ReferralState:
    """The referral after a move the table allows; any other move is a bug of the core.

    Every move stamps ``status_since`` (the SLA clocks' anchor) as well as
    ``updated_at``, so no caller can forget one of them.
    """
    target = next_status(referral.status, trigger)
    if target is None:
        raise ProcessorsError(f"internal move {referral.status}+{trigger} is not in the table")
    stamps = {"status": target, "updated_at": now, "status_since": now}
    return referral.model_copy(update={**stamps, **changes})


NO_OFFER: Mapping[str, Any] = MappingProxyType(
    {"provider_id": None, "provider_jurisdiction": None, "cross_border": False, "deadline": None}
)
"""Fields a referral loses when it no longer holds an offer."""

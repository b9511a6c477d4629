"""Who sent an input, and whether that sender may send it about this survivor.

The sender is read from the CloudEvents ``source``, and the source can be
trusted because only the platform's own components may write the topics the
router reads (the broker's ACL matrix): the intake writes agencies' and
providers' events under the source it checked against the caller's key
(``/agencies/<agency_id>``, ``/providers/<provider_id>``, or a path below),
the webhook connector and the escalation engine under ``/safepassage/...``.
A field the sender fills in (``agency_id`` or ``provider_id`` in the data)
is only checked against it, never believed on its own.

Ownership: a survivor belongs to the agency that first published about
them (their ``survivor.identified``, or a request held before it); only
that agency may publish further events about the survivor, unless it shared
the case (``case.shared``, bound to one of the survivor's consent grants).
An agency the case is shared with may, while that grant holds, do what
working on the case needs and nothing that widens it: assess risk, request
referrals, cancel the referrals it requested, withdraw consent (a survivor
may say so to any agency they deal with) and end its own sharing. Only the
owner identifies, grants consent, shares, closes and asks for erasure. Provider answers
count only from the provider they name, which the handlers then check
against the offer. Refusals carry a reason code, so they are dead-lettered
and audited like every other refusal.

The directory (``providers.v1``) is written by the intake for directory
administrators (``/directory-admins/<name>``) and for a provider reporting
its own capacity (``/providers/<its id>``), or by a platform component
(``/safepassage/...``): :func:`directory_refusal`. An agency never writes
it, and a provider never registers or describes itself, nor reports another's
places: a wrong directory entry would send survivors to the wrong door.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from processors.case import CaseState
from processors.effects import RejectionCode
from schemas.models import (
    CaseClosed,
    CaseShared,
    CaseUnshared,
    ConsentGranted,
    ConsentWithdrawn,
    ProviderCapacity,
    ProviderEvent,
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralDeclined,
    ReferralEscalated,
    ReferralFailed,
    ReferralRequested,
    ReferralStarted,
    ReferralUndelivered,
    RiskAssessed,
    SurvivorErasureRequested,
    SurvivorEvent,
    SurvivorIdentified,
)

__all__ = [
    "Refusal",
    "Sender",
    "SenderKind",
    "directory_refusal",
    "erased",
    "owner_of",
    "refusal",
    "sender_of",
]

AGENCY_EVENTS = (
    SurvivorIdentified,
    ConsentGranted,
    ConsentWithdrawn,
    RiskAssessed,
    ReferralRequested,
    ReferralCancelled,
    CaseClosed,
    CaseShared,
    CaseUnshared,
    SurvivorErasureRequested,
)
SHARED_AGENCY_EVENTS = (
    RiskAssessed,
    ReferralRequested,
    ReferralCancelled,
    ConsentWithdrawn,
    CaseUnshared,
)
"""What an agency the case is shared with may send; the rest is the owner's alone."""
PROVIDER_ANSWERS = (
    ReferralAccepted,
    ReferralDeclined,
    ReferralStarted,
    ReferralCompleted,
    ReferralFailed,
)
PLATFORM_EVENTS = (ReferralEscalated, ReferralUndelivered)


class SenderKind(StrEnum):
    """What kind of party a source names."""

    AGENCY = "agency"
    PROVIDER = "provider"
    PLATFORM = "platform"
    DIRECTORY = "directory"
    """A directory administrator, on whose behalf the intake wrote."""
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Sender:
    """The sender a source names: its kind and its agency, provider or component id."""

    kind: SenderKind
    id: str | None = None


_ROOTS = {
    "/agencies/": SenderKind.AGENCY,
    "/providers/": SenderKind.PROVIDER,
    "/safepassage/": SenderKind.PLATFORM,
    "/directory-admins/": SenderKind.DIRECTORY,
}


def sender_of(source: str) -> Sender:
    """The sender a source names: ``/agencies/<id>``, ``/providers/<id>``, and so on.

    ``/safepassage/<component>`` is the platform, ``/directory-admins/<name>``
    a directory administrator (whose changes the intake publishes).

    The intake accepts exactly these sources, so everything after the root is
    the id (an agency id may itself contain ``/``).
    """
    for root, kind in _ROOTS.items():
        if source.startswith(root) and len(source) > len(root):
            return Sender(kind, source[len(root) :])
    return Sender(SenderKind.UNKNOWN)


def owner_of(case: CaseState) -> str | None:
    """The agency the survivor belongs to (states from before owners: the identifying one)."""
    if case.owner is not None:
        return case.owner
    return case.profile.agency_id if case.profile is not None else None


Refusal = tuple[RejectionCode, str]
"""A reason code and a message for the dead letter (ids and kinds only, no personal data)."""


def refusal(case: CaseState, event: SurvivorEvent, sender: Sender, now: datetime) -> Refusal | None:
    """Why ``sender`` may not send ``event`` about this survivor at ``now``; None when it may."""
    not_allowed = RejectionCode.SENDER_NOT_ALLOWED
    if isinstance(event, AGENCY_EVENTS):
        return _agency_refusal(case, event, sender, now)
    if isinstance(event, PROVIDER_ANSWERS):
        if sender.kind is not SenderKind.PROVIDER or sender.id != str(event.provider_id):
            return not_allowed, "a provider answers only for itself (the source names another)"
        return None
    if isinstance(event, PLATFORM_EVENTS) and sender.kind is not SenderKind.PLATFORM:
        return not_allowed, f"{event.event_type} comes from the platform only"
    return None


def _agency_refusal(
    case: CaseState, event: SurvivorEvent, sender: Sender, now: datetime
) -> Refusal | None:
    not_allowed = RejectionCode.SENDER_NOT_ALLOWED
    if sender.kind is not SenderKind.AGENCY or sender.id is None:
        return not_allowed, f"only an agency sends {event.event_type} (sender: {sender.kind})"
    claimed = getattr(event, "agency_id", None)
    if claimed is not None and claimed != sender.id:
        return not_allowed, "the agency_id of the data is not the sending agency"
    owner = owner_of(case)
    if owner is None or sender.id == owner:
        return None
    if not case.shared_with(sender.id, now):
        return RejectionCode.SURVIVOR_NOT_OWNED, "this survivor belongs to another agency"
    return _sharing_refusal(case, event, sender.id)


def _sharing_refusal(case: CaseState, event: SurvivorEvent, agency_id: str) -> Refusal | None:
    """What an agency the case is shared with may not do (see the module)."""
    not_allowed = RejectionCode.SENDER_NOT_ALLOWED
    if not isinstance(event, SHARED_AGENCY_EVENTS):
        return not_allowed, f"{event.event_type} comes from the agency that owns the case only"
    if isinstance(event, ReferralCancelled):
        referral = case.referrals.get(event.referral_id)
        if referral is not None and referral.agency_id != agency_id:
            return not_allowed, "an agency the case is shared with cancels only its own referrals"
    if isinstance(event, CaseUnshared) and event.shared_with != agency_id:
        return not_allowed, "an agency the case is shared with ends only its own sharing"
    if isinstance(event, ConsentWithdrawn) and event.erasure_requested:
        return not_allowed, "erasure is the owning agency's to ask (it cannot be undone)"
    return None


def erased(case: CaseState) -> Refusal | None:
    """Why nothing is applied to an erased survivor (any event, from anyone); None otherwise."""
    if case.erased_at is None:
        return None
    return RejectionCode.SURVIVOR_ERASED, "this survivor's data was erased; nothing is applied"


def directory_refusal(event: ProviderEvent, sender: Sender) -> Refusal | None:
    """Why ``sender`` may not write this directory event; None when it may (see the module)."""
    if sender.kind in (SenderKind.DIRECTORY, SenderKind.PLATFORM):
        return None
    if (
        isinstance(event, ProviderCapacity)
        and sender.kind is SenderKind.PROVIDER
        and sender.id == str(event.provider_id)
    ):
        return None
    if isinstance(event, ProviderCapacity):
        why = "a provider reports only its own capacity; administrators any"
    else:
        why = f"{event.event_type} comes from a directory administrator or the platform only"
    return RejectionCode.SENDER_NOT_ALLOWED, f"{why} (sender: {sender.kind})"

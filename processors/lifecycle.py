"""The referral lifecycle as data: statuses, triggers and the transition table.

Aligned with FHIR R4 ``Task.status`` and the Gravity Project's closed-loop
referral (requested, offered ≈ received/ready, accepted, in-progress,
on-hold, completed, failed, rejected ≈ declined, cancelled) plus
``unroutable`` for a referral no provider fits.

The table :data:`TRANSITIONS` is the single source of truth: the case core
asks it before every move, and the unit tests walk every (status, trigger)
pair of it. A pair that is not in the table is an illegal transition and is
refused, never applied.

Two statuses are *transient*: a decision never ends in them.

* ``requested`` is routed at once, ending ``offered``, ``on_hold`` (waiting
  for identification or consent) or ``unroutable``;
* ``declined`` (a provider said no, or let the deadline pass) immediately
  retries with the next provider.

``on_hold`` is used for a referral that cannot be routed *yet* because the
survivor is not identified or has not consented to its category: survivor
first, nothing is shared until consent exists. The event contract has no
provider "hold"/"resume" event, so an accepted service cannot be put on hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "EXTERNAL_TRIGGERS",
    "HOLDING",
    "OPEN",
    "PROVIDER_TRIGGERS",
    "TERMINAL",
    "TRANSIENT",
    "TRANSITIONS",
    "ReferralStatus",
    "Trigger",
    "next_status",
]


class ReferralStatus(StrEnum):
    """Where a referral stands (values are FHIR-style lower-case codes)."""

    REQUESTED = "requested"
    ON_HOLD = "on_hold"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DECLINED = "declined"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNROUTABLE = "unroutable"


class Trigger(StrEnum):
    """What moves a referral: a router decision or an incoming event."""

    OFFER = "offer"
    """Router: a fitting provider was found and offered the referral."""
    HOLD = "hold"
    """Router: the survivor is not identified or has no consent for the category yet."""
    NO_CANDIDATE = "no_candidate"
    """Router: no provider fits (or every fitting one was tried)."""
    RESUME = "resume"
    """Identification or consent arrived: route a held referral again."""
    RETRY = "retry"
    """After a decline or a timeout: on to the next provider."""
    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    """An agency cancelled, consent was withdrawn or the case was closed."""
    TIMEOUT = "timeout"
    """The provider missed its deadline (ladder rung 1), or never received the offer
    (``referral.undelivered``): on to the next provider either way."""


_S = ReferralStatus
_T = Trigger

TRANSITIONS: Mapping[tuple[ReferralStatus, Trigger], ReferralStatus] = MappingProxyType(
    {
        (_S.REQUESTED, _T.OFFER): _S.OFFERED,
        (_S.REQUESTED, _T.HOLD): _S.ON_HOLD,
        (_S.REQUESTED, _T.NO_CANDIDATE): _S.UNROUTABLE,
        (_S.REQUESTED, _T.CANCEL): _S.CANCELLED,
        (_S.ON_HOLD, _T.RESUME): _S.REQUESTED,
        (_S.ON_HOLD, _T.CANCEL): _S.CANCELLED,
        (_S.OFFERED, _T.ACCEPT): _S.ACCEPTED,
        (_S.OFFERED, _T.DECLINE): _S.DECLINED,
        (_S.OFFERED, _T.TIMEOUT): _S.DECLINED,
        (_S.OFFERED, _T.CANCEL): _S.CANCELLED,
        (_S.DECLINED, _T.RETRY): _S.REQUESTED,
        (_S.ACCEPTED, _T.START): _S.IN_PROGRESS,
        (_S.ACCEPTED, _T.FAIL): _S.FAILED,
        (_S.ACCEPTED, _T.CANCEL): _S.CANCELLED,
        (_S.IN_PROGRESS, _T.COMPLETE): _S.COMPLETED,
        (_S.IN_PROGRESS, _T.FAIL): _S.FAILED,
        (_S.IN_PROGRESS, _T.CANCEL): _S.CANCELLED,
        (_S.UNROUTABLE, _T.CANCEL): _S.CANCELLED,
    }
)
"""(status, trigger) → next status; every pair not listed is illegal."""

HOLDING = frozenset({_S.OFFERED, _S.ACCEPTED, _S.IN_PROGRESS})
"""Statuses in which the referral holds a place at its provider (capacity reserved)."""

OPEN = frozenset({_S.REQUESTED, _S.ON_HOLD, _S.DECLINED, *HOLDING})
"""Statuses that a cancellation, a consent withdrawal or a case closure still affects."""

TERMINAL = frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.UNROUTABLE})
"""Statuses no provider answer can leave (an agency may still cancel an unroutable one)."""

TRANSIENT = frozenset({_S.REQUESTED, _S.DECLINED})
"""Statuses a decision passes through but never stores."""

PROVIDER_TRIGGERS = frozenset({_T.ACCEPT, _T.DECLINE, _T.START, _T.COMPLETE, _T.FAIL, _T.TIMEOUT})
"""Triggers that must name the current provider and attempt to be accepted."""

EXTERNAL_TRIGGERS = (
    _T.ACCEPT,
    _T.DECLINE,
    _T.START,
    _T.COMPLETE,
    _T.FAIL,
    _T.CANCEL,
    _T.TIMEOUT,
)
"""Triggers that arrive as events (the rest are the router's own moves)."""


def next_status(status: ReferralStatus, trigger: Trigger) -> ReferralStatus | None:
    """The status ``trigger`` leads to from ``status``; None when the move is illegal."""
    return TRANSITIONS.get((status, trigger))

"""Typed models of every event: what domain code handles instead of raw dicts.

One frozen pydantic model per ``.avsc``; the class name is the Avro record
name and :attr:`Event.event_type` the CloudEvents type. ``tests/unit/
test_models.py`` keeps the two in step: field names, nullability, enum
symbols and logical types.

:func:`to_avro` and :func:`from_avro` convert to and from the plain values
fastavro reads and writes; they are the only place where an event is a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator

from schemas import AVRO_DIR, NAMESPACE
from schemas.exceptions import UnknownEventTypeError
from schemas.types import (
    Actor,
    AgeBand,
    AgeGroup,
    Attempt,
    CancelReason,
    CaseOutcome,
    Count,
    DeclineReason,
    DeliveryFailure,
    EscalationLevel,
    EscalationReason,
    FailureReason,
    Gender,
    HsdsDocument,
    Identifier,
    ImmediateNeed,
    Jurisdiction,
    LanguageCode,
    OrganizationName,
    ReasonCode,
    ReferralOutcome,
    Requirements,
    RiskLevel,
    Score,
    Sealed,
    ServiceCategory,
    UndeliveredEvent,
    Urgency,
    UtcDatetime,
)

__all__ = [
    "MODELS",
    "CaseClosed",
    "CaseShared",
    "CaseUnshared",
    "ConsentGranted",
    "ConsentWithdrawn",
    "Event",
    "ProviderCapacity",
    "ProviderEvent",
    "ProviderRegistered",
    "ProviderUpdated",
    "ReferralAccepted",
    "ReferralCancelled",
    "ReferralCompleted",
    "ReferralDeclined",
    "ReferralEscalated",
    "ReferralFailed",
    "ReferralOffered",
    "ReferralRequested",
    "ReferralStarted",
    "ReferralUndelivered",
    "RiskAssessed",
    "SurvivorErasureRequested",
    "SurvivorEvent",
    "SurvivorIdentified",
    "from_avro",
    "model_for",
    "to_avro",
]


class Event(BaseModel):
    """Base of every event: immutable, no unknown fields, aware UTC times.

    ``extra="forbid"`` makes a misspelt field an error instead of a silently
    dropped value; ``frozen`` lets events be shared between handlers safely.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    """CloudEvents ``type`` attribute and stem of the ``.avsc`` file name."""

    occurred_at: UtcDatetime

    @classmethod
    def avro_name(cls) -> str:
        """Full name of the Avro record (also the schema-registry subject)."""
        return f"{NAMESPACE}.{cls.__name__}"

    @classmethod
    def avsc_path(cls) -> Path:
        """The current ``.avsc`` of this event type."""
        return AVRO_DIR / f"{cls.event_type}.avsc"

    @property
    def subject(self) -> UUID:
        """CloudEvents ``subject``: the survivor pseudonym, or the provider id."""
        raise NotImplementedError  # pragma: no cover - every concrete event overrides it


class SurvivorEvent(Event):
    """An event about one survivor; the pseudonym is its subject."""

    survivor_id: UUID

    @property
    def subject(self) -> UUID:
        """The survivor pseudonym."""
        return self.survivor_id


class ProviderEvent(Event):
    """A directory event about one provider; the provider id is its subject."""

    provider_id: UUID

    @property
    def subject(self) -> UUID:
        """The provider id."""
        return self.provider_id


# --------------------------------------------------------------------------- agency


class SurvivorIdentified(SurvivorEvent):
    """An agency identified a presumed survivor and issued a pseudonymous id."""

    event_type: ClassVar[str] = "survivor.identified"

    agency_id: Identifier
    jurisdiction: Jurisdiction
    age_group: AgeGroup
    age_band: AgeBand | None = None
    languages: tuple[LanguageCode, ...]
    gender: Gender
    personal_data: Sealed | None = None

    @model_validator(mode="after")
    def _band_fits_group(self) -> SurvivorIdentified:
        """A band contradicting the group would let a child be routed as an adult."""
        if self.age_band is None or self.age_group is AgeGroup.UNKNOWN:
            return self
        band_group = self.age_band.age_group
        if band_group is not AgeGroup.UNKNOWN and band_group is not self.age_group:
            raise ValueError("age_band does not lie in age_group")
        return self


class ConsentGranted(SurvivorEvent):
    """The survivor consented to share the least data needed, within a scope."""

    event_type: ClassVar[str] = "consent.granted"

    consent_id: UUID
    agency_id: Identifier
    categories: tuple[ServiceCategory, ...]
    cross_border_allowed: bool
    jurisdictions: tuple[Jurisdiction, ...]
    expires_at: UtcDatetime | None = None


class ConsentWithdrawn(SurvivorEvent):
    """The survivor withdrew a consent grant, wholly (empty lists) or in part."""

    event_type: ClassVar[str] = "consent.withdrawn"

    consent_id: UUID
    agency_id: Identifier
    categories: tuple[ServiceCategory, ...]
    jurisdictions: tuple[Jurisdiction, ...]
    cross_border_withdrawn: bool
    erasure_requested: bool = False
    """The survivor also asked for their data to be erased (the owner's to ask)."""


class RiskAssessed(SurvivorEvent):
    """An agency assessed the survivor's risk level and immediate needs."""

    event_type: ClassVar[str] = "risk.assessed"

    agency_id: Identifier
    level: RiskLevel
    immediate_needs: tuple[ImmediateNeed, ...]


class ReferralRequested(SurvivorEvent):
    """An agency asks for a service of one category for the survivor."""

    event_type: ClassVar[str] = "referral.requested"

    referral_id: UUID
    agency_id: Identifier
    category: ServiceCategory
    urgency: Urgency
    requirements: Requirements
    notes: Sealed | None = None


class ReferralCancelled(SurvivorEvent):
    """A referral was cancelled (by an agency on intake, forwarded to the provider)."""

    event_type: ClassVar[str] = "referral.cancelled"

    referral_id: UUID
    reason: CancelReason
    cancelled_by: Actor
    provider_id: UUID | None = None
    category: ServiceCategory | None = None


class CaseClosed(SurvivorEvent):
    """The agency closed the survivor's case."""

    event_type: ClassVar[str] = "case.closed"

    agency_id: Identifier
    outcome: CaseOutcome


class SurvivorErasureRequested(SurvivorEvent):
    """The survivor asked for their data to be erased; the owning agency passes it on."""

    event_type: ClassVar[str] = "survivor.erasure_requested"

    agency_id: Identifier


class CaseShared(SurvivorEvent):
    """The owning agency lets a second agency act on the case, within one consent grant."""

    event_type: ClassVar[str] = "case.shared"

    agency_id: Identifier
    shared_with: Identifier
    consent_id: UUID

    @model_validator(mode="after")
    def _not_with_itself(self) -> CaseShared:
        if self.shared_with == self.agency_id:
            raise ValueError("shared_with names the sharing agency itself")
        return self


class CaseUnshared(SurvivorEvent):
    """A sharing ends: the owner takes the case back, or the second agency steps back."""

    event_type: ClassVar[str] = "case.unshared"

    agency_id: Identifier
    shared_with: Identifier


# --------------------------------------------------------------------------- router


class ReferralOffered(SurvivorEvent):
    """The router offered a referral to one provider, with a deadline to answer."""

    event_type: ClassVar[str] = "referral.offered"

    referral_id: UUID
    provider_id: UUID
    category: ServiceCategory
    urgency: Urgency
    score: Score
    reasons: tuple[ReasonCode, ...]
    attempt: Attempt
    deadline: UtcDatetime


class ReferralEscalated(SurvivorEvent):
    """A deadline passed or a referral could not be routed."""

    event_type: ClassVar[str] = "referral.escalated"

    referral_id: UUID | None = None
    level: EscalationLevel
    reason: EscalationReason
    missed_deadline: UtcDatetime | None = None
    provider_id: UUID | None = None
    category: ServiceCategory | None = None
    jurisdiction: Jurisdiction


# --------------------------------------------------------------------------- delivery


class ReferralUndelivered(SurvivorEvent):
    """The webhook connector gave up delivering an offer or a cancellation to its provider."""

    event_type: ClassVar[str] = "referral.undelivered"

    referral_id: UUID
    provider_id: UUID
    undelivered: UndeliveredEvent
    attempt: Attempt | None = None
    reason: DeliveryFailure


# --------------------------------------------------------------------------- provider answers


class _ProviderAnswer(SurvivorEvent):
    """What every answer to an offer names: the referral, the provider, the attempt."""

    referral_id: UUID
    provider_id: UUID
    attempt: Attempt


class ReferralAccepted(_ProviderAnswer):
    """The provider accepted the offer."""

    event_type: ClassVar[str] = "referral.accepted"


class ReferralDeclined(_ProviderAnswer):
    """The provider declined the offer; the router tries the next provider."""

    event_type: ClassVar[str] = "referral.declined"

    reason: DeclineReason


class ReferralStarted(_ProviderAnswer):
    """The provider started delivering the service."""

    event_type: ClassVar[str] = "referral.started"


class ReferralCompleted(_ProviderAnswer):
    """The provider finished delivering the service."""

    event_type: ClassVar[str] = "referral.completed"

    outcome: ReferralOutcome


class ReferralFailed(_ProviderAnswer):
    """The provider could not deliver a service it had accepted or started."""

    event_type: ClassVar[str] = "referral.failed"

    reason: FailureReason


# --------------------------------------------------------------------------- directory


class _DirectoryEntry(ProviderEvent):
    """A whole provider directory entry, modelled on Open Referral HSDS."""

    organization_name: OrganizationName
    categories: tuple[ServiceCategory, ...]
    languages: tuple[LanguageCode, ...]
    offers_interpretation: bool
    jurisdictions: tuple[Jurisdiction, ...]
    child_specialised: bool
    gender_specific: Gender | None = None
    accessible: bool
    cross_border: bool
    capacity: Count
    hsds_service: HsdsDocument | None = None
    """The Open Referral HSDS 3.0 service document (JSON text) the entry came from, kept for
    export (``connectors/directory/hsds.py``); the fields above win over what it says."""


class ProviderRegistered(_DirectoryEntry):
    """A provider joined the directory."""

    event_type: ClassVar[str] = "provider.registered"


class ProviderUpdated(_DirectoryEntry):
    """A provider's directory entry was replaced by a new one."""

    event_type: ClassVar[str] = "provider.updated"


class ProviderCapacity(ProviderEvent):
    """A provider reported its places in one category."""

    event_type: ClassVar[str] = "provider.capacity"

    category: ServiceCategory
    total: Count
    available: Count

    @model_validator(mode="after")
    def _available_within_total(self) -> ProviderCapacity:
        """More places free than exist would make routing over-offer."""
        if self.available > self.total:
            raise ValueError("available exceeds total")
        return self


# --------------------------------------------------------------------------- registry

_ALL: tuple[type[Event], ...] = (
    SurvivorIdentified,
    ConsentGranted,
    ConsentWithdrawn,
    RiskAssessed,
    ReferralRequested,
    ReferralOffered,
    ReferralAccepted,
    ReferralDeclined,
    ReferralStarted,
    ReferralCompleted,
    ReferralFailed,
    ReferralCancelled,
    ReferralEscalated,
    ReferralUndelivered,
    ProviderRegistered,
    ProviderUpdated,
    ProviderCapacity,
    CaseClosed,
    CaseShared,
    CaseUnshared,
    SurvivorErasureRequested,
)

MODELS: Mapping[str, type[Event]] = MappingProxyType({m.event_type: m for m in _ALL})
"""Event type → model class, in the order of DESIGN.md's event table."""


def model_for(event_type: str) -> type[Event]:
    """The model class of an event type."""
    try:
        return MODELS[event_type]
    except KeyError:
        raise UnknownEventTypeError(
            f"unknown event type {event_type!r}; known: {', '.join(MODELS)}"
        ) from None


def to_avro(event: BaseModel) -> dict[str, Any]:
    """The event as the plain values fastavro writes (enums as symbols, tuples as lists)."""
    return {name: _plain(getattr(event, name)) for name in type(event).model_fields}


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return to_avro(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def from_avro(event_type: str, data: Mapping[str, Any]) -> Event:
    """Validate a record fastavro read into the model of ``event_type``.

    Raises :class:`pydantic.ValidationError` when the values break a rule
    the Avro schema cannot express (a pattern, a bound, a cross-field rule).
    """
    return model_for(event_type).model_validate(data)

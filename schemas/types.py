"""Building blocks shared by the event models: enums, constrained codes, nested records.

Every enum mirrors an Avro enum of the same name and symbols, and each has an
``UNKNOWN`` member: it is what a reader with an older schema sees for a symbol
added later (the Avro enum ``default``), so domain code must handle it.

The constrained string types exist for privacy as much as for validation: a
field that only accepts a code (``'NL'``, ``'ro'``, ``'agency:nl-police'``)
cannot carry a name, a phone number or a story. Personal data has exactly one
place, :class:`Sealed`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

__all__ = [
    "HSDS_DOCUMENT_MAX_CHARS",
    "INT32_MAX",
    "Actor",
    "AgeBand",
    "AgeGroup",
    "Attempt",
    "CancelReason",
    "CaseOutcome",
    "Count",
    "DeclineReason",
    "DeliveryFailure",
    "EscalationLevel",
    "EscalationReason",
    "FailureReason",
    "Gender",
    "HsdsDocument",
    "Identifier",
    "ImmediateNeed",
    "Jurisdiction",
    "LanguageCode",
    "OrganizationName",
    "ReasonCode",
    "ReferralOutcome",
    "Requirements",
    "RiskLevel",
    "Score",
    "SealAlgorithm",
    "Sealed",
    "ServiceCategory",
    "UndeliveredEvent",
    "Urgency",
    "UtcDatetime",
    "utc_millis",
]

INT32_MAX = 2**31 - 1
"""Largest value of an Avro ``int``; counters above it could not be encoded."""


def utc_millis(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC with millisecond precision.

    Avro's ``timestamp-millis`` keeps milliseconds: truncating on validation
    makes ``decode(encode(event)) == event`` exact. Naive datetimes are
    refused, because guessing their zone would silently move deadlines.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (UTC)")
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("datetime is outside the representable range once in UTC") from exc
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


UtcDatetime = Annotated[datetime, AfterValidator(utc_millis)]
"""An aware datetime, normalised to UTC and truncated to milliseconds."""

Jurisdiction = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")]
"""ISO 3166-1 alpha-2 country code, optionally ``-`` and an ISO 3166-2 subdivision."""

LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
"""ISO 639-1 code where one exists, otherwise ISO 639-3."""

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
"""Identifier of an organisation, role or key: no spaces, so no room for a person's name."""

ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._:=-]{0,63}$")]
"""Machine-readable reason code, e.g. ``language:ro``."""

OrganizationName = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1F\x7F]{1,200}$")]
"""Public name of a provider organisation: 1 to 200 characters, no control characters."""

HSDS_DOCUMENT_MAX_CHARS = 200_000
"""The most an HSDS service document kept in a directory event may hold (its JSON text)."""

HsdsDocument = Annotated[
    str, StringConstraints(pattern=r"^\{[\s\S]*\}$", max_length=HSDS_DOCUMENT_MAX_CHARS)
]
"""An Open Referral HSDS 3.0 service document as JSON text (an object): a public listing."""

Attempt = Annotated[int, Ge(1), Le(INT32_MAX)]
"""1-based number of an offer of one referral."""

Count = Annotated[int, Ge(0), Le(INT32_MAX)]
"""A number of places."""

EscalationLevel = Annotated[int, Ge(1), Le(3)]
"""Rung of the escalation ladder."""

Score = Annotated[float, Ge(0.0), Le(1.0)]
"""Match score from 0.0 to 1.0 (bounds exclude NaN and infinities)."""


class SealAlgorithm(StrEnum):
    """Authenticated encryption scheme of a :class:`Sealed` field."""

    UNKNOWN = "UNKNOWN"
    AES_256_GCM = "AES_256_GCM"
    XCHACHA20_POLY1305 = "XCHACHA20_POLY1305"


class ServiceCategory(StrEnum):
    """Service category; each known one has a referral topic (see :attr:`topic_category`)."""

    UNKNOWN = "UNKNOWN"
    HOUSING = "HOUSING"
    HEALTH = "HEALTH"
    LEGAL_AID = "LEGAL_AID"
    FINANCIAL_SUPPORT = "FINANCIAL_SUPPORT"

    @property
    def topic_category(self) -> str | None:
        """The category's part of its referral topic name (``legal-aid``); None for UNKNOWN."""
        if self is ServiceCategory.UNKNOWN:
            return None
        return self.value.lower().replace("_", "-")


class AgeGroup(StrEnum):
    """Adult or minor; UNKNOWN (age uncertain) is treated as a minor."""

    UNKNOWN = "UNKNOWN"
    ADULT = "ADULT"
    MINOR = "MINOR"


class AgeBand(StrEnum):
    """Coarse age range, inclusive bounds; never an exact age."""

    UNKNOWN = "UNKNOWN"
    UNDER_12 = "UNDER_12"
    FROM_12_TO_15 = "FROM_12_TO_15"
    FROM_16_TO_17 = "FROM_16_TO_17"
    FROM_18_TO_24 = "FROM_18_TO_24"
    FROM_25_TO_34 = "FROM_25_TO_34"
    FROM_35_TO_49 = "FROM_35_TO_49"
    FROM_50_TO_64 = "FROM_50_TO_64"
    FROM_65 = "FROM_65"

    @property
    def age_group(self) -> AgeGroup:
        """The age group the band lies in (UNKNOWN for the UNKNOWN band)."""
        if self is AgeBand.UNKNOWN:
            return AgeGroup.UNKNOWN
        if self in _MINOR_BANDS:
            return AgeGroup.MINOR
        return AgeGroup.ADULT


_MINOR_BANDS = frozenset({AgeBand.UNDER_12, AgeBand.FROM_12_TO_15, AgeBand.FROM_16_TO_17})


class Gender(StrEnum):
    """Gender as the person states it; a self-description in other words is sealed."""

    UNKNOWN = "UNKNOWN"
    FEMALE = "FEMALE"
    MALE = "MALE"
    NON_BINARY = "NON_BINARY"
    OTHER = "OTHER"
    UNDISCLOSED = "UNDISCLOSED"


class RiskLevel(StrEnum):
    """Assessed risk to the survivor's safety."""

    UNKNOWN = "UNKNOWN"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class ImmediateNeed(StrEnum):
    """A need that must be met at once."""

    UNKNOWN = "UNKNOWN"
    EMERGENCY_SHELTER = "EMERGENCY_SHELTER"
    MEDICAL = "MEDICAL"
    SAFE_TRANSPORT = "SAFE_TRANSPORT"
    INTERPRETER = "INTERPRETER"
    CHILD_PROTECTION = "CHILD_PROTECTION"


class Urgency(StrEnum):
    """How fast a referral must be acknowledged."""

    UNKNOWN = "UNKNOWN"
    ROUTINE = "ROUTINE"
    PRIORITY = "PRIORITY"
    EMERGENCY = "EMERGENCY"


class DeclineReason(StrEnum):
    """Why a provider declined an offer."""

    UNKNOWN = "UNKNOWN"
    NO_CAPACITY = "NO_CAPACITY"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    REQUIREMENTS_NOT_MET = "REQUIREMENTS_NOT_MET"
    OUT_OF_AREA = "OUT_OF_AREA"
    CONFLICT_OF_INTEREST = "CONFLICT_OF_INTEREST"
    SAFETY_CONCERN = "SAFETY_CONCERN"
    OTHER = "OTHER"


class ReferralOutcome(StrEnum):
    """How a delivered service ended."""

    UNKNOWN = "UNKNOWN"
    SERVICE_PROVIDED = "SERVICE_PROVIDED"
    PARTIALLY_PROVIDED = "PARTIALLY_PROVIDED"
    REFERRED_ONWARD = "REFERRED_ONWARD"
    OTHER = "OTHER"


class FailureReason(StrEnum):
    """Why an accepted or started service could not be delivered."""

    UNKNOWN = "UNKNOWN"
    LOST_CONTACT = "LOST_CONTACT"
    SURVIVOR_DECLINED = "SURVIVOR_DECLINED"
    SAFETY_INCIDENT = "SAFETY_INCIDENT"
    PROVIDER_UNABLE = "PROVIDER_UNABLE"
    OTHER = "OTHER"


class CancelReason(StrEnum):
    """Why a referral was cancelled."""

    UNKNOWN = "UNKNOWN"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    CASE_CLOSED = "CASE_CLOSED"
    AGENCY_REQUEST = "AGENCY_REQUEST"
    SURVIVOR_REQUEST = "SURVIVOR_REQUEST"
    DUPLICATE = "DUPLICATE"
    OTHER = "OTHER"
    ERASURE = "ERASURE"
    """The survivor's data was erased: the provider must erase what it holds of them."""


class Actor(StrEnum):
    """Kind of party that caused an event."""

    UNKNOWN = "UNKNOWN"
    AGENCY = "AGENCY"
    SYSTEM = "SYSTEM"
    OPERATOR = "OPERATOR"
    PROVIDER = "PROVIDER"


class EscalationReason(StrEnum):
    """Why something escalated."""

    UNKNOWN = "UNKNOWN"
    DEADLINE_MISSED = "DEADLINE_MISSED"
    UNROUTABLE = "UNROUTABLE"
    CHILD_PROTECTION = "CHILD_PROTECTION"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    LEGAL_CLOCK = "LEGAL_CLOCK"


class UndeliveredEvent(StrEnum):
    """Which kind of event a provider did not receive."""

    UNKNOWN = "UNKNOWN"
    REFERRAL_OFFERED = "REFERRAL_OFFERED"
    REFERRAL_CANCELLED = "REFERRAL_CANCELLED"


class DeliveryFailure(StrEnum):
    """Why a webhook delivery was given up."""

    UNKNOWN = "UNKNOWN"
    REJECTED = "REJECTED"
    UNREACHABLE = "UNREACHABLE"
    ERROR = "ERROR"


class CaseOutcome(StrEnum):
    """How a survivor's case ended."""

    UNKNOWN = "UNKNOWN"
    SUPPORT_COMPLETED = "SUPPORT_COMPLETED"
    TRANSFERRED = "TRANSFERRED"
    SURVIVOR_DISENGAGED = "SURVIVOR_DISENGAGED"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    OTHER = "OTHER"


class _Record(BaseModel):
    """Nested Avro records are immutable and strict about their fields, like events."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Sealed(_Record):
    """Personal data sealed for one recipient: the only place personal data may travel.

    ``repr`` hides the ciphertext length and bytes, so that even sealed data
    does not end up in logs by accident.
    """

    ciphertext: bytes
    key_id: Identifier
    algorithm: SealAlgorithm
    recipient: Identifier

    def __repr_args__(self) -> list[tuple[str | None, object]]:
        return [(k, "<sealed>" if k == "ciphertext" else v) for k, v in super().__repr_args__()]


class Requirements(_Record):
    """What a provider must offer to receive a referral."""

    languages: tuple[LanguageCode, ...]
    gender_specific: bool
    child_specialised: bool
    accessibility: bool
    jurisdiction: Jurisdiction

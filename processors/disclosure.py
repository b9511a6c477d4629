"""Least data per recipient: which personal fields a provider gets, and only while its offer stands.

A provider chosen for a referral may fetch the survivor's personal data
from the platform (``POST /v1/survivors/{id}/referrals/{rid}/disclosure``
on the intake). Two pure rules decide what it gets:

* :class:`DisclosurePolicy`: an allowlist of :class:`~schemas.personal.PersonalField`
  per service category. A housing provider needs a name to greet, a way to
  reach the survivor, who comes along and whom to keep away; it never needs
  the medical, legal or financial detail, the documents or the survivor's
  account (:data:`DEFAULT_FIELDS`). Operators may narrow or widen a
  category in the intake's settings; a category not named keeps its default,
  and an unknown category (``UNKNOWN``) gets nothing.
* :func:`disclosable_referral`: the fetch works only for the provider the
  referral is offered to now, while the offer stands (offered, accepted or
  in progress), the case is open and a consent grant covering the
  referral's category is active at the moment of the fetch. Everything else
  is refused, and the refusal says why without saying anything about the
  case to a provider that never held it.

The referral's own ``notes`` (sealed by the requesting agency for this
referral) go to its provider whole: the agency wrote them for that service.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from processors.lifecycle import ReferralStatus
from processors.status import ReferralView, StatusRecord
from schemas.personal import PersonalField
from schemas.types import ServiceCategory

__all__ = [
    "DEFAULT_FIELDS",
    "DISCLOSING",
    "DisclosurePolicy",
    "DisclosureRefusal",
    "disclosable_referral",
]

_F = PersonalField

DEFAULT_FIELDS: Mapping[ServiceCategory, frozenset[PersonalField]] = MappingProxyType(
    {
        ServiceCategory.HOUSING: frozenset({_F.NAME, _F.CONTACT, _F.FAMILY, _F.SAFETY}),
        ServiceCategory.HEALTH: frozenset({_F.NAME, _F.CONTACT, _F.MEDICAL, _F.FAMILY, _F.SAFETY}),
        ServiceCategory.LEGAL_AID: frozenset(
            {_F.NAME, _F.CONTACT, _F.DOCUMENTS, _F.LEGAL, _F.SAFETY, _F.NARRATIVE}
        ),
        ServiceCategory.FINANCIAL_SUPPORT: frozenset(
            {_F.NAME, _F.CONTACT, _F.DOCUMENTS, _F.FINANCIAL}
        ),
    }
)
"""The allowlist of each category unless the settings say otherwise (PRIVACY.md shows the table)."""

DISCLOSING = frozenset(
    {ReferralStatus.OFFERED, ReferralStatus.ACCEPTED, ReferralStatus.IN_PROGRESS}
)
"""The referral statuses in which its provider may fetch: the offer stands."""


class DisclosurePolicy(BaseModel):
    """The personal fields each category's providers receive (see the module)."""

    model_config = ConfigDict(frozen=True)

    fields: dict[ServiceCategory, frozenset[PersonalField]] = Field(
        default_factory=lambda: dict(DEFAULT_FIELDS)
    )

    @classmethod
    def with_overrides(
        cls, overrides: Mapping[ServiceCategory, frozenset[PersonalField]]
    ) -> DisclosurePolicy:
        """The defaults, with each category named in ``overrides`` replaced by its set."""
        return cls(fields={**DEFAULT_FIELDS, **overrides})

    def fields_for(self, category: ServiceCategory) -> frozenset[PersonalField]:
        """What a provider of ``category`` may receive; nothing for a category unknown here."""
        if category is ServiceCategory.UNKNOWN:
            return frozenset()
        return self.fields.get(category, frozenset())


class DisclosureRefusal(StrEnum):
    """Why a fetch is refused; the value is the audit's ``refusal`` code."""

    NOT_OFFERED = "not-offered"
    """No such referral offered to this provider (unknown survivor included): a 404."""
    OFFER_ENDED = "offer-ended"
    """The provider held it, but it was declined, completed, cancelled or moved on."""
    CASE_CLOSED = "case-closed"
    CONSENT_NOT_ACTIVE = "consent-not-active"
    """No active grant covers the referral's category now (withdrawn or expired)."""

    @property
    def held(self) -> bool:
        """Whether the refusal concerns a referral the caller did hold (it may learn why)."""
        return self is not DisclosureRefusal.NOT_OFFERED


def disclosable_referral(
    record: StatusRecord | None, referral_id: UUID, provider_id: UUID, now: datetime
) -> ReferralView | DisclosureRefusal:
    """The referral ``provider_id`` may fetch for at ``now``; else why it may not."""
    referral = _offered_to(record, referral_id, provider_id)
    if record is None or referral is None:
        return DisclosureRefusal.NOT_OFFERED
    if referral.status not in DISCLOSING:
        return DisclosureRefusal.OFFER_ENDED
    if record.closed is not None:
        return DisclosureRefusal.CASE_CLOSED
    if not any(
        referral.category in terms.categories and terms.is_active(now) for terms in record.consents
    ):
        return DisclosureRefusal.CONSENT_NOT_ACTIVE
    return referral


def _offered_to(
    record: StatusRecord | None, referral_id: UUID, provider_id: UUID
) -> ReferralView | None:
    if record is None:
        return None
    for referral in record.referrals:
        if referral.referral_id == referral_id and referral.provider_id == provider_id:
            return referral
    return None

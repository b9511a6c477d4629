"""Consent rules: what a grant allows, what a withdrawal takes away, at a given instant.

Survivor first: data goes to a provider only when one active grant covers
*all* of it at once: the service category, the place the provider serves,
and (for a provider in another country) cross-border sharing. "Active"
means not expired at ``now`` (an instant the caller passes, so decisions are
reproducible on replay) and not withdrawn.

A withdrawal never widens anything and errs on the side of sharing less:

* empty ``categories`` *and* empty ``jurisdictions``: the whole grant is gone
  (its id is remembered, so a late copy of the grant cannot revive it);
* otherwise the withdrawn scope (categories by jurisdictions, an empty list
  meaning "all") is recorded on the grant, and jurisdictions that merely
  *overlap* a withdrawn one count as withdrawn;
* ``cross_border_withdrawn`` removes cross-border sharing from the grant.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from processors.geo import overlaps, within
from schemas.models import ConsentGranted, ConsentWithdrawn
from schemas.types import Identifier, Jurisdiction, ServiceCategory, UtcDatetime

__all__ = [
    "ConsentGrant",
    "ConsentSummary",
    "ConsentTerms",
    "WithdrawnScope",
    "consent_summary",
    "has_consent_for",
    "is_whole_withdrawal",
    "permitting_grant",
]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WithdrawnScope(_Value):
    """Part of a grant the survivor took back; an empty tuple means "every"."""

    categories: tuple[ServiceCategory, ...] = ()
    jurisdictions: tuple[Jurisdiction, ...] = ()

    def covers(self, category: ServiceCategory, jurisdiction: str) -> bool:
        """Whether sharing for ``category`` in ``jurisdiction`` falls in this withdrawal."""
        if self.categories and category not in self.categories:
            return False
        return not self.jurisdictions or any(overlaps(jurisdiction, j) for j in self.jurisdictions)

    def covers_everywhere(self, category: ServiceCategory) -> bool:
        """Whether ``category`` is withdrawn in every jurisdiction."""
        return not self.jurisdictions and (not self.categories or category in self.categories)


class ConsentGrant(_Value):
    """One ``consent.granted``, narrowed by any partial withdrawals since."""

    consent_id: UUID
    agency_id: Identifier
    granted_at: UtcDatetime
    categories: tuple[ServiceCategory, ...]
    cross_border_allowed: bool
    jurisdictions: tuple[Jurisdiction, ...]
    """Where data may go; empty means only the survivor's jurisdiction of identification."""
    expires_at: UtcDatetime | None = None
    withdrawn: tuple[WithdrawnScope, ...] = ()

    @classmethod
    def from_event(cls, event: ConsentGranted) -> ConsentGrant:
        """The grant a ``consent.granted`` event records."""
        return cls(
            consent_id=event.consent_id,
            agency_id=event.agency_id,
            granted_at=event.occurred_at,
            categories=event.categories,
            cross_border_allowed=event.cross_border_allowed,
            jurisdictions=event.jurisdictions,
            expires_at=event.expires_at,
        )

    def is_active(self, now: datetime) -> bool:
        """Not expired at ``now`` (a grant expiring exactly at ``now`` has lapsed)."""
        return self.expires_at is None or now < self.expires_at

    def covers_category(self, category: ServiceCategory, now: datetime) -> bool:
        """Whether the grant still allows ``category`` somewhere at ``now``."""
        return (
            self.is_active(now)
            and category in self.categories
            and not any(s.covers_everywhere(category) for s in self.withdrawn)
        )

    def permits(
        self,
        category: ServiceCategory,
        jurisdiction: str,
        *,
        home: str,
        abroad: bool,
        now: datetime,
    ) -> bool:
        """Whether this grant alone allows sharing ``category`` with a provider in ``jurisdiction``.

        ``home`` is the survivor's jurisdiction of identification, which an
        empty ``jurisdictions`` list stands for; ``abroad`` says whether the
        provider is in another country than ``home``.
        """
        if not self.covers_category(category, now):
            return False
        if abroad and not self.cross_border_allowed:
            return False
        allowed = self.jurisdictions or (home,)
        if not any(within(jurisdiction, a) for a in allowed):
            return False
        return not any(s.covers(category, jurisdiction) for s in self.withdrawn)

    def narrowed(self, event: ConsentWithdrawn) -> ConsentGrant:
        """This grant after a *partial* withdrawal (see :func:`is_whole_withdrawal`)."""
        scope = WithdrawnScope(categories=event.categories, jurisdictions=event.jurisdictions)
        return self.model_copy(
            update={
                "withdrawn": (*self.withdrawn, scope),
                "cross_border_allowed": self.cross_border_allowed
                and not event.cross_border_withdrawn,
            }
        )

    def same_terms(self, other: ConsentGrant) -> bool:
        """Whether two grants say the same (a re-published copy, not a change)."""
        return self.model_dump(exclude={"withdrawn"}) == other.model_dump(exclude={"withdrawn"})


def is_whole_withdrawal(event: ConsentWithdrawn) -> bool:
    """Empty categories and jurisdictions withdraw the whole grant (schema doc)."""
    return not event.categories and not event.jurisdictions


def permitting_grant(
    grants: Iterable[ConsentGrant],
    category: ServiceCategory,
    jurisdiction: str,
    *,
    home: str,
    abroad: bool,
    now: datetime,
) -> ConsentGrant | None:
    """The first grant (by id, for determinism) that allows this sharing, or None."""
    for grant in sorted(grants, key=lambda g: str(g.consent_id)):
        if grant.permits(category, jurisdiction, home=home, abroad=abroad, now=now):
            return grant
    return None


def has_consent_for(
    grants: Iterable[ConsentGrant], category: ServiceCategory, now: datetime
) -> bool:
    """Whether any active grant allows ``category`` at all (routing may then be tried)."""
    return any(g.covers_category(category, now) for g in grants)


class ConsentTerms(_Value):
    """What one grant allows, as far as it does not depend on the instant it is read at.

    The published status carries these (no consent id, no jurisdictions) so
    that its reader, not the router, decides at read time which grants have
    expired: a record written once stays right as the clock moves on.
    """

    categories: tuple[ServiceCategory, ...]
    """The grant's categories except those withdrawn in every jurisdiction."""
    cross_border: bool
    expires_at: UtcDatetime | None = None

    @classmethod
    def of(cls, grant: ConsentGrant) -> ConsentTerms:
        """The terms of ``grant``, narrowed by its withdrawals."""
        return cls(
            categories=tuple(
                c
                for c in grant.categories
                if not any(s.covers_everywhere(c) for s in grant.withdrawn)
            ),
            cross_border=grant.cross_border_allowed,
            expires_at=grant.expires_at,
        )

    def is_active(self, now: datetime) -> bool:
        """Not expired at ``now`` (the same rule as :meth:`ConsentGrant.is_active`)."""
        return self.expires_at is None or now < self.expires_at


class ConsentSummary(_Value):
    """What the status view may show of consent: scope, never content."""

    categories: tuple[ServiceCategory, ...]
    cross_border: bool
    next_expiry: UtcDatetime | None


def consent_summary(terms: Iterable[ConsentTerms], now: datetime) -> ConsentSummary:
    """Categories currently consented to, whether any of them may cross borders, next expiry.

    ``terms`` are :meth:`ConsentTerms.of` the survivor's grants; a grant
    expired at ``now`` counts for nothing.
    """
    active = [t for t in terms if t.is_active(now)]
    categories = sorted({c for t in active for c in t.categories}, key=lambda c: c.value)
    expiries = [t.expires_at for t in active if t.expires_at is not None]
    return ConsentSummary(
        categories=tuple(categories),
        cross_border=any(t.cross_border for t in active),
        next_expiry=min(expiries) if expiries else None,
    )

"""The provider directory and its capacity ledger, as pure values.

A :class:`ProviderEntry` combines two things:

* the provider's *profile*, from ``provider.registered`` / ``provider.updated``
  (an HSDS-like directory entry; replaced whole by each event);
* per-category :class:`Places`: the total places and those held outside
  SafePassage, from ``provider.capacity``, plus the router's own
  reservations.

**Capacity model.** Reservations are a *set of referral ids* per provider
and category, not a counter: reserving twice for the same referral, or
releasing one that is not held, changes nothing. Applying the changes of a
decision is therefore idempotent even if the binding applies them again
after a crash. For every provider and category::

    reserved + held + available == total      (while reserved + held <= total)

where ``reserved`` is the number of referrals holding a place (offered,
accepted or in progress), ``held`` the places the provider reported taken
beyond those, and ``available`` what routing may still offer. A provider
that shrinks its total below what is reserved keeps its referrals and
simply gets no new offers (``available`` is 0). Until a category has a
``provider.capacity`` report, its total is the registered ``capacity``;
that registered figure also caps the reservations across all categories.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from processors.exceptions import LedgerError, UnsupportedEventError
from schemas.models import ProviderCapacity, ProviderEvent, ProviderRegistered, ProviderUpdated
from schemas.types import Count, Gender, Jurisdiction, LanguageCode, ServiceCategory, UtcDatetime

__all__ = [
    "CapacityAction",
    "CapacityChange",
    "Directory",
    "Places",
    "ProviderEntry",
    "ProviderProfile",
    "apply_capacity",
    "apply_directory",
    "apply_directory_entry",
]


class _Value(BaseModel):
    """Immutable, strict, serialisable: what a Faust table can store as JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Places(_Value):
    """One provider's places in one category."""

    total: Count = 0
    held: Count = 0
    """Places the provider reported taken beyond SafePassage's reservations."""
    holders: frozenset[UUID] = frozenset()
    """Referrals holding a place here (the reservations): a set, so a reservation is O(1)
    to look up and a busy provider's thousands of holders are not re-sorted per offer."""
    reported: bool = False
    """Whether ``total`` comes from a ``provider.capacity`` report (else from registration)."""

    @property
    def reserved(self) -> int:
        """Places SafePassage has reserved."""
        return len(self.holders)

    @property
    def available(self) -> int:
        """Places routing may still offer."""
        return max(0, self.total - self.held - self.reserved)

    def reserve(self, referral_id: UUID) -> Places:
        """These places with ``referral_id`` holding one (unchanged if it already does)."""
        if referral_id in self.holders:
            return self
        return self.model_copy(update={"holders": self.holders | {referral_id}})

    def release(self, referral_id: UUID) -> Places:
        """These places without ``referral_id`` (unchanged if it held none)."""
        if referral_id not in self.holders:
            return self
        return self.model_copy(update={"holders": self.holders - {referral_id}})

    def report(self, total: int, available: int) -> Places:
        """Take a ``provider.capacity`` report, assuming it counts our reservations as taken."""
        held = max(0, total - available - self.reserved)
        return self.model_copy(update={"total": total, "held": held, "reported": True})


class ProviderProfile(_Value):
    """What routing needs of a directory entry (the public name is not needed)."""

    categories: tuple[ServiceCategory, ...]
    languages: tuple[LanguageCode, ...]
    offers_interpretation: bool
    jurisdictions: tuple[Jurisdiction, ...]
    child_specialised: bool
    gender_specific: Gender | None = None
    accessible: bool
    cross_border: bool
    capacity: Count

    @classmethod
    def from_event(cls, event: ProviderRegistered | ProviderUpdated) -> ProviderProfile:
        """The profile a directory event describes."""
        return cls(
            categories=event.categories,
            languages=event.languages,
            offers_interpretation=event.offers_interpretation,
            jurisdictions=event.jurisdictions,
            child_specialised=event.child_specialised,
            gender_specific=event.gender_specific,
            accessible=event.accessible,
            cross_border=event.cross_border,
            capacity=event.capacity,
        )


class ProviderEntry(_Value):
    """One provider: profile (None until registered) and capacity ledger."""

    provider_id: UUID
    profile: ProviderProfile | None = None
    places: dict[ServiceCategory, Places] = Field(default_factory=dict)
    updated_at: UtcDatetime | None = None

    @property
    def reserved_total(self) -> int:
        """Reservations across every category (capped by the registered capacity)."""
        return sum(p.reserved for p in self.places.values())

    def available(self, category: ServiceCategory, holder: UUID | None = None) -> int:
        """Places routing may offer in ``category``, within the provider-wide capacity too.

        A place ``holder`` (a referral) already holds here counts as free *for it*:
        a decision replayed after a crash finds its own reservation in the ledger
        and must rank the providers exactly as the first time, or it would offer
        another provider under the same event ids.
        """
        places = self.places.get(category)
        if places is None or self.profile is None:
            return 0
        mine = 1 if holder is not None and holder in places.holders else 0
        in_category = places.total - places.held - places.reserved + mine
        overall = self.profile.capacity - self.reserved_total + mine
        return max(0, min(in_category, overall))

    def with_places(self, category: ServiceCategory, places: Places) -> ProviderEntry:
        """This entry with ``category``'s places replaced."""
        return self.model_copy(update={"places": {**self.places, category: places}})


class Directory(_Value):
    """Every provider by id: the projection of ``safepassage.providers.v1`` plus the ledger."""

    providers: dict[UUID, ProviderEntry] = Field(default_factory=dict)

    def get(self, provider_id: UUID) -> ProviderEntry | None:
        """The entry of a provider, if the directory has one."""
        return self.providers.get(provider_id)

    def with_entry(self, entry: ProviderEntry) -> Directory:
        """This directory with one entry added or replaced."""
        return self.model_copy(update={"providers": {**self.providers, entry.provider_id: entry}})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a Faust table or a snapshot stores)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Directory:
        """Inverse of :meth:`to_dict`; validates everything."""
        return cls.model_validate(data)


class CapacityAction(StrEnum):
    """Whether a change takes or gives back a place."""

    RESERVE = "reserve"
    RELEASE = "release"


class CapacityChange(_Value):
    """One reservation or release a decision asks the directory to apply."""

    action: CapacityAction
    provider_id: UUID
    category: ServiceCategory
    referral_id: UUID


def apply_directory_entry(entry: ProviderEntry | None, event: ProviderEvent) -> ProviderEntry:
    """A provider's entry after one directory event (per-key form, for a table keyed by provider).

    Registration and update replace the profile and keep the ledger (open
    reservations must stay releasable even for a category no longer
    offered). Categories without a capacity report take the registered
    total. A capacity report before any registration is kept, so that the
    entry is complete whichever order a compacted topic replays in.
    """
    if not isinstance(event, ProviderRegistered | ProviderUpdated | ProviderCapacity):
        raise UnsupportedEventError(f"{type(event).__name__} is not a directory event")
    if entry is None:
        entry = ProviderEntry(provider_id=event.provider_id)
    elif entry.provider_id != event.provider_id:
        raise UnsupportedEventError("directory event applied to another provider's entry")
    if isinstance(event, ProviderRegistered | ProviderUpdated):
        profile = ProviderProfile.from_event(event)
        places = dict(entry.places)
        for category in profile.categories:
            current = places.get(category, Places())
            if not current.reported:
                places[category] = current.model_copy(update={"total": profile.capacity})
        return entry.model_copy(
            update={"profile": profile, "places": places, "updated_at": event.occurred_at}
        )
    reported = entry.places.get(event.category, Places()).report(event.total, event.available)
    return entry.with_places(event.category, reported).model_copy(
        update={"updated_at": event.occurred_at}
    )


def apply_directory(directory: Directory, event: ProviderEvent) -> Directory:
    """The directory after one ``provider.*`` event; idempotent (events set, not add)."""
    if not isinstance(event, ProviderEvent):
        raise UnsupportedEventError(f"{type(event).__name__} is not a directory event")
    return directory.with_entry(apply_directory_entry(directory.get(event.provider_id), event))


def apply_capacity(directory: Directory, changes: Iterable[CapacityChange]) -> Directory:
    """The directory with a decision's reservations and releases applied (idempotent).

    A release for a provider or category without places is a no-op (the
    place is not held, so there is nothing to give back); a reservation for
    one is a :class:`LedgerError`.
    """
    for change in changes:
        entry = directory.get(change.provider_id)
        places = None if entry is None else entry.places.get(change.category)
        if entry is None or places is None:
            if change.action is CapacityAction.RESERVE:
                raise LedgerError("reservation for a provider or category without places")
            continue
        if change.action is CapacityAction.RESERVE:
            updated = places.reserve(change.referral_id)
        else:
            updated = places.release(change.referral_id)
        if updated is not places:
            directory = directory.with_entry(entry.with_places(change.category, updated))
    return directory

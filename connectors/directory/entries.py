"""A provider's directory entry as the directory API reads and writes it, and its events.

:class:`DirectoryEntry` is what ``POST``/``PUT /v1/providers`` take and what
the HSDS mapping (:mod:`connectors.directory.hsds`) produces: the fields the
router matches on, the same as ``provider.registered`` / ``provider.updated``
carry, without the time (the intake stamps it). :class:`CapacityFigure` is a
``provider.capacity`` report without provider and time. Both are stricter
than the events on purpose: an entry the router could never route to (no
category, no place, ``UNKNOWN``) is refused at the door instead of sitting in
the directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from schemas.models import ProviderCapacity, ProviderRegistered, ProviderUpdated
from schemas.types import Count, Gender, Jurisdiction, LanguageCode, OrganizationName
from schemas.types import ServiceCategory as Category

__all__ = [
    "CapacityFigure",
    "DirectoryEntry",
    "EntryFields",
    "ImportReport",
    "NewProvider",
    "ProviderView",
]


def _unique(values: Sequence[Any], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} are listed more than once")


class EntryFields(BaseModel):
    """The fields of an entry besides its id (the body of ``PUT /v1/providers/{id}``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organization_name: OrganizationName
    categories: tuple[Category, ...]
    languages: tuple[LanguageCode, ...]
    offers_interpretation: bool = False
    jurisdictions: tuple[Jurisdiction, ...]
    child_specialised: bool = False
    gender_specific: Gender | None = None
    accessible: bool = False
    cross_border: bool = False
    capacity: Count

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: tuple[Category, ...]) -> tuple[Category, ...]:
        if not value:
            raise ValueError("at least one service category is needed")
        if Category.UNKNOWN in value:
            raise ValueError("UNKNOWN is not a category a provider offers")
        _unique(value, "categories")
        return value

    @field_validator("jurisdictions")
    @classmethod
    def _somewhere(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one jurisdiction is needed (where the provider serves)")
        _unique(value, "jurisdictions")
        return value

    @field_validator("languages")
    @classmethod
    def _languages_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _unique(value, "languages")
        return value

    @field_validator("gender_specific")
    @classmethod
    def _a_gender(cls, value: Gender | None) -> Gender | None:
        if value in (Gender.UNKNOWN, Gender.UNDISCLOSED):
            raise ValueError("a gender-specific service names the gender it serves")
        return value


class DirectoryEntry(EntryFields):
    """A whole entry: the provider id and :class:`EntryFields`."""

    provider_id: UUID

    @classmethod
    def of(cls, provider_id: UUID, fields: EntryFields) -> DirectoryEntry:
        """The entry of ``provider_id`` with these fields."""
        return cls(provider_id=provider_id, **fields.model_dump())

    @classmethod
    def of_event(cls, event: ProviderRegistered | ProviderUpdated) -> DirectoryEntry:
        """The entry a directory event describes (its kept HSDS document aside)."""
        data = event.model_dump(exclude={"occurred_at", "hsds_service"})
        return cls.model_validate(data)

    def registered(self, at: datetime, hsds_service: str | None) -> ProviderRegistered:
        """The ``provider.registered`` event of this entry."""
        return ProviderRegistered(**self.model_dump(), occurred_at=at, hsds_service=hsds_service)

    def updated(self, at: datetime, hsds_service: str | None) -> ProviderUpdated:
        """The ``provider.updated`` event of this entry (the whole entry replaces the old)."""
        return ProviderUpdated(**self.model_dump(), occurred_at=at, hsds_service=hsds_service)


class CapacityFigure(BaseModel):
    """Places in one category: the body of ``PUT /v1/providers/{id}/capacity``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category
    total: Count
    available: Count

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.category is Category.UNKNOWN:
            raise ValueError("UNKNOWN is not a category a provider offers")
        if self.available > self.total:
            raise ValueError("available exceeds total")
        return self

    def event(self, provider_id: UUID, at: datetime) -> ProviderCapacity:
        """The ``provider.capacity`` event of this figure."""
        return ProviderCapacity(provider_id=provider_id, occurred_at=at, **self.model_dump())

    @classmethod
    def of_event(cls, event: ProviderCapacity) -> CapacityFigure:
        return cls(category=event.category, total=event.total, available=event.available)


class NewProvider(EntryFields):
    """The body of ``POST /v1/providers``: an entry, with the id it should have (or none)."""

    provider_id: UUID | None = None
    """None: the intake issues a random UUID."""


class ProviderView(DirectoryEntry):
    """A provider as the directory API answers it: the entry and its latest capacity reports."""

    capacities: tuple[CapacityFigure, ...] = ()
    """The latest ``provider.capacity`` report per category (none: the registered capacity)."""
    updated_at: datetime | None = None
    hsds: bool = False
    """Whether an HSDS service document is kept with the entry (see the export)."""


class ImportReport(BaseModel):
    """The answer of ``POST /v1/providers/import``: what was published, by provider id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registered: tuple[UUID, ...]
    updated: tuple[UUID, ...]
    capacity_reports: int

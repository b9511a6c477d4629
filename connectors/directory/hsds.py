"""Open Referral HSDS 3.0 JSON to and from directory entries. Pure: no I/O, no clock.

**Unit.** One SafePassage provider is one HSDS ``service`` (its ``id`` is the
provider id, a UUID in both), in the shape of HSDS 3.0's compiled
``service.json``: the service with its ``organization``, its
``service_at_locations`` (each with its ``location`` and addresses) and its
``attributes`` nested. A directory file is the page HSDS 3.0's
``GET /services`` answers (``total_items`` ... ``contents``); a bare JSON
array of services is read too.

**What the router uses** (both ways; docs/directory.md has the table):

============================  ===================================================
entry field                   HSDS 3.0
============================  ===================================================
``provider_id``               ``service.id``
``organization_name``         ``service.organization.name``
``languages``                 ``service.languages[].code`` (ISO 639)
``offers_interpretation``     ``service.interpretation_services`` (non-empty)
``jurisdictions``             each ``location.addresses[]``: ``region`` or
                              ``state_province`` when an ISO 3166-2 code of the
                              address's ``country``, else ``country``
``child_specialised``         ``service.maximum_age`` below 18
``accessible``                any ``location.accessibility`` entry
``categories``                attribute, SafePassage term ``category:<name>``
``gender_specific``           attribute, term ``gender-specific``, value a gender
``cross_border``              attribute, term ``cross-border``
``capacity``                  attribute, term ``capacity``, value the places
capacity per category         attribute, term ``capacity:<category>``, value
                              ``<available>/<total>``
============================  ===================================================

HSDS 3.0 has no field for categories of this platform, gender-specific
eligibility or capacity (``service_capacity`` came with 3.1), so those are
*attributes* (HSDS 3.0's link between an entity and a taxonomy term, with a
``value``) whose ``taxonomy_term.taxonomy`` is ``"SafePassage"``.

**What is kept.** Everything else (descriptions, phones, schedules, contacts,
other taxonomies' attributes, ...) is kept: the whole service document is
stored in the directory event (``hsds_service``), and an export starts from
it and sets only what the entry says otherwise (:func:`service_document`).
So ``export(import(x)) == x`` for a document already in the form export
writes, and ``import(export(e)) == e`` always; an entry changed through the
JSON API keeps its HSDS fields.

**Validation.** The parts read are validated with pydantic against HSDS
3.0's required fields and types; every error names the entry and the field
(a JSON Pointer into the document). :func:`read_listings` checks the whole
document and raises one :class:`HsdsImportError` with every error, so an
import is all or nothing.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.directory.entries import CapacityFigure, DirectoryEntry
from connectors.exceptions import HsdsImportError
from schemas.types import Gender, ServiceCategory

__all__ = [
    "IDS",
    "MAX_SERVICES",
    "TAXONOMY",
    "TAXONOMY_ID",
    "Listing",
    "dumps",
    "listing_of",
    "page",
    "read_listings",
    "service_document",
]

TAXONOMY = "SafePassage"
"""``taxonomy_term.taxonomy`` of the terms this mapping reads and writes."""

IDS = UUID("6f1b3c2e-51a4-4d6e-9a57-0c7e2a9d4b10")
"""uuid5 namespace of every id this mapping makes up (the same entry, the same ids)."""

TAXONOMY_ID = uuid.uuid5(IDS, "taxonomy")

MAX_SERVICES = 10_000
"""The most services one document may hold."""

CHILD_AGE = 18
"""A service whose ``maximum_age`` is below this serves children only: child-specialised."""

_STATUS = Literal["active", "inactive", "defunct", "temporarily closed"]
_PLACE_TYPE = Literal["physical", "postal", "virtual"]
_Number = Annotated[float, Field(strict=True)]
_ISO_639 = re.compile(r"^[a-z]{2,3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PLACES = re.compile(r"^(0|[1-9][0-9]{0,9})/(0|[1-9][0-9]{0,9})$")
_COUNT = re.compile(r"^(0|[1-9][0-9]{0,9})$")
_COUNT_MAX = 2**31 - 1

_TERMS: Mapping[str, tuple[str, str]] = {
    **{
        f"category:{c.topic_category}": (
            f"{c.topic_category.replace('-', ' ').capitalize()} services",
            f"The service offers {c.topic_category.replace('-', ' ')} to survivors.",
        )
        for c in ServiceCategory
        if c.topic_category is not None
    },
    "gender-specific": (
        "Gender-specific",
        "The service serves one gender only; the attribute's value names it.",
    ),
    "cross-border": (
        "Cross-border",
        "The service accepts referrals from other countries than its own jurisdictions.",
    ),
    "capacity": (
        "Capacity",
        "How many survivors the service can serve at once, across its categories.",
    ),
    **{
        f"capacity:{c.topic_category}": (
            f"Capacity ({c.topic_category})",
            "Places in this category as '<available>/<total>'.",
        )
        for c in ServiceCategory
        if c.topic_category is not None
    },
}
"""Every SafePassage term: code -> (name, description)."""

_ACCESSIBLE = "Premises and services are accessible to people with disabilities."
_INTERPRETATION = "Interpretation into other languages can be arranged."


# ------------------------------------------------------------------ HSDS models


class _Hsds(BaseModel):
    """An HSDS object: its other members are allowed (and kept, in the document)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _Term(_Hsds):
    id: UUID
    name: str
    description: str
    code: str | None = None
    taxonomy: str | None = None


class _Attribute(_Hsds):
    id: UUID
    value: str | None = None
    taxonomy_term: _Term | None = None


class _Language(_Hsds):
    id: UUID
    code: str | None = None


class _Address(_Hsds):
    id: UUID
    address_1: str
    city: str
    region: str | None = None
    state_province: str
    postal_code: str
    country: str
    address_type: _PLACE_TYPE


class _Accessibility(_Hsds):
    id: UUID


class _Location(_Hsds):
    id: UUID
    location_type: _PLACE_TYPE
    addresses: list[_Address] = []
    accessibility: list[_Accessibility] = []


class _ServiceAtLocation(_Hsds):
    id: UUID
    location: _Location | None = None


class _Organization(_Hsds):
    id: UUID
    name: str
    description: str


class _Service(_Hsds):
    id: UUID
    name: str
    status: _STATUS
    organization: _Organization | None = None
    interpretation_services: str | None = None
    minimum_age: _Number | None = None
    maximum_age: _Number | None = None
    languages: list[_Language] = []
    service_at_locations: list[_ServiceAtLocation] = []
    attributes: list[_Attribute] = []


# ------------------------------------------------------------------ import


@dataclass(frozen=True)
class Listing:
    """One imported HSDS service: the entry, its capacity figures, the document itself."""

    entry: DirectoryEntry
    capacities: tuple[CapacityFigure, ...]
    document: Mapping[str, Any]
    """The service as given: what :func:`service_document` starts from on export."""


def _pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Errors:
    """The errors of one service, located under its pointer."""

    def __init__(self, where: str, label: str) -> None:
        self.where, self.label = where, label
        self.found: list[tuple[str, str]] = []

    def add(self, parts: Iterable[str | int], message: str) -> None:
        self.found.append((self.where + _pointer(parts), f"{self.label}: {message}"))


def read_listings(document: Any) -> list[Listing]:
    """Every service of an HSDS document as a :class:`Listing`; all or nothing.

    :class:`HsdsImportError` lists every error of every service (and a
    service id given twice), so a file is fixed in one pass.
    """
    if isinstance(document, list):
        services, base = document, ""
    elif isinstance(document, dict) and isinstance(document.get("contents"), list):
        services, base = document["contents"], "/contents"
    else:
        raise HsdsImportError(
            (("", "an HSDS page ({'contents': [services]}) or an array of services"),)
        )
    if len(services) > MAX_SERVICES:
        raise HsdsImportError(((base, f"at most {MAX_SERVICES} services per document"),))
    listings: list[Listing] = []
    errors: list[tuple[str, str]] = []
    seen: dict[UUID, int] = {}
    for index, service in enumerate(services):
        try:
            listing = listing_of(service, f"{base}/{index}", f"entry {index + 1}")
        except HsdsImportError as exc:
            errors.extend(exc.errors)
            continue
        pid = listing.entry.provider_id
        if pid in seen:
            errors.append(
                (f"{base}/{index}/id", f"entry {index + 1}: id given again (entry {seen[pid] + 1})")
            )
            continue
        seen[pid] = index
        listings.append(listing)
    if errors:
        raise HsdsImportError(tuple(errors))
    return listings


def listing_of(service: Any, where: str = "", label: str = "service") -> Listing:
    """One HSDS service as a :class:`Listing`, or :class:`HsdsImportError` with its errors."""
    if not isinstance(service, dict):
        raise HsdsImportError(((where, f"{label}: an HSDS service must be a JSON object"),))
    raw_id = service.get("id")
    errors = _Errors(where, f"{label} (service {raw_id})" if isinstance(raw_id, str) else label)
    try:
        parsed = _Service.model_validate(service)
    except ValidationError as exc:
        for item in exc.errors(include_input=False, include_url=False, include_context=False):
            errors.add(item["loc"], item["msg"])
        raise HsdsImportError(tuple(errors.found)) from None
    fields = _entry_fields(parsed, errors)
    capacities = _capacities(parsed, errors)
    if errors.found:
        raise HsdsImportError(tuple(errors.found))
    try:
        entry = DirectoryEntry.model_validate({"provider_id": parsed.id, **fields})
    except ValidationError as exc:
        for item in exc.errors(include_input=False, include_url=False, include_context=False):
            errors.add(_SOURCE_OF.get(str(item["loc"][0]), ()), f"{item['loc'][0]}: {item['msg']}")
        raise HsdsImportError(tuple(errors.found)) from None
    offered = set(entry.categories)
    for figure in capacities:
        if figure.category not in offered:
            errors.add(["attributes"], f"capacity for {figure.category.value}, not offered")
    if errors.found:
        raise HsdsImportError(tuple(errors.found))
    return Listing(entry, tuple(capacities), copy.deepcopy(service))


_SOURCE_OF: Mapping[str, tuple[str, ...]] = {
    "organization_name": ("organization", "name"),
    "languages": ("languages",),
    "jurisdictions": ("service_at_locations",),
    "categories": ("attributes",),
    "gender_specific": ("attributes",),
    "capacity": ("attributes",),
}
"""Where in the service an entry field comes from, to locate an error of the entry."""


def _ours(attribute: _Attribute) -> str | None:
    """The SafePassage term code of an attribute, or None for another taxonomy's."""
    term = attribute.taxonomy_term
    if term is None or term.taxonomy != TAXONOMY:
        return None
    return term.code or ""


def _entry_fields(service: _Service, errors: _Errors) -> dict[str, Any]:
    if service.organization is None:
        errors.add(["organization"], "the organization is needed (its name is listed)")
    languages: list[str] = []
    for i, language in enumerate(service.languages):
        if language.code is None:
            continue  # a language named but not coded: kept, not matched on
        if not _ISO_639.fullmatch(language.code):
            errors.add(["languages", i, "code"], "an ISO 639 code in lower case (e.g. 'ro')")
        elif language.code not in languages:
            languages.append(language.code)
    terms = _TermsRead(errors)
    for i, attribute in enumerate(service.attributes):
        terms.read(attribute, ["attributes", i])
    return {
        "organization_name": service.organization.name if service.organization else "",
        "languages": languages,
        "offers_interpretation": bool((service.interpretation_services or "").strip()),
        "jurisdictions": _jurisdictions(service, errors),
        "child_specialised": _child(service.maximum_age),
        "accessible": _accessible(service),
        **terms.fields(),
    }


class _TermsRead:
    """The entry fields the SafePassage attributes of one service give (not capacity reports)."""

    def __init__(self, errors: _Errors) -> None:
        self.errors = errors
        self.categories: list[ServiceCategory] = []
        self.cross_border = False
        self.genders: list[str] = []
        self.capacity: list[int] = []
        self.unreadable = False

    def read(self, attribute: _Attribute, at: list[str | int]) -> None:
        code = _ours(attribute)
        if code is None or code.startswith("capacity:"):
            return
        if code.startswith("category:") and code in _TERMS:
            category = _category(code.removeprefix("category:"))
            if category not in self.categories:
                self.categories.append(category)
        elif code == "cross-border":
            self.cross_border = True
        elif code == "gender-specific":
            if attribute.value in {g.value for g in Gender}:
                self.genders.append(str(attribute.value))
            else:
                self.errors.add([*at, "value"], f"a gender: {', '.join(g.value for g in Gender)}")
        elif code == "capacity":
            value = attribute.value or ""
            if _COUNT.fullmatch(value) and int(value) <= _COUNT_MAX:
                self.capacity.append(int(value))
            else:
                self.errors.add([*at, "value"], "the number of places, a whole number")
                self.unreadable = True
        else:
            self.errors.add([*at, "taxonomy_term", "code"], f"unknown {TAXONOMY} term {code!r}")

    def fields(self) -> dict[str, Any]:
        where: list[str | int] = ["attributes"]
        if len(set(self.genders)) > 1:
            self.errors.add(where, "two different genders are named (gender-specific)")
        if len(set(self.capacity)) > 1:
            self.errors.add(where, "two different capacities are given")
        elif not self.capacity and not self.unreadable:
            self.errors.add(where, f"a {TAXONOMY} 'capacity' attribute is needed")
        if not self.categories:
            self.errors.add(where, f"at least one {TAXONOMY} 'category:<name>' attribute")
        return {
            "categories": self.categories,
            "cross_border": self.cross_border,
            "gender_specific": self.genders[0] if self.genders else None,
            "capacity": self.capacity[0] if self.capacity else 0,
        }


def _category(name: str) -> ServiceCategory:
    """The category of its topic name (``legal-aid``)."""
    return ServiceCategory(name.replace("-", "_").upper())


def _capacities(service: _Service, errors: _Errors) -> list[CapacityFigure]:
    figures: dict[ServiceCategory, CapacityFigure] = {}
    for i, attribute in enumerate(service.attributes):
        code = _ours(attribute)
        if code is None or not code.startswith("capacity:"):
            continue
        at: list[str | int] = ["attributes", i]
        if code not in _TERMS:
            errors.add([*at, "taxonomy_term", "code"], f"unknown {TAXONOMY} term {code!r}")
            continue
        category = _category(code.removeprefix("capacity:"))
        match = _PLACES.fullmatch(attribute.value or "")
        if match is None:
            errors.add([*at, "value"], "'<available>/<total>', two whole numbers")
            continue
        available, total = int(match[1]), int(match[2])
        if available > total or total > _COUNT_MAX:
            errors.add([*at, "value"], "available exceeds total (or too large)")
            continue
        figure = CapacityFigure(category=category, total=total, available=available)
        if figures.get(category, figure) != figure:
            errors.add(at, f"two different capacities for {category.value}")
        figures[category] = figure
    return list(figures.values())


def _address_jurisdiction(address: _Address) -> str | None:
    """``region`` or ``state_province`` when an ISO 3166-2 code of the country, else it."""
    if not _COUNTRY.fullmatch(address.country):
        return None
    for candidate in (address.region, address.state_province):
        if candidate and re.fullmatch(rf"{address.country}-[A-Z0-9]{{1,3}}", candidate):
            return candidate
    return address.country


def _jurisdictions(service: _Service, errors: _Errors) -> list[str]:
    found: list[str] = []
    for i, at_location in enumerate(service.service_at_locations):
        location = at_location.location
        for j, address in enumerate(location.addresses if location is not None else ()):
            code = _address_jurisdiction(address)
            if code is None:
                where: list[str | int] = [
                    "service_at_locations",
                    i,
                    "location",
                    "addresses",
                    j,
                    "country",
                ]
                errors.add(where, "an ISO 3166-1 alpha-2 code in upper case (e.g. 'NL')")
            elif code not in found:
                found.append(code)
    if not found and not errors.found:
        errors.add(["service_at_locations"], "a location with an address is needed (where)")
    return found


def _child(maximum_age: float | None) -> bool:
    return maximum_age is not None and maximum_age < CHILD_AGE


def _accessible(service: _Service) -> bool:
    return any(
        at.location is not None and at.location.accessibility for at in service.service_at_locations
    )


# ------------------------------------------------------------------ export


def _id(provider_id: UUID, *parts: str) -> str:
    return str(uuid.uuid5(IDS, "/".join((str(provider_id), *parts))))


def _term(code: str) -> dict[str, Any]:
    name, description = _TERMS[code]
    return {
        "id": str(uuid.uuid5(IDS, f"term/{code}")),
        "code": code,
        "name": name,
        "description": description,
        "taxonomy": TAXONOMY,
        "taxonomy_id": str(TAXONOMY_ID),
    }


def _wanted_attributes(
    entry: DirectoryEntry, capacities: Sequence[CapacityFigure]
) -> list[tuple[str, str | None]]:
    wanted: list[tuple[str, str | None]] = [
        (f"category:{c.topic_category}", None) for c in entry.categories
    ]
    if entry.gender_specific is not None:
        wanted.append(("gender-specific", entry.gender_specific.value))
    if entry.cross_border:
        wanted.append(("cross-border", None))
    wanted.append(("capacity", str(entry.capacity)))
    wanted += [
        (f"capacity:{f.category.topic_category}", f"{f.available}/{f.total}")
        for f in sorted(capacities, key=lambda f: f.category.value)
        if f.category in entry.categories
    ]
    return wanted


def _kept_list(document: Mapping[str, Any], name: str) -> list[Any]:
    value = document.get(name)
    return list(value) if isinstance(value, list) else []


def _attributes(
    document: dict[str, Any], entry: DirectoryEntry, capacities: Sequence[CapacityFigure]
) -> None:
    wanted = _wanted_attributes(entry, capacities)
    kept: list[Any] = []
    present: set[tuple[str, str | None]] = set()
    for item in _kept_list(document, "attributes"):
        try:
            code = _ours(_Attribute.model_validate(item))
        except ValidationError:
            code = None
        if code is None:
            kept.append(item)  # another taxonomy's
            continue
        key = (code, item.get("value"))
        if key in wanted:
            kept.append(item)
            present.add(key)
    for code, value in wanted:
        if (code, value) in present:
            continue
        attribute: dict[str, Any] = {
            "id": _id(entry.provider_id, "attribute", code),
            "link_id": str(entry.provider_id),
            "link_type": "eligibility" if code == "gender-specific" else "service",
            "link_entity": "service",
            "taxonomy_term_id": _term(code)["id"],
            "taxonomy_term": _term(code),
        }
        if value is not None:
            attribute["value"] = value
        kept.append(attribute)
    document["attributes"] = kept


def _languages(document: dict[str, Any], entry: DirectoryEntry) -> None:
    items = _kept_list(document, "languages")
    kept = [
        item
        for item in items
        if not isinstance(item, dict)
        or not isinstance(item.get("code"), str)
        or item["code"] in entry.languages
    ]
    present = {item.get("code") for item in kept if isinstance(item, dict)}
    kept += [
        {"id": _id(entry.provider_id, "language", code), "code": code}
        for code in entry.languages
        if code not in present
    ]
    if kept or "languages" in document:
        document["languages"] = kept


def _validated_locations(
    document: Mapping[str, Any],
) -> list[tuple[Any, _ServiceAtLocation | None]]:
    """Each kept service_at_location, with its validated form (None: not one we can read)."""
    found: list[tuple[Any, _ServiceAtLocation | None]] = []
    for item in _kept_list(document, "service_at_locations"):
        try:
            found.append((item, _ServiceAtLocation.model_validate(item)))
        except ValidationError:
            found.append((item, None))
    return found


def _places(document: dict[str, Any], entry: DirectoryEntry) -> None:
    wanted = set(entry.jurisdictions)
    located = _validated_locations(document)
    derived = {
        code
        for _, at in located
        for address in (at.location.addresses if at is not None and at.location else ())
        if (code := _address_jurisdiction(address)) is not None
    }
    if derived == wanted:
        return
    kept: list[Any] = []
    covered: set[str] = set()
    for item, at in located:
        location = at.location if at is not None else None
        if location is None or not location.addresses:
            kept.append(item)
            continue
        addresses = [
            raw
            for raw, address in zip(item["location"]["addresses"], location.addresses, strict=True)
            if _address_jurisdiction(address) in wanted
        ]
        if not addresses:
            continue  # a place only where the provider no longer serves
        narrowed = copy.deepcopy(item)
        narrowed["location"]["addresses"] = addresses
        covered |= {_address_jurisdiction(a) or "" for a in location.addresses} & wanted
        kept.append(narrowed)
    for code in entry.jurisdictions:
        if code not in covered:
            kept.append(_new_location(entry, code))
    document["service_at_locations"] = kept


def _new_location(entry: DirectoryEntry, code: str) -> dict[str, Any]:
    location_id = _id(entry.provider_id, "location", code)
    subdivision = code if "-" in code else None
    address = {
        "id": _id(entry.provider_id, "address", code),
        "location_id": location_id,
        "address_1": "",
        "city": "",
        "state_province": subdivision or "",
        "postal_code": "",
        "country": code[:2],
        "address_type": "postal",
    }
    if subdivision is not None:
        address["region"] = subdivision
    return {
        "id": _id(entry.provider_id, "service_at_location", code),
        "service_id": str(entry.provider_id),
        "location_id": location_id,
        "location": {
            "id": location_id,
            "location_type": "postal",
            "name": f"{entry.organization_name} ({code})",
            "addresses": [address],
        },
    }


def _accessibility(document: dict[str, Any], entry: DirectoryEntry) -> None:
    locations = [
        item["location"]
        for item, at in _validated_locations(document)
        if at is not None and at.location is not None and isinstance(item.get("location"), dict)
    ]
    derived = any(location.get("accessibility") for location in locations)
    if derived == entry.accessible or not locations:
        return
    if entry.accessible:
        first = locations[0]
        first["accessibility"] = [
            {
                "id": _id(entry.provider_id, "accessibility"),
                "location_id": first["id"],
                "description": _ACCESSIBLE,
            }
        ]
    else:
        for location in locations:
            location.pop("accessibility", None)


def _scalars(document: dict[str, Any], entry: DirectoryEntry) -> None:
    text = document.get("interpretation_services")
    if bool(text.strip() if isinstance(text, str) else text) != entry.offers_interpretation:
        if entry.offers_interpretation:
            document["interpretation_services"] = _INTERPRETATION
        else:
            document.pop("interpretation_services", None)
    maximum = document.get("maximum_age")
    number = maximum if isinstance(maximum, int | float) and not isinstance(maximum, bool) else None
    if _child(number) != entry.child_specialised:
        if entry.child_specialised:
            document["maximum_age"] = CHILD_AGE - 1
            minimum = document.get("minimum_age")
            if isinstance(minimum, int | float) and minimum >= CHILD_AGE:
                document.pop("minimum_age")
        else:
            document.pop("maximum_age", None)


def service_document(
    entry: DirectoryEntry,
    capacities: Sequence[CapacityFigure] = (),
    kept: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The HSDS 3.0 service of ``entry``: ``kept`` (a stored document) with the entry's say.

    Every part ``kept`` has that agrees with the entry stays as it is (ids,
    order, other members); what disagrees is changed as little as it can be,
    with made-up ids derived from the provider id (uuid5), so the same
    entry always exports the same document.
    """
    document: dict[str, Any] = copy.deepcopy(dict(kept)) if kept else {}
    pid = entry.provider_id
    document["id"] = str(pid)
    organization = document.get("organization")
    if not isinstance(organization, dict):
        organization = {"id": _id(pid, "organization"), "description": ""}
        document.setdefault("organization_id", organization["id"])
    organization["name"] = entry.organization_name
    document["organization"] = organization
    if not isinstance(document.get("name"), str):
        document["name"] = entry.organization_name
    if document.get("status") not in ("active", "inactive", "defunct", "temporarily closed"):
        document["status"] = "active"
    _scalars(document, entry)
    _languages(document, entry)
    _places(document, entry)
    _accessibility(document, entry)
    _attributes(document, entry, capacities)
    return document


def page(services: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An HSDS 3.0 page (``GET /services``'s answer) holding every service, by id."""
    contents = sorted(services, key=lambda service: str(service.get("id")))
    return {
        "total_items": len(contents),
        "total_pages": 1,
        "page_number": 1,
        "size": len(contents),
        "first_page": True,
        "last_page": True,
        "empty": not contents,
        "contents": list(contents),
    }


def dumps(document: Mapping[str, Any] | Sequence[Any]) -> str:
    """Canonical JSON text (sorted members, no spaces): what a directory event keeps."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

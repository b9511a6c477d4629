"""The HSDS 3.0 mapping: both directions, kept fields, errors, and the demo directory.

Properties (hypothesis): any entry exports to a document that imports back to
the same entry; a document export writes imports and exports unchanged
(``export(import(x)) == x``); a changed entry keeps every HSDS field it does
not own. Then the errors an import reports, each located by entry and field.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.directory import demo
from connectors.directory.entries import CapacityFigure, DirectoryEntry
from connectors.directory.hsds import (
    TAXONOMY,
    listing_of,
    page,
    read_listings,
    service_document,
)
from connectors.exceptions import HsdsImportError
from schemas.types import Gender, ServiceCategory

CATEGORIES = [c for c in ServiceCategory if c is not ServiceCategory.UNKNOWN]
JURISDICTIONS = ["NL", "NL-LI", "BE", "BE-VLI", "DE-NW", "RO-IS", "MD-UN", "PL-08"]
LANGUAGES = ["nl", "fr", "de", "ro", "ru", "uk", "en", "prs"]

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=20))
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
EXTRA_NAMES = st.sampled_from(
    ["description", "url", "email", "alert", "fees_description", "accreditations", "x_local_note"]
)


@st.composite
def entries(draw: st.DrawFn) -> DirectoryEntry:
    categories = draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=4, unique=True))
    return DirectoryEntry(
        provider_id=draw(st.uuids()),
        organization_name=draw(
            st.text(
                st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"),
                min_size=1,
                max_size=40,
            )
        ),
        categories=categories,
        languages=draw(st.lists(st.sampled_from(LANGUAGES), max_size=4, unique=True)),
        offers_interpretation=draw(st.booleans()),
        jurisdictions=draw(
            st.lists(st.sampled_from(JURISDICTIONS), min_size=1, max_size=3, unique=True)
        ),
        child_specialised=draw(st.booleans()),
        gender_specific=draw(
            st.sampled_from([None, Gender.FEMALE, Gender.MALE, Gender.NON_BINARY])
        ),
        accessible=draw(st.booleans()),
        cross_border=draw(st.booleans()),
        capacity=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def capacities(draw: st.DrawFn, entry: DirectoryEntry) -> list[CapacityFigure]:
    chosen = draw(st.lists(st.sampled_from(entry.categories), unique=True))
    figures = []
    for category in chosen:
        total = draw(st.integers(0, 500))
        figures.append(
            CapacityFigure(category=category, total=total, available=draw(st.integers(0, total)))
        )
    return figures


@st.composite
def kept_fields(draw: st.DrawFn, provider_id: uuid.UUID) -> dict[str, Any]:
    """HSDS fields SafePassage does not own: free members, other taxonomies, uncoded languages."""
    kept: dict[str, Any] = draw(st.dictionaries(EXTRA_NAMES, JSON, max_size=4))
    if draw(st.booleans()):
        kept["attributes"] = [
            {
                "id": str(uuid.uuid5(provider_id, "other-attribute")),
                "value": draw(st.text(max_size=10)),
                "taxonomy_term": {
                    "id": str(uuid.uuid5(provider_id, "other-term")),
                    "name": "Open Eligibility: victims of crime",
                    "description": "Another taxonomy's term.",
                    "taxonomy": "Open Eligibility",
                },
            }
        ]
    if draw(st.booleans()):
        kept["languages"] = [{"id": str(uuid.uuid5(provider_id, "sign")), "name": "Sign language"}]
    if draw(st.booleans()):
        kept["organization"] = {
            "id": str(uuid.uuid5(provider_id, "org")),
            "name": "old name",
            "description": draw(st.text(max_size=20)),
            "tax_id": draw(st.text(max_size=8)),
        }
    return kept


def kept_part(document: dict[str, Any], kept: dict[str, Any]) -> None:
    """Every kept field is in ``document`` as it was."""
    for name, value in kept.items():
        if name == "attributes":
            assert all(item in document["attributes"] for item in value)
        elif name == "languages":
            assert all(item in document["languages"] for item in value)
        elif name == "organization":
            org = document["organization"]
            assert {k: v for k, v in org.items() if k != "name"} == {
                k: v for k, v in value.items() if k != "name"
            }
        else:
            assert document[name] == value


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_entry_exports_and_imports_back_to_itself(data: st.DataObject) -> None:
    entry = data.draw(entries())
    figures = data.draw(capacities(entry))
    kept = data.draw(kept_fields(entry.provider_id))

    document = service_document(entry, figures, kept)
    listing = listing_of(json.loads(json.dumps(document)))

    assert listing.entry == entry
    assert sorted(listing.capacities, key=str) == sorted(figures, key=str)
    kept_part(document, kept)
    # export(import(x)) == x: a document export wrote comes back unchanged,
    assert service_document(listing.entry, listing.capacities, listing.document) == document
    # and import -> export -> import is stable.
    again = listing_of(service_document(listing.entry, listing.capacities, listing.document))
    assert again.entry == listing.entry


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_changed_entry_keeps_every_hsds_field_it_does_not_own(data: st.DataObject) -> None:
    entry = data.draw(entries())
    kept = data.draw(kept_fields(entry.provider_id))
    original = service_document(entry, data.draw(capacities(entry)), kept)
    changed = data.draw(entries()).model_copy(update={"provider_id": entry.provider_id})
    figures = data.draw(capacities(changed))

    document = service_document(changed, figures, original)

    listing = listing_of(document)
    sets = ("jurisdictions", "languages", "categories")  # sets: their order carries nothing
    assert listing.entry == changed.model_copy(
        update={name: getattr(listing.entry, name) for name in sets}
    )
    for name in sets:
        assert set(getattr(listing.entry, name)) == set(getattr(changed, name))
    assert sorted(listing.capacities, key=str) == sorted(figures, key=str)
    kept_part(document, kept)
    assert service_document(listing.entry, listing.capacities, listing.document) == document


def test_real_looking_locations_stay_and_unserved_ones_go() -> None:
    shelter = next(p for p in demo.PROVIDERS if p.slug == "xb-meuse-shelter")
    document = demo.demo_service(shelter)
    listing = listing_of(document)
    assert listing.entry.jurisdictions == ("NL-LI", "BE-VLI")
    assert listing.entry.cross_border

    narrowed = listing.entry.model_copy(update={"jurisdictions": ("NL-LI", "DE-NW")})
    exported = service_document(narrowed, listing.capacities, listing.document)

    places = [s["location"]["addresses"][0] for s in exported["service_at_locations"]]
    assert [(a["city"], a["country"]) for a in places] == [("Maastricht", "NL"), ("", "DE")]
    assert exported["service_at_locations"][0] == document["service_at_locations"][0]


def test_every_mapped_field_is_read_from_where_the_table_says() -> None:
    entry = DirectoryEntry(
        provider_id=uuid.uuid4(),
        organization_name="Fictional",
        categories=[ServiceCategory.LEGAL_AID, ServiceCategory.HEALTH],
        languages=["ro"],
        jurisdictions=["RO-IS"],
        child_specialised=True,
        gender_specific=Gender.FEMALE,
        accessible=True,
        cross_border=True,
        offers_interpretation=True,
        capacity=7,
    )
    document = service_document(entry)
    assert document["organization"]["name"] == "Fictional"
    assert document["maximum_age"] == 17
    assert document["interpretation_services"]
    assert document["languages"][0]["code"] == "ro"
    address = document["service_at_locations"][0]["location"]["addresses"][0]
    assert (address["country"], address["region"]) == ("RO", "RO-IS")
    assert document["service_at_locations"][0]["location"]["accessibility"]
    ours = {
        (a["taxonomy_term"]["code"], a.get("value"))
        for a in document["attributes"]
        if a["taxonomy_term"]["taxonomy"] == TAXONOMY
    }
    assert ours == {
        ("category:legal-aid", None),
        ("category:health", None),
        ("gender-specific", "FEMALE"),
        ("cross-border", None),
        ("capacity", "7"),
    }


# ------------------------------------------------------------------ errors


def valid() -> dict[str, Any]:
    return copy.deepcopy(demo.demo_service(demo.PROVIDERS[0]))


def errors_of(document: Any) -> dict[str, str]:
    with pytest.raises(HsdsImportError) as caught:
        read_listings(document)
    return dict(caught.value.errors)


def attribute(code: str, value: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "taxonomy_term": {"id": str(uuid.uuid4()), "name": code, "description": "", "code": code},
    }
    item["taxonomy_term"]["taxonomy"] = TAXONOMY
    if value is not None:
        item["value"] = value
    return item


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s.pop("id"), "/contents/1/id"),
        (lambda s: s.update(id="not-a-uuid"), "/contents/1/id"),
        (lambda s: s.update(status="open"), "/contents/1/status"),
        (lambda s: s.pop("organization"), "/contents/1/organization"),
        (lambda s: s["organization"].pop("description"), "/contents/1/organization/description"),
        (lambda s: s["languages"][0].update(code="EN"), "/contents/1/languages/0/code"),
        (lambda s: s.update(maximum_age="17"), "/contents/1/maximum_age"),
        (
            lambda s: s["service_at_locations"][0]["location"]["addresses"][0].update(
                country="Netherlands"
            ),
            "/contents/1/service_at_locations/0/location/addresses/0/country",
        ),
        (
            lambda s: s["service_at_locations"][0]["location"]["addresses"][0].pop("city"),
            "/contents/1/service_at_locations/0/location/addresses/0/city",
        ),
        (lambda s: s.update(service_at_locations=[]), "/contents/1/service_at_locations"),
        (lambda s: s.update(attributes=[]), "/contents/1/attributes"),
        (
            lambda s: s["attributes"].append(attribute("capacity", "many")),
            f"/contents/1/attributes/{len(valid()['attributes'])}/value",
        ),
        (
            lambda s: s["attributes"].append(attribute("capacity:housing", "9/3")),
            f"/contents/1/attributes/{len(valid()['attributes'])}/value",
        ),
        (
            lambda s: s["attributes"].append(attribute("capacity:health", "1/3")),
            "/contents/1/attributes",
        ),
        (
            lambda s: s["attributes"].append(attribute("gender-specific", "women")),
            f"/contents/1/attributes/{len(valid()['attributes'])}/value",
        ),
        (
            lambda s: s["attributes"].append(attribute("vip")),
            f"/contents/1/attributes/{len(valid()['attributes'])}/taxonomy_term/code",
        ),
    ],
)
def test_an_error_names_the_entry_and_the_field_and_nothing_is_imported(
    change: Any, where: str
) -> None:
    good, bad = valid(), valid()
    bad["id"] = str(uuid.uuid4())
    change(bad)
    found = errors_of(page([good, bad]) | {"contents": [good, bad]})
    assert where in found, found
    assert found[where].startswith("entry 2")


def test_an_id_given_twice_and_a_document_that_is_no_page() -> None:
    found = errors_of([valid(), valid()])
    assert list(found) == ["/1/id"]
    assert "again" in found["/1/id"]
    assert list(errors_of({"services": []})) == [""]
    assert list(errors_of(["not an object"])) == ["/0"]


def test_other_taxonomies_and_uncoded_languages_are_kept_not_matched() -> None:
    service = valid()
    service["languages"].append({"id": str(uuid.uuid4()), "name": "Sign language"})
    other = attribute("category:housing")
    other["taxonomy_term"]["taxonomy"] = "Open Eligibility"
    service["attributes"].append(other)
    [listing] = read_listings([service])
    assert listing.entry.languages == demo.PROVIDERS[0].languages
    exported = service_document(listing.entry, listing.capacities, listing.document)
    assert exported == service


# ------------------------------------------------------------------ the demo directory


def test_the_demo_file_is_the_generators_output() -> None:
    assert demo.DEMO_FILE.read_text(encoding="utf-8") == demo.render(), (
        "infra/demo/directory.hsds.json is stale: run `python -m connectors.directory.demo`"
    )


def test_the_demo_directory_has_what_the_demo_needs() -> None:
    listings = read_listings(json.loads(demo.DEMO_FILE.read_text(encoding="utf-8")))
    entries = [listing.entry for listing in listings]
    assert len(entries) >= 30
    assert len({j[:2] for e in entries for j in e.jurisdictions}) >= 4
    assert {c for e in entries for c in e.categories} == set(CATEGORIES)
    assert len({language for e in entries for language in e.languages}) >= 6
    assert len({e.capacity for e in entries}) >= 10
    assert any(e.child_specialised for e in entries)
    assert {e.gender_specific for e in entries} >= {Gender.FEMALE, Gender.MALE}
    border = [e for e in entries if len({j[:2] for j in e.jurisdictions}) > 1]
    assert len(border) >= 4 and all(e.cross_border for e in border)
    assert all(listing.capacities for listing in listings)
    text = demo.DEMO_FILE.read_text(encoding="utf-8")
    domains = re.findall(r"[\w.+-]+@([\w.-]+)", text)
    assert domains and all(d.endswith(".example.org") for d in domains)  # no real mail address
    assert all(u.endswith(".example.org") for u in re.findall(r"https?://([\w.-]+)", text))

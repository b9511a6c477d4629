"""The synthetic demo directory: fictional providers in HSDS 3.0 JSON, made deterministically.

``infra/demo/directory.hsds.json`` (:data:`DEMO_FILE`) is this module's
output, committed so that anyone can read or import it without Python; a
unit test fails when the two differ (regenerate with ``python -m
connectors.directory.demo``). Load it into a running intake with
:func:`connectors.directory.client.load_directory` or ``safepassage
providers import infra/demo/directory.hsds.json``.

Every organisation, street, phone number and address here is made up
(``example.org`` addresses, numbers of the ``0000`` block); none is a real
organisation or person. The directory covers six countries (NL, BE, DE,
RO, MD, and PL as a border partner), all four service categories, a dozen
languages, capacities from 3 to 40, child-specialised and gender-specific services, and cross-border
pairs: providers near a border with a place on each side, serving both
sides' jurisdictions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.directory.entries import CapacityFigure, DirectoryEntry
from connectors.directory.hsds import IDS, page, service_document
from schemas.types import Gender, ServiceCategory

__all__ = ["DEMO_FILE", "DemoProvider", "demo_directory", "write_demo"]

DEMO_FILE = Path(__file__).resolve().parents[2] / "infra" / "demo" / "directory.hsds.json"

H, M, L, F = (
    ServiceCategory.HOUSING,
    ServiceCategory.HEALTH,
    ServiceCategory.LEGAL_AID,
    ServiceCategory.FINANCIAL_SUPPORT,
)

PLACES: dict[str, tuple[str, str, str, str]] = {
    # jurisdiction: (city, province, street, postal code) -- made-up streets
    "NL-LI": ("Maastricht", "Limburg", "Kastanjelaan 14", "6211 AA"),
    "NL-NH": ("Amsterdam", "Noord-Holland", "Lindengracht 201", "1015 KA"),
    "NL-ZH": ("Rotterdam", "Zuid-Holland", "Wilgenkade 8", "3011 BB"),
    "BE-VLI": ("Hasselt", "Limburg", "Beukenstraat 3", "3500"),
    "BE-BRU": ("Brussels", "Brussels-Capital", "Rue des Tilleuls 52", "1000"),
    "BE-WLG": ("Liège", "Liège", "Rue du Verger 9", "4000"),
    "DE-NW": ("Aachen", "Nordrhein-Westfalen", "Ahornweg 27", "52062"),
    "DE-BE": ("Berlin", "Berlin", "Erlenstraße 5", "10115"),
    "DE-BY": ("München", "Bayern", "Birkenallee 40", "80331"),
    "RO-B": ("București", "București", "Strada Teilor 11", "010011"),
    "RO-IS": ("Iași", "Iași", "Strada Nucului 6", "700028"),
    "RO-TM": ("Timișoara", "Timiș", "Strada Salcâmilor 19", "300011"),
    "MD-CU": ("Chișinău", "Chișinău", "Strada Plopilor 23", "MD-2001"),
    "MD-UN": ("Ungheni", "Ungheni", "Strada Stejarului 2", "MD-3601"),
    "PL-08": ("Słubice", "Lubuskie", "Ulica Klonowa 4", "69-100"),
}


@dataclass(frozen=True)
class DemoProvider:
    """One fictional provider of the demo directory."""

    slug: str
    organization: str
    service: str
    categories: tuple[ServiceCategory, ...]
    languages: tuple[str, ...]
    jurisdictions: tuple[str, ...]
    capacity: int
    available: int
    child: bool = False
    gender: Gender | None = None
    accessible: bool = False
    interpretation: bool = False

    @property
    def provider_id(self) -> uuid.UUID:
        return uuid.uuid5(IDS, f"demo/{self.slug}")

    @property
    def cross_border(self) -> bool:
        """Places in more than one country: a border provider serving both sides."""
        return len({j[:2] for j in self.jurisdictions}) > 1


def _p(  # noqa: PLR0917 - one row of the table below, positionally
    slug: str,
    organization: str,
    service: str,
    categories: Sequence[ServiceCategory],
    languages: str,
    jurisdictions: str,
    capacity: int,
    available: int,
    **more: Any,
) -> DemoProvider:
    return DemoProvider(
        slug,
        organization,
        service,
        tuple(categories),
        tuple(languages.split()),
        tuple(jurisdictions.split()),
        capacity,
        available,
        **more,
    )


PROVIDERS: tuple[DemoProvider, ...] = (
    # The Netherlands
    _p(
        "nl-lantern",
        "Lanternhouse Foundation",
        "Safe house",
        [H],
        "nl en ro",
        "NL-NH",
        12,
        4,
        gender=Gender.FEMALE,
        accessible=True,
    ),
    _p(
        "nl-tidewater",
        "Tidewater Care Collective",
        "Trauma-informed clinic",
        [M],
        "nl en pl bg",
        "NL-ZH",
        20,
        9,
        interpretation=True,
        accessible=True,
    ),
    _p(
        "nl-kestrel",
        "Kestrel Legal Aid Circle",
        "Residence rights counsel",
        [L],
        "nl en fr",
        "NL-NH NL-ZH",
        15,
        6,
        interpretation=True,
    ),
    _p(
        "nl-saffron", "Saffron Bridge Fund", "Emergency grants", [F], "nl en ro bg", "NL-NH", 40, 22
    ),
    _p(
        "nl-willow-kids",
        "Little Willow Children's Home",
        "Shelter for minors",
        [H, M],
        "nl en ar",
        "NL-ZH",
        6,
        2,
        child=True,
        accessible=True,
    ),
    _p(
        "nl-harbour-men",
        "Harbour Row Men's Shelter",
        "Shelter for men",
        [H],
        "nl en pl uk",
        "NL-ZH",
        10,
        0,
        gender=Gender.MALE,
    ),
    # Belgium
    _p(
        "be-morning",
        "Morning Lark House",
        "Women's refuge",
        [H, M],
        "nl fr en",
        "BE-BRU",
        9,
        3,
        gender=Gender.FEMALE,
        interpretation=True,
    ),
    _p(
        "be-ferrule",
        "Ferrule Rights Office",
        "Legal aid for victims",
        [L],
        "fr nl en ro",
        "BE-BRU BE-WLG",
        25,
        12,
    ),
    _p(
        "be-quill",
        "Quillstone Health Point",
        "Community health",
        [M],
        "fr en ar",
        "BE-WLG",
        14,
        5,
        accessible=True,
    ),
    _p(
        "be-copper",
        "Copperbeech Solidarity Fund",
        "Start-up money",
        [F],
        "nl fr en",
        "BE-BRU",
        30,
        18,
    ),
    _p(
        "be-sparrow-kids",
        "Sparrow Nest Youth Care",
        "Youth shelter",
        [H],
        "fr nl en",
        "BE-WLG",
        5,
        1,
        child=True,
    ),
    # Germany
    _p(
        "de-linden",
        "Lindenhof Women's Network",
        "Protected housing",
        [H],
        "de en ru uk",
        "DE-BE",
        16,
        7,
        gender=Gender.FEMALE,
        accessible=True,
    ),
    _p(
        "de-ember",
        "Emberfield Medical Aid",
        "Health care without papers",
        [M],
        "de en ro bg ru",
        "DE-BE DE-BY",
        35,
        20,
        interpretation=True,
    ),
    _p("de-gable", "Gablestone Law Clinic", "Victims' counsel", [L], "de en pl", "DE-BY", 12, 4),
    _p(
        "de-thimble",
        "Thimble Trust Finance Help",
        "Debt and benefits help",
        [F],
        "de en tr",
        "DE-BE",
        24,
        11,
    ),
    _p(
        "de-acorn-kids",
        "Acorn House for Children",
        "Child protection home",
        [H, M],
        "de en ar uk",
        "DE-BY",
        4,
        1,
        child=True,
        accessible=True,
    ),
    _p(
        "de-oak-men",
        "Oakbridge Men's Hostel",
        "Hostel for men",
        [H],
        "de en pl ro",
        "DE-BY",
        8,
        3,
        gender=Gender.MALE,
    ),
    # Romania
    _p(
        "ro-lumina",
        "Casa Lumina Foundation",
        "Shelter and reintegration",
        [H],
        "ro en hu",
        "RO-B",
        14,
        6,
        gender=Gender.FEMALE,
    ),
    _p(
        "ro-aster",
        "Aster Health Association",
        "Medical and psychological care",
        [M],
        "ro en hu",
        "RO-B RO-TM",
        22,
        10,
        accessible=True,
    ),
    _p(
        "ro-scribe",
        "Scribe Hall Legal Centre",
        "Legal aid and court support",
        [L],
        "ro en",
        "RO-B",
        18,
        7,
    ),
    _p(
        "ro-hearth-kids",
        "Hearthlight Children's Centre",
        "Emergency care for minors",
        [H, M],
        "ro en",
        "RO-TM",
        6,
        2,
        child=True,
    ),
    _p(
        "ro-meridian",
        "Meridian Micro-Grants",
        "Small grants and training",
        [F],
        "ro en",
        "RO-TM",
        26,
        13,
    ),
    # Moldova
    _p(
        "md-plop",
        "Poplar Row Centre",
        "Shelter and counselling",
        [H, M],
        "ro ru en",
        "MD-CU",
        10,
        3,
        gender=Gender.FEMALE,
        interpretation=True,
    ),
    _p("md-justa", "Justa Counsel Bureau", "Legal aid", [L], "ro ru", "MD-CU", 12, 5),
    _p(
        "md-grain",
        "Grainfield Support Fund",
        "Reintegration grants",
        [F],
        "ro ru uk",
        "MD-CU",
        20,
        8,
    ),
    # Cross-border pairs: near a border, a place on each side, serving both sides.
    _p(
        "xb-meuse-shelter",
        "Meuse Valley Refuge",
        "Border shelter",
        [H],
        "nl fr de en",
        "NL-LI BE-VLI",
        11,
        4,
        gender=Gender.FEMALE,
        accessible=True,
    ),
    _p(
        "xb-meuse-legal",
        "Two Banks Legal Aid",
        "Cross-border legal aid",
        [L],
        "nl fr en",
        "BE-VLI NL-LI",
        14,
        6,
        interpretation=True,
    ),
    _p(
        "xb-dreilaender-health",
        "Three Borders Health Post",
        "Cross-border clinic",
        [M],
        "de nl en",
        "DE-NW NL-LI",
        18,
        8,
    ),
    _p(
        "xb-dreilaender-fund",
        "Threeway Relief Fund",
        "Emergency money",
        [F],
        "de nl fr en",
        "NL-LI DE-NW",
        20,
        9,
    ),
    _p(
        "xb-prut-shelter",
        "Prut Crossing House",
        "Border shelter",
        [H, M],
        "ro ru uk en",
        "RO-IS MD-UN",
        9,
        2,
        interpretation=True,
    ),
    _p(
        "xb-prut-legal",
        "Prut Legal Bridge",
        "Cross-border counsel",
        [L],
        "ro ru en",
        "MD-UN RO-IS",
        10,
        5,
    ),
    _p(
        "xb-prut-kids",
        "Twin Shores Youth Home",
        "Shelter for minors",
        [H],
        "ro ru",
        "RO-IS MD-UN",
        3,
        1,
        child=True,
    ),
    _p(
        "xb-oder-clinic",
        "Oder Gate Clinic",
        "Health care",
        [M, F],
        "de pl uk en",
        "DE-BE PL-08",
        16,
        7,
        accessible=True,
    ),
)
"""The demo directory: 33 providers in six countries."""


def _location(provider: DemoProvider, jurisdiction: str, index: int) -> dict[str, Any]:
    city, province, street, postal = PLACES[jurisdiction]
    pid = provider.provider_id
    location_id = str(uuid.uuid5(IDS, f"demo/{provider.slug}/location/{index}"))
    location: dict[str, Any] = {
        "id": location_id,
        "location_type": "physical",
        "name": f"{provider.organization} {city}",
        "addresses": [
            {
                "id": str(uuid.uuid5(IDS, f"demo/{provider.slug}/address/{index}")),
                "location_id": location_id,
                "address_1": street,
                "city": city,
                "region": jurisdiction,
                "state_province": province,
                "postal_code": postal,
                "country": jurisdiction[:2],
                "address_type": "physical",
            }
        ],
    }
    if provider.accessible and index == 0:
        location["accessibility"] = [
            {
                "id": str(uuid.uuid5(IDS, f"demo/{provider.slug}/accessibility")),
                "location_id": location_id,
                "description": "Step-free entrance, lift to every floor, accessible bathroom.",
            }
        ]
    return {
        "id": str(uuid.uuid5(IDS, f"demo/{provider.slug}/service_at_location/{index}")),
        "service_id": str(pid),
        "location_id": location_id,
        "location": location,
    }


def _kept(provider: DemoProvider) -> dict[str, Any]:
    """The HSDS fields SafePassage does not use, to show that they come back on export."""
    pid, slug = provider.provider_id, provider.slug
    organization_id = str(uuid.uuid5(IDS, f"demo/{slug}/organization"))
    document: dict[str, Any] = {
        "id": str(pid),
        "organization_id": organization_id,
        "organization": {
            "id": organization_id,
            "name": provider.organization,
            "description": f"{provider.organization} is a fictional organisation of the "
            "SafePassage demo directory.",
            "website": f"https://{slug}.example.org",
            "email": f"contact@{slug}.example.org",
        },
        "name": provider.service,
        "description": f"{provider.service} (fictional, for demonstrations only).",
        "url": f"https://{slug}.example.org/services",
        "email": f"referrals@{slug}.example.org",
        "status": "active",
        "application_process": "By referral from a partner agency through SafePassage.",
        "phones": [
            {
                "id": str(uuid.uuid5(IDS, f"demo/{slug}/phone")),
                "number": f"+00 0000 {provider.provider_id.int % 10_000:04d}",
                "type": "voice",
                "description": "Fictional number.",
            }
        ],
        "schedules": [
            {
                "id": str(uuid.uuid5(IDS, f"demo/{slug}/schedule")),
                "freq": "WEEKLY",
                "byday": "MO,TU,WE,TH,FR,SA,SU",
                "description": "Intake around the clock.",
            }
        ],
        "languages": [
            {"id": str(uuid.uuid5(IDS, f"demo/{slug}/language/{code}")), "code": code}
            for code in provider.languages
        ],
        "service_at_locations": [
            _location(provider, jurisdiction, index)
            for index, jurisdiction in enumerate(provider.jurisdictions)
        ],
        "attributes": [],
    }
    if provider.child:
        document["minimum_age"] = 0
        document["eligibility_description"] = "Children and young people under 18."
    return document


def demo_service(provider: DemoProvider) -> dict[str, Any]:
    """The HSDS 3.0 service of one demo provider."""
    entry = DirectoryEntry(
        provider_id=provider.provider_id,
        organization_name=provider.organization,
        categories=provider.categories,
        languages=provider.languages,
        offers_interpretation=provider.interpretation,
        jurisdictions=provider.jurisdictions,
        child_specialised=provider.child,
        gender_specific=provider.gender,
        accessible=provider.accessible,
        cross_border=provider.cross_border,
        capacity=provider.capacity,
    )
    capacities = [
        CapacityFigure(
            category=category,
            total=provider.capacity,
            available=provider.available if i == 0 else provider.capacity,
        )
        for i, category in enumerate(provider.categories)
    ]
    return service_document(entry, capacities, _kept(provider))


def demo_directory() -> dict[str, Any]:
    """The whole demo directory as an HSDS 3.0 page."""
    return page([demo_service(provider) for provider in PROVIDERS])


def render() -> str:
    """The demo file's text (what :data:`DEMO_FILE` holds)."""
    return json.dumps(demo_directory(), indent=2, ensure_ascii=False) + "\n"


def write_demo(path: Path = DEMO_FILE) -> Path:
    """Write the demo directory to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover - `python -m connectors.directory.demo`
    print(write_demo())

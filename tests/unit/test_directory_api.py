"""The directory API without a broker: roles, errors, events, audit, read-your-writes.

The Kafka edge is :class:`~tests.doubles.RecordingPublisher`; the intake's copy of
``providers.v1`` is the real :class:`~connectors.intake.provider_store.ProviderStore`,
reading back what the publisher acknowledged (:func:`tests.doubles.following`), so a
read after a write goes through the same decode and sender rules as on the broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connectors.auth import Role, add_key
from connectors.directory.entries import CapacityFigure, DirectoryEntry
from connectors.directory.hsds import page, service_document
from connectors.intake import IntakeSettings, create_app
from connectors.intake.provider_store import ProviderStore
from schemas.models import ProviderCapacity, ProviderRegistered, ProviderUpdated
from schemas.types import Gender, ServiceCategory
from streams.codec import Codec
from streams.settings import KafkaSettings
from tests.doubles import RecordingPublisher, following, key_directory
from tests.unit.test_intake_status import FixedStatus

KAFKA = KafkaSettings(topic_namespace="safepassage")
PROVIDERS = "safepassage.providers.v1"
AUDIT = "safepassage.audit.v1"
SHELTER = uuid.UUID("5e1f0000-0000-4000-8000-000000000001")
CLINIC = uuid.UUID("5e1f0000-0000-4000-8000-000000000002")
PROBLEM = "application/problem+json"

ENTRY: dict[str, Any] = {
    "organization_name": "Fictional Harbour Shelter",
    "categories": ["HOUSING"],
    "languages": ["nl", "ro"],
    "offers_interpretation": True,
    "jurisdictions": ["NL-LI"],
    "child_specialised": False,
    "gender_specific": "FEMALE",
    "accessible": True,
    "cross_border": False,
    "capacity": 6,
}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "api-keys.yaml"
    made = {
        "admin": add_key(path, role=Role.DIRECTORY_ADMIN, principal="dir-admin")[0],
        "shelter": add_key(path, role=Role.PROVIDER, principal="shelter", provider_id=SHELTER)[0],
        "clinic": add_key(path, role=Role.PROVIDER, principal="clinic", provider_id=CLINIC)[0],
        "agency": add_key(path, role=Role.AGENCY, principal="police", agency_id="agency:nl")[0],
        "operator": add_key(path, role=Role.OPERATOR, principal="desk")[0],
    }
    return path, made


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def app(
    tmp_path: Path, keys: tuple[Path, dict[str, str]], publisher: RecordingPublisher
) -> FastAPI:
    return create_app(
        IntakeSettings(api_keys_file=keys[0], state_dir=tmp_path / "state"),
        kafka=KAFKA,
        publisher=publisher,
        status=FixedStatus(),
        directory=key_directory(publisher),
        providers=ProviderStore(
            KAFKA, Codec(KAFKA, source="/safepassage/intake"), reader=following(publisher)
        ),
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http,
    ):
        yield http


@pytest.fixture
def key(keys: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return keys[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:safepassage:problem:{slug}"
    return body


def directory_events(publisher: RecordingPublisher) -> list[Any]:
    codec = Codec(KAFKA, source="/t")
    return [
        codec.decode(r.value, r.headers, topic=PROVIDERS, key=r.key)
        for r in publisher.records
        if r.topic == PROVIDERS
    ]


def audits(publisher: RecordingPublisher) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in publisher.records if r.topic == AUDIT]


async def register(
    client: httpx.AsyncClient, token: str, pid: uuid.UUID = SHELTER
) -> httpx.Response:
    return await client.post(
        "/v1/providers", json={**ENTRY, "provider_id": str(pid)}, headers=auth(token)
    )


# ------------------------------------------------------------------ register, read


async def test_an_admin_registers_a_provider_published_audited_and_readable_at_once(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    response = await register(client, key["admin"])

    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/providers/{SHELTER}"
    assert response.json()["organization_name"] == ENTRY["organization_name"]
    [decoded] = directory_events(publisher)
    assert isinstance(decoded.event, ProviderRegistered)
    assert decoded.event.provider_id == SHELTER
    assert decoded.event.gender_specific is Gender.FEMALE
    assert decoded.envelope.source == "/directory-admins/dir-admin"
    [audit] = audits(publisher)
    assert audit["kind"] == "directory.change"
    assert (audit["action"], audit["status"], audit["principal"]) == ("register", 201, "dir-admin")
    assert audit["event_id"] == decoded.envelope.id
    assert audit["provider_id"] == str(SHELTER)
    # Read your writes: the copy of providers.v1 shows it as soon as the 201 is given.
    read = await client.get(f"/v1/providers/{SHELTER}", headers=auth(key["operator"]))
    assert read.status_code == 200
    assert read.json()["languages"] == ["nl", "ro"]
    listing = await client.get("/v1/providers", headers=auth(key["admin"]))
    assert [p["provider_id"] for p in listing.json()] == [str(SHELTER)]


async def test_without_an_id_the_intake_issues_one(
    client: httpx.AsyncClient, key: dict[str, str]
) -> None:
    response = await client.post("/v1/providers", json=ENTRY, headers=auth(key["admin"]))
    assert response.status_code == 201
    assert uuid.UUID(response.json()["provider_id"]).version == 4


async def test_registering_an_id_twice_is_a_409_audited_and_publishes_nothing(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    assert (await register(client, key["admin"])).status_code == 201
    body = problem(await register(client, key["admin"]), 409, "provider-exists")
    assert body["errors"] == [{"location": "/provider_id", "message": "already registered"}]
    assert len(directory_events(publisher)) == 1
    assert audits(publisher)[-1]["refusal"] == "exists"
    assert audits(publisher)[-1]["status"] == 409


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"categories": []}, "/categories"),
        ({"categories": ["UNKNOWN"]}, "/categories"),
        ({"jurisdictions": ["Netherlands"]}, "/jurisdictions/0"),
        ({"languages": ["Romanian"]}, "/languages/0"),
        ({"capacity": -1}, "/capacity"),
        ({"gender_specific": "UNDISCLOSED"}, "/gender_specific"),
        ({"unknown_field": 1}, "/unknown_field"),
    ],
)
async def test_an_invalid_entry_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    key: dict[str, str],
    publisher: RecordingPublisher,
    change: dict[str, Any],
    location: str,
) -> None:
    response = await client.post(
        "/v1/providers", json={**ENTRY, **change}, headers=auth(key["admin"])
    )
    body = problem(response, 400, "invalid-request")
    assert location in {e["location"] for e in body["errors"]}
    assert directory_events(publisher) == []
    assert audits(publisher)[-1]["refusal"] == "invalid"


@pytest.mark.parametrize("who", ["shelter", "agency", "operator"])
async def test_only_directory_admins_register_update_or_import_and_refusals_are_audited(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher, who: str
) -> None:
    problem(await register(client, key[who]), 403, "forbidden")
    put = await client.put(f"/v1/providers/{SHELTER}", json=ENTRY, headers=auth(key[who]))
    problem(put, 403, "forbidden")
    imported = await client.post("/v1/providers/import", json=page([]), headers=auth(key[who]))
    problem(imported, 403, "forbidden")
    assert directory_events(publisher) == []
    assert [(a["action"], a["status"], a["refusal"]) for a in audits(publisher)] == [
        ("register", 403, "role"),
        ("update", 403, "role"),
        ("import", 403, "role"),
    ]


async def test_reads_admins_and_operators_all_a_provider_its_own_agencies_nothing(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    await register(client, key["admin"])
    await register(client, key["admin"], CLINIC)
    own = await client.get(f"/v1/providers/{SHELTER}", headers=auth(key["shelter"]))
    assert own.status_code == 200
    problem(
        await client.get(f"/v1/providers/{CLINIC}", headers=auth(key["shelter"])), 403, "forbidden"
    )
    problem(await client.get("/v1/providers", headers=auth(key["shelter"])), 403, "forbidden")
    problem(await client.get("/v1/providers", headers=auth(key["agency"])), 403, "forbidden")
    problem(await client.get("/v1/providers/export", headers=auth(key["agency"])), 403, "forbidden")
    refused = [a for a in audits(publisher) if a["action"] == "read"]
    assert [(a["principal"], a["status"]) for a in refused] == [
        ("shelter", 403),
        ("shelter", 403),
        ("police", 403),
        ("police", 403),
    ]
    assert (await client.get("/v1/providers", headers=auth(key["operator"]))).status_code == 200


async def test_unknown_ids_and_bad_paths(client: httpx.AsyncClient, key: dict[str, str]) -> None:
    missing = uuid.uuid4()
    problem(
        await client.get(f"/v1/providers/{missing}", headers=auth(key["admin"])),
        404,
        "unknown-provider",
    )
    problem(
        await client.put(f"/v1/providers/{missing}", json=ENTRY, headers=auth(key["admin"])),
        404,
        "unknown-provider",
    )
    body = problem(
        await client.get("/v1/providers/not-a-uuid", headers=auth(key["admin"])),
        400,
        "invalid-request",
    )
    assert body["errors"][0]["location"] == "path:provider_id"
    problem(await client.get("/v1/providers"), 401, "unauthenticated")


# ------------------------------------------------------------------ update, capacity


async def test_an_update_replaces_the_entry_and_keeps_the_hsds_document(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    entry = DirectoryEntry.model_validate({**ENTRY, "provider_id": str(SHELTER)})
    document = service_document(entry)
    document["description"] = "A fictional shelter by the river."
    document["schedules"] = [{"id": str(uuid.uuid4()), "byday": "MO,TU"}]
    imported = await client.post(
        "/v1/providers/import", json=page([document]), headers=auth(key["admin"])
    )
    assert imported.status_code == 200, imported.text

    changed = {**ENTRY, "languages": ["nl", "ro", "uk"], "capacity": 9}
    response = await client.put(
        f"/v1/providers/{SHELTER}", json=changed, headers=auth(key["admin"])
    )

    assert response.status_code == 200, response.text
    assert response.json()["capacity"] == 9
    assert response.json()["hsds"] is True
    event = directory_events(publisher)[-1].event
    assert isinstance(event, ProviderUpdated)
    exported = await client.get("/v1/providers/export", headers=auth(key["admin"]))
    [service] = exported.json()["contents"]
    assert service["description"] == "A fictional shelter by the river."
    assert service["schedules"] == document["schedules"]
    assert [language["code"] for language in service["languages"]] == ["nl", "ro", "uk"]


async def test_a_provider_reports_its_own_capacity_and_nobody_elses(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    await register(client, key["admin"])
    figure = {"category": "HOUSING", "total": 6, "available": 2}

    own = await client.put(
        f"/v1/providers/{SHELTER}/capacity", json=figure, headers=auth(key["shelter"])
    )

    assert own.status_code == 200, own.text
    assert own.json()["capacities"] == [figure]
    decoded = directory_events(publisher)[-1]
    assert isinstance(decoded.event, ProviderCapacity)
    assert decoded.envelope.source == f"/providers/{SHELTER}"
    assert decoded.event.available == 2
    other = await client.put(
        f"/v1/providers/{SHELTER}/capacity", json=figure, headers=auth(key["clinic"])
    )
    problem(other, 403, "forbidden")
    assert audits(publisher)[-1]["principal"] == "clinic"
    assert audits(publisher)[-1]["refusal"] == "role"
    by_admin = await client.put(
        f"/v1/providers/{SHELTER}/capacity",
        json={**figure, "available": 5},
        headers=auth(key["admin"]),
    )
    assert by_admin.json()["capacities"][0]["available"] == 5
    for who in ("agency", "operator"):
        response = await client.put(
            f"/v1/providers/{SHELTER}/capacity", json=figure, headers=auth(key[who])
        )
        problem(response, 403, "forbidden")


@pytest.mark.parametrize(
    ("figure", "location"),
    [
        ({"category": "HEALTH", "total": 2, "available": 1}, "/category"),
        ({"category": "HOUSING", "total": 2, "available": 3}, ""),
        ({"category": "HOUSING", "total": 2}, "/available"),
    ],
)
async def test_a_capacity_report_that_cannot_be_is_a_400(
    client: httpx.AsyncClient, key: dict[str, str], figure: dict[str, Any], location: str
) -> None:
    await register(client, key["admin"])
    response = await client.put(
        f"/v1/providers/{SHELTER}/capacity", json=figure, headers=auth(key["shelter"])
    )
    body = problem(response, 400, "invalid-request")
    assert location in {e["location"] for e in body["errors"]}


# ------------------------------------------------------------------ import, export


def hsds_service(pid: uuid.UUID, **change: Any) -> dict[str, Any]:
    entry = DirectoryEntry.model_validate({**ENTRY, **change, "provider_id": str(pid)})
    return service_document(
        entry, [CapacityFigure(category=ServiceCategory.HOUSING, total=6, available=3)]
    )


async def test_an_import_registers_new_updates_known_and_reports_capacity(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    await register(client, key["admin"])
    document = page([hsds_service(SHELTER), hsds_service(CLINIC)])

    response = await client.post("/v1/providers/import", json=document, headers=auth(key["admin"]))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "registered": [str(CLINIC)],
        "updated": [str(SHELTER)],
        "capacity_reports": 2,
    }
    types = [d.event.event_type for d in directory_events(publisher)[1:]]
    assert types == ["provider.updated", "provider.registered", *["provider.capacity"] * 2]
    exported = await client.get("/v1/providers/export", headers=auth(key["operator"]))
    assert exported.json() == document


async def test_a_bad_import_names_entry_and_field_and_publishes_nothing(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    good, bad = hsds_service(SHELTER), hsds_service(CLINIC)
    bad["languages"][0]["code"] = "Dutch"
    del bad["organization"]["name"]

    response = await client.post(
        "/v1/providers/import", json=page([good, bad]), headers=auth(key["admin"])
    )

    body = problem(response, 400, "invalid-hsds")
    assert {e["location"] for e in body["errors"]} == {"/contents/1/organization/name"}
    assert all("entry 2" in e["message"] for e in body["errors"])
    assert directory_events(publisher) == []
    assert audits(publisher)[-1]["refusal"] == "invalid-hsds"
    bad["organization"]["name"] = "Fictional Clinic"
    response = await client.post(
        "/v1/providers/import", json=page([good, bad]), headers=auth(key["admin"])
    )
    body = problem(response, 400, "invalid-hsds")
    assert {e["location"] for e in body["errors"]} == {"/contents/1/languages/0/code"}


async def test_an_import_that_is_not_json_or_not_a_page_is_a_400(
    client: httpx.AsyncClient, key: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/providers/import", content=b"{not json", headers=auth(key["admin"])
    )
    problem(response, 400, "malformed-request")
    response = await client.post(
        "/v1/providers/import", json={"services": []}, headers=auth(key["admin"])
    )
    problem(response, 400, "invalid-hsds")


async def test_kafka_down_is_a_503_and_the_directory_unchanged(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher
) -> None:
    publisher.fail = lambda record: record.topic == PROVIDERS
    problem(await register(client, key["admin"]), 503, "broker-unavailable")
    publisher.fail = lambda record: False
    listing = await client.get("/v1/providers", headers=auth(key["admin"]))
    assert listing.json() == []


async def test_directory_admins_publish_no_cloudevents_and_read_no_status(
    client: httpx.AsyncClient, key: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/events",
        content=b"{}",
        headers={**auth(key["admin"]), "Content-Type": "application/cloudevents+json"},
    )
    problem(response, 403, "forbidden")
    status = await client.get(f"/v1/survivors/{uuid.uuid4()}/status", headers=auth(key["admin"]))
    problem(status, 403, "forbidden")


async def test_the_directory_routes_are_described_in_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/v1/providers"]) == {"get", "post"}
    assert set(paths["/v1/providers/{provider_id}"]) == {"get", "put"}
    schemas = document["components"]["schemas"]
    for name in ("NewProvider", "EntryFields", "CapacityFigure", "ProviderView", "ImportReport"):
        assert name in schemas
    post = paths["/v1/providers"]["post"]
    assert {"201", "400", "401", "403", "409", "503"} <= set(post["responses"])
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/NewProvider"}


@pytest.mark.parametrize(
    "where",
    ["id", "kept", "name"],
)
async def test_a_lone_surrogate_anywhere_in_a_body_is_a_400_never_a_500(
    client: httpx.AsyncClient, key: dict[str, str], publisher: RecordingPublisher, where: str
) -> None:
    """JSON may escape half a UTF-16 pair; no UTF-8 encoder takes it, so nothing may carry it on.

    Found by an outside test: an HSDS import naming such an id in its error got a 500.
    """
    service = hsds_service(SHELTER)
    if where == "id":
        service["id"] = "SURROGATE"
    elif where == "kept":
        service["description"] = "kept as it is SURROGATE"
    else:
        service["organization"] = {**service["organization"], "SURROGATE": 1}
    body = json.dumps(page([service])).replace("SURROGATE", "\\ud800").encode()

    response = await client.post(
        "/v1/providers/import",
        content=body,
        headers={**auth(key["admin"]), "Content-Type": "application/json"},
    )

    answer = problem(response, 400, "malformed-request")
    assert answer["errors"][0]["location"].startswith("/contents/0")
    assert response.content.isascii()
    assert directory_events(publisher) == []

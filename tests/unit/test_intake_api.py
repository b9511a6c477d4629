"""The intake API without a broker: validation, roles, problems, idempotency, backpressure, fuzz.

The Kafka edge is replaced by :class:`~tests.doubles.RecordingPublisher`,
an in-process :class:`~connectors.intake.Publisher` that records what it is
given and can be told to hold, fail or refuse deliveries (tests/contract
holds it to the real one); the status store by one that is caught up from
the start (status reads: tests/unit/test_intake_status.py). Everything else
is the real app, driven over ASGI. tests/integration/test_intake_api.py
runs the same app against Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.auth import ApiKeyStore, Role, add_key
from connectors.exceptions import IdempotencyStoreError
from connectors.idempotency import ClaimOutcome, IdempotencyStore, KeyedLocks, fingerprint
from connectors.intake import (
    BATCH_MEDIA_TYPE,
    STRUCTURED_MEDIA_TYPE,
    IntakeSettings,
    create_app,
)
from connectors.intake.provider_store import ProviderStore
from schemas.models import MODELS, Event, SurvivorIdentified, to_avro
from schemas.personal import PersonalData
from schemas.types import Sealed, utc_millis
from streams.cloudevents import rfc3339
from streams.codec import Codec, EncodedRecord
from streams.contract import AGENCY_EVENTS, PROVIDER_ANSWERS
from streams.sealing import DataKey, SealContext, seal
from streams.settings import KafkaSettings
from tests.doubles import RecordingPublisher, following, key_directory
from tests.unit.conftest import model_strategy
from tests.unit.test_intake_status import FixedStatus, case_record

KAFKA = KafkaSettings(topic_namespace="safepassage")
INTAKE = "safepassage.intake.v1"
RESPONSES = "safepassage.provider-responses.v1"
AGENCY_ID = "agency:nl-police"
PROVIDER_ID = uuid.UUID("1d2c3b4a-0000-4000-8000-00000000abcd")
OTHER_PROVIDER = uuid.UUID("1d2c3b4a-0000-4000-8000-00000000ffff")
T0 = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
PROBLEM = "application/problem+json"


# -------------------------------------------------------------- event builders


def eid(name: str) -> str:
    """A CloudEvents id the intake accepts (a UUID), the same for the same ``name``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"safepassage-test:{name}"))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def event_data(
    event_type: str,
    survivor_id: uuid.UUID,
    *,
    occurred_at: datetime = T0,
    agency_id: str = AGENCY_ID,
    provider_id: uuid.UUID = PROVIDER_ID,
) -> dict[str, Any]:
    """A valid ``data`` member for every type the intake accepts."""
    common: dict[str, Any] = {"occurred_at": rfc3339(occurred_at), "survivor_id": str(survivor_id)}
    referral = str(uuid.uuid5(survivor_id, "referral"))
    answer = {"referral_id": referral, "provider_id": str(provider_id), "attempt": 1}
    by_type: dict[str, dict[str, Any]] = {
        "survivor.identified": {
            "agency_id": agency_id,
            "jurisdiction": "NL",
            "age_group": "ADULT",
            "age_band": "FROM_25_TO_34",
            "languages": ["nl", "ro"],
            "gender": "FEMALE",
            "personal_data": None,  # sealed for real by the tests about it (sealed_json)
        },
        "consent.granted": {
            "consent_id": str(uuid.uuid5(survivor_id, "consent")),
            "agency_id": agency_id,
            "categories": ["HOUSING", "HEALTH"],
            "cross_border_allowed": False,
            "jurisdictions": ["NL"],
            "expires_at": None,
        },
        "consent.withdrawn": {
            "consent_id": str(uuid.uuid5(survivor_id, "consent")),
            "agency_id": agency_id,
            "categories": [],
            "jurisdictions": [],
            "cross_border_withdrawn": True,
        },
        "risk.assessed": {
            "agency_id": agency_id,
            "level": "HIGH",
            "immediate_needs": ["EMERGENCY_SHELTER"],
        },
        "referral.requested": {
            "referral_id": referral,
            "agency_id": agency_id,
            "category": "HOUSING",
            "urgency": "PRIORITY",
            "requirements": {
                "languages": ["ro"],
                "gender_specific": True,
                "child_specialised": False,
                "accessibility": False,
                "jurisdiction": "NL",
            },
            "notes": None,
        },
        "referral.cancelled": {
            "referral_id": referral,
            "reason": "AGENCY_REQUEST",
            "cancelled_by": "AGENCY",
        },
        "case.closed": {"agency_id": agency_id, "outcome": "SUPPORT_COMPLETED"},
        "case.shared": {
            "agency_id": agency_id,
            "shared_with": "agency:second",
            "consent_id": str(uuid.uuid4()),
        },
        "case.unshared": {"agency_id": agency_id, "shared_with": "agency:second"},
        "survivor.erasure_requested": {"agency_id": agency_id},
        "referral.accepted": answer,
        "referral.declined": {**answer, "reason": "NO_CAPACITY"},
        "referral.started": answer,
        "referral.completed": {**answer, "outcome": "SERVICE_PROVIDED"},
        "referral.failed": {**answer, "reason": "LOST_CONTACT"},
    }
    return {**common, **by_type[event_type]}


def cloudevent(
    event_type: str = "risk.assessed",
    *,
    survivor_id: uuid.UUID | None = None,
    event_id: str | None = None,
    source: str = f"/agencies/{AGENCY_ID}",
    occurred_at: datetime = T0,
    **data_overrides: Any,
) -> dict[str, Any]:
    """A valid structured-mode CloudEvent of ``event_type``."""
    survivor = survivor_id or uuid.uuid4()
    data = event_data(event_type, survivor, occurred_at=occurred_at)
    data.update(data_overrides)
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": rfc3339(occurred_at),
        "subject": str(survivor),
        "datacontenttype": "application/json",
        "data": data,
    }


def provider_answer(event_type: str = "referral.accepted", **kwargs: Any) -> dict[str, Any]:
    return cloudevent(event_type, source=f"/providers/{PROVIDER_ID}", **kwargs)


# --------------------------------------------------------------------- fixtures


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "api-keys.yaml"
    keys = {
        "agency": add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY_ID)[0],
        "other-agency": add_key(
            path, role=Role.AGENCY, principal="be-ngo", agency_id="agency:be-ngo"
        )[0],
        "provider": add_key(
            path, role=Role.PROVIDER, principal="shelter-1", provider_id=PROVIDER_ID
        )[0],
        "operator": add_key(path, role=Role.OPERATOR, principal="duty-desk")[0],
    }
    return path, keys


@pytest.fixture
def keys(keys_file: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return keys_file[1]


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def make_app(
    tmp_path: Path, keys_path: Path, publisher: RecordingPublisher, **overrides: Any
) -> FastAPI:
    values: dict[str, Any] = {"api_keys_file": keys_path, "state_dir": tmp_path / "state"}
    values.update(overrides)
    return create_app(
        IntakeSettings(**values),
        kafka=KAFKA,
        publisher=publisher,
        status=FixedStatus(),
        directory=key_directory(publisher),
    )


@pytest.fixture
def app(
    tmp_path: Path, keys_file: tuple[Path, dict[str, str]], publisher: RecordingPublisher
) -> FastAPI:
    return make_app(tmp_path, keys_file[0], publisher)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http,
    ):
        yield http


def headers(key: str | None, content_type: str | None = STRUCTURED_MEDIA_TYPE) -> dict[str, str]:
    result = {}
    if key is not None:
        result["Authorization"] = f"Bearer {key}"
    if content_type is not None:
        result["Content-Type"] = content_type
    return result


async def post(
    client: httpx.AsyncClient,
    key: str | None,
    document: Any,
    content_type: str | None = STRUCTURED_MEDIA_TYPE,
) -> httpx.Response:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return await client.post("/v1/events", content=body, headers=headers(key, content_type))


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """An RFC 9457 document of the expected type; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:safepassage:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    for error in body.get("errors", []):
        assert set(error) == {"location", "message"}
    return body


def locations(body: dict[str, Any]) -> set[str]:
    return {error["location"] for error in body.get("errors", [])}


def header(record: EncodedRecord, name: str) -> str:
    return dict(record.headers)[name].decode()


# ------------------------------------------------------------------ publishing


@pytest.mark.parametrize("event_type", sorted(AGENCY_EVENTS))
async def test_every_agency_event_goes_to_intake_under_the_callers_id_and_source(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher, event_type: str
) -> None:
    event = cloudevent(
        event_type, event_id="3d80afad-ce3d-5dc5-ba0a-65fc9d543bfa", source=f"/agencies/{AGENCY_ID}"
    )

    response = await post(client, keys["agency"], event)

    assert response.status_code == 202, response.text
    assert response.json() == {
        "id": "3d80afad-ce3d-5dc5-ba0a-65fc9d543bfa",
        "source": f"/agencies/{AGENCY_ID}",
        "type": event_type,
        "topic": INTAKE,
        "partition": 0,
        "offset": 0,
    }
    [record] = publisher.records
    assert record.topic == INTAKE
    assert header(record, "ce_id") == "3d80afad-ce3d-5dc5-ba0a-65fc9d543bfa"
    assert header(record, "ce_source") == f"/agencies/{AGENCY_ID}"
    assert header(record, "ce_type") == event_type
    assert record.key == event["subject"].encode()
    decoded = Codec(KAFKA, source="/t").decode(record.value, record.headers, topic=INTAKE)
    assert decoded.event == MODELS[event_type].model_validate(
        {**event["data"], **_sealed_bytes(event["data"])}
    )


def _sealed_bytes(data: dict[str, Any]) -> dict[str, Any]:
    sealed = data.get("personal_data")
    if not sealed:
        return {}
    return {"personal_data": {**sealed, "ciphertext": base64.b64decode(sealed["ciphertext"])}}


async def data_key(client: httpx.AsyncClient, api_key: str, survivor: object) -> DataKey:
    """The survivor's data key from the intake's key service, as the SDK gets it."""
    response = await client.post(
        f"/v1/survivors/{survivor}/data-key", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    return DataKey(answer["key_id"], uuid.UUID(str(survivor)), base64.b64decode(answer["key"]))


async def sealed_json(
    client: httpx.AsyncClient, api_key: str, event: dict[str, Any], field: str, plaintext: bytes
) -> dict[str, Any]:
    """``plaintext`` sealed for the platform as ``event``'s ``field``, in its JSON form."""
    survivor = uuid.UUID(event["data"]["survivor_id"])
    key = await data_key(client, api_key, survivor)
    sealed = seal(key, plaintext, SealContext(survivor, event["type"], field, "platform"))
    return {
        "ciphertext": b64(sealed.ciphertext),
        "key_id": sealed.key_id,
        "algorithm": sealed.algorithm.value,
        "recipient": sealed.recipient,
    }


async def test_sealed_ciphertext_travels_as_base64_and_arrives_as_bytes(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    raw = PersonalData.of({"name": "".join(map(chr, range(32, 127)))}).to_bytes()
    event = cloudevent("survivor.identified")
    sealed = await sealed_json(client, keys["agency"], event, "personal_data", raw)
    event["data"]["personal_data"] = sealed

    response = await post(client, keys["agency"], event)

    assert response.status_code == 202, response.text
    [record] = [r for r in publisher.records if r.topic == INTAKE]
    decoded = Codec(KAFKA, source="/t").decode(record.value, record.headers, topic=INTAKE)
    assert isinstance(decoded.event, SurvivorIdentified)
    assert decoded.event.personal_data is not None
    assert decoded.event.personal_data.ciphertext == base64.b64decode(sealed["ciphertext"])
    assert raw not in record.value


@pytest.mark.parametrize("event_type", sorted(PROVIDER_ANSWERS))
async def test_provider_answers_go_to_provider_responses(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher, event_type: str
) -> None:
    response = await post(client, keys["provider"], provider_answer(event_type))

    assert response.status_code == 202, response.text
    assert response.json()["topic"] == RESPONSES
    assert [r.topic for r in publisher.records] == [RESPONSES]


async def test_a_batch_is_published_in_order_with_a_receipt_per_event(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    survivor = uuid.uuid4()
    batch = [
        cloudevent(t, survivor_id=survivor, event_id=eid(f"e{i}"))
        for i, t in enumerate(["survivor.identified", "consent.granted", "referral.requested"])
    ]

    response = await post(client, keys["agency"], batch, BATCH_MEDIA_TYPE)

    assert response.status_code == 202, response.text
    accepted = response.json()["accepted"]
    assert [a["id"] for a in accepted] == [eid("e0"), eid("e1"), eid("e2")]
    assert [a["offset"] for a in accepted] == [0, 1, 2]
    assert [header(r, "ce_id") for r in publisher.records] == [eid("e0"), eid("e1"), eid("e2")]


async def test_a_callers_traceparent_is_continued_on_every_record_and_a_bad_one_dropped(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    survivor = uuid.uuid4()
    batch = [
        cloudevent(t, survivor_id=survivor) for t in ("survivor.identified", "consent.granted")
    ]
    body = json.dumps(batch).encode()
    traced = headers(keys["agency"], BATCH_MEDIA_TYPE) | {
        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"
    }

    assert (await client.post("/v1/events", content=body, headers=traced)).status_code == 202
    parents = {header(r, "traceparent") for r in publisher.records}
    assert len(parents) == 1 and parents.pop().split("-")[1] == trace_id  # one intake span

    publisher.records.clear()
    forged = traced | {"traceparent": "Maria, 12 Elm Street"}
    other = [cloudevent("case.closed", survivor_id=survivor)]
    response = await client.post("/v1/events", content=json.dumps(other).encode(), headers=forged)
    assert response.status_code == 202
    (fresh,) = [header(r, "traceparent") for r in publisher.records]
    assert "Maria" not in fresh and fresh.split("-")[1] != trace_id  # a new trace instead


async def test_an_empty_batch_is_accepted_and_publishes_nothing(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    response = await post(client, keys["agency"], [], BATCH_MEDIA_TYPE)

    assert response.status_code == 202
    assert response.json() == {"accepted": []}
    assert publisher.submitted == 0


async def test_a_batch_is_all_or_nothing_and_names_each_bad_event(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    good = cloudevent()
    bad_level = cloudevent(level="EXTREME")
    bad_time = cloudevent()
    bad_time["time"] = "2025-03-04T05:06:08Z"
    batch = [good, bad_level, good | {"id": eid("x")}, bad_time, "not an object"]

    response = await post(client, keys["agency"], batch, BATCH_MEDIA_TYPE)

    body = assert_problem(response, 400, "invalid-event")
    assert locations(body) == {"/1/data/level", "/3/time", "/4"}
    assert publisher.submitted == 0


async def test_a_batch_with_an_event_of_another_role_is_forbidden_as_a_whole(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    batch = [cloudevent(), provider_answer(), cloudevent(agency_id="agency:someone-else")]

    response = await post(client, keys["agency"], batch, BATCH_MEDIA_TYPE)

    body = assert_problem(response, 403, "forbidden")
    assert locations(body) == {"/1/type", "/2/data/agency_id"}
    assert publisher.submitted == 0


async def test_a_repeated_event_in_one_batch_is_published_once(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    event = cloudevent()
    response = await post(client, keys["agency"], [event, event], BATCH_MEDIA_TYPE)

    assert response.status_code == 202, response.text
    first, second = response.json()["accepted"]
    assert first == second
    assert len(publisher.records) == 1


async def test_one_id_for_two_events_in_a_batch_is_refused(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    event = cloudevent()
    other = cloudevent(event_id=event["id"])

    response = await post(client, keys["agency"], [event, other], BATCH_MEDIA_TYPE)

    body = assert_problem(response, 400, "invalid-event")
    assert locations(body) == {"/1/id"}
    assert publisher.submitted == 0


# ----------------------------------------------------------------- idempotency


async def test_a_retry_is_answered_from_the_store_without_publishing_again(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    event = cloudevent()
    first = await post(client, keys["agency"], event)
    # Same content in another member order and spacing is the same event.
    reordered = json.dumps(dict(reversed(list(event.items()))), indent=2).encode()
    second = await post(client, keys["agency"], reordered)

    assert first.status_code == second.status_code == 202
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(publisher.records) == 1


async def test_a_retry_with_other_content_is_a_conflict(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    event = cloudevent()
    await post(client, keys["agency"], event)

    changed = {**event, "data": {**event["data"], "level": "LOW"}}
    response = await post(client, keys["agency"], changed)

    body = assert_problem(response, 409, "idempotency-conflict")
    assert locations(body) == {"/id"}
    assert len(publisher.records) == 1


async def test_another_principal_cannot_publish_under_a_source_not_its_own(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    event = cloudevent(
        event_id="68a1d8e1-d574-50bf-8554-b3987136aec8", source=f"/agencies/{AGENCY_ID}"
    )
    assert (await post(client, keys["agency"], event)).status_code == 202
    squatting = cloudevent(
        event_id="68a1d8e1-d574-50bf-8554-b3987136aec8",
        source=f"/agencies/{AGENCY_ID}",
        agency_id="agency:be-ngo",
    )

    refused = await post(client, keys["other-agency"], squatting)

    body = assert_problem(refused, 403, "forbidden")
    assert body["errors"] == [
        {
            "location": "/source",
            "message": "this caller publishes under the source /agencies/agency:be-ngo",
        }
    ]
    assert len(publisher.records) == 1
    # The same id under its own source is its own: ids are scoped by the caller's source.
    own = cloudevent(
        event_id="68a1d8e1-d574-50bf-8554-b3987136aec8",
        source="/agencies/agency:be-ngo",
        agency_id="agency:be-ngo",
    )
    assert (await post(client, keys["other-agency"], own)).status_code == 202
    assert len(publisher.records) == 2


@pytest.mark.parametrize(
    "source",
    [
        "/agencies/agency:nl-police-2",  # another agency whose id starts the same
        "/agencies/agency:nl",
        "/providers/agency:nl-police",  # the same id in another role
        "/agencies/nl-police",  # the principal's name is not its organisation
        "urn:safepassage:agencies:agency:nl-police",
        "/agencies/agency:nl-police/../agency:be-ngo",
        "/agencies/agency:nl-police/cms",  # not below it either: ids may hold "/"
        "/",
    ],
)
async def test_a_source_outside_the_callers_path_is_forbidden(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher, source: str
) -> None:
    response = await post(client, keys["agency"], cloudevent(source=source))
    assert_problem(response, 403, "forbidden")
    assert publisher.records == []


async def test_a_batch_retry_publishes_only_what_was_not_acknowledged(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    batch = [cloudevent(event_id=eid(f"e{i}")) for i in range(4)]
    publisher.fail = lambda record: header(record, "ce_id") in {eid("e1"), eid("e3")}

    failed = await post(client, keys["agency"], batch, BATCH_MEDIA_TYPE)

    body = assert_problem(failed, 503, "broker-unavailable")
    assert failed.headers["Retry-After"]
    assert [a["id"] for a in body["accepted"]] == [eid("e0"), eid("e2")]
    publisher.fail = lambda _: False
    retried = await post(client, keys["agency"], batch, BATCH_MEDIA_TYPE)
    assert retried.status_code == 202, retried.text
    assert [header(r, "ce_id") for r in publisher.records] == [eid(f"e{n}") for n in (0, 2, 1, 3)]
    assert [a["id"] for a in retried.json()["accepted"]] == [eid(f"e{n}") for n in range(4)]


async def test_two_identical_concurrent_requests_publish_once(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    publisher.gate = asyncio.Event()
    event = cloudevent()

    first = asyncio.create_task(post(client, keys["agency"], event))
    second = asyncio.create_task(post(client, keys["agency"], event))
    while publisher.submitted < 1:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the second request is waiting on the first one's lock
    publisher.gate.set()
    answers = await asyncio.gather(first, second)

    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert publisher.submitted == 1
    assert len(publisher.records) == 1


async def test_a_failed_publish_frees_the_id_for_the_retry(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    event = cloudevent()
    publisher.fail = lambda _: True
    assert_problem(await post(client, keys["agency"], event), 503, "broker-unavailable")

    publisher.fail = lambda _: False
    response = await post(client, keys["agency"], event)

    assert response.status_code == 202, response.text
    assert len(publisher.records) == 1


# ------------------------------------------------------- availability, backpressure


async def test_a_known_broker_outage_is_a_503_without_publishing(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    publisher.down = True

    response = await post(client, keys["agency"], cloudevent())

    assert_problem(response, 503, "broker-unavailable")
    assert response.headers["Retry-After"] == "5"
    assert publisher.submitted == 0


async def test_a_full_producer_queue_is_a_503(
    client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    publisher.queue_full = True

    response = await post(client, keys["agency"], cloudevent())

    assert_problem(response, 503, "broker-unavailable")
    publisher.queue_full = False
    assert (await post(client, keys["agency"], cloudevent())).status_code == 202


async def test_a_delivery_that_never_comes_is_a_503_after_the_timeout(
    tmp_path: Path, keys_file: tuple[Path, dict[str, str]], publisher: RecordingPublisher
) -> None:
    app = make_app(tmp_path, keys_file[0], publisher, publish_timeout_s=0.2)
    publisher.gate = asyncio.Event()  # never set
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as http,
    ):
        started = time.monotonic()
        response = await post(http, keys_file[1]["agency"], cloudevent())
    assert_problem(response, 503, "broker-unavailable")
    assert time.monotonic() - started < 5


async def test_more_events_in_flight_than_allowed_get_429(
    tmp_path: Path, keys_file: tuple[Path, dict[str, str]], publisher: RecordingPublisher
) -> None:
    app = make_app(tmp_path, keys_file[0], publisher, max_in_flight=3, max_batch_items=3)
    key = keys_file[1]["agency"]
    publisher.gate = asyncio.Event()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as http,
    ):
        held = [asyncio.create_task(post(http, key, cloudevent())) for _ in range(2)]
        while publisher.submitted < 2:
            await asyncio.sleep(0.01)
        too_many = await post(http, key, [cloudevent(), cloudevent()], BATCH_MEDIA_TYPE)
        one_more = asyncio.create_task(post(http, key, cloudevent()))
        while publisher.submitted < 3:
            await asyncio.sleep(0.01)
        fourth = await post(http, key, cloudevent())
        publisher.gate.set()
        answers = await asyncio.gather(*held, one_more)

    assert_problem(too_many, 429, "too-many-in-flight")
    assert too_many.headers["Retry-After"] == "1"
    assert_problem(fourth, 429, "too-many-in-flight")
    assert [a.status_code for a in answers] == [202, 202, 202]


async def test_an_unusable_idempotency_store_is_a_503(
    app: FastAPI, client: httpx.AsyncClient, keys: dict[str, str], publisher: RecordingPublisher
) -> None:
    store: IdempotencyStore = app.state.service.store
    store.close()

    response = await post(client, keys["agency"], cloudevent())

    assert_problem(response, 503, "state-unavailable")
    assert publisher.submitted == 0


async def test_healthz_reports_broker_reachability_without_authentication(
    client: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    healthy = await client.get("/healthz")
    publisher.down = True
    unhealthy = await client.get("/healthz")

    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok", "broker": "reachable"}
    body = assert_problem(unhealthy, 503, "broker-unavailable")
    assert body["broker"] == "unreachable"


# ------------------------------------------------------------ authentication, roles


async def test_no_key_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, publisher: RecordingPublisher
) -> None:
    response = await post(client, None, cloudevent())

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert publisher.submitted == 0


@pytest.mark.parametrize(
    "authorization",
    ["Bearer sp_agency_" + "A" * 43, "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "sp_agency_x"],
)
async def test_a_wrong_key_is_401_invalid_token(
    client: httpx.AsyncClient, publisher: RecordingPublisher, authorization: str
) -> None:
    response = await client.post(
        "/v1/events",
        content=json.dumps(cloudevent()),
        headers={"Authorization": authorization, "Content-Type": STRUCTURED_MEDIA_TYPE},
    )

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert publisher.submitted == 0


@pytest.mark.parametrize(
    ("who", "document", "location"),
    [
        ("operator", cloudevent(), ""),
        ("agency", provider_answer(), "/type"),
        ("provider", cloudevent(), "/type"),
        ("provider", provider_answer(provider_id=str(OTHER_PROVIDER)), "/data/provider_id"),
        ("agency", cloudevent(agency_id="agency:be-ngo"), "/data/agency_id"),
        ("agency", cloudevent("referral.cancelled", cancelled_by="SYSTEM"), "/data/cancelled_by"),
    ],
    ids=[
        "operator-publishes",
        "agency-sends-answer",
        "provider-sends-agency-event",
        "provider-answers-for-another",
        "agency-under-another-agency-id",
        "agency-cancels-as-system",
    ],
)
async def test_role_matrix_over_http(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    *,
    publisher: RecordingPublisher,
    who: str,
    document: dict[str, Any],
    location: str,
) -> None:
    response = await post(client, keys[who], document)

    body = assert_problem(response, 403, "forbidden")
    if location:
        assert locations(body) == {location}
    assert publisher.submitted == 0


async def test_a_provider_learns_nothing_about_the_data_of_events_it_may_not_send(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    invalid_agency_event = {**cloudevent(), "data": {"nonsense": True}}

    response = await post(client, keys["provider"], invalid_agency_event)

    body = assert_problem(response, 403, "forbidden")
    assert locations(body) == {"/type"}


# --------------------------------------------------------------- 400, 413, 415


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain", "application/cloudevents+json; charset=latin-1"],
)
async def test_other_media_types_are_415(
    client: httpx.AsyncClient, keys: dict[str, str], content_type: str | None
) -> None:
    response = await post(client, keys["agency"], cloudevent(), content_type)

    assert_problem(response, 415, "unsupported-media-type")
    assert BATCH_MEDIA_TYPE in response.headers["Accept-Post"]


async def test_media_type_parameters_and_case_are_tolerated(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    response = await post(
        client, keys["agency"], cloudevent(), "Application/CloudEvents+JSON; charset=UTF-8"
    )

    assert response.status_code == 202, response.text


def test_a_declared_length_over_the_limit_is_413_before_reading(
    tmp_path: Path, keys_file: tuple[Path, dict[str, str]], publisher: RecordingPublisher
) -> None:
    app = make_app(tmp_path, keys_file[0], publisher, max_body_bytes=2048)
    with TestClient(app) as http:
        response = http.post(
            "/v1/events",
            content=json.dumps(cloudevent(occurred_at=T0)) + " " * 3000,
            headers=headers(keys_file[1]["agency"]),
        )
    assert_problem(response, 413, "payload-too-large")  # type: ignore[arg-type]


async def test_a_streamed_body_over_the_limit_is_413(
    tmp_path: Path, keys_file: tuple[Path, dict[str, str]], publisher: RecordingPublisher
) -> None:
    app = make_app(tmp_path, keys_file[0], publisher, max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 512

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as http,
    ):
        response = await http.post(
            "/v1/events", content=chunks(), headers=headers(keys_file[1]["agency"])
        )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")


async def test_a_batch_over_the_item_limit_is_413(
    tmp_path: Path, keys_file: tuple[Path, dict[str, str]], publisher: RecordingPublisher
) -> None:
    app = make_app(tmp_path, keys_file[0], publisher, max_batch_items=2)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as http,
    ):
        response = await post(
            http, keys_file[1]["agency"], [cloudevent() for _ in range(3)], BATCH_MEDIA_TYPE
        )
    assert_problem(response, 413, "payload-too-large")
    assert publisher.submitted == 0


def _deeply_nested() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b"{", STRUCTURED_MEDIA_TYPE, "not JSON"),
        (b"", STRUCTURED_MEDIA_TYPE, "not JSON"),
        (b'{"a": NaN}', STRUCTURED_MEDIA_TYPE, "NaN is not JSON"),
        (b'{"id": "a", "id": "b"}', STRUCTURED_MEDIA_TYPE, "appears more than once"),
        (b"\xff\xfe{}", STRUCTURED_MEDIA_TYPE, "not UTF-8"),
        (_deeply_nested(), BATCH_MEDIA_TYPE, "nested too deeply"),
        (b"[1]", STRUCTURED_MEDIA_TYPE, "must be a JSON object"),
        (b"{}", BATCH_MEDIA_TYPE, "must be a JSON array"),
        (b"1" * 5000, STRUCTURED_MEDIA_TYPE, "not acceptable JSON"),
    ],
    ids=["cut", "empty", "nan", "duplicate", "not-utf8", "deep", "array", "object", "huge-int"],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, keys: dict[str, str], body: bytes, content_type: str, detail: str
) -> None:
    response = await post(client, keys["agency"], body, content_type)

    problem = assert_problem(response, 400, "malformed-request")
    assert detail in problem["detail"]


def _without(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != name}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda e: _without(e, "specversion"), {"/specversion"}),
        (lambda e: {**e, "specversion": "0.3"}, {"/specversion"}),
        (lambda e: _without(e, "id"), {"/id"}),
        (lambda e: {**e, "id": ""}, {"/id"}),
        (lambda e: {**e, "id": "has space"}, {"/id"}),
        (lambda e: {**e, "id": "maria-popescu-0712345678"}, {"/id"}),  # could carry a name
        (lambda e: {**e, "source": 7}, {"/source"}),
        (lambda e: _without(e, "time"), {"/time"}),
        (lambda e: {**e, "time": "yesterday"}, {"/time"}),
        (lambda e: {**e, "time": "2025-02-30T00:00:00Z"}, {"/time"}),
        (lambda e: {**e, "time": "2025-03-04T05:06:07.891Z"}, {"/time"}),
        (lambda e: {**e, "subject": str(uuid.uuid4())}, {"/subject"}),
        (lambda e: {**e, "subject": "someone"}, {"/subject"}),
        (lambda e: {**e, "datacontenttype": "application/xml"}, {"/datacontenttype"}),
        (lambda e: {**e, "type": "survivor.found"}, {"/type"}),
        (lambda e: {**e, "type": "referral.offered"}, {"/type"}),
        (lambda e: {**e, "data": []}, {"/data"}),
        (lambda e: _without(e, "data") | {"data_base64": "AAAA"}, {"/data_base64"}),
        (lambda e: {**e, "traceparent": "00-abc"}, {"/traceparent"}),
        (lambda e: {**e, "a/b~c": 1}, {"/a~1b~0c"}),
        (lambda e: {**e, "data": {**e["data"], "level": "EXTREME"}}, {"/data/level"}),
        (lambda e: {**e, "data": {**e["data"], "name": "x"}}, {"/data/name"}),
        (lambda e: {**e, "data": _without(e["data"], "survivor_id")}, {"/data/survivor_id"}),
        (
            lambda e: {**e, "data": {**e["data"], "occurred_at": "2025-03-04T05:06:07"}},
            {"/data/occurred_at"},
        ),
        (
            lambda e: {**e, "data": {**e["data"], "immediate_needs": ["A", "MEDICAL", 3]}},
            {"/data/immediate_needs/0", "/data/immediate_needs/2"},
        ),
    ],
)
async def test_invalid_events_are_400_with_field_locations(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    publisher: RecordingPublisher,
    mutate: Callable[[dict[str, Any]], dict[str, Any]],
    expected: set[str],
) -> None:
    response = await post(client, keys["agency"], mutate(cloudevent()))

    body = assert_problem(response, 400, "invalid-event")
    assert locations(body) == expected
    assert publisher.submitted == 0


@pytest.mark.parametrize("ciphertext", ["not base64!", "AAA", 12])
async def test_sealed_ciphertext_must_be_base64(
    client: httpx.AsyncClient, keys: dict[str, str], ciphertext: Any
) -> None:
    event = cloudevent("survivor.identified")
    event["data"]["personal_data"] = {
        "ciphertext": ciphertext,
        "key_id": "key-1",
        "algorithm": "AES_256_GCM",
        "recipient": "platform",
    }

    response = await post(client, keys["agency"], event)

    body = assert_problem(response, 400, "invalid-event")
    assert locations(body) == {"/data/personal_data/ciphertext"}


async def test_time_and_occurred_at_agree_across_zones(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    event = cloudevent()
    event["time"] = "2025-03-04T10:36:07.890123+05:30"  # the same millisecond

    response = await post(client, keys["agency"], event)

    assert response.status_code == 202, response.text


async def test_error_messages_never_echo_submitted_values(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    marker = "Jane-Doe-lives-at-Main-Street-1"
    event = cloudevent(level=marker, agency_id=marker)
    event["data"]["jurisdiction"] = marker

    response = await post(client, keys["agency"], event)

    assert_problem(response, 400, "invalid-event")
    assert marker not in response.text


def test_a_framework_validation_error_is_a_400_problem_not_a_422(app: FastAPI) -> None:
    async def needs_int(n: int) -> dict[str, int]:
        return {"n": n}

    app.add_api_route("/test-only/{n}", needs_int)
    with TestClient(app) as http:
        response = http.get("/test-only/seven")

    assert_problem(response, 400, "invalid-request")  # type: ignore[arg-type]
    assert locations(response.json()) == {"path:n"}


async def test_swagger_ui_loads_every_asset_from_the_intake_itself(
    client: httpx.AsyncClient,
) -> None:
    """/docs works offline: its script, style and icon are served by the intake, not a CDN."""
    page = (await client.get("/docs")).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert sorted(assets) == [
        "/docs-assets/favicon.png",
        "/docs-assets/swagger-ui-bundle.js",
        "/docs-assets/swagger-ui.css",
    ]
    assert "//" not in "".join(assets)
    assert "validatorUrl" in page and "validator.swagger.io" not in page
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 1000, asset
    bundle = (await client.get("/docs-assets/swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in bundle and "isOAS31" in bundle  # Swagger UI 5: reads OpenAPI 3.1
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.1")


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v2/anything")
    wrong_method = await client.delete("/v1/events")

    assert_problem(missing, 404, "not-found")
    assert_problem(wrong_method, 405, "method-not-allowed")
    assert wrong_method.headers["Allow"] == "POST"


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert docs.status_code == 200
    assert set(document["paths"]) == {
        "/v1/events",
        "/v1/survivors/{survivor_id}/status",
        "/v1/survivors/{survivor_id}/data-key",
        "/v1/survivors/{survivor_id}/referrals/{referral_id}/disclosure",
        "/v1/providers",
        "/v1/providers/export",
        "/v1/providers/import",
        "/v1/providers/{provider_id}",
        "/v1/providers/{provider_id}/capacity",
        "/healthz",
    }
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert set(body) == {STRUCTURED_MEDIA_TYPE, BATCH_MEDIA_TYPE}
    schemas = document["components"]["schemas"]
    assert (
        set(schemas["CloudEvent"]["discriminator"]["mapping"]) == AGENCY_EVENTS | PROVIDER_ANSWERS
    )
    assert schemas["Sealed"]["properties"]["ciphertext"]["contentEncoding"] == "base64"
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    responses = document["paths"]["/v1/events"]["post"]["responses"]
    assert {"202", "400", "401", "403", "409", "413", "415", "429", "503"} <= set(responses)


async def test_logs_name_the_event_and_principal_but_no_data_or_key(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    marker = b"Jane Doe, Main Street 1"
    event = cloudevent("survivor.identified", event_id="71edef00-cdde-5924-b3c9-d04d41a4f18b")
    event["data"]["personal_data"] = await sealed_json(
        client,
        keys["agency"],
        event,
        "personal_data",
        PersonalData.of({"name": marker.decode()}).to_bytes(),
    )

    with structlog.testing.capture_logs() as logs:
        await post(client, keys["agency"], event)
        await post(client, keys["agency"] + "x", event)

    accepted = [line for line in logs if line["event"] == "intake.accepted"]
    assert accepted
    assert accepted[0]["ce_id"] == "71edef00-cdde-5924-b3c9-d04d41a4f18b"
    assert accepted[0]["ce_type"] == "survivor.identified"
    assert (accepted[0]["principal"], accepted[0]["role"]) == ("nl-police", "agency")
    text = repr(logs)
    for secret in (marker.decode(), b64(marker), keys["agency"], event["subject"]):
        assert secret not in text


# ------------------------------------------------------------------- settings


def test_settings_are_read_from_their_documented_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFEPASSAGE_INTAKE_PORT", "9090")
    monkeypatch.setenv("SAFEPASSAGE_INTAKE_MAX_IN_FLIGHT", "500")
    monkeypatch.setenv("SAFEPASSAGE_INTAKE_IDEMPOTENCY_TTL", "P1D")
    monkeypatch.setenv("SAFEPASSAGE_INTAKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SAFEPASSAGE_API_KEYS_FILE", str(tmp_path / "k.yaml"))

    loaded = IntakeSettings()

    assert (loaded.port, loaded.max_in_flight) == (9090, 500)
    assert loaded.idempotency_ttl == timedelta(days=1)
    assert loaded.state_dir == tmp_path
    assert loaded.api_keys_file == tmp_path / "k.yaml"


def test_a_batch_larger_than_the_in_flight_limit_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="max_batch_items"):
        IntakeSettings(max_batch_items=20, max_in_flight=10)


# ------------------------------------------------------------ idempotency store


KEY = ("/agencies/nl-police", "e-1")


def test_claim_publish_ack_then_replay(tmp_path: Path) -> None:
    store = IdempotencyStore(tmp_path / "s.sqlite3")
    claim = store.claim(KEY, "d1")
    assert claim.outcome is ClaimOutcome.NEW
    assert claim.token is not None

    assert store.ack(KEY, claim.token, {"id": "e-1", "offset": 7})

    replay = store.claim(KEY, "d1")
    assert replay.outcome is ClaimOutcome.REPLAY
    assert replay.response == {"id": "e-1", "offset": 7}
    assert store.claim(KEY, "d2").outcome is ClaimOutcome.CONFLICT


def test_a_pending_claim_blocks_until_its_lease_expires(tmp_path: Path) -> None:
    now = [1000.0]
    store = IdempotencyStore(
        tmp_path / "s.sqlite3", lease=timedelta(seconds=30), clock=lambda: now[0]
    )
    first = store.claim(KEY, "d1")

    assert store.claim(KEY, "d1").outcome is ClaimOutcome.IN_PROGRESS
    now[0] += 31
    taken_over = store.claim(KEY, "d1")
    assert taken_over.outcome is ClaimOutcome.NEW
    assert first.token is not None
    assert not store.ack(KEY, first.token, {"late": True})  # the vanished owner lost its claim
    assert taken_over.token is not None
    assert store.ack(KEY, taken_over.token, {"ok": True})


def test_a_released_claim_can_be_claimed_again(tmp_path: Path) -> None:
    store = IdempotencyStore(tmp_path / "s.sqlite3")
    claim = store.claim(KEY, "d1")
    assert claim.token is not None

    store.release(KEY, claim.token)

    assert store.claim(KEY, "d1").outcome is ClaimOutcome.NEW


def test_entries_expire_after_the_ttl_and_are_purged(tmp_path: Path) -> None:
    now = [1000.0]
    store = IdempotencyStore(tmp_path / "s.sqlite3", ttl=timedelta(hours=1), clock=lambda: now[0])
    claim = store.claim(KEY, "d1")
    assert claim.token is not None
    store.ack(KEY, claim.token, {})

    now[0] += 3601
    assert store.claim(KEY, "other content").outcome is ClaimOutcome.NEW
    store.claim(("/s", "x"), "d")
    now[0] += 3601
    assert store.purge() == 2
    assert len(store) == 0


def test_the_store_is_bounded_dropping_the_oldest_acknowledged(tmp_path: Path) -> None:
    now = [1000.0]
    store = IdempotencyStore(
        tmp_path / "s.sqlite3", max_entries=3, purge_every=1000, clock=lambda: now[0]
    )
    for index in range(5):
        now[0] += 1
        claim = store.claim(("/s", f"e{index}"), "d")
        assert claim.token is not None
        store.ack(("/s", f"e{index}"), claim.token, {"i": index})

    assert store.purge() == 2
    assert len(store) == 3
    assert store.claim(("/s", "e0"), "d").outcome is ClaimOutcome.NEW
    assert store.claim(("/s", "e4"), "d").outcome is ClaimOutcome.REPLAY


def test_acks_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = IdempotencyStore(path)
    claim = store.claim(KEY, "d1")
    assert claim.token is not None
    store.ack(KEY, claim.token, {"offset": 3})
    store.close()

    assert IdempotencyStore(path).claim(KEY, "d1").response == {"offset": 3}


def test_two_processes_sharing_the_store_cannot_both_claim(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    stores = [IdempotencyStore(path) for _ in range(8)]
    outcomes: list[ClaimOutcome] = []
    barrier = threading.Barrier(len(stores))

    def claim(store: IdempotencyStore) -> None:
        barrier.wait()
        outcomes.append(store.claim(KEY, "d1").outcome)

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == sorted(
        [ClaimOutcome.NEW] + [ClaimOutcome.IN_PROGRESS] * (len(stores) - 1)
    )


def test_a_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(IdempotencyStoreError, match=r"s\.sqlite3"):
        IdempotencyStore(path)


def test_fingerprints_ignore_order_and_spacing_but_not_content_or_principal() -> None:
    one = fingerprint("a", {"x": 1, "y": [1, 2]})

    assert one == fingerprint("a", json.loads('{ "y": [1,2], "x": 1 }'))
    assert one != fingerprint("a", {"x": 1, "y": [2, 1]})
    assert one != fingerprint("b", {"x": 1, "y": [1, 2]})


async def test_keyed_locks_serialise_one_key_and_are_dropped_after_use() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(name: str, keys: list[tuple[str, str]]) -> None:
        async with locks.hold(keys):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", [KEY, ("/s", "z")]), hold("b", [("/s", "z"), KEY]))

    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    assert len(locks) == 0


def test_the_store_file_is_sqlite_in_the_state_dir(
    tmp_path: Path, keys_file: tuple[Path, dict[str, str]]
) -> None:
    make_app(tmp_path, keys_file[0], RecordingPublisher())

    with sqlite3.connect(tmp_path / "state" / "idempotency.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)


# ------------------------------------------------------------------------- fuzz
#
# Two generators, both asserting that no answer is a 5xx and nothing raises:
# schemathesis from the app's own OpenAPI document (every operation, both
# media types, positive and negative cases) and hypothesis from the event
# models (valid events, then mutated envelopes, bodies and headers), which
# reaches the publishing path that schema-driven cases rarely get through.

_FUZZ_DIR = tempfile.TemporaryDirectory(prefix="intake-fuzz-")
_FUZZ_KEYS = Path(_FUZZ_DIR.name) / "api-keys.yaml"
FUZZ_KEYS = {
    "agency": add_key(_FUZZ_KEYS, role=Role.AGENCY, principal="fuzz-agency", agency_id=AGENCY_ID)[
        0
    ],
    "provider": add_key(
        _FUZZ_KEYS, role=Role.PROVIDER, principal="fuzz-provider", provider_id=PROVIDER_ID
    )[0],
    "operator": add_key(_FUZZ_KEYS, role=Role.OPERATOR, principal="fuzz-operator")[0],
    "directory-admin": add_key(_FUZZ_KEYS, role=Role.DIRECTORY_ADMIN, principal="fuzz-dir")[0],
}
FUZZ_STATUSES: Counter[int] = Counter()


def _fuzz_app() -> FastAPI:
    publisher = RecordingPublisher()
    return create_app(
        IntakeSettings(
            api_keys_file=_FUZZ_KEYS,
            state_dir=Path(_FUZZ_DIR.name) / "state",
            max_body_bytes=64 * 1024,
            max_batch_items=20,
        ),
        kafka=KAFKA,
        publisher=publisher,
        keys=ApiKeyStore(_FUZZ_KEYS),
        status=FixedStatus(case_record()),
        directory=key_directory(publisher),
        providers=ProviderStore(KAFKA, Codec(KAFKA, source="/t"), reader=following(publisher)),
    )


FUZZ_APP = _fuzz_app()
API = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP)


FUZZ_SECONDS: list[float] = []


@pytest.fixture(autouse=True)
def _fuzz_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.monotonic()
    yield
    if request.node.name.startswith("test_fuzz_"):
        FUZZ_SECONDS.append(time.monotonic() - started)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(FUZZ_STATUSES.values())
    if total:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        line = (
            f"\nintake fuzz: {total} requests in {sum(FUZZ_SECONDS):.1f} s, "
            f"no 5xx; statuses {dict(sorted(FUZZ_STATUSES.items()))}\n"
        )
        with capture.global_and_fixture_disabled():
            print(line)
    _FUZZ_DIR.cleanup()


@pytest.mark.slow
@API.parametrize()
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzz_openapi_never_answers_5xx(case: schemathesis.Case[Any]) -> None:
    calls = FUZZ_STATUSES.total()
    # Mostly a real key of a rotating role, so that requests get past authentication;
    # every tenth keeps the Authorization schemathesis made up (it must be a 401).
    role = ["agency", "provider", "operator", "directory-admin"][calls % 4]
    extra = {} if calls % 10 == 0 else {"Authorization": f"Bearer {FUZZ_KEYS[role]}"}
    response = case.call(headers=extra)
    FUZZ_STATUSES[response.status_code] += 1
    assert response.status_code < 500, response.text


def _plain(value: Any) -> Any:
    """An Avro-plain value as JSON: bytes base64, instants RFC 3339, UUIDs as text."""
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _as_callers(event: Event) -> Event:
    """The event with the fuzz principals' own ids, so that valid events get through."""
    changes: dict[str, Any] = {}
    if "agency_id" in type(event).model_fields:
        changes["agency_id"] = AGENCY_ID
    if event.event_type in PROVIDER_ANSWERS:
        changes["provider_id"] = PROVIDER_ID
    if event.event_type == "referral.cancelled":
        changes["cancelled_by"] = "AGENCY"
    for name, value in event:
        if isinstance(value, Sealed):  # random bytes open under no key: refused (tested below)
            changes[name] = None
    return type(event).model_validate({**to_avro(event), **changes})


@st.composite
def _valid_cloudevents(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(sorted(AGENCY_EVENTS | PROVIDER_ANSWERS)))
    event = _as_callers(draw(model_strategy(MODELS[event_type])))
    return {
        "specversion": "1.0",
        "id": draw(st.from_regex(r"[!-~]{1,40}", fullmatch=True)),
        "source": draw(
            st.sampled_from([f"/agencies/{AGENCY_ID}", f"/providers/{PROVIDER_ID}", "/agencies/a"])
        ),
        "type": event_type,
        "time": rfc3339(utc_millis(event.occurred_at)),
        "subject": str(event.subject),
        "data": _plain(to_avro(event)),
    }


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    document = draw(_valid_cloudevents())
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["envelope", "data", "drop"]))
        if where == "drop":
            document.pop(draw(st.sampled_from(sorted(document))), None)
        elif where == "envelope":
            document[draw(st.sampled_from([*sorted(document), "x"]))] = draw(_JSON)
        elif isinstance(document.get("data"), dict) and document["data"]:
            data = document["data"]
            data[draw(st.sampled_from([*sorted(data), "extra"]))] = draw(_JSON)
    return document


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
"""What an HTTP client can send in a header at all (visible ASCII and spaces)."""

_BODIES = st.one_of(
    _valid_cloudevents(),
    _mutated(),
    st.lists(st.one_of(_valid_cloudevents(), _mutated()), max_size=4),
    _JSON,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    field=st.sampled_from(["survivor.identified/personal_data", "referral.requested/notes"]),
    ciphertext=st.binary(max_size=200),
    recipient=st.sampled_from(["platform", AGENCY_ID, str(PROVIDER_ID)]),
    real_key=st.booleans(),
)
def test_a_sealed_value_that_does_not_open_is_refused_and_nothing_published(
    field: str, ciphertext: bytes, recipient: str, real_key: bool
) -> None:
    """Clear text (or any bytes) labelled as sealed: 400 at the field, whatever the key id."""
    event_type, name = field.split("/")
    app = _fuzz_app()
    publisher: RecordingPublisher = app.state.service.publisher
    with TestClient(app) as http:
        event = cloudevent(event_type)
        key_id = "key-1"
        if real_key:
            answer = http.post(
                f"/v1/survivors/{event['subject']}/data-key",
                headers={"Authorization": f"Bearer {FUZZ_KEYS['agency']}"},
            )
            key_id = answer.json()["key_id"]
        event["data"][name] = {
            "ciphertext": b64(ciphertext),
            "key_id": key_id,
            "algorithm": "AES_256_GCM",
            "recipient": recipient,
        }
        response = http.post(
            "/v1/events",
            json=event,
            headers={
                "Authorization": f"Bearer {FUZZ_KEYS['agency']}",
                "Content-Type": STRUCTURED_MEDIA_TYPE,
            },
        )
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["location"].startswith(f"/data/{name}")
    assert not [r for r in publisher.records if r.topic == INTAKE]


def test_every_valid_event_is_accepted_and_published_as_sent() -> None:
    """Property: any event the models allow, sent as JSON by its role, is on its topic unchanged."""
    publisher = RecordingPublisher()
    app = _fuzz_app()
    app.state.service.publisher = publisher
    codec = Codec(KAFKA, source="/t")
    with TestClient(app) as http:

        @given(document=_valid_cloudevents())
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        def run(document: dict[str, Any]) -> None:
            role = "agency" if document["type"] in AGENCY_EVENTS else "provider"
            document["id"] = str(uuid.uuid4())
            document["source"] = {
                "agency": f"/agencies/{AGENCY_ID}",
                "provider": f"/providers/{PROVIDER_ID}",
            }[role]
            response = http.post(
                "/v1/events", content=json.dumps(document), headers=headers(FUZZ_KEYS[role])
            )
            assert response.status_code == 202, response.text
            record = publisher.records[-1]
            decoded = codec.decode(record.value, record.headers, topic=record.topic, key=record.key)
            assert (decoded.envelope.id, decoded.envelope.source) == (
                document["id"],
                document["source"],
            )
            assert _plain(to_avro(decoded.event)) == document["data"]

        run()


@pytest.mark.slow
def test_fuzz_envelopes_bodies_and_headers_never_answer_5xx() -> None:
    with TestClient(_fuzz_app(), raise_server_exceptions=True) as http:

        @given(
            body=_BODIES | st.binary(max_size=200),
            media_type=st.sampled_from(
                [STRUCTURED_MEDIA_TYPE, BATCH_MEDIA_TYPE, "application/json", "text/x"]
            )
            | _HEADER_TEXT,
            auth=st.sampled_from([*FUZZ_KEYS.values(), "sp_agency_nope", ""]) | _HEADER_TEXT,
        )
        @settings(
            max_examples=600,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def run(body: Any, media_type: str, auth: str) -> None:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            if isinstance(body, list) and media_type == STRUCTURED_MEDIA_TYPE:
                media_type = BATCH_MEDIA_TYPE
            fuzz_headers = {"Content-Type": media_type, "Authorization": f"Bearer {auth}"}
            response = http.post("/v1/events", content=content, headers=fuzz_headers)
            FUZZ_STATUSES[response.status_code] += 1
            assert response.status_code < 500, response.text

        run()
    assert FUZZ_STATUSES[202] > 0  # the publishing path was reached, not only rejections

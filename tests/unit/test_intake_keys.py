"""The intake's key service and seal check, without a broker.

The key directory is the real one, over what the
:class:`~tests.doubles.RecordingPublisher` acknowledged (a key record
published is read back, as from the broker); keys are wrapped by the
in-memory keystore double. tests/integration/test_sealing.py runs the same
path on the real broker.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.intake import IntakeSettings, create_app
from connectors.intake.keys import KeyDirectory
from processors.status import ShareView, StatusRecord
from schemas.personal import PersonalData
from streams.codec import EncodedRecord
from streams.data_keys import KeyRecord
from streams.sealing import DataKey, SealContext, seal
from tests.doubles import RecordingPublisher, key_directory
from tests.unit.domain_builders import AGENCY
from tests.unit.test_intake_status import KAFKA, TOPICS, FixedStatus, api_keys, case_record

NEW = uuid.UUID("7c6b5a49-0000-4000-8000-00000000beef")


@dataclass
class KeyIntake:
    http: httpx.AsyncClient
    publisher: RecordingPublisher
    directory: KeyDirectory
    status: FixedStatus
    keys: dict[str, str]

    async def key(self, survivor: object, who: str = "agency") -> httpx.Response:
        return await self.http.post(
            f"/v1/survivors/{survivor}/data-key",
            headers={"Authorization": f"Bearer {self.keys[who]}"},
        )

    def issues(self) -> list[dict[str, Any]]:
        audit = [json.loads(r.value) for r in self.publisher.records if r.topic == TOPICS.audit]
        return [a for a in audit if a["kind"] == "data-key.issue"]

    def key_records(self) -> list[EncodedRecord]:
        return [r for r in self.publisher.records if r.topic == TOPICS.survivor_keys]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    return api_keys(tmp_path / "api-keys.yaml")


@pytest.fixture
def status(request: pytest.FixtureRequest) -> FixedStatus:
    """The status copy: S owned by AGENCY; ``shared`` also shares it with agency:be."""
    record: StatusRecord = case_record()
    if getattr(request, "param", None) == "shared":
        record = record.model_copy(
            update={"shares": (ShareView(agency_id="agency:be", until=None),)}
        )
    return FixedStatus(record)


@pytest.fixture
async def intake(
    tmp_path: Path,
    keys: dict[str, str],
    status: FixedStatus,
) -> AsyncIterator[KeyIntake]:
    publisher = RecordingPublisher()
    directory = key_directory(publisher)
    settings = IntakeSettings(
        api_keys_file=tmp_path / "api-keys.yaml", state_dir=tmp_path / "state", publish_timeout_s=1
    )
    app = create_app(settings, kafka=KAFKA, publisher=publisher, status=status, directory=directory)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http,
    ):
        while not directory.ready:
            await asyncio.sleep(0.01)
        yield KeyIntake(http, publisher, directory, status, keys)


async def test_the_first_call_makes_the_key_the_next_gets_the_same_and_both_are_audited(
    intake: KeyIntake,
) -> None:
    first = await intake.key(NEW)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    again = await intake.key(NEW)
    body, same = first.json(), again.json()
    assert (body["created"], same["created"]) == (True, False)
    assert body["key"] == same["key"] and body["key_id"] == same["key_id"]
    assert (body["algorithm"], body["recipient"]) == ("AES_256_GCM", "platform")
    material = base64.b64decode(body["key"])
    assert len(material) == 32

    [published] = intake.key_records()  # made once, and only wrapped
    assert published.key == str(NEW).encode()
    assert material not in published.value and body["key"].encode() not in published.value
    assert KeyRecord.from_bytes(published.value).agency_id == AGENCY
    issues = [(i["status"], i["data_key_id"], i["principal"]) for i in intake.issues()]
    assert issues == [(200, body["key_id"], "nl-police")] * 2
    assert body["key"] not in json.dumps(intake.issues())


async def test_only_the_agencies_of_the_case_get_its_key(intake: KeyIntake) -> None:
    await intake.key(NEW)
    stranger = await intake.key(NEW, "other-agency")
    unknown = await intake.key(uuid.uuid4(), "provider")
    assert stranger.status_code == 404
    assert stranger.json()["type"] == "urn:safepassage:problem:unknown-survivor"
    assert unknown.status_code == 403
    owned = case_record().survivor_id  # the router saw it: the status names the owner
    assert (await intake.key(owned)).status_code == 200
    assert (await intake.key(owned, "other-agency")).status_code == 404
    assert (await intake.key(uuid.uuid4(), "operator")).status_code == 403
    bad = await intake.key("not-a-uuid")
    assert bad.status_code == 400
    refusals = [(i["status"], i["refusal"]) for i in intake.issues() if i["status"] != 200]
    assert refusals == [
        (404, "not-the-callers-survivor"),
        (403, "role"),
        (404, "not-the-callers-survivor"),
        (403, "role"),
        (400, "not-a-uuid"),
    ]


@pytest.mark.parametrize("status", ["shared"], indirect=True)
async def test_an_agency_the_case_is_shared_with_gets_the_same_key(intake: KeyIntake) -> None:
    survivor = next(iter(intake.status.records))
    owner, second = await intake.key(survivor), await intake.key(survivor, "other-agency")
    assert owner.status_code == second.status_code == 200, second.text
    assert owner.json()["key"] == second.json()["key"]


async def test_nothing_is_handed_out_unless_the_key_is_acknowledged(intake: KeyIntake) -> None:
    intake.publisher.fail = lambda record: record.topic == TOPICS.survivor_keys
    answer = await intake.key(NEW)
    assert answer.status_code == 503
    assert "key" not in answer.json()
    assert not intake.key_records()


async def test_a_shredded_survivor_gets_410_and_never_a_new_key(intake: KeyIntake) -> None:
    await intake.key(NEW)
    intake.publisher.submit(EncodedRecord(TOPICS.survivor_keys, str(NEW).encode(), None, []))  # type: ignore[arg-type]
    for _ in range(100):
        if intake.directory.served.record(NEW) is None:
            break
        await asyncio.sleep(0.01)
    gone = await intake.key(NEW)
    assert gone.status_code == 410
    assert gone.json()["type"] == "urn:safepassage:problem:survivor-erased"
    assert len(intake.key_records()) == 2  # the key, the tombstone; nothing new


async def test_a_value_sealed_for_one_survivor_does_not_pass_as_anothers(
    intake: KeyIntake,
) -> None:
    first = (await intake.key(NEW)).json()
    other = uuid.uuid4()
    await intake.key(other)
    key = DataKey(first["key_id"], NEW, base64.b64decode(first["key"]))
    sealed = seal(
        key,
        PersonalData.of({"name": "Maria"}).to_bytes(),
        SealContext(NEW, "survivor.identified", "personal_data", "platform"),
    )
    headers = {
        "Authorization": f"Bearer {intake.keys['agency']}",
        "Content-Type": "application/cloudevents+json",
    }
    for survivor, expected in ((other, 400), (NEW, 202)):
        event = identification(survivor, sealed_json(sealed))
        answer = await intake.http.post("/v1/events", json=event, headers=headers)
        assert answer.status_code == expected, answer.text
        if expected == 400:
            assert answer.json()["errors"][0]["location"] == "/data/personal_data"


def sealed_json(sealed: Any) -> dict[str, Any]:
    return {
        "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
        "key_id": sealed.key_id,
        "algorithm": sealed.algorithm.value,
        "recipient": sealed.recipient,
    }


def identification(survivor: uuid.UUID, personal_data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/agencies/{AGENCY}",
        "type": "survivor.identified",
        "time": "2025-03-04T05:06:07.890Z",
        "subject": str(survivor),
        "data": {
            "survivor_id": str(survivor),
            "occurred_at": "2025-03-04T05:06:07.890Z",
            "agency_id": AGENCY,
            "jurisdiction": "NL",
            "age_group": "ADULT",
            "age_band": "FROM_25_TO_34",
            "languages": ["nl"],
            "gender": "FEMALE",
            "personal_data": personal_data,
        },
    }


async def test_a_key_record_that_does_not_unwrap_is_refused_not_a_crash(intake: KeyIntake) -> None:
    """A record wrapped elsewhere (forged by a writer without the KEK): no key, no 500."""
    forged = KeyRecord(
        survivor_id=NEW,
        agency_id=AGENCY,
        key_id="forged",
        kek_id="memory-kek-1",
        wrapped=base64.b64encode(b"not a wrapped key").decode(),
        created_at=datetime(2026, 12, 3, tzinfo=UTC),
    )
    intake.publisher.submit(
        EncodedRecord(TOPICS.survivor_keys, str(NEW).encode(), forged.to_bytes(), [])
    )
    while intake.directory.served.record(NEW) is None:
        await asyncio.sleep(0.01)
    answer = await intake.key(NEW)
    assert answer.status_code == 503 and "key" not in answer.json()
    sealed = {
        "ciphertext": "AAAA",
        "key_id": "forged",
        "algorithm": "AES_256_GCM",
        "recipient": "platform",
    }
    published = await intake.http.post(
        "/v1/events",
        json=identification(NEW, sealed),
        headers={
            "Authorization": f"Bearer {intake.keys['agency']}",
            "Content-Type": "application/cloudevents+json",
        },
    )
    assert published.status_code == 400, published.text

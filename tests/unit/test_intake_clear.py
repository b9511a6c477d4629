"""Personal data sent in clear is sealed by the intake before anything is published.

In-process, over the real key directory and idempotency store (the
:class:`~tests.doubles.RecordingPublisher` stands in for Kafka).
tests/integration/test_sealing.py sends clear personal data over real TLS.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.exceptions import IdempotencyStoreError
from connectors.idempotency import fingerprint, fingerprint_key
from connectors.intake import IntakeSettings, create_app
from connectors.intake.clear import is_clear
from connectors.intake.keys import KeyDirectory
from schemas.models import ReferralRequested, SurvivorIdentified
from schemas.personal import PersonalData
from streams.codec import Codec
from streams.sealing import SealContext, open_sealed
from tests.doubles import RecordingPublisher, key_directory
from tests.unit.domain_builders import AGENCY
from tests.unit.test_intake_keys import identification
from tests.unit.test_intake_status import KAFKA, TOPICS, FixedStatus, api_keys, case_record

NAME, MEDICAL = "Ana Canary-Ionescu", "canary: insulin twice a day"
CLEAR = {"name": NAME, "medical": MEDICAL}


@dataclass
class ClearIntake:
    http: httpx.AsyncClient
    publisher: RecordingPublisher
    directory: KeyDirectory
    keys: dict[str, str]
    state: Path

    async def post(self, document: Any, who: str = "agency") -> httpx.Response:
        return await self.http.post(
            "/v1/events",
            json=document,
            headers={
                "Authorization": f"Bearer {self.keys[who]}",
                "Content-Type": "application/cloudevents+json",
            },
        )

    def published(self) -> list[Any]:
        codec = Codec(KAFKA, source="/t")
        return [
            codec.decode(r.value, r.headers, topic=r.topic).event
            for r in self.publisher.records
            if r.topic == TOPICS.intake
        ]

    def audits(self, kind: str) -> list[dict[str, Any]]:
        audit = [json.loads(r.value) for r in self.publisher.records if r.topic == TOPICS.audit]
        return [a for a in audit if a["kind"] == kind]


async def _running(tmp_path: Path, *, scheme: str) -> AsyncIterator[ClearIntake]:
    keys = api_keys(tmp_path / "api-keys.yaml")
    publisher = RecordingPublisher()
    directory = key_directory(publisher)
    settings = IntakeSettings(
        api_keys_file=tmp_path / "api-keys.yaml",
        state_dir=tmp_path / "state",
        publish_timeout_s=1,
    )
    status = FixedStatus(case_record())
    app = create_app(settings, kafka=KAFKA, publisher=publisher, status=status, directory=directory)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://intake"
        ) as http,
    ):
        while not directory.ready:
            await asyncio.sleep(0.01)
        yield ClearIntake(http, publisher, directory, keys, tmp_path / "state")


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[ClearIntake]:
    """Requests that came over TLS (what ``safepassage intake serve`` serves)."""
    async for running in _running(tmp_path, scheme="https"):
        yield running


@pytest.fixture
async def plain(tmp_path: Path) -> AsyncIterator[ClearIntake]:
    """Requests over plain HTTP (an intake on loopback with SAFEPASSAGE_INTAKE_PLAINTEXT)."""
    async for running in _running(tmp_path, scheme="http"):
        yield running


def referral_document(survivor: uuid.UUID, notes: Any) -> dict[str, Any]:
    referral = uuid.uuid4()
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/agencies/{AGENCY}",
        "type": "referral.requested",
        "time": "2025-03-04T05:06:07.890Z",
        "subject": str(survivor),
        "data": {
            "survivor_id": str(survivor),
            "occurred_at": "2025-03-04T05:06:07.890Z",
            "referral_id": str(referral),
            "agency_id": AGENCY,
            "category": "HOUSING",
            "urgency": "ROUTINE",
            "requirements": {
                "languages": [],
                "gender_specific": False,
                "child_specialised": False,
                "accessibility": False,
                "jurisdiction": "NL",
            },
            "notes": notes,
        },
    }


async def test_clear_personal_data_and_notes_are_sealed_before_they_are_published(
    intake: ClearIntake,
) -> None:
    survivor = uuid.uuid4()
    identified = await intake.post(identification(survivor, CLEAR))
    requested = await intake.post(referral_document(survivor, f"{NAME} arrives at 14:00"))
    assert identified.status_code == requested.status_code == 202, identified.text
    for record in intake.publisher.records:
        assert NAME.encode() not in record.value and MEDICAL.encode() not in record.value
    first, second = intake.published()
    assert isinstance(first, SurvivorIdentified) and isinstance(second, ReferralRequested)
    assert first.personal_data is not None and second.notes is not None
    key = intake.directory.served.key(survivor, first.personal_data.key_id)
    opened = open_sealed(
        key,
        first.personal_data,
        SealContext(survivor, "survivor.identified", "personal_data", "platform"),
    )
    assert PersonalData.from_bytes(opened).values() == CLEAR
    notes = open_sealed(
        key, second.notes, SealContext(survivor, "referral.requested", "notes", "platform")
    )
    assert notes == f"{NAME} arrives at 14:00".encode()
    assert [a["status"] for a in intake.audits("data-key.seal")] == [200, 200]


async def test_a_retry_of_a_clear_event_is_a_replay_and_no_plain_hash_of_it_is_kept(
    intake: ClearIntake,
) -> None:
    survivor, document = uuid.uuid4(), None
    document = identification(survivor, CLEAR)
    first = await intake.post(document)
    again = await intake.post(document)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert len(intake.published()) == 1
    changed = identification(survivor, {"name": "someone else"}) | {"id": document["id"]}
    assert (await intake.post(changed)).status_code == 409  # same id, other content

    with sqlite3.connect(intake.state / "idempotency.sqlite3") as db:
        [(digest,)] = db.execute("SELECT digest FROM events").fetchall()
    assert digest.startswith("hmac:")
    assert digest != fingerprint("nl-police", document)  # a guess cannot be checked against it


async def test_clear_values_are_refused_over_plain_http(
    plain: ClearIntake,
) -> None:
    answer = await plain.post(identification(uuid.uuid4(), CLEAR))
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["location"] == "/data/personal_data" and "TLS only" in error["message"]
    assert NAME not in answer.text
    assert not plain.published() and not plain.audits("data-key.seal")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"nickname": NAME}, "nickname: not a personal field"),
        ({}, "at least one field"),
        ("Ana, room 12", "must be an object of personal fields"),
        ({"name": 12}, "name: must be text"),
    ],
)
async def test_clear_personal_data_outside_the_vocabulary_is_refused_without_quoting_it(
    intake: ClearIntake, value: Any, says: str
) -> None:
    answer = await intake.post(identification(uuid.uuid4(), value))
    assert answer.status_code == 400, answer.text
    [error] = answer.json()["errors"]
    assert error["location"] == "/data/personal_data" and says in error["message"]
    assert NAME not in answer.text and "room 12" not in answer.text
    assert not intake.published()


async def test_empty_clear_notes_are_refused(intake: ClearIntake) -> None:
    answer = await intake.post(referral_document(uuid.uuid4(), ""))
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["location"] == "/data/notes"


async def test_nobody_seals_in_clear_for_another_agencys_survivor(intake: ClearIntake) -> None:
    owned = case_record().survivor_id  # S belongs to AGENCY
    document = identification(owned, CLEAR)
    document["source"], document["data"]["agency_id"] = "/agencies/agency:be", "agency:be"
    answer = await intake.post(document, "other-agency")
    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:safepassage:problem:unknown-survivor"
    assert not intake.published()
    assert [a["refusal"] for a in intake.audits("data-key.seal")] == ["not-the-callers-survivor"]


async def test_a_provider_cannot_smuggle_clear_values_through(intake: ClearIntake) -> None:
    answer = await intake.post(identification(uuid.uuid4(), CLEAR), "provider")
    assert answer.status_code == 403
    assert not intake.published() and not intake.audits("data-key.seal")


def test_what_counts_as_clear() -> None:
    assert is_clear({"name": "x"}) and is_clear("notes") and is_clear([])
    assert not is_clear(None) and not is_clear({"ciphertext": "AAAA", "key_id": "k"})


def test_the_fingerprint_key_is_made_once_owner_only_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "fingerprint.key"
    key = fingerprint_key(path)
    assert len(key) == 32 and fingerprint_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["fingerprint.key"]  # no temporary left
    assert fingerprint("p", {"a": 1}, key) != fingerprint("p", {"a": 1}, bytes(32))
    path.write_bytes(b"short")
    with pytest.raises(IdempotencyStoreError, match="32-byte"):
        fingerprint_key(path)

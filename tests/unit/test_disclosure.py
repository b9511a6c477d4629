"""Least data per recipient: allowlists, the offer-and-consent rule, HPKE to providers, the route.

The route runs in-process over the real key directory and the real index of
``intake.v1`` (both reading what the :class:`~tests.doubles.RecordingPublisher`
acknowledged); tests/integration/test_sealing.py runs it on the broker
behind a real router.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.auth import Role, add_key
from connectors.intake import IntakeSettings, create_app
from connectors.intake.disclosure import SealedSources, Sources
from connectors.intake.keys import KeyDirectory
from processors.disclosure import (
    DEFAULT_FIELDS,
    DisclosurePolicy,
    DisclosureRefusal,
    disclosable_referral,
)
from processors.lifecycle import ReferralStatus
from processors.status import StatusRecord, status_record
from schemas.models import Event
from schemas.personal import MAX_FIELD_CHARS, PersonalData, PersonalDataError, PersonalField
from schemas.types import CaseOutcome, ServiceCategory
from streams.codec import Codec, EncodedRecord
from streams.provider_sealing import (
    DisclosureContext,
    ProviderKey,
    public_key_from_b64,
    seal_disclosure,
)
from streams.sealing import DataKey, SealContext, SealingError, UnopenableError, seal
from tests.doubles import RecordingPublisher, following, key_directory
from tests.unit.domain_builders import (
    AGENCY,
    T0,
    Harness,
    consent,
    identified,
    provider,
    request,
    uid,
)
from tests.unit.test_intake_keys import identification, sealed_json
from tests.unit.test_intake_status import KAFKA, TOPICS, FixedStatus

S = uid("disclosure-survivor")
HOUSING_P, HEALTH_P = uid("disclosure-housing"), uid("disclosure-health")
HOUSING_R, HEALTH_R = uid("disclosure-housing-referral"), uid("disclosure-health-referral")
EVERY_FIELD = {f.value: f"canary-{f.value}-7f3a" for f in PersonalField}
NOTES = "canary-notes-7f3a: arrives by train at 14:00"
MEDICAL = {PersonalField.MEDICAL}
NEVER_FOR_HOUSING = {
    PersonalField.MEDICAL,
    PersonalField.LEGAL,
    PersonalField.FINANCIAL,
    PersonalField.DOCUMENTS,
    PersonalField.NARRATIVE,
    PersonalField.LOCATION,
}

personal_data = st.dictionaries(
    st.sampled_from([f.value for f in PersonalField]),
    st.text(min_size=1, max_size=20),
    min_size=1,
)


# --------------------------------------------------------------------------- the vocabulary


@given(personal_data)
def test_personal_data_round_trips_through_its_sealed_form(values: dict[str, str]) -> None:
    data = PersonalData.of(values)
    assert PersonalData.from_bytes(data.to_bytes()) == data
    assert data.values() == values
    assert all(v not in repr(data) for v in values.values() if len(v) > 3)


@pytest.mark.parametrize(
    ("plaintext", "says"),
    [
        (b"Maria, room 12", "is not JSON"),
        (b'["Maria"]', "not a JSON object"),
        (b"{}", "at least one field"),
        (b'{"nickname": "x"}', "nickname: not a personal field"),
        (b'{"name": ""}', "name: empty"),
        (b'{"name": 12}', "name: must be text"),
        (json.dumps({"name": "x" * (MAX_FIELD_CHARS + 1)}).encode(), "longer than"),
    ],
)
def test_what_is_not_personal_data_in_the_contracts_form_is_refused_without_quoting_it(
    plaintext: bytes, says: str
) -> None:
    with pytest.raises(PersonalDataError, match=says) as caught:
        PersonalData.from_bytes(plaintext)
    assert "Maria" not in str(caught.value)


# --------------------------------------------------------------------------- the allowlists


@given(personal_data, st.sampled_from(list(ServiceCategory)))
def test_a_provider_receives_only_its_categorys_fields(
    values: dict[str, str], category: ServiceCategory
) -> None:
    policy = DisclosurePolicy()
    chosen = PersonalData.of(values).only(policy.fields_for(category))
    assert set(chosen) <= {f.value for f in policy.fields_for(category)}
    assert all(chosen[name] == values[name] for name in chosen)
    if category is ServiceCategory.HOUSING:
        assert not set(chosen) & {f.value for f in NEVER_FOR_HOUSING}
    if category is ServiceCategory.UNKNOWN:
        assert chosen == {}


def test_only_health_providers_receive_medical_detail_by_default() -> None:
    medical = [c for c, fields in DEFAULT_FIELDS.items() if PersonalField.MEDICAL in fields]
    assert medical == [ServiceCategory.HEALTH]


def test_overrides_replace_the_categories_they_name_and_keep_the_others() -> None:
    policy = DisclosurePolicy.with_overrides({ServiceCategory.HOUSING: frozenset()})
    assert policy.fields_for(ServiceCategory.HOUSING) == frozenset()
    assert policy.fields_for(ServiceCategory.HEALTH) == DEFAULT_FIELDS[ServiceCategory.HEALTH]
    assert DisclosurePolicy(fields={}).fields_for(ServiceCategory.HEALTH) == frozenset()


def test_the_setting_is_read_from_json_and_refuses_unknown_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAFEPASSAGE_INTAKE_DISCLOSE", '{"HOUSING": ["name"]}')
    policy = IntakeSettings().disclosure_policy
    assert policy.fields_for(ServiceCategory.HOUSING) == {PersonalField.NAME}
    assert policy.fields_for(ServiceCategory.LEGAL_AID) == DEFAULT_FIELDS[ServiceCategory.LEGAL_AID]
    monkeypatch.setenv("SAFEPASSAGE_INTAKE_DISCLOSE", '{"HOUSING": ["shoe_size"]}')
    with pytest.raises(ValueError, match="shoe_size"):
        IntakeSettings()


# --------------------------------------------------------------------------- the offer rule


def two_offers(*, expires_at: Any = None) -> StatusRecord:
    """S identified and consenting, housing offered to HOUSING_P and health to HEALTH_P."""
    h = Harness()
    h.all(
        provider(HOUSING_P),
        provider(HEALTH_P, categories=(ServiceCategory.HEALTH,)),
        identified(S),
        consent(S, expires_at=expires_at),
        request(S, HOUSING_R),
        request(S, HEALTH_R, category=ServiceCategory.HEALTH),
    )
    record = status_record(h.cases[S])
    assert {(r.provider_id, r.status) for r in record.referrals} == {
        (HOUSING_P, ReferralStatus.OFFERED),
        (HEALTH_P, ReferralStatus.OFFERED),
    }
    return record


def with_status(record: StatusRecord, status: ReferralStatus) -> StatusRecord:
    referrals = tuple(r.model_copy(update={"status": status}) for r in record.referrals)
    return record.model_copy(update={"referrals": referrals})


def test_only_the_provider_holding_a_standing_offer_under_active_consent_may_fetch() -> None:
    record, now = two_offers(expires_at=T0 + timedelta(days=30)), T0 + timedelta(hours=1)
    offered = disclosable_referral(record, HOUSING_R, HOUSING_P, now)
    assert not isinstance(offered, DisclosureRefusal) and offered.referral_id == HOUSING_R
    for status in (ReferralStatus.ACCEPTED, ReferralStatus.IN_PROGRESS):
        assert disclosable_referral(with_status(record, status), HOUSING_R, HOUSING_P, now)
    refused = {
        "another provider": disclosable_referral(record, HOUSING_R, HEALTH_P, now),
        "unknown referral": disclosable_referral(record, uuid.uuid4(), HOUSING_P, now),
        "unknown survivor": disclosable_referral(None, HOUSING_R, HOUSING_P, now),
        "completed": disclosable_referral(
            with_status(record, ReferralStatus.COMPLETED), HOUSING_R, HOUSING_P, now
        ),
        "closed": disclosable_referral(
            record.model_copy(update={"closed": CaseOutcome.SUPPORT_COMPLETED}),
            HOUSING_R,
            HOUSING_P,
            now,
        ),
        "expired": disclosable_referral(record, HOUSING_R, HOUSING_P, T0 + timedelta(days=31)),
        "withdrawn": disclosable_referral(
            record.model_copy(update={"consents": ()}), HOUSING_R, HOUSING_P, now
        ),
    }
    assert refused == {
        "another provider": DisclosureRefusal.NOT_OFFERED,
        "unknown referral": DisclosureRefusal.NOT_OFFERED,
        "unknown survivor": DisclosureRefusal.NOT_OFFERED,
        "completed": DisclosureRefusal.OFFER_ENDED,
        "closed": DisclosureRefusal.CASE_CLOSED,
        "expired": DisclosureRefusal.CONSENT_NOT_ACTIVE,
        "withdrawn": DisclosureRefusal.CONSENT_NOT_ACTIVE,
    }
    assert [r.held for r in DisclosureRefusal] == [False, True, True, True]


# --------------------------------------------------------------------------- HPKE


def test_what_is_sealed_for_one_provider_opens_for_it_only_and_only_in_its_context() -> None:
    a, b = ProviderKey.generate(), ProviderKey.generate()
    context = DisclosureContext(S, HOUSING_R, HOUSING_P)
    sealed = seal_disclosure(public_key_from_b64(a.public_b64()), b"canary", context)
    assert b"canary" not in sealed
    assert a.open(sealed, context) == b"canary"
    with pytest.raises(UnopenableError):
        b.open(sealed, context)  # provider B cannot open what was sealed for A
    for moved in (
        DisclosureContext(S, HEALTH_R, HOUSING_P),
        DisclosureContext(S, HOUSING_R, HEALTH_P),
        DisclosureContext(uuid.uuid4(), HOUSING_R, HOUSING_P),
    ):
        with pytest.raises(UnopenableError):
            a.open(sealed, moved)
    flipped = bytes([sealed[0], sealed[1] ^ 1, *sealed[2:]])
    with pytest.raises(UnopenableError):
        a.open(flipped, context)


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_public_key_must_be_32_raw_bytes_in_base64(text: str) -> None:
    with pytest.raises(SealingError):
        public_key_from_b64(text)


def test_a_provider_key_file_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    key, path = ProviderKey.generate(), tmp_path / "provider.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ProviderKey.load(path).public_b64() == key.public_b64()
    assert key.public_b64() in repr(key) and "PRIVATE" not in repr(key)
    with pytest.raises(FileExistsError):
        key.save(path)
    os.chmod(path, 0o644)
    with pytest.raises(SealingError, match="chmod 600"):
        ProviderKey.load(path)


# --------------------------------------------------------------------------- the route


@dataclass
class DisclosureIntake:
    http: httpx.AsyncClient
    publisher: RecordingPublisher
    directory: KeyDirectory
    sources: SealedSources
    status: FixedStatus
    keys: dict[str, str]

    async def fetch(
        self, who: str, referral: uuid.UUID, key: ProviderKey, survivor: uuid.UUID = S
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/survivors/{survivor}/referrals/{referral}/disclosure",
            json={"public_key": key.public_b64()},
            headers={"Authorization": f"Bearer {self.keys[who]}"},
        )

    def audits(self) -> list[dict[str, Any]]:
        audit = [json.loads(r.value) for r in self.publisher.records if r.topic == TOPICS.audit]
        return [a for a in audit if a["kind"] == "disclosure"]

    async def publish_sealed(self) -> None:
        """The owner seals every personal field and the referrals' notes, as the SDK would."""
        answer = await self.http.post(
            f"/v1/survivors/{S}/data-key",
            headers={"Authorization": f"Bearer {self.keys['agency']}"},
        )
        assert answer.status_code == 200, answer.text
        key = DataKey(answer.json()["key_id"], S, base64.b64decode(answer.json()["key"]))
        codec = Codec(KAFKA, source=f"/agencies/{AGENCY}")
        personal = seal(
            key,
            PersonalData.of(EVERY_FIELD).to_bytes(),
            SealContext(S, "survivor.identified", "personal_data", "platform"),
        )
        events: list[Event] = [identified(S).model_copy(update={"personal_data": personal})]
        for rid, category in (
            (HOUSING_R, ServiceCategory.HOUSING),
            (HEALTH_R, ServiceCategory.HEALTH),
        ):
            notes = seal(
                key, NOTES.encode(), SealContext(S, "referral.requested", "notes", "platform")
            )
            events.append(request(S, rid, category=category).model_copy(update={"notes": notes}))
        for event in events:
            await self.publisher.submit(codec.encode(event, TOPICS.intake))
        while len(self.sources.served.notes) < 2 or S not in self.sources.served.personal:
            await asyncio.sleep(0.01)


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[DisclosureIntake]:
    path = tmp_path / "api-keys.yaml"
    keys = {
        "agency": add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY)[0],
        "housing": add_key(path, role=Role.PROVIDER, principal="shelter", provider_id=HOUSING_P)[0],
        "health": add_key(path, role=Role.PROVIDER, principal="clinic", provider_id=HEALTH_P)[0],
        "operator": add_key(path, role=Role.OPERATOR, principal="duty-desk")[0],
    }
    publisher = RecordingPublisher()
    directory = key_directory(publisher)
    sources = SealedSources(KAFKA, Codec(KAFKA, source="/test"), reader=following(publisher))
    status = FixedStatus(two_offers())
    settings = IntakeSettings(api_keys_file=path, state_dir=tmp_path / "state", publish_timeout_s=1)
    app = create_app(
        settings,
        kafka=KAFKA,
        publisher=publisher,
        status=status,
        directory=directory,
        sources=sources,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http,
    ):
        while not (directory.ready and sources.ready):
            await asyncio.sleep(0.01)
        yield DisclosureIntake(http, publisher, directory, sources, status, keys)


def opened(answer: httpx.Response, key: ProviderKey, referral: uuid.UUID, pid: uuid.UUID) -> Any:
    sealed = base64.b64decode(answer.json()["sealed"])
    return json.loads(key.open(sealed, DisclosureContext(S, referral, pid)))


async def test_each_provider_gets_its_categorys_fields_sealed_to_its_own_key(
    intake: DisclosureIntake,
) -> None:
    await intake.publish_sealed()
    housing_key, health_key = ProviderKey.generate(), ProviderKey.generate()
    housing = await intake.fetch("housing", HOUSING_R, housing_key)
    health = await intake.fetch("health", HEALTH_R, health_key)
    assert housing.status_code == health.status_code == 200, housing.text + health.text
    assert housing.headers["cache-control"] == "no-store"
    for answer in (housing, health):
        assert "canary" not in answer.text  # nothing in clear, not even field values' traces

    seen = opened(housing, housing_key, HOUSING_R, HOUSING_P)
    allowed = DEFAULT_FIELDS[ServiceCategory.HOUSING]
    assert seen == {
        "personal_data": {f.value: EVERY_FIELD[f.value] for f in allowed},
        "notes": NOTES,
    }
    assert "medical" not in seen["personal_data"]  # a housing provider's view has no medical field
    assert housing.json()["fields"] == sorted(f.value for f in allowed)
    assert (
        opened(health, health_key, HEALTH_R, HEALTH_P)["personal_data"]["medical"]
        == (EVERY_FIELD["medical"])
    )
    with pytest.raises(UnopenableError):  # provider B cannot open what was sealed for A
        opened(housing, health_key, HOUSING_R, HEALTH_P)

    audits = [
        (a["principal"], a["status"], tuple(a["fields"]), a["notes"]) for a in intake.audits()
    ]
    assert audits == [
        ("shelter", 200, tuple(sorted(f.value for f in allowed)), True),
        (
            "clinic",
            200,
            tuple(sorted(f.value for f in DEFAULT_FIELDS[ServiceCategory.HEALTH])),
            True,
        ),
    ]
    assert "canary" not in json.dumps(intake.audits())


async def test_nobody_but_the_offered_provider_fetches_and_every_refusal_is_audited(
    intake: DisclosureIntake,
) -> None:
    await intake.publish_sealed()
    key = ProviderKey.generate()
    other = await intake.fetch("health", HOUSING_R, key)  # B asks for A's referral
    assert other.status_code == 404 and "sealed" not in other.json()
    assert other.json()["type"] == "urn:safepassage:problem:unknown-referral"
    assert (await intake.fetch("housing", HOUSING_R, key, survivor=uuid.uuid4())).status_code == 404
    assert (await intake.fetch("agency", HOUSING_R, key)).status_code == 403
    assert (await intake.fetch("operator", HOUSING_R, key)).status_code == 403
    bad = await intake.http.post(
        f"/v1/survivors/not-a-uuid/referrals/{HOUSING_R}/disclosure",
        json={"public_key": key.public_b64()},
        headers={"Authorization": f"Bearer {intake.keys['housing']}"},
    )
    assert bad.status_code == 400
    for body in ({"public_key": "short"}, {"key": key.public_b64()}, {}):
        answer = await intake.http.post(
            f"/v1/survivors/{S}/referrals/{HOUSING_R}/disclosure",
            json=body,
            headers={"Authorization": f"Bearer {intake.keys['housing']}"},
        )
        assert answer.status_code == 400
        assert answer.json()["errors"][0]["location"] == "/public_key"
    huge = await intake.http.post(
        f"/v1/survivors/{S}/referrals/{HOUSING_R}/disclosure",
        content=b'{"public_key": "' + b"A" * 100_000 + b'"}',
        headers={"Authorization": f"Bearer {intake.keys['housing']}"},
    )
    assert huge.status_code == 413  # refused as it streams, never read whole
    unauthenticated = await intake.http.post(
        f"/v1/survivors/{S}/referrals/{HOUSING_R}/disclosure",
        json={"public_key": key.public_b64()},
    )
    assert unauthenticated.status_code == 401
    refusals = [(a["status"], a["refusal"]) for a in intake.audits()]
    assert refusals == [
        (404, "not-offered"),
        (404, "not-offered"),
        (403, "role"),
        (403, "role"),
        (400, "not-a-uuid"),
    ]


async def test_a_withdrawal_an_ended_offer_or_an_erasure_stops_disclosure_at_once(
    intake: DisclosureIntake,
) -> None:
    await intake.publish_sealed()
    key = ProviderKey.generate()
    assert (await intake.fetch("housing", HOUSING_R, key)).status_code == 200
    record = intake.status.records[S]
    intake.status.records[S] = record.model_copy(update={"consents": ()})
    withdrawn = await intake.fetch("housing", HOUSING_R, key)
    assert withdrawn.status_code == 409 and withdrawn.json()["reason"] == "consent-not-active"
    intake.status.records[S] = with_status(record, ReferralStatus.DECLINED)
    assert (await intake.fetch("housing", HOUSING_R, key)).json()["reason"] == "offer-ended"
    intake.status.records[S] = record
    shredded = EncodedRecord(TOPICS.survivor_keys, str(S).encode(), None, [])  # type: ignore[arg-type]
    await intake.publisher.submit(shredded)
    while intake.directory.served.record(S) is not None:
        await asyncio.sleep(0.01)
    erased = await intake.fetch("housing", HOUSING_R, key)
    assert erased.status_code == 410 and "sealed" not in erased.json()
    assert [a["status"] for a in intake.audits()] == [200, 409, 409, 410]


async def test_a_value_in_clear_or_outside_the_vocabulary_is_refused_at_the_intake(
    intake: DisclosureIntake,
) -> None:
    answer = await intake.http.post(
        f"/v1/survivors/{S}/data-key", headers={"Authorization": f"Bearer {intake.keys['agency']}"}
    )
    key = DataKey(answer.json()["key_id"], S, base64.b64decode(answer.json()["key"]))
    context = SealContext(S, "survivor.identified", "personal_data", "platform")
    for plaintext in (b"Maria Popescu, room 12", b'{"nickname": "M"}'):
        sealed = seal(key, plaintext, context)
        refused = await intake.http.post(
            "/v1/events",
            json=identification(S, sealed_json(sealed)),
            headers={
                "Authorization": f"Bearer {intake.keys['agency']}",
                "Content-Type": "application/cloudevents+json",
            },
        )
        assert refused.status_code == 400, refused.text
        [error] = refused.json()["errors"]
        assert error["location"] == "/data/personal_data"
        assert "Maria" not in refused.text
        assert "is not JSON" in error["message"] or "not a personal field" in error["message"]
    assert not [r for r in intake.publisher.records if r.topic == TOPICS.intake]


def test_the_index_skips_records_it_cannot_read_and_keeps_reading() -> None:
    """No record on intake.v1 can stop the index: odd headers and bad bodies are passed over."""
    sources = SealedSources(KAFKA, Codec(KAFKA, source="/test"))
    copy = Sources()
    odd = [
        SimpleNamespace(
            topic=TOPICS.intake,
            partition=0,
            offset=1,
            key=b"k",
            value=b"x",
            headers=[("ce_type", None)],
        ),
        SimpleNamespace(
            topic=TOPICS.intake,
            partition=0,
            offset=2,
            key=b"k",
            value=b"junk",
            headers=[("ce_type", b"survivor.identified")],
        ),
        SimpleNamespace(
            topic=TOPICS.intake, partition=0, offset=3, key=b"k", value=None, headers=None
        ),
    ]
    for record in odd:
        sources._apply(copy, record)
    assert (copy.personal, copy.notes) == ({}, {})
    assert sources.skipped == 1  # the undecodable survivor.identified, logged by coordinates

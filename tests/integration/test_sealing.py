"""Sealing at the edge on the real broker: the key service, the SDK, and the intake's check.

An agency's SDK gets the survivor's data key from a running intake, seals a
canary in ``personal_data``, and publishes: the canary is nowhere on the
topics, the value opens under the key, and the key rests on
``survivor-keys.v1`` only wrapped. Clear text labelled as sealed is refused
with 400 and never published.
"""

from __future__ import annotations

import base64
import functools
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Message, Producer

from connectors.auth import Role, add_key
from connectors.exceptions import SdkRejectedError
from connectors.intake import IntakeSettings, create_app
from connectors.intake.cli import tls_files
from connectors.sdk import AgencyClient, DisclosureClient, HttpTransport, OfferRef
from infra.settings import BrokerSettings
from schemas.models import SurvivorEvent, SurvivorIdentified
from schemas.personal import PersonalData
from schemas.types import Sealed
from streams.clients import producer_config
from streams.codec import Codec
from streams.data_keys import DataKeys, KeyRecord, UnknownKeyError
from streams.exceptions import CodecError
from streams.keystore import FileKeystore
from streams.provider_sealing import DisclosureContext, ProviderKey
from streams.provisioning import provision
from streams.sealing import DataKey, SealContext, SealingError, open_sealed
from streams.settings import KafkaSettings
from streams.topics import Topics, catalog
from tests.integration.conftest import free_port
from tests.integration.intake import Server, running_intake
from tests.integration.waits import TopicReader, read_to_end, wait_until
from tests.integration.workers import start_worker
from tests.unit.domain_builders import provider, source_for, uid

pytestmark = [pytest.mark.integration]

AGENCY = "agency-sealing"
CANARY = "Maria Popescu, Hotel Astoria room 12, +40 712 345 678"
PERSONAL = {"name": "Maria Popescu", "location": "Hotel Astoria room 12, +40 712 345 678"}


@pytest.fixture(scope="module")
def intake(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"seal-{uuid.uuid4().hex[:10]}"
    )
    provision(settings)
    folder: Path = tmp_path_factory.mktemp("sealing-intake")
    with running_intake(settings, folder) as client:
        key, _ = add_key(client.keys_file, role=Role.AGENCY, principal=AGENCY, agency_id=AGENCY)
        wait_until(
            lambda: client.get(uuid.uuid4(), key).status_code == 404,
            "the intake to load the agency's key",
        )
        home = uid(f"provider-{settings.topic_namespace}")
        provider_key, _ = add_key(
            client.keys_file, role=Role.PROVIDER, principal="sealing-shelter", provider_id=home
        )
        stranger_key, _ = add_key(
            client.keys_file,
            role=Role.PROVIDER,
            principal="sealing-stranger",
            provider_id=uid(f"stranger-{settings.topic_namespace}"),
        )
        wait_until(
            lambda: client.get(uuid.uuid4(), stranger_key).status_code == 403,
            "the intake to load the providers' keys",
        )
        yield {
            "settings": settings,
            "url": client.url,
            "key": key,
            "provider": (home, provider_key),
            "stranger": stranger_key,
            "keys_file": client.keys_file,
            "folder": folder,
        }


def test_personal_data_sealed_by_the_sdk_is_nowhere_in_clear_and_opens_with_its_key(
    intake: dict[str, Any],
    worker: Any,  # started now: the router boots while the tests before the last one run
) -> None:
    settings: KafkaSettings = intake["settings"]
    topics = Topics.of(settings)
    survivor = uuid.uuid4()
    with AgencyClient.over_http(AGENCY, intake["url"], intake["key"]) as agency:
        agency.identify_survivor(
            survivor,
            jurisdiction="NL",
            age_group="ADULT",
            languages=["ro"],
            gender="FEMALE",
            personal_data=PERSONAL,
        )
        assert agency.keys is not None
        key = agency.keys.key(survivor)

    records = read_to_end(settings, topics.intake, topics.survivor_keys)
    for record in records:
        raw = (record.key() or b"") + (record.value() or b"")
        assert b"Astoria" not in raw and b"Popescu" not in raw
        assert key.material not in raw
        assert base64.b64encode(key.material) not in raw
    [published] = [
        r for r in records if r.topic() == topics.intake and r.key() == str(survivor).encode()
    ]
    event = (
        Codec(settings, source="/t")
        .decode(published.value(), published.headers(), topic=topics.intake)
        .event
    )
    assert isinstance(event, SurvivorIdentified) and event.personal_data is not None
    context = SealContext(survivor, "survivor.identified", "personal_data", "platform")
    opened = open_sealed(key, event.personal_data, context)
    assert PersonalData.from_bytes(opened).values() == PERSONAL

    [wrapped] = [
        r
        for r in records
        if r.topic() == topics.survivor_keys and r.key() == str(survivor).encode()
    ]
    kept = KeyRecord.from_bytes(wrapped.value() or b"")
    assert (kept.key_id, kept.agency_id) == (key.key_id, AGENCY)


def _identification(survivor: uuid.UUID, personal_data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/agencies/{AGENCY}",
        "type": "survivor.identified",
        "time": "2026-12-03T09:00:00.000Z",
        "subject": str(survivor),
        "data": {
            "survivor_id": str(survivor),
            "occurred_at": "2026-12-03T09:00:00.000Z",
            "agency_id": AGENCY,
            "jurisdiction": "NL",
            "age_group": "ADULT",
            "languages": ["ro"],
            "gender": "FEMALE",
            "personal_data": personal_data,
        },
    }


def test_clear_text_labelled_as_sealed_is_refused_and_never_published(
    intake: dict[str, Any],
) -> None:
    settings: KafkaSettings = intake["settings"]
    survivor = uuid.uuid4()
    headers = {"Authorization": f"Bearer {intake['key']}"}
    answer = httpx.post(f"{intake['url']}/v1/survivors/{survivor}/data-key", headers=headers)
    assert answer.status_code == 200, answer.text
    key = DataKey(answer.json()["key_id"], survivor, base64.b64decode(answer.json()["key"]))
    event = _identification(
        survivor,
        {
            "ciphertext": base64.b64encode(CANARY.encode()).decode(),
            "key_id": key.key_id,
            "algorithm": "AES_256_GCM",
            "recipient": "platform",
        },
    )
    refused = httpx.post(
        f"{intake['url']}/v1/events",
        json=event,
        headers={**headers, "Content-Type": "application/cloudevents+json"},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"][0]["location"] == "/data/personal_data"
    assert CANARY not in refused.text
    intake_topic = Topics.of(settings).intake
    mine = [r for r in read_to_end(settings, intake_topic) if r.key() == str(survivor).encode()]
    assert mine == []


def test_the_intake_serves_tls_from_the_local_ca_and_no_plain_http(
    intake: dict[str, Any], tmp_path: Path
) -> None:
    """What `safepassage intake serve` does by default: bearer keys cross TLS only."""
    settings = IntakeSettings(  # a second intake of the platform: the same keystore (KEK)
        api_keys_file=Path(intake["keys_file"]),
        state_dir=tmp_path / "state",
        keystore_dir=Path(intake["folder"]) / "state" / "keystore",
        host="127.0.0.1",
    )
    broker = BrokerSettings(state_dir=tmp_path / "kafka")
    certfile, _ = tls_files(settings, broker)
    app = create_app(settings, kafka=intake["settings"])
    port = free_port()
    with Server(app, port, certfile=certfile):
        ca = ssl.create_default_context(cafile=broker.security_dir / "ca.pem")

        def key_answer() -> httpx.Response | None:
            answer = httpx.post(
                f"https://127.0.0.1:{port}/v1/survivors/{uuid.uuid4()}/data-key",
                headers={"Authorization": f"Bearer {intake['key']}"},
                verify=ca,
                timeout=30,
            )
            return None if answer.status_code == 503 else answer  # until its copy caught up

        answer = wait_until(key_answer, "a data key over TLS")
        assert answer.status_code == 200, answer.text
        survivor = uuid.uuid4()
        clear = httpx.post(  # personal data in clear over TLS: sealed by the intake
            f"https://127.0.0.1:{port}/v1/events",
            json=_identification(survivor, PERSONAL),
            headers={
                "Authorization": f"Bearer {intake['key']}",
                "Content-Type": "application/cloudevents+json",
            },
            verify=ca,
            timeout=30,
        )
        assert clear.status_code == 202, clear.text
        [record] = [
            r
            for r in read_to_end(intake["settings"], Topics.of(intake["settings"]).intake)
            if r.key() == str(survivor).encode()
        ]
        assert b"Popescu" not in _raw(record) and b"Astoria" not in _raw(record)
        by_name = httpx.get(f"https://localhost:{port}/healthz", verify=ca, timeout=30)
        assert by_name.status_code in {200, 503}  # the certificate names localhost too
        with pytest.raises(httpx.HTTPError):  # a client that speaks plain HTTP gets nothing
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        with pytest.raises(httpx.ConnectError):  # nor does one that trusts another CA
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=10)


@pytest.fixture(scope="module")
def worker(
    intake: dict[str, Any], bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A router worker on the module's namespace, with one housing provider to offer to."""
    settings: KafkaSettings = intake["settings"]
    topic = Topics.of(settings).providers
    home, _ = intake["provider"]
    record = Codec(settings, source="/safepassage/test").encode(
        provider(home, capacity=10), topic, source=source_for(provider(home))
    )
    producer = Producer(producer_config(settings))
    producer.produce(topic, key=record.key, value=record.value, headers=list(record.headers))
    assert producer.flush(30) == 0
    running = start_worker(
        bootstrap, settings.topic_namespace, tmp_path_factory.mktemp("sealing-router")
    )
    try:
        yield running
    finally:
        running.stop()


def _openable(
    settings: KafkaSettings, keys: DataKeys, records: list[Message]
) -> dict[uuid.UUID, list[bytes]]:
    """Every sealed value in ``records``, opened where its key still exists."""
    codec = Codec(settings, source="/t")
    opened: dict[uuid.UUID, list[bytes]] = {}
    for message in records:
        headers = dict(message.headers() or [])
        source = headers.get("deadletter.source.topic")  # a dead letter: as its topic wrote it
        topic = source.decode() if isinstance(source, bytes) else message.topic() or ""
        try:
            decoded = codec.decode(message.value(), message.headers(), topic=topic)
        except CodecError:  # JSON records (status, audit, ledger, keys) hold no sealed value
            continue
        event = decoded.event
        for name, value in event:
            if not isinstance(value, Sealed) or not isinstance(event, SurvivorEvent):
                continue
            try:
                key = keys.key(event.survivor_id, value.key_id)
                context = SealContext(event.survivor_id, event.event_type, name, "platform")
                opened.setdefault(event.survivor_id, []).append(open_sealed(key, value, context))
            except (UnknownKeyError, SealingError):
                opened.setdefault(event.survivor_id, [])
    return opened


def _raw(message: Message) -> bytes:
    """A record's key, value and header values, as the broker keeps them."""
    raw = (message.key() or b"") + (message.value() or b"")
    for header in message.headers() or []:
        value = header[1] if isinstance(header, tuple) else None
        raw += value if isinstance(value, bytes) else b""
    return raw


def test_canaries_are_nowhere_in_clear_and_after_an_erasure_nothing_of_that_survivor_opens(
    intake: dict[str, Any], worker: Any
) -> None:
    """Two survivors through the intake and a real router; then one is erased.

    A canary in ``personal_data`` and ``notes`` is nowhere in clear: not on
    any topic (keys, values, headers), not in the worker's log or RocksDB
    files, the intake's state (SQLite, keystore) or its answers. After the
    erasure, no sealed value of the erased survivor on any topic (dead
    letters included) opens, the other's still do, and the provider holding
    the erased survivor's offer was sent a cancellation.
    """
    settings: KafkaSettings = intake["settings"]
    topics = Topics.of(settings)
    erased, kept = uuid.uuid4(), uuid.uuid4()
    canary = {s: f"Ioana Marin {s.hex[:8]} +40 799 111 222" for s in (erased, kept)}
    medical = {s: f"canary-medical-{s.hex[:8]}" for s in (erased, kept)}
    referrals = {s: uuid.uuid4() for s in (erased, kept)}
    personal = {s: {"name": canary[s], "medical": medical[s]} for s in (erased, kept)}
    with AgencyClient.over_http(AGENCY, intake["url"], intake["key"]) as agency:
        for survivor in (erased, kept):
            agency.identify_survivor(
                survivor,
                jurisdiction="NL",
                age_group="ADULT",
                languages=["en"],
                gender="FEMALE",
                personal_data=personal[survivor],
            )
            agency.grant_consent(
                survivor,
                consent_id=uuid.uuid4(),
                categories=["HOUSING"],
                cross_border_allowed=False,
            )
            agency.request_referral(
                survivor,
                referral_id=referrals[survivor],
                category="HOUSING",
                urgency="ROUTINE",
                jurisdiction="NL",
                notes=f"{canary[survivor]}, ground floor only",
            )
        headers = {"Authorization": f"Bearer {intake['key']}"}

        def routed(survivor: uuid.UUID) -> httpx.Response | None:
            answer = httpx.get(f"{intake['url']}/v1/survivors/{survivor}/status", headers=headers)
            referrals = answer.json().get("referrals") if answer.status_code == 200 else None
            return answer if referrals else None

        answers = [
            wait_until(functools.partial(routed, s), f"routing; log:\n{worker.log_tail()}").text
            for s in (erased, kept)
        ]
        home, provider_key = intake["provider"]
        shelter = ProviderKey.generate()
        disclosures = {
            s: DisclosureClient(
                HttpTransport(intake["url"], provider_key), home, key=shelter, owns_transport=True
            )
            for s in (erased, kept)
        }
        ref = {s: OfferRef(s, referrals[s], 1) for s in (erased, kept)}
        fetched = {s: disclosures[s].fetch(ref[s], wait_s=60) for s in (erased, kept)}
        for survivor in (erased, kept):  # the housing provider: name and notes, no medical field
            assert fetched[survivor].personal_data == {"name": canary[survivor]}
            assert fetched[survivor].notes == f"{canary[survivor]}, ground floor only"
        stranger = httpx.post(
            f"{intake['url']}/v1/survivors/{kept}/referrals/{referrals[kept]}/disclosure",
            json={"public_key": ProviderKey.generate().public_b64()},
            headers={"Authorization": f"Bearer {intake['stranger']}"},
        )
        assert stranger.status_code == 404  # provider B gets nothing of A's referral
        answers.append(stranger.text)
        sealed_answer = httpx.post(
            f"{intake['url']}/v1/survivors/{kept}/referrals/{referrals[kept]}/disclosure",
            json={"public_key": shelter.public_b64()},
            headers={"Authorization": f"Bearer {provider_key}"},
        )
        answers.append(sealed_answer.text)
        with pytest.raises(SealingError):  # nor can it open what was sealed for A
            ProviderKey.generate().open(
                base64.b64decode(sealed_answer.json()["sealed"]),
                DisclosureContext(kept, referrals[kept], home),
            )
        agency.request_erasure(erased)

    with TopicReader(settings, [topics.survivor_keys, topics.case_status]) as reader:
        seen: list[Message] = []

        def shredded() -> bool:
            seen.extend(reader.to_end())
            mine = [m for m in seen if m.key() == str(erased).encode() and m.value() is None]
            return {m.topic() for m in mine} == {topics.survivor_keys, topics.case_status}

        wait_until(shredded, f"the erased survivor's tombstones; log:\n{worker.log_tail()}")

    records = read_to_end(settings, *(spec.name for spec in catalog(settings)))
    places = {f"answer {n}": text.encode() for n, text in enumerate(answers)}
    places |= {f"{m.topic()}@{m.partition()}:{m.offset()}": _raw(m) for m in records}
    for folder in (Path(worker.log).parent, Path(intake["folder"])):  # logs, RocksDB, SQLite
        places |= {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    planted = [*canary.values(), *medical.values()]
    leaks = [where for where, data in places.items() for c in planted if c.encode() in data]
    assert not leaks, leaks
    assert len(places) > 20  # the search did look at topics, files and answers

    keys = DataKeys(FileKeystore(Path(intake["folder"]) / "state" / "keystore", create=False))
    for record in (r for r in records if r.topic() == topics.survivor_keys):
        keys.apply(uuid.UUID((record.key() or b"").decode()), record.value())
    opened = _openable(settings, keys, records)
    assert opened[erased] == []  # two sealed values on intake, none opens any more
    expected = [
        PersonalData.of(personal[kept]).to_bytes(),
        f"{canary[kept]}, ground floor only".encode(),
    ]
    assert sorted(opened[kept]) == sorted(expected)
    gone = disclosures[erased]
    with pytest.raises(SdkRejectedError) as refused:  # erased: nothing is disclosed any more
        gone.fetch(ref[erased], wait_s=0)
    assert refused.value.status in {404, 410}
    assert disclosures[kept].fetch(ref[kept]).personal_data == {"name": canary[kept]}
    for client in disclosures.values():
        client.close()
    cancelled = [
        m
        for m in records
        if m.topic() == topics.referral("housing")
        and dict(m.headers() or []).get("ce_type") == b"referral.cancelled"
    ]
    assert cancelled, "the provider holding the erased survivor's offer was not told to erase"

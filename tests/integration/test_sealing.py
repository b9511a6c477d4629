"""Sealing at the edge on the real broker: the key service, the SDK, and the intake's check.

An agency's SDK gets the survivor's data key from a running intake, seals a
canary in ``personal_data``, and publishes: the canary is nowhere on the
topics, the value opens under the key, and the key rests on
``survivor-keys.v1`` only wrapped. Clear text labelled as sealed is refused
with 400 and never published.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.auth import Role, add_key
from connectors.intake import IntakeSettings, create_app
from connectors.intake.cli import tls_files
from connectors.sdk import AgencyClient
from infra.settings import BrokerSettings
from schemas.models import SurvivorIdentified
from streams.codec import Codec
from streams.data_keys import KeyRecord
from streams.provisioning import provision
from streams.sealing import DataKey, SealContext, open_sealed
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.integration.conftest import free_port
from tests.integration.intake import Server, running_intake
from tests.integration.waits import read_to_end, wait_until

pytestmark = [pytest.mark.integration]

AGENCY = "agency-sealing"
CANARY = "Maria Popescu, Hotel Astoria room 12, +40 712 345 678"


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
        yield {"settings": settings, "url": client.url, "key": key, "keys_file": client.keys_file}


def test_personal_data_sealed_by_the_sdk_is_nowhere_in_clear_and_opens_with_its_key(
    intake: dict[str, Any],
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
            personal_data=CANARY,
        )
        assert agency.keys is not None
        key = agency.keys.key(survivor)

    records = read_to_end(settings, topics.intake, topics.survivor_keys)
    for record in records:
        raw = (record.key() or b"") + (record.value() or b"")
        assert CANARY.encode() not in raw and b"Popescu" not in raw
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
    assert open_sealed(key, event.personal_data, context) == CANARY.encode()

    [wrapped] = [
        r
        for r in records
        if r.topic() == topics.survivor_keys and r.key() == str(survivor).encode()
    ]
    kept = KeyRecord.from_bytes(wrapped.value() or b"")
    assert (kept.key_id, kept.agency_id) == (key.key_id, AGENCY)


def test_clear_text_labelled_as_sealed_is_refused_and_never_published(
    intake: dict[str, Any],
) -> None:
    settings: KafkaSettings = intake["settings"]
    survivor = uuid.uuid4()
    headers = {"Authorization": f"Bearer {intake['key']}"}
    answer = httpx.post(f"{intake['url']}/v1/survivors/{survivor}/data-key", headers=headers)
    assert answer.status_code == 200, answer.text
    key = DataKey(answer.json()["key_id"], survivor, base64.b64decode(answer.json()["key"]))
    event = {
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
            "personal_data": {
                "ciphertext": base64.b64encode(CANARY.encode()).decode(),
                "key_id": key.key_id,
                "algorithm": "AES_256_GCM",
                "recipient": "platform",
            },
        },
    }
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
    settings = IntakeSettings(
        api_keys_file=Path(intake["keys_file"]), state_dir=tmp_path / "state", host="127.0.0.1"
    )
    broker = BrokerSettings(state_dir=tmp_path / "kafka")
    certfile, _ = tls_files(settings, broker)
    app = create_app(settings, kafka=intake["settings"])
    port = free_port()
    with Server(app, port, certfile=certfile):
        ca = str(broker.security_dir / "ca.pem")
        answer = httpx.post(
            f"https://127.0.0.1:{port}/v1/survivors/{uuid.uuid4()}/data-key",
            headers={"Authorization": f"Bearer {intake['key']}"},
            verify=ca,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        by_name = httpx.get(f"https://localhost:{port}/healthz", verify=ca, timeout=30)
        assert by_name.status_code in {200, 503}  # the certificate names localhost too
        with pytest.raises(httpx.HTTPError):  # a client that speaks plain HTTP gets nothing
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        with pytest.raises(httpx.ConnectError):  # nor does one that trusts another CA
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=10)

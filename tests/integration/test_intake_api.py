"""The intake API served by uvicorn against a real Kafka broker.

Events posted over HTTP are read back from the topics: they carry the
caller's CloudEvents id and source, a 202 names an offset that is really
there, a retry is on the topic once. Status reads come from the intake's
copy of ``case-status.v1``: 503 until it has caught up (here: until the
topic exists), then the latest record per survivor, each read audited.
With the test's own broker stopped the API answers 503, never 202, and
takes events again once the broker is back; every event that was ever
answered 202 is on the topic afterwards.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from connectors.auth import Role, add_key
from connectors.intake import (
    BATCH_MEDIA_TYPE,
    STRUCTURED_MEDIA_TYPE,
    IntakeSettings,
    create_app,
)
from infra import Deployment, single_node
from processors.status import status_view
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import Topics, catalog
from tests.integration.conftest import SESSION_PORT, dedicated_settings, free_port
from tests.integration.intake import Server
from tests.integration.waits import read_to_end, wait_until
from tests.unit.test_intake_api import AGENCY_ID, PROVIDER_ID, cloudevent, provider_answer
from tests.unit.test_intake_status import case_record

pytestmark = [pytest.mark.integration]

OWN_BROKER_PORT = int(os.environ.get("SAFEPASSAGE_TEST_KAFKA_PORT", str(SESSION_PORT))) + 50
"""The dedicated broker of the outage test (its controller takes the next port).

Next to the session broker's port, so suites run side by side on other
session ports never share it.
"""


# ---------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Intake:
    """A running intake API: its URL, keys and the Kafka namespace it writes to."""

    url: str
    keys: dict[str, str]
    settings: KafkaSettings

    @property
    def intake_topic(self) -> str:
        return f"{self.settings.topic_namespace}.intake.v1"

    @property
    def responses_topic(self) -> str:
        return f"{self.settings.topic_namespace}.provider-responses.v1"

    def post(
        self,
        key: str,
        document: Any,
        content_type: str = STRUCTURED_MEDIA_TYPE,
        timeout: float = 30,
    ) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/events",
            json=document,
            headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
            timeout=timeout,
        )


def provision_intake_topics(settings: KafkaSettings) -> None:
    wanted = {f"{settings.topic_namespace}.{s}" for s in ("intake.v1", "provider-responses.v1")}
    provision(settings, [spec for spec in catalog(settings) if spec.name in wanted])


@dataclass
class Record:
    ce_id: str
    ce_source: str
    ce_type: str
    partition: int
    offset: int


def read_topic(settings: KafkaSettings, topic: str) -> list[Record]:
    """Every record of ``topic`` from the beginning, decoded (a 202 comes after the ack)."""
    codec = Codec(settings, source="/tests/reader")
    records: list[Record] = []
    for message in read_to_end(settings, topic):
        decoded = codec.decode(message.value(), message.headers(), topic=topic, key=message.key())
        envelope = decoded.envelope
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        records.append(Record(envelope.id, envelope.source, envelope.type, partition, offset))
    return records


def make_keys(path: Path) -> dict[str, str]:
    return {
        "agency": add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY_ID)[0],
        "provider": add_key(
            path, role=Role.PROVIDER, principal="shelter-1", provider_id=PROVIDER_ID
        )[0],
    }


@pytest.fixture
def intake(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[Intake]:
    """The intake API on the session broker, with topics of the test's own namespace."""
    provision_intake_topics(kafka_settings)
    keys = make_keys(tmp_path / "api-keys.yaml")
    port = free_port()
    app = create_app(
        IntakeSettings(api_keys_file=tmp_path / "api-keys.yaml", state_dir=tmp_path / "state"),
        kafka=kafka_settings,
    )
    with Server(app, port):
        yield Intake(f"http://127.0.0.1:{port}", keys, kafka_settings)


# ------------------------------------------------------------------------ tests


def test_structured_and_batch_events_land_on_intake_under_the_callers_ids(intake: Intake) -> None:
    survivor = uuid.uuid4()
    cms = {i: str(uuid.uuid5(uuid.NAMESPACE_URL, f"cms-{i}")) for i in range(1, 5)}
    single = cloudevent(
        "survivor.identified",
        survivor_id=survivor,
        event_id=cms[1],
        source=f"/agencies/{AGENCY_ID}",
    )
    batch = [
        cloudevent(t, survivor_id=survivor, event_id=cms[i], source=f"/agencies/{AGENCY_ID}")
        for i, t in enumerate(["consent.granted", "risk.assessed", "referral.requested"], 2)
    ]

    first = intake.post(intake.keys["agency"], single)
    second = intake.post(intake.keys["agency"], batch, BATCH_MEDIA_TYPE)

    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    receipts = [first.json(), *second.json()["accepted"]]
    records = {r.ce_id: r for r in read_topic(intake.settings, intake.intake_topic)}
    assert set(records) == set(cms.values())
    for receipt in receipts:
        record = records[receipt["id"]]
        # The receipt names the broker's own coordinates: the 202 came after the ack.
        assert (record.partition, record.offset) == (receipt["partition"], receipt["offset"])
        assert record.ce_source == f"/agencies/{AGENCY_ID}"
        assert record.ce_type == receipt["type"]
    # One survivor, one partition, in the order posted.
    assert [records[cms[i]].offset for i in range(1, 5)] == sorted(
        records[cms[i]].offset for i in range(1, 5)
    )


def test_a_retried_event_is_on_the_topic_once(intake: Intake) -> None:
    event = cloudevent(event_id="ec1cf283-82b8-59a7-a167-757c5ae47213")

    answers = [intake.post(intake.keys["agency"], event) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 202]
    assert answers[1].content == answers[0].content == answers[2].content
    ids = Counter(r.ce_id for r in read_topic(intake.settings, intake.intake_topic))
    assert ids == {"ec1cf283-82b8-59a7-a167-757c5ae47213": 1}


def test_a_provider_answer_lands_on_provider_responses(intake: Intake) -> None:
    answer = provider_answer("referral.declined", event_id="cad0b60d-9563-5733-bae6-1e442d078a6b")

    response = intake.post(intake.keys["provider"], answer)

    assert response.status_code == 202, response.text
    assert response.json()["topic"] == intake.responses_topic
    [record] = read_topic(intake.settings, intake.responses_topic)
    assert (record.ce_id, record.ce_source, record.ce_type) == (
        "cad0b60d-9563-5733-bae6-1e442d078a6b",
        f"/providers/{PROVIDER_ID}",
        "referral.declined",
    )
    assert read_topic(intake.settings, intake.intake_topic) == []


def test_healthz_reports_the_broker(intake: Intake) -> None:
    response = httpx.get(f"{intake.url}/healthz", timeout=10)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "broker": "reachable"}


def test_status_is_read_from_the_compacted_topic_once_caught_up_and_every_read_audited(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    provision_intake_topics(kafka_settings)  # no case-status.v1 yet: the store cannot catch up
    keys = make_keys(tmp_path / "api-keys.yaml")
    keys["operator"] = add_key(tmp_path / "api-keys.yaml", role=Role.OPERATOR, principal="ops")[0]
    app = create_app(
        IntakeSettings(api_keys_file=tmp_path / "api-keys.yaml", state_dir=tmp_path / "state"),
        kafka=kafka_settings,
    )
    topics = Topics.of(kafka_settings)
    kept, erased = case_record(), uuid.uuid4()
    port = free_port()
    with Server(app, port):
        url = f"http://127.0.0.1:{port}"

        def read(survivor: object) -> httpx.Response:
            auth = {"Authorization": f"Bearer {keys['operator']}"}
            return httpx.get(f"{url}/v1/survivors/{survivor}/status", headers=auth, timeout=30)

        waiting = read(kept.survivor_id)
        assert waiting.status_code == 503, waiting.text
        assert waiting.headers["Retry-After"] == "2"
        assert waiting.json()["type"] == "urn:safepassage:problem:status-unavailable"

        # The router's records: an older one, the latest, and a survivor erased since.
        provision(kafka_settings)
        producer = Producer(producer_config(kafka_settings))
        older = kept.model_copy(update={"escalation_level": 0, "referrals": ()})
        for survivor, value in (
            (kept.survivor_id, older.to_dict()),
            (erased, older.model_copy(update={"survivor_id": erased}).to_dict()),
            (kept.survivor_id, kept.to_dict()),
            (erased, None),
        ):
            payload = None if value is None else json.dumps(value).encode()
            producer.produce(topics.case_status, key=str(survivor).encode(), value=payload)
        assert producer.flush(30) == 0

        def served() -> httpx.Response | None:
            answer = read(kept.survivor_id)
            return answer if answer.status_code == 200 else None

        answer = wait_until(served, "the store to catch up once the topic exists")
        assert answer.json() == status_view(kept, datetime.now(UTC)).to_dict()
        gone = read(erased)
        assert gone.status_code == 404
        assert gone.json()["type"] == "urn:safepassage:problem:unknown-survivor"

    audited = [json.loads(m.value() or b"") for m in read_to_end(kafka_settings, topics.audit)]
    # The audit is keyed by survivor: each survivor's reads are in order on its partition,
    # but two survivors' partitions are read one after the other, in no order of time.
    statuses: dict[str, list[int]] = {}
    for record in audited:
        statuses.setdefault(record["survivor_id"], []).append(record["status"])
    assert statuses[str(kept.survivor_id)][-1] == 200  # after the 503s while catching up
    assert statuses[str(erased)] == [404]
    assert {(a["kind"], a["principal"], a["role"]) for a in audited} == {
        ("status.read", "ops", "operator")
    }


# ------------------------------------------------------------- broker outage


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A broker of this module's own, which the outage test stops and starts again."""
    deployment = single_node(
        dedicated_settings(
            tmp_path_factory.mktemp("intake-kafka"),
            port=OWN_BROKER_PORT,
            controller_port=OWN_BROKER_PORT + 1,
        )
    )
    deployment.start()
    yield deployment
    deployment.stop()


class Traffic(threading.Thread):
    """Posts one new event after another and remembers every answer."""

    def __init__(self, intake: Intake) -> None:
        super().__init__(name="intake-traffic", daemon=True)
        self.intake = intake
        self.answers: list[tuple[str, int]] = []
        self.latency: dict[int, list[float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"traffic-{len(self.answers)}"))
            started = time.monotonic()
            try:
                status = self.intake.post(
                    self.intake.keys["agency"], cloudevent(event_id=event_id), timeout=30
                ).status_code
            except httpx.HTTPError:
                status = 0
            self.answers.append((event_id, status))
            self.latency.setdefault(status, []).append(time.monotonic() - started)
            time.sleep(0.05)

    def ids_with(self, status: int) -> set[str]:
        return {event_id for event_id, code in self.answers if code == status}

    def answered(self, status: int, *, since: int = 0) -> bool:
        """Whether a request of this traffic, from answer ``since`` on, got ``status``."""
        return any(code == status for _, code in self.answers[since:])


def wait_for_status(intake: Intake, status: int, timeout_s: float) -> list[int]:
    """Post new events until one gets ``status``; every status seen on the way."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = intake.post(
            intake.keys["agency"], cloudevent(event_id=str(uuid.uuid4()))
        ).status_code
        seen.append(code)
        if code == status:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"no {status} within {timeout_s} s; saw {seen}")


def test_with_the_broker_down_the_answer_is_503_and_nothing_accepted_is_lost(
    own_broker: Deployment, tmp_path: Path
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=own_broker.bootstrap, topic_namespace=f"outage-{uuid.uuid4().hex[:8]}"
    )
    provision_intake_topics(settings)
    keys = make_keys(tmp_path / "api-keys.yaml")
    port = free_port()
    app = create_app(
        IntakeSettings(
            api_keys_file=tmp_path / "api-keys.yaml",
            state_dir=tmp_path / "state",
            publish_timeout_s=5,
        ),
        kafka=settings,
    )
    with Server(app, port):
        intake = Intake(f"http://127.0.0.1:{port}", keys, settings)
        before = cloudevent(event_id="1735691f-6ccf-5f89-9045-c3d0ffe29b50")
        assert intake.post(keys["agency"], before).status_code == 202
        traffic = Traffic(intake)
        traffic.start()
        wait_until(lambda: traffic.answered(202), "the traffic's first 202")

        own_broker.stop()
        stopped = time.monotonic()
        during = wait_for_status(intake, 503, timeout_s=60)
        first_503_s = time.monotonic() - stopped
        unsent = cloudevent(event_id="4a9defb0-a703-5711-bc3d-bce8d1a4447f")
        refused = intake.post(keys["agency"], unsent)
        health = httpx.get(f"{intake.url}/healthz", timeout=30)
        retry_of_acked = intake.post(keys["agency"], before)
        # The outage lasts until the traffic itself has been refused: a request
        # in flight at the stop waits up to the publish timeout for its answer.
        wait_until(lambda: traffic.answered(503), "a 503 for the traffic during the outage")

        own_broker.start()
        restarted = time.monotonic()
        resumed_from = len(traffic.answers)
        after = wait_for_status(intake, 202, timeout_s=90)
        first_202_s = time.monotonic() - restarted
        retried = intake.post(keys["agency"], unsent)
        wait_until(
            lambda: traffic.answered(202, since=resumed_from), "a 202 for the traffic after it"
        )
        traffic.stop.set()
        traffic.join(timeout=60)

    assert during[-1] == 503
    assert set(during) <= {202, 503}  # 202 only while the stop had not yet taken effect
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"]
    assert refused.headers["content-type"] == "application/problem+json"
    assert health.status_code == 503
    # An event acknowledged before the outage is answered from the store, outage or not.
    assert retry_of_acked.status_code == 202
    assert set(after) <= {202, 503}
    assert retried.status_code == 202, retried.text
    statuses = Counter(code for _, code in traffic.answers)
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[503] > 0
    assert statuses[202] > 0

    on_topic = Counter(r.ce_id for r in read_topic(settings, intake.intake_topic))
    accepted = traffic.ids_with(202) | {
        "1735691f-6ccf-5f89-9045-c3d0ffe29b50",
        "4a9defb0-a703-5711-bc3d-bce8d1a4447f",
    }
    missing = accepted - set(on_topic)
    assert not missing, f"answered 202 but not on the topic: {sorted(missing)}"
    assert on_topic["1735691f-6ccf-5f89-9045-c3d0ffe29b50"] == 1
    slowest = {code: round(max(times), 2) for code, times in traffic.latency.items()}
    print(  # the measured outage behaviour, for the record
        f"\noutage: traffic {dict(statuses)} (slowest answer s {slowest}); first 503 "
        f"{first_503_s:.1f} s after the stop, first 202 {first_202_s:.1f} s after the restart; "
        f"{len(on_topic)} ids on the topic, none missing"
    )

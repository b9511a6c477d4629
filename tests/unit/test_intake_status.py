"""The intake's status read, without a broker: the store's rules and the HTTP answers.

:class:`~connectors.intake.status.StatusStore` is the real one, fed by
:func:`replay_of` instead of a Kafka consumer (records in, "caught up",
then it follows nothing); the publisher is
:class:`~tests.doubles.RecordingPublisher`, so every audit record is on
hand. tests/integration/test_intake_api.py reads ``case-status.v1`` from
a real broker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY, generate_latest

from connectors.auth import Role, add_key
from connectors.intake import IntakeSettings, create_app
from connectors.intake.status import StatusStore
from processors.status import ShareView, StatusRecord, StatusView, status_record, status_view
from streams.replay import MissingTopicsError
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.doubles import RecordingPublisher, key_directory
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

KAFKA = KafkaSettings(topic_namespace="safepassage")
TOPICS = Topics.of(KAFKA)
PROBLEM = "application/problem+json"
S, R, P = uid("intake-status-survivor"), uid("intake-status-referral"), uid("intake-status-p")


# --------------------------------------------------------------------------- doubles


@dataclass(frozen=True)
class Record:
    """A record of ``case-status.v1`` as the replay reader hands it over."""

    key: bytes | None
    value: bytes | None
    topic: str = TOPICS.case_status
    partition: int = 0
    offset: int = 0


def record_of(status: StatusRecord) -> Record:
    return Record(str(status.survivor_id).encode(), json.dumps(status.to_dict()).encode())


def tombstone(survivor: uuid.UUID) -> Record:
    return Record(str(survivor).encode(), None)


def replay_of(
    records: Sequence[Record] = (), *, failures: int = 0, caught_up: bool = True
) -> Callable[..., Any]:
    """Stands in for :class:`streams.replay.ReplayReader` (same constructor).

    The first ``failures`` runs raise as a missing topic would; then the
    records are applied, the reader says it caught up (unless told not to),
    and it follows nothing until cancelled.
    """
    runs = {"count": 0}

    class Replay:
        def __init__(
            self,
            settings: KafkaSettings,
            topics: Sequence[str],
            *,
            name: str,
            apply: Callable[[Any], None],
            on_caught_up: Callable[[], None],
        ) -> None:
            assert tuple(topics) == (TOPICS.case_status,) and settings is KAFKA
            self.apply, self.on_caught_up = apply, on_caught_up

        async def run(self) -> None:
            runs["count"] += 1
            if runs["count"] <= failures:
                raise MissingTopicsError("safepassage.case-status.v1 does not exist")
            for item in records:
                self.apply(item)
            if caught_up:
                self.on_caught_up()
            await asyncio.Event().wait()

    return Replay


class FixedStatus:
    """A :class:`~connectors.intake.status.StatusReader` caught up from the start."""

    def __init__(self, *records: StatusRecord) -> None:
        self.records = {r.survivor_id: r for r in records}
        self.ready = True

    def get(self, survivor: uuid.UUID) -> StatusRecord | None:
        return self.records.get(survivor)

    async def start(self) -> None:
        """Nothing to read."""

    async def close(self) -> None:
        """Nothing to stop."""


def case_record(*, expires_at: datetime | None = None) -> StatusRecord:
    """An identified survivor with an offered referral, from the pure core."""
    h = Harness()
    h.all(provider(P), identified(S), consent(S, expires_at=expires_at), request(S, R))
    return status_record(h.cases[S])


async def served(store: StatusStore) -> StatusStore:
    await store.start()
    for _ in range(100):
        if store.ready:
            break
        await asyncio.sleep(0)
    return store


# --------------------------------------------------------------------------- the store


async def test_the_last_record_per_survivor_wins_and_a_tombstone_removes_it() -> None:
    first, later = case_record(), case_record(expires_at=T0 + timedelta(days=9))
    gone = uid("erased-survivor")
    gone_record = first.model_copy(update={"survivor_id": gone})
    store = StatusStore(
        KAFKA,
        reader=replay_of(
            [record_of(first), record_of(gone_record), record_of(later), tombstone(gone)]
        ),
    )

    await served(store)

    assert store.ready and len(store) == 1
    assert store.get(S) == later and store.get(gone) is None
    await store.close()


async def test_until_caught_up_nothing_is_served() -> None:
    store = StatusStore(KAFKA, reader=replay_of([record_of(case_record())], caught_up=False))

    await served(store)

    assert not store.ready and store.get(S) is None  # half a topic could say "unknown"
    await store.close()


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (Record(str(S).encode(), b"{not json"), "value"),
        (Record(str(S).encode(), b'{"consent": {}}'), "value"),  # an older record's shape
        (Record(b"not-a-uuid", b"{}"), "key"),
        (Record(None, b"{}"), "key"),
        (Record(str(uid("someone-else")).encode(), b"{}"), "value"),
    ],
)
async def test_an_unreadable_record_is_skipped_and_its_older_status_not_shown(
    bad: Record, what: str
) -> None:
    store = StatusStore(KAFKA, reader=replay_of([record_of(case_record()), bad]))

    await served(store)

    assert store.skipped == 1
    if bad.key == str(S).encode():
        assert store.get(S) is None  # an older status must not pass for the current one
    await store.close()


async def test_a_record_under_another_survivors_key_is_skipped() -> None:
    other = uid("intake-status-other")
    misfiled = Record(str(other).encode(), record_of(case_record()).value)
    store = StatusStore(KAFKA, reader=replay_of([misfiled]))

    await served(store)

    assert store.get(other) is None and store.get(S) is None and store.skipped == 1
    await store.close()


async def test_a_failed_start_is_tried_again_and_then_serves() -> None:
    store = StatusStore(
        KAFKA, reader=replay_of([record_of(case_record())], failures=2), retry_s=lambda _: 0.0
    )

    await served(store)

    assert store.ready and store.get(S) == case_record()
    await store.close()
    await store.close()  # twice is harmless


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    return api_keys(tmp_path / "api-keys.yaml")


def api_keys(path: Path) -> dict[str, str]:
    """An operator, two agencies (AGENCY and agency:be) and a provider, by role name."""
    return {
        "operator": add_key(path, role=Role.OPERATOR, principal="duty-desk")[0],
        "agency": add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY)[0],
        "other-agency": add_key(path, role=Role.AGENCY, principal="be-ngo", agency_id="agency:be")[
            0
        ],
        "provider": add_key(path, role=Role.PROVIDER, principal="shelter", provider_id=P)[0],
    }


@dataclass
class Intake:
    http: httpx.AsyncClient
    publisher: RecordingPublisher
    store: StatusStore
    keys: dict[str, str]

    async def read(self, survivor: object, who: str | None = "operator") -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return await self.http.get(f"/v1/survivors/{survivor}/status", headers=auth)

    def audited(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.publisher.records if r.topic == TOPICS.audit]


def make_app(tmp_path: Path, publisher: RecordingPublisher, store: StatusStore) -> FastAPI:
    settings = IntakeSettings(
        api_keys_file=tmp_path / "api-keys.yaml", state_dir=tmp_path / "state", publish_timeout_s=1
    )
    return create_app(
        settings,
        kafka=KAFKA,
        publisher=publisher,
        status=store,
        directory=key_directory(publisher),
    )


@pytest.fixture
def records() -> list[Record]:
    return [record_of(case_record(expires_at=datetime(2999, 1, 1, tzinfo=UTC)))]


@pytest.fixture
def caught_up() -> bool:
    return True


@pytest.fixture
async def intake(
    tmp_path: Path, keys: dict[str, str], records: list[Record], caught_up: bool
) -> AsyncIterator[Intake]:
    publisher = RecordingPublisher()
    store = StatusStore(KAFKA, reader=replay_of(records, caught_up=caught_up))
    app = make_app(tmp_path, publisher, store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http,
    ):
        if caught_up:
            await served(store)
        yield Intake(http, publisher, store, keys)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"]) == (f"urn:safepassage:problem:{slug}", status)
    return body


async def test_an_operator_reads_the_status_as_of_now_and_the_read_is_audited(
    intake: Intake,
) -> None:
    before = datetime.now(UTC)

    response = await intake.read(S)

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == set(StatusView.model_fields)  # the answer shape operators know
    stored = intake.store.get(S)
    assert stored is not None
    assert body == status_view(stored, datetime.now(UTC)).to_dict()
    assert body["referrals"][0]["status"] == "offered" and body["consent"]["categories"]
    [audit] = intake.audited()
    assert audit.pop("at") >= before.isoformat().replace("+00:00", "")[:19]
    assert audit == {
        "kind": "status.read",
        "survivor_id": str(S),
        "principal": "duty-desk",
        "role": "operator",
        "key_id": intake.keys["operator"][:20],
        "status": 200,
        "refusal": None,
    }
    [record] = [r for r in intake.publisher.records if r.topic == TOPICS.audit]
    assert record.key == str(S).encode()


async def test_the_intake_counts_referrals_and_requests_without_an_id_in_a_label(
    intake: Intake,
) -> None:
    """/metrics of a serving intake: the offered referral, the status read by route template."""
    template = {"route": "/v1/survivors/{survivor_id}/status", "method": "GET", "status": "200"}
    reads = REGISTRY.get_sample_value("safepassage_http_requests_total", template) or 0.0

    assert (await intake.read(S)).status_code == 200

    assert REGISTRY.get_sample_value("safepassage_http_requests_total", template) == reads + 1
    offered = {"status": "offered", "category": "HOUSING"}
    assert REGISTRY.get_sample_value("safepassage_referrals", offered) == 1.0
    exported = generate_latest(REGISTRY).decode()
    assert str(S) not in exported and str(R) not in exported


@pytest.mark.parametrize(
    "records", [[record_of(case_record(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))]]
)
async def test_a_consent_that_expired_since_the_last_event_no_longer_shows(intake: Intake) -> None:
    response = await intake.read(S)

    consent = response.json()["consent"]
    assert (consent["categories"], consent["next_expiry"]) == ([], None)


async def test_an_unknown_survivor_is_404_and_audited_too(intake: Intake) -> None:
    unknown = uuid.uuid4()

    response = await intake.read(unknown)

    body = assert_problem(response, 404, "unknown-survivor")
    assert body == {
        "type": "urn:safepassage:problem:unknown-survivor",
        "title": "Unknown survivor",
        "status": 404,
        "detail": "no case for this survivor id",
    }
    assert [(a["survivor_id"], a["status"]) for a in intake.audited()] == [(str(unknown), 404)]


@pytest.mark.parametrize("caught_up", [False])
async def test_until_the_store_caught_up_the_answer_is_503_with_retry_after(
    intake: Intake,
) -> None:
    response = await intake.read(S)

    assert_problem(response, 503, "status-unavailable")
    assert response.headers["Retry-After"] == "2"
    assert intake.audited() == []  # nothing was answered


async def test_a_provider_never_reads_status_the_role_comes_before_the_id_and_it_is_audited(
    intake: Intake,
) -> None:
    for survivor in ("robert-smith", S):
        body = assert_problem(await intake.read(survivor, "provider"), 403, "forbidden")
        assert "referrals" not in body
    assert [(a["survivor_id"], a["status"], a["refusal"]) for a in intake.audited()] == [
        (None, 403, "role"),  # the path's text is never recorded
        (str(S), 403, "role"),
    ]
    assert "robert-smith" not in str(intake.publisher.records)


async def test_an_agency_reads_its_own_survivors_and_nobody_elses(intake: Intake) -> None:
    own = await intake.read(S, "agency")
    assert own.status_code == 200 and own.json()["survivor_id"] == str(S)

    others = await intake.read(S, "other-agency")
    unknown = await intake.read(uuid.uuid4(), "other-agency")
    # Another agency's survivor is answered exactly like an unknown one: nothing leaks.
    assert (others.status_code, others.json()) == (unknown.status_code, unknown.json())
    assert_problem(others, 404, "unknown-survivor")
    audits = [(a["principal"], a["status"], a["refusal"]) for a in intake.audited()]
    assert audits == [
        ("nl-police", 200, None),
        ("be-ngo", 404, "not-the-callers-survivor"),
        ("be-ngo", 404, None),
    ]


def _shared_until(until: datetime | None) -> list[Record]:
    share = ShareView(agency_id="agency:be", until=until)
    return [record_of(case_record().model_copy(update={"shares": (share,)}))]


@pytest.mark.parametrize("records", [_shared_until(None)])
async def test_an_agency_the_case_is_shared_with_reads_it_too(intake: Intake) -> None:
    shared = await intake.read(S, "other-agency")
    assert shared.status_code == 200, shared.text
    assert shared.json()["shared_with"] == ["agency:be"]
    assert (await intake.read(S, "agency")).status_code == 200  # the owner, as ever
    assert [(a["principal"], a["status"]) for a in intake.audited()] == [
        ("be-ngo", 200),
        ("nl-police", 200),
    ]


@pytest.mark.parametrize("records", [_shared_until(datetime(2000, 1, 1, tzinfo=UTC))])
async def test_a_sharing_whose_consent_expired_reads_like_an_unknown_survivor(
    intake: Intake,
) -> None:
    assert_problem(await intake.read(S, "other-agency"), 404, "unknown-survivor")
    assert intake.audited()[-1]["refusal"] == "not-the-callers-survivor"
    assert (await intake.read(S, "agency")).json()["shared_with"] == []


@pytest.mark.parametrize(
    "records",
    [[record_of(case_record().model_copy(update={"agency_id": None}))]],
)
async def test_a_record_without_an_owner_is_no_agencys(intake: Intake) -> None:
    assert_problem(await intake.read(S, "agency"), 404, "unknown-survivor")
    assert (await intake.read(S)).status_code == 200  # operators still read it


async def test_no_key_is_401_and_a_bad_id_is_400_audited_without_the_text(intake: Intake) -> None:
    assert_problem(await intake.read(S, None), 401, "unauthenticated")
    body = assert_problem(await intake.read("robert-smith"), 400, "invalid-request")
    assert body["errors"] == [{"location": "path:survivor_id", "message": "must be a UUID"}]
    assert "robert-smith" not in json.dumps(body)
    [audit] = intake.audited()
    assert (audit["survivor_id"], audit["status"], audit["refusal"]) == (None, 400, "not-a-uuid")
    assert intake.publisher.records[0].key == b"duty-desk"  # keyed by the caller
    assert "robert-smith" not in str(intake.publisher.records)


@pytest.mark.parametrize("caught_up", [True, False])
async def test_no_error_answer_quotes_the_survivor_id_of_the_path(intake: Intake) -> None:
    """Problem documents carry no ``instance``: the request path holds the survivor id."""
    unknown = uuid.uuid4()
    answers = [
        await intake.read(unknown),  # 404, or 503 while the store catches up
        await intake.read(unknown, None),  # 401
        await intake.read(unknown, "provider"),  # 403
        await intake.http.post(f"/v1/survivors/{unknown}/status"),  # 405
        await intake.http.get(f"/v1/survivors/{unknown}/history"),  # 404, no such route
    ]
    intake.publisher.fail = lambda record: record.topic == TOPICS.audit
    answers.append(await intake.read(S))  # 503: the read cannot be audited (or not caught up)

    assert all(answer.status_code >= 400 for answer in answers)
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM, answer.text
        assert "instance" not in answer.json()
        assert str(unknown) not in answer.text and str(S) not in answer.text


async def test_a_read_that_cannot_be_audited_is_not_answered(intake: Intake) -> None:
    intake.publisher.fail = lambda record: record.topic == TOPICS.audit

    response = await intake.read(S)

    body = assert_problem(response, 503, "broker-unavailable")
    assert "referrals" not in body and response.headers["Retry-After"]

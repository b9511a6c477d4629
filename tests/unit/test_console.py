"""The operator console without a broker: sessions, counts, the feed's rules and the routes.

Kafka copies are fed records directly (as the replay reader hands them
over); the intake is an httpx mock transport that records what the console
sent it. tests/integration/test_console_browser.py drives the whole console
in Chromium against a real broker and a real intake.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from connectors.auth import ApiKeyStore, Principal, Role, add_key
from connectors.console.app import CSP, create_app
from connectors.console.directory import DirectoryCopy, LiveDirectory
from connectors.console.escalation_feed import EscalationFeed, EscalationTally
from connectors.console.funnel import Stage, StatusBoard, funnel_counts, stage_reached
from connectors.console.intake_client import IntakeClient
from connectors.console.sessions import COOKIE, SessionStore
from connectors.console.settings import ConsoleSettings
from connectors.escalations import EscalationFilter
from processors.directory import CapacityAction, CapacityChange
from processors.lifecycle import ReferralStatus
from processors.status import ReferralView, StatusRecord
from schemas.models import ReferralEscalated
from schemas.types import EscalationReason, RiskLevel, ServiceCategory, Urgency
from streams.codec import Codec
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.unit.domain_builders import T0 as BUILT_AT
from tests.unit.domain_builders import capacity, provider, uid

KAFKA = KafkaSettings(topic_namespace="safepassage")
TOPICS = Topics.of(KAFKA)
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
OPERATOR = Principal(name="ops-desk", role=Role.OPERATOR, key_id="sp_operator_AbCdEfGh")


@dataclass(frozen=True)
class Record:
    """A record as the replay reader hands it over."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int = 0
    offset: int = 0


# --------------------------------------------------------------------------- sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_id_is_random_and_the_key_stays_on_the_server() -> None:
    store = SessionStore(idle_s=60, max_s=600, max_sessions=10)
    first, session = store.create(OPERATOR, "sp_operator_secret")
    second, _ = store.create(OPERATOR, "sp_operator_secret")

    assert first != second and len(first) >= 43
    assert "secret" not in first and "sp_operator" not in first
    assert store.get(first) is session and session.key == "sp_operator_secret"
    assert "sp_operator_secret" not in repr(session)
    assert store.get("forged") is None and store.get(None) is None and store.get("") is None


def test_a_session_ends_when_idle_at_its_maximum_age_and_on_sign_out() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=150, max_sessions=10, clock=clock)
    idle, _ = store.create(OPERATOR, "k")
    used, _ = store.create(OPERATOR, "k")
    ended, _ = store.create(OPERATOR, "k")
    store.end(ended)
    assert store.get(ended) is None

    for _ in range(2):
        clock.now += 50
        assert store.get(used) is not None  # use restarts the idle clock
    assert store.alive(used) and not store.alive(idle)
    assert store.get(idle) is None
    clock.now += 50  # 150 s after sign-in: used every 50 s, it ends all the same
    assert not store.alive(used) and store.get(used) is None


def test_an_open_stream_does_not_keep_a_session_alive() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=600, max_sessions=10, clock=clock)
    session_id, session = store.create(OPERATOR, "k")
    clock.now += 30
    assert store.alive(session_id)
    assert store.remaining_s(session) == 30
    clock.now += 30
    assert not store.alive(session_id) and not store.alive(None)


def test_sessions_are_bounded_the_least_recently_used_go_first() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=600, max_sessions=2, clock=clock)
    oldest, _ = store.create(OPERATOR, "k")
    middle, _ = store.create(OPERATOR, "k")
    store.get(oldest)
    newest, _ = store.create(OPERATOR, "k")
    assert len(store) == 2
    assert store.get(middle) is None and store.get(oldest) and store.get(newest)


# --------------------------------------------------------------------------- settings


def test_plaintext_is_refused_off_loopback_and_sessions_must_be_consistent() -> None:
    assert ConsoleSettings(plaintext=True, host="127.0.0.1").plaintext
    with pytest.raises(ValidationError, match="loopback"):
        ConsoleSettings(plaintext=True, host="0.0.0.0")  # noqa: S104 - the refused case
    with pytest.raises(ValidationError, match="session_idle_s"):
        ConsoleSettings(session_idle_s=7200, session_max_s=3600)
    with pytest.raises(ValidationError, match="tls_certfile"):
        ConsoleSettings(tls_keyfile=Path("key.pem"))
    assert ConsoleSettings(intake_url="https://intake.example:8080/").intake_base == (
        "https://intake.example:8080"
    )
    assert ConsoleSettings().port == 8443


# --------------------------------------------------------------------------- funnel


def referral(status: ReferralStatus, attempts: int = 1, n: int = 0) -> ReferralView:
    return ReferralView(
        referral_id=uuid.UUID(int=n + 1),
        category=ServiceCategory.HOUSING,
        urgency=Urgency.ROUTINE,
        status=status,
        provider_id=None,
        attempts=attempts,
        providers_tried=attempts,
        escalation_level=0,
        deadline=None,
        reason=None,
        updated_at=T0,
    )


@pytest.mark.parametrize(
    ("status", "attempts", "stage"),
    [
        (ReferralStatus.REQUESTED, 0, Stage.REQUESTED),
        (ReferralStatus.ON_HOLD, 0, Stage.REQUESTED),
        (ReferralStatus.UNROUTABLE, 0, Stage.REQUESTED),
        (ReferralStatus.UNROUTABLE, 2, Stage.OFFERED),  # every provider declined
        (ReferralStatus.CANCELLED, 0, Stage.REQUESTED),
        (ReferralStatus.CANCELLED, 1, Stage.OFFERED),
        (ReferralStatus.OFFERED, 1, Stage.OFFERED),
        (ReferralStatus.ACCEPTED, 1, Stage.ACCEPTED),
        (ReferralStatus.FAILED, 1, Stage.ACCEPTED),
        (ReferralStatus.IN_PROGRESS, 1, Stage.STARTED),
        (ReferralStatus.COMPLETED, 1, Stage.COMPLETED),
    ],
)
def test_the_stage_a_referral_reached_is_read_from_its_current_status(
    status: ReferralStatus, attempts: int, stage: Stage
) -> None:
    assert stage_reached(referral(status, attempts)) is stage


def test_funnel_counts_are_cumulative_per_category_and_jurisdiction() -> None:
    rows = [
        ("HOUSING", "NL", Stage.COMPLETED),
        ("HOUSING", "NL", Stage.OFFERED),
        ("HOUSING", "NL", Stage.REQUESTED),
        ("HOUSING", "BE", Stage.ACCEPTED),
        ("HEALTH", "NL", Stage.STARTED),
    ]
    assert funnel_counts(rows) == [
        {"category": "HEALTH", "jurisdiction": "NL", "requested": 1, "offered": 1,
         "accepted": 1, "started": 1, "completed": 0},
        {"category": "HOUSING", "jurisdiction": "BE", "requested": 1, "offered": 1,
         "accepted": 1, "started": 0, "completed": 0},
        {"category": "HOUSING", "jurisdiction": "NL", "requested": 3, "offered": 2,
         "accepted": 1, "started": 1, "completed": 1},
    ]  # fmt: skip


def status_value(survivor: uuid.UUID, *referrals: ReferralView, jurisdiction: str | None) -> bytes:
    record = StatusRecord(
        survivor_id=survivor,
        agency_id="agency-a",
        identified=jurisdiction is not None,
        referrals=referrals,
        consents=(),
        risk_level=RiskLevel.MEDIUM,
        escalation_level=0,
        closed=None,
        last_update=T0,
        jurisdiction=jurisdiction,
    )
    return json.dumps(record.to_dict()).encode()


def test_the_status_board_keeps_the_latest_record_per_survivor_and_drops_bad_ones() -> None:
    board = StatusBoard(KAFKA)
    copy: dict[uuid.UUID, Any] = {}
    a, b, c = uid("board-a"), uid("board-b"), uid("board-c")
    topic = TOPICS.case_status

    def status(
        survivor: uuid.UUID, status: ReferralStatus, where: str | None, n: int = 1
    ) -> Record:
        value = status_value(survivor, referral(status, n), jurisdiction=where)
        return Record(topic, str(survivor).encode(), value)

    for record in (
        status(a, ReferralStatus.OFFERED, "NL"),
        status(a, ReferralStatus.COMPLETED, "NL"),
        status(b, ReferralStatus.REQUESTED, None, 0),
        status(c, ReferralStatus.ACCEPTED, "BE"),
        Record(topic, str(c).encode(), None),  # erased
        Record(topic, b"not-a-uuid", b"{}"),
        Record(topic, str(b).encode(), b"not json"),  # what was known of b is dropped too
    ):
        board._apply(copy, record)
    board.served = copy

    assert board.survivors == 1
    assert board.counts() == [
        {"category": "HOUSING", "jurisdiction": "NL", "requested": 1, "offered": 1,
         "accepted": 1, "started": 1, "completed": 1},
    ]  # fmt: skip
    assert board.skipped == 2


# --------------------------------------------------------------------------- escalations


def escalation(
    n: int,
    *,
    level: int = 1,
    reason: EscalationReason = EscalationReason.DEADLINE_MISSED,
    jurisdiction: str = "NL",
    category: ServiceCategory | None = ServiceCategory.HOUSING,
    survivor: int | None = None,
    deadline: datetime | None = T0,
) -> ReferralEscalated:
    return ReferralEscalated(
        survivor_id=uuid.UUID(int=survivor if survivor is not None else n + 1),
        occurred_at=T0 + timedelta(minutes=n),
        referral_id=uuid.UUID(int=1000 + (survivor if survivor is not None else n)),
        level=level,
        reason=reason,
        missed_deadline=deadline,
        category=category,
        jurisdiction=jurisdiction,
    )


def test_a_breach_is_one_missed_deadline_however_many_rungs_and_copies() -> None:
    tally = EscalationTally(recent_bound=3)
    assert tally.add("e1", escalation(1, level=1, survivor=7)) is not None
    assert tally.add("e1", escalation(1, level=1, survivor=7)) is None  # a re-published copy
    tally.add("e2", escalation(2, level=2, survivor=7))  # the same deadline, next rung
    tally.add("e3", escalation(3, jurisdiction="BE"))
    tally.add("e4", escalation(4, reason=EscalationReason.UNROUTABLE, deadline=None))
    tally.add("e5", escalation(5, reason=EscalationReason.LEGAL_CLOCK, category=None))

    assert tally.breaches == {("HOUSING", "NL"): 1, ("HOUSING", "BE"): 1, ("NONE", "NL"): 1}
    assert tally.total == 5
    assert [shown["id"] for _, shown in tally.recent] == ["e3", "e4", "e5"]


def test_an_escalation_is_shown_with_ids_codes_and_times_only() -> None:
    shown = EscalationTally(recent_bound=1).add("e1", escalation(1, level=3))
    assert shown == {
        "id": "e1",
        "occurred_at": "2026-05-04T10:01:00+00:00",
        "level": 3,
        "reason": "DEADLINE_MISSED",
        "category": "HOUSING",
        "jurisdiction": "NL",
        "survivor_id": str(uuid.UUID(int=2)),
        "referral_id": str(uuid.UUID(int=1001)),
        "provider_id": None,
        "missed_deadline": T0.isoformat(),
    }


def encoded(event: ReferralEscalated, topic: str = TOPICS.escalations) -> Record:
    record = Codec(KAFKA, source="/safepassage/router").encode(event, topic)
    return Record(topic, record.key, record.value, tuple(record.headers))


async def test_only_new_escalations_after_catching_up_are_pushed_each_to_its_filter() -> None:
    feed = EscalationFeed(KAFKA, recent=10)
    copy = EscalationTally(10)
    feed._apply(copy, encoded(escalation(1, level=3)))  # history, read before catching up
    feed.served, feed._ready = copy, True
    everything, history = feed.subscribe(EscalationFilter())
    only_be, _ = feed.subscribe(EscalationFilter(jurisdictions=frozenset({"BE"})))
    gone, _ = feed.subscribe(EscalationFilter())
    feed.unsubscribe(gone)

    new = encoded(escalation(2, jurisdiction="BE"))
    feed._apply(copy, new)
    feed._apply(copy, new)  # the same record again (a worker's re-publication)
    feed._apply(copy, Record(TOPICS.escalations, b"x", b"not an event"))

    assert [h["level"] for h in history] == [3]
    assert everything.queue.qsize() == 1 and only_be.queue.qsize() == 1 and gone.queue.empty()
    pushed = await only_be.queue.get()
    assert pushed is not None and pushed["jurisdiction"] == "BE"
    assert feed.undecodable == 1
    assert feed.breaches() == [
        {"category": "HOUSING", "jurisdiction": "BE", "breaches": 1},
        {"category": "HOUSING", "jurisdiction": "NL", "breaches": 1},
    ]
    assert [e["jurisdiction"] for e in feed.recent(EscalationFilter(levels=frozenset({1})))] == [
        "BE"
    ]


async def test_a_browser_that_falls_too_far_behind_is_ended_not_waited_for() -> None:
    feed = EscalationFeed(KAFKA, recent=10)
    copy = EscalationTally(10)
    feed.served, feed._ready = copy, True
    slow, _ = feed.subscribe(EscalationFilter())
    slow.queue = asyncio.Queue(2)
    for n in range(3):
        feed._apply(copy, encoded(escalation(n)))

    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert items[-1] is None  # the end of its stream: the browser reconnects
    assert slow not in feed._subscribers

    watching, _ = feed.subscribe(EscalationFilter())
    feed.end_all()  # the console is stopping
    assert watching.queue.get_nowait() is None and not feed._subscribers


# --------------------------------------------------------------------------- directory


def test_live_capacity_applies_reservations_that_came_before_their_provider() -> None:
    pid = uid("console-provider")
    directory = LiveDirectory(KAFKA)
    copy = DirectoryCopy()
    codec = Codec(KAFKA, source=f"/providers/{pid}")
    reservation = CapacityChange(
        action=CapacityAction.RESERVE,
        provider_id=pid,
        category=ServiceCategory.HOUSING,
        referral_id=uid("console-referral"),
    )
    ledger = Record(
        TOPICS.capacity_ledger, str(pid).encode(), reservation.model_dump_json().encode()
    )
    directory._apply(copy, ledger)  # before the registration: kept, not lost
    for event in (provider(pid, capacity=5, jurisdictions=("NL", "BE")), capacity(pid, 4, 3)):
        record = codec.encode(event, TOPICS.providers)
        directory._apply(
            copy, Record(TOPICS.providers, record.key, record.value, tuple(record.headers))
        )
    directory._apply(copy, Record(TOPICS.capacity_ledger, b"x", b"{not json"))
    directory.served = copy

    assert directory.rows() == [
        {
            "provider_id": str(pid),
            "registered": True,
            "category": "HOUSING",
            "jurisdictions": ["NL", "BE"],
            "total": 4,
            "reserved": 1,
            "held": 0,
            "available": 3,
            "updated_at": BUILT_AT.isoformat(),
        }
    ]
    assert directory.skipped == 1
    assert "organization_name" not in json.dumps(directory.rows())


# --------------------------------------------------------------------------- routes


@dataclass
class Console:
    http: TestClient
    keys_file: Path
    operator_key: str
    agency_key: str
    intake_calls: list[httpx.Request]


@pytest.fixture
def console(tmp_path: Path) -> Console:
    keys_file = tmp_path / "api-keys.yaml"
    operator_key, _ = add_key(keys_file, role=Role.OPERATOR, principal="ops-desk")
    agency_key, _ = add_key(keys_file, role=Role.AGENCY, principal="ngo", agency_id="ngo-a")
    calls: list[httpx.Request] = []

    def intake(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path.endswith(f"{uid('known')}/status"):
            return httpx.Response(200, json={"survivor_id": str(uid("known")), "referrals": []})
        return httpx.Response(
            404,
            json={"type": "urn:safepassage:problem:unknown-survivor", "status": 404},
            headers={"Content-Type": "application/problem+json"},
        )

    app = create_app(
        ConsoleSettings(api_keys_file=keys_file),
        kafka=KAFKA,
        keys=ApiKeyStore(keys_file, reload_interval_s=0),
        intake=IntakeClient(
            "https://intake.test", verify=True, timeout_s=5, transport=httpx.MockTransport(intake)
        ),
    )
    # No `with`: the lifespan (Kafka readers) is not started; the copies stay empty.
    http = TestClient(app, base_url="https://console.test", follow_redirects=False)
    return Console(http, keys_file, operator_key, agency_key, calls)


def sign_in(console: Console, key: str) -> Any:
    return console.http.post("/api/session", json={"key": key})


API_ROUTES = [
    "/api/session",
    "/api/escalations",
    "/api/escalations/stream",
    f"/api/survivors/{uid('known')}/status",
    "/api/funnel",
    "/api/sla-breaches",
    "/api/directory",
]


@pytest.mark.parametrize("path", API_ROUTES)
def test_every_api_route_needs_a_session(console: Console, path: str) -> None:
    answer = console.http.get(path)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    console.http.cookies.set(COOKIE, "made-up")
    forged = console.http.get(path)
    assert forged.status_code == 401
    assert console.intake_calls == []


def test_console_requests_are_counted_by_route_template(console: Console) -> None:
    """Like every HTTP process: by template, so a survivor's id never becomes a label."""
    labels = {"route": "/api/survivors/{survivor_id}/status", "method": "GET", "status": "401"}
    before = REGISTRY.get_sample_value("safepassage_http_requests_total", labels) or 0.0
    assert console.http.get(f"/api/survivors/{uid('known')}/status").status_code == 401
    assert REGISTRY.get_sample_value("safepassage_http_requests_total", labels) == before + 1


def test_an_operator_signs_in_with_a_cookie_that_holds_no_key(console: Console) -> None:
    answer = sign_in(console, console.operator_key)

    assert answer.status_code == 201
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)
    assert console.operator_key not in cookie and console.operator_key not in answer.text
    assert answer.json()["principal"] == "ops-desk"
    assert console.http.get("/api/session").json()["key_id"] == answer.json()["key_id"]
    assert console.http.get("/console").status_code == 200
    assert console.http.get("/").headers["location"] == "/console"


@pytest.mark.parametrize(
    ("key", "status"),
    [("sp_operator_" + "x" * 43, 401), ("", 400), (None, 400)],
)
def test_unknown_or_missing_keys_get_no_session(
    console: Console, key: str | None, status: int
) -> None:
    answer = console.http.post("/api/session", json={"key": key})
    assert answer.status_code == status
    assert "set-cookie" not in answer.headers
    assert console.http.get("/console").headers["location"] == "/signin"


def test_only_operator_keys_sign_in(console: Console) -> None:
    answer = sign_in(console, console.agency_key)
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_a_sign_in_from_another_origin_is_refused(console: Console) -> None:
    answer = console.http.post(
        "/api/session",
        json={"key": console.operator_key},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_a_bad_or_oversized_sign_in_body_is_a_problem(console: Console) -> None:
    assert console.http.post("/api/session", content=b"{nope").status_code == 400
    assert console.http.post("/api/session", content=b"[1]").status_code == 400
    assert console.http.post("/api/session", content=b"x" * 5000).status_code == 413


def test_sign_out_ends_the_session_on_the_server(console: Console) -> None:
    session_id = sign_in(console, console.operator_key).cookies[COOKIE]
    csrf = console.http.get("/api/session").json()["csrf"]

    assert console.http.delete("/api/session").status_code == 403  # without the page's token
    answer = console.http.delete("/api/session", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 204
    assert (
        f'{COOKIE}=""' in answer.headers["set-cookie"]
        or "Max-Age=0" in answer.headers["set-cookie"]
    )
    # The old id is worthless even if a browser kept it.
    console.http.cookies.set(COOKIE, session_id)
    assert console.http.get("/api/session").status_code == 401


def test_a_revoked_key_ends_its_sessions(console: Console) -> None:
    sign_in(console, console.operator_key)
    assert console.http.get("/api/funnel").status_code == 200
    document = yaml.safe_load(console.keys_file.read_text())
    document["keys"] = [k for k in document["keys"] if k["role"] != "operator"]
    console.keys_file.write_text(yaml.safe_dump(document))

    assert console.http.get("/api/funnel").status_code == 401
    assert console.http.get("/console").headers["location"] == "/signin"


def test_a_status_lookup_goes_to_the_intake_with_the_operators_own_key(console: Console) -> None:
    sign_in(console, console.operator_key)

    found = console.http.get(f"/api/survivors/{uid('known')}/status")
    unknown = console.http.get(f"/api/survivors/{uid('unknown')}/status")
    bad = console.http.get("/api/survivors/..%2F..%2Fhealthz/status")

    assert found.status_code == 200 and found.json()["survivor_id"] == str(uid("known"))
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert bad.status_code in {400, 404}
    assert [c.headers["authorization"] for c in console.intake_calls] == [
        f"Bearer {console.operator_key}"
    ] * 2
    assert [c.url.path for c in console.intake_calls] == [
        f"/v1/survivors/{uid('known')}/status",
        f"/v1/survivors/{uid('unknown')}/status",
    ]


def test_an_unreachable_intake_is_a_502_problem(tmp_path: Path) -> None:
    keys_file = tmp_path / "api-keys.yaml"
    key, _ = add_key(keys_file, role=Role.OPERATOR, principal="ops")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app = create_app(
        ConsoleSettings(api_keys_file=keys_file),
        kafka=KAFKA,
        intake=IntakeClient(
            "https://i.test", verify=True, timeout_s=1, transport=httpx.MockTransport(down)
        ),
    )
    http = TestClient(app, base_url="https://console.test")
    http.post("/api/session", json={"key": key})
    answer = http.get(f"/api/survivors/{uid('x')}/status")
    assert answer.status_code == 502 and answer.json()["type"].endswith("intake-unreachable")


def test_data_routes_answer_counts_and_say_whether_they_caught_up(console: Console) -> None:
    sign_in(console, console.operator_key)
    assert console.http.get("/api/funnel").json() == {
        "ready": False,
        "stages": ["requested", "offered", "accepted", "started", "completed"],
        "survivors": 0,
        "rows": [],
    }
    assert console.http.get("/api/sla-breaches").json() == {"ready": False, "rows": []}
    assert console.http.get("/api/directory").json() == {"ready": False, "rows": []}
    assert console.http.get("/api/escalations?level=3&category=HOUSING&jurisdiction=nl").json() == {
        "ready": False,
        "items": [],
    }
    assert console.http.get("/api/escalations?level=4").status_code == 400
    assert console.http.get("/api/escalations?jurisdiction=../x").status_code == 400


def test_pages_and_assets_are_served_here_with_a_strict_policy(console: Console) -> None:
    page = console.http.get("/signin")
    plotly = console.http.get("/vendor/plotly.min.js")
    script = console.http.get("/assets/console.js")
    health = console.http.get("/healthz")

    assert page.status_code == 200 and "/assets/signin.js" in page.text
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-eval" not in CSP
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert "text/javascript" in plotly.headers["content-type"]
    assert script.status_code == 200 and "innerHTML" not in script.text
    assert health.json() == {
        "status": "ok",
        "escalations": False,
        "funnel": False,
        "directory": False,
    }
    for html in ("signin.html", "console.html"):
        text = (Path(__file__).parents[2] / "connectors/console/assets" / html).read_text()
        assert "http://" not in text and "https://" not in text and "<script>" not in text

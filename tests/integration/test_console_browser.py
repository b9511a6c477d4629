"""The operator console end to end, in headless Chromium, against the suite's broker.

The intake and the console run in this process over HTTPS (certificates of
a local CA of the test's own, as `make run` issues them); Chromium is
Debian's (`make browser`), driven by Playwright's own driver (never
`playwright install`, which would download a browser). The router is not
run: the test writes what the router would (status records, escalations,
the capacity ledger) and what providers publish (the directory), so every
figure on the page is known. Every wait is for a condition in the page or
on a topic, never for a time. Screenshots go to .state/screenshots/.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from connectors.auth import Role, add_key
from connectors.console import ConsoleSettings
from connectors.console import create_app as create_console
from connectors.console.sessions import COOKIE
from connectors.intake import IntakeSettings
from connectors.intake import create_app as create_intake
from infra.tls import ensure_node_tls
from processors.directory import CapacityAction, CapacityChange
from processors.lifecycle import ReferralStatus
from processors.status import ReferralView, StatusRecord
from schemas.models import Event, ProviderCapacity, ProviderRegistered, ReferralEscalated
from schemas.types import EscalationReason, RiskLevel, ServiceCategory, Urgency
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.integration.conftest import REPO, free_port
from tests.integration.intake import Server
from tests.integration.waits import read_to_end, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / ".state" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 60_000
"""Playwright's limit for a condition in the page (it waits for events, not for a time)."""

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
SURVIVOR, OTHER, THIRD = (uuid.uuid4() for _ in range(3))
PROVIDER = uuid.uuid4()


def referral(status: ReferralStatus, category: ServiceCategory, attempts: int = 1) -> ReferralView:
    return ReferralView(
        referral_id=uuid.uuid4(),
        category=category,
        urgency=Urgency.PRIORITY,
        status=status,
        provider_id=PROVIDER if attempts else None,
        attempts=attempts,
        providers_tried=attempts,
        escalation_level=0,
        deadline=None,
        reason=None,
        updated_at=T0,
    )


def status(survivor: uuid.UUID, jurisdiction: str, *referrals: ReferralView) -> StatusRecord:
    return StatusRecord(
        survivor_id=survivor,
        agency_id="ngo-north",
        identified=True,
        referrals=referrals,
        consents=(),
        risk_level=RiskLevel.HIGH,
        escalation_level=1,
        closed=None,
        last_update=T0,
        jurisdiction=jurisdiction,
    )


def escalation(
    survivor: uuid.UUID, level: int, minutes: int, *, jurisdiction: str = "NL"
) -> ReferralEscalated:
    return ReferralEscalated(
        survivor_id=survivor,
        occurred_at=T0 + timedelta(minutes=minutes),
        referral_id=uuid.uuid4(),
        level=level,
        reason=EscalationReason.DEADLINE_MISSED,
        missed_deadline=T0 + timedelta(minutes=minutes - 1),
        provider_id=PROVIDER,
        category=ServiceCategory.HOUSING,
        jurisdiction=jurisdiction,
    )


class Platform:
    """Writes to the test's topics what the router and the providers would."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.topics = Topics.of(settings)
        self.codec = Codec(settings, source="/safepassage/router")
        self.producer = Producer(producer_config(settings))

    def event(self, event: Event, topic: str) -> None:
        record = self.codec.encode(event, topic)
        self.producer.produce(
            topic, key=record.key, value=record.value, headers=list[Any](record.headers)
        )
        assert self.producer.flush(30) == 0

    def raw(self, topic: str, key: str, value: bytes) -> None:
        self.producer.produce(topic, key=key.encode(), value=value)
        assert self.producer.flush(30) == 0

    def status(self, record: StatusRecord) -> None:
        value = json.dumps(record.to_dict()).encode()
        self.raw(self.topics.case_status, str(record.survivor_id), value)


@dataclass(frozen=True)
class Running:
    console_url: str
    intake_url: str
    operator_key: str
    ca: Path


@pytest.fixture
def platform(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[tuple[Running, Platform]]:
    """The intake and the console over HTTPS, the console caught up with every topic."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's Chromium")
    provision(kafka_settings)
    writer = Platform(kafka_settings)
    topics = writer.topics
    # What the console finds when it starts: three survivors' statuses, the directory,
    # a reservation in the ledger, one escalation from before.
    housing, health = ServiceCategory.HOUSING, ServiceCategory.HEALTH
    writer.status(
        status(SURVIVOR, "NL", referral(ReferralStatus.ACCEPTED, housing), referral(
            ReferralStatus.COMPLETED, health))
    )  # fmt: skip
    writer.status(status(OTHER, "NL", referral(ReferralStatus.OFFERED, housing)))
    writer.status(status(THIRD, "BE", referral(ReferralStatus.REQUESTED, housing, attempts=0)))
    writer.event(
        ProviderRegistered(
            provider_id=PROVIDER,
            occurred_at=T0,
            organization_name="Shelter whose name the console never shows",
            categories=(housing,),
            languages=("en", "nl"),
            offers_interpretation=True,
            jurisdictions=("NL",),
            child_specialised=False,
            accessible=True,
            cross_border=False,
            capacity=6,
        ),
        topics.providers,
    )
    report = ProviderCapacity(
        provider_id=PROVIDER, occurred_at=T0, category=housing, total=6, available=6
    )
    writer.event(report, topics.providers)
    reservation = CapacityChange(
        action=CapacityAction.RESERVE, provider_id=PROVIDER, category=housing,
        referral_id=uuid.uuid4(),
    )  # fmt: skip
    writer.raw(topics.capacity_ledger, str(PROVIDER), reservation.model_dump_json().encode())
    writer.event(escalation(OTHER, 1, 0), topics.escalations)

    security = tmp_path / "security"
    intake_tls = ensure_node_tls(security, tmp_path / "intake", "intake", ("127.0.0.1",))
    console_tls = ensure_node_tls(security, tmp_path / "console", "console", ("127.0.0.1",))
    keys_file = tmp_path / "api-keys.yaml"
    operator_key, _ = add_key(keys_file, role=Role.OPERATOR, principal="duty-operator")
    intake = create_intake(
        IntakeSettings(api_keys_file=keys_file, state_dir=tmp_path / "intake-state"),
        kafka=kafka_settings,
    )
    intake_port, console_port = free_port(), free_port()
    intake_url = f"https://127.0.0.1:{intake_port}"
    console = create_console(
        ConsoleSettings(
            api_keys_file=keys_file,
            intake_url=intake_url,
            intake_ca_file=intake_tls.ca,
            port=console_port,
        ),
        kafka=kafka_settings,
    )
    with (
        Server(intake, intake_port, certfile=str(intake_tls.keystore)),
        Server(console, console_port, certfile=str(console_tls.keystore)),
    ):
        console_url = f"https://127.0.0.1:{console_port}"
        trust = ssl.create_default_context(cafile=console_tls.ca)
        wait_until(
            lambda: (
                httpx.get(f"{console_url}/healthz", verify=trust).json()
                == {"status": "ok", "escalations": True, "funnel": True, "directory": True}
            ),
            "the console to catch up with escalations, case-status and the directory",
        )
        yield Running(console_url, intake_url, operator_key, console_tls.ca), writer


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium in a fresh profile, through Playwright's driver."""
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    try:
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                ignore_https_errors=True,  # the test's own CA is not in Chromium's store
                viewport={"width": 1400, "height": 1500},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def test_an_operator_watches_escalations_looks_up_a_survivor_and_reads_the_funnel(
    platform: tuple[Running, Platform], browser: Any, kafka_settings: KafkaSettings
) -> None:
    running, writer = platform
    topics = writer.topics
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    foreign: list[str] = []
    # Script errors and refusals of the Content Security Policy; not the 401 and 404
    # answers the test asks for (Chromium logs those as "Failed to load resource").
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "request",
        lambda r: None if r.url.startswith(running.console_url) else foreign.append(r.url),
    )

    # Signed out, every page leads to the sign-in page.
    page.goto(f"{running.console_url}/console")
    page.wait_for_url(f"{running.console_url}/signin")
    shot(page, "console-1-signin")
    page.fill("#key", running.operator_key)
    page.click("#signin-button")
    page.wait_for_url(f"{running.console_url}/console")
    assert running.operator_key not in page.url

    cookies = {c["name"]: c for c in browser.cookies()}
    assert set(cookies) == {COOKIE}
    cookie = cookies[COOKIE]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert running.operator_key not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    page.wait_for_selector("#who:has-text('duty-operator')")

    # The feed: the escalation from before, then one published now, live.
    page.wait_for_selector("#feed-state:has-text('live')")
    page.wait_for_selector(f"#feed td.survivor:has-text('{OTHER}')")
    writer.event(escalation(SURVIVOR, 2, 5, jurisdiction="NL-ZH"), topics.escalations)
    page.wait_for_selector(f"#feed tr.level-2 td.survivor:has-text('{SURVIVOR}')")

    # Filtered to level 3: a level-1 escalation published first on the same survivor
    # (same partition, so read before the level-3 one) never shows.
    page.check("input[name=level][value='3']")
    page.click("#feed-filter button[type=submit]")
    page.wait_for_selector("#feed-state:has-text('live')")
    assert page.locator("#feed tbody tr").count() == 0
    writer.event(escalation(THIRD, 1, 6, jurisdiction="BE"), topics.escalations)
    writer.event(escalation(THIRD, 3, 7, jurisdiction="BE"), topics.escalations)
    page.wait_for_selector(f"#feed tr.level-3 td.survivor:has-text('{THIRD}')")
    assert page.locator("#feed tbody tr").count() == 1
    shot(page, "console-2-feed")

    # Status lookup, through the intake with the operator's own key.
    page.fill("#survivor-id", str(uuid.uuid4()))
    page.click("#status-form button[type=submit]")
    page.wait_for_selector("#status-error:has-text('404')")
    page.fill("#survivor-id", str(SURVIVOR))
    page.click("#status-form button[type=submit]")
    page.wait_for_selector("#status-referrals td.referral-status")
    shown = page.locator("#status-referrals td.referral-status").all_inner_texts()
    assert sorted(shown) == ["accepted", "completed"]
    assert page.inner_text("#status-facts dd[data-field='risk level']") == "HIGH"

    def reads_of_survivor() -> list[dict[str, Any]]:
        records = [
            json.loads(m.value() or b"{}") for m in read_to_end(kafka_settings, topics.audit)
        ]
        return [r for r in records if r.get("survivor_id") == str(SURVIVOR)]

    audited = wait_until(reads_of_survivor, "the intake's audit record of the status read")
    assert [(a["kind"], a["principal"], a["role"], a["status"]) for a in audited] == [
        ("status.read", "duty-operator", "operator", 200)
    ]

    # The charts: funnel from case-status.v1, breaches from escalations.v1.
    page.wait_for_function(
        "() => document.getElementById('funnel').data !== undefined"
        " && document.querySelector('#breaches .main-svg') !== null"
        " && document.getElementById('breaches').data.length > 0"
    )
    funnel = page.evaluate(
        "() => document.getElementById('funnel').data.map(t => ({name: t.name, y: t.y, x: t.x}))"
    )
    stages = ["requested", "offered", "accepted", "started", "completed"]
    assert funnel == [
        {"name": "HEALTH", "y": stages, "x": [1, 1, 1, 1, 1]},
        {"name": "HOUSING", "y": stages, "x": [3, 2, 1, 0, 0]},
    ]
    page.select_option("#chart-jurisdiction", "BE")
    page.wait_for_function("() => document.getElementById('funnel').data.length === 1")
    assert page.evaluate("() => document.getElementById('funnel').data[0].x") == [1, 0, 0, 0, 0]
    page.select_option("#chart-jurisdiction", "")
    page.click("#charts-refresh")
    page.wait_for_function(
        "() => document.getElementById('breaches').data"
        ".reduce((n, t) => n + t.y.reduce((a, b) => a + b, 0), 0) === 4"
    )
    breaches = page.evaluate(
        "() => document.getElementById('breaches').data.map(t => ({name: t.name, x: t.x, y: t.y}))"
    )
    assert breaches == [{"name": "HOUSING", "x": ["BE", "NL", "NL-ZH"], "y": [2, 1, 1]}]

    # The directory with live capacity: 6 places, 1 reserved by the router (the ledger).
    row = page.locator(f"#directory tr:has-text('{PROVIDER}')")
    assert row.locator("td").all_inner_texts()[1:7] == ["HOUSING", "NL", "6", "1", "0", "5"]
    assert "Shelter" not in page.content()
    shot(page, "console-3-status-and-charts")

    assert problems == [], problems
    assert foreign == [], foreign

    # Sign-out ends the session on the server.
    page.click("#signout")
    page.wait_for_url(f"{running.console_url}/signin")
    assert page.evaluate("async () => (await fetch('/api/session')).status") == 401


def test_the_intakes_swagger_ui_renders_from_local_assets_only(
    platform: tuple[Running, Platform], browser: Any
) -> None:
    running, _ = platform
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    page.goto(f"{running.intake_url}/docs")
    page.wait_for_selector(".swagger-ui .info .title:has-text('SafePassage intake API')")
    page.wait_for_selector(".swagger-ui .opblock-summary-path:has-text('/v1/events')")
    shot(page, "intake-docs", full_page=False)

    assert requested, "the page made no request"
    assert all(url.startswith((running.intake_url, "data:")) for url in requested), requested

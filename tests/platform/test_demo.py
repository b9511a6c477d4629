"""``safepassage run --demo`` end to end: the scenario runs live, seen only through public surfaces.

The run gets ports and a state directory of its own, its stdout a pipe.
Once its summary is out (the demo directory imported, the provider
simulator and the scenario streamer ready), the test polls what an
operator would look at: the intake's ``/metrics`` (``safepassage_referrals``
by status and category) and the router's (``safepassage_escalations_total``
by level), until referrals reached a provider in every category, some
were accepted, and escalations happened at levels 1, 2 and 3. The import
is then repeated through the directory API and updates the 33 providers
rather than adding any. SIGINT then leaves no process of the run's tree
(simulator and streamer included) and no port of its listening.
"""

from __future__ import annotations

import ssl
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from connectors.directory.client import DirectoryClient, load_directory
from connectors.directory.demo import PROVIDERS
from tests.platform.runs import (
    Run,
    alive,
    end_run,
    listening,
    start_run,
    stop_and_check,
    wait_for,
)

pytestmark = [pytest.mark.platform, pytest.mark.slow]

READY_TIMEOUT_S = 240.0
SCENARIO_BOUND_S = 90.0
"""From the summary to everything seen; measured: about 10-20 s (the first escalations come
within 5 s of the first survivors, the last category offered with the third survivor)."""
CATEGORIES = {"HOUSING", "HEALTH", "LEGAL_AID", "FINANCIAL_SUPPORT"}
REACHED = {"offered", "accepted", "in_progress", "completed", "failed"}
"""Statuses of a referral that reached a provider."""
TAKEN = {"accepted", "in_progress", "completed"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    handle = start_run(
        tmp_path_factory.mktemp("demo-state"), ["--demo"], ready_timeout_s=READY_TIMEOUT_S
    )
    try:
        yield handle
    finally:
        end_run(handle)


def _samples(url: str, metric: str) -> list[dict[str, str | float]]:
    """The samples of one metric on a ``/metrics`` page (labels and value); none if unreachable."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return []
    return [
        {**sample.labels, "value": sample.value}
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric
    ]


def _what_is_missing(demo: Run) -> list[str]:
    intake = f"http://127.0.0.1:{demo.metrics_base + 1}/metrics"
    router = f"http://127.0.0.1:{demo.metrics_base}/metrics"
    referrals: Counter[tuple[str, str]] = Counter()
    for sample in _samples(intake, "safepassage_referrals"):
        referrals[(str(sample["status"]), str(sample["category"]))] += int(sample["value"])
    levels = {
        str(s["level"]) for s in _samples(router, "safepassage_escalations_total") if s["value"]
    }
    missing = [
        f"no referral of {category} offered"
        for category in sorted(CATEGORIES)
        if not any(referrals[(status, category)] for status in REACHED)
    ]
    if not any(n for (status, _), n in referrals.items() if status in TAKEN):
        missing.append("no referral accepted")
    missing += [f"no escalation at level {level}" for level in "123" if level not in levels]
    return missing


def test_the_demo_reaches_every_category_accepts_some_and_escalates_at_every_level(
    demo: Run,
) -> None:
    wait_for(demo, "SafePassage is running", READY_TIMEOUT_S + 120)
    demo.remember_family()
    out = demo.output()
    assert f"Directory    {len(PROVIDERS)} providers" in out, out
    for service in ("demo-providers", "demo-stream"):
        assert any(service in line and "ready" in line for line in demo.lines), out
    assert "Traceback" not in out
    begun = time.monotonic()
    missing = _what_is_missing(demo)
    while missing and time.monotonic() - begun < SCENARIO_BOUND_S:
        time.sleep(1.0)
        demo.remember_family()
        missing = _what_is_missing(demo)
    assert missing == [], f"after {SCENARIO_BOUND_S:.0f} s of the demo"
    print(f"demo scenario seen in full {time.monotonic() - begun:.1f} s after the summary")

    # Every directory provider has a key (owner-only file) and a webhook endpoint.
    credentials = demo.state_dir / "demo" / "credentials.yaml"
    assert credentials.stat().st_mode & 0o777 == 0o600
    keys = yaml.safe_load(credentials.read_text())["keys"]
    ids = {str(p.provider_id) for p in PROVIDERS}
    assert ids <= {str(k.get("provider_id")) for k in keys}
    webhooks = yaml.safe_load((demo.state_dir / "demo" / "webhooks.yaml").read_text())
    assert ids <= set(webhooks["providers"])

    # The import is idempotent: again through the API, every provider updated, none added.
    admin = next(k["key"] for k in keys if k["role"] == "directory-admin")
    ca = ssl.create_default_context(cafile=str(demo.state_dir / "kafka/security/ca.pem"))
    client = DirectoryClient(demo.url("SAFEPASSAGE_INTAKE_PORT"), admin, verify=ca)
    report = load_directory(client)
    assert (len(report["registered"]), len(report["updated"])) == (0, len(PROVIDERS))
    assert {p["provider_id"] for p in client.list()} == ids

    # One line per survivor in the streamer's log, pseudonyms only.
    stream_log = (demo.state_dir / "logs" / "demo-stream.log").read_text()
    assert stream_log.count('"event": "demo.survivor"') >= 3
    assert "Fictional Person" not in stream_log  # the made-up names travel sealed only
    providers_log = demo.state_dir / "logs" / "demo-providers.log"
    while '"answer": "decline"' not in providers_log.read_text():  # the third survivor's fund
        assert time.monotonic() - begun < SCENARIO_BOUND_S, "no provider declined"
        time.sleep(0.5)


def test_sigint_stops_the_demo_and_everything_else_it_started(demo: Run) -> None:
    wait_for(demo, "SafePassage is running", READY_TIMEOUT_S + 120)
    demo.remember_family()
    running = " ".join(alive(demo.family))
    assert "demo providers" in running  # the simulator and the streamer are in the tree
    assert "demo stream" in running
    simulator = urlsplit(demo.env["SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL"]).port
    assert simulator is not None
    assert listening([simulator]) == [simulator]
    took = stop_and_check(demo)  # ... and gone with it, the simulator's port too
    print(f"stop took {took:.1f} s")

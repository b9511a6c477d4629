"""``safepassage run`` end to end: up, ready, answering, refusing a second run, gone after Ctrl-C.

The run gets ports of its own (the broker's three, the intake's) and a
state directory of its own, and its stdout is a pipe, as in ``make run |
cat``. Once the summary is out, the intake must answer over HTTPS, checked
against the run's CA, with the demo agency's key from the owner-only
credentials file. A second run on the same state directory is refused in
one line. Then the reader of the pipe goes away (as ``cat`` does on
Ctrl-C) and the run gets SIGINT: it must end within a bound, leaving no
process of its tree (children and grandchildren, the broker's JVM
included) and no port of its listening.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.platform.runs import (
    STOP_BOUND_S,
    Run,
    alive,
    listening,
    stop_and_check,
    wait_for,
)

pytestmark = [pytest.mark.platform, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

SERVICES = ("router", "intake", "webhooks", "offers-relay", "inbound-relay", "console")
READY_TIMEOUT_S = 240.0


def test_the_summary_names_every_service_and_the_intake_answers_the_demo_agency_over_https(
    run: Run,
) -> None:
    wait_for(run, "SafePassage is running", READY_TIMEOUT_S + 120)
    run.remember_family()
    out = run.output()
    for service in SERVICES:
        assert any(service in line and "ready" in line for line in run.lines), out
    console = f"https://127.0.0.1:{run.env['SAFEPASSAGE_CONSOLE_PORT']}"
    assert console in out  # the console's URL in the summary
    assert "Traceback" not in out
    credentials = run.state_dir / "demo" / "credentials.yaml"
    assert credentials.stat().st_mode & 0o777 == 0o600
    keys = {k["principal"]: k for k in yaml.safe_load(credentials.read_text())["keys"]}
    assert {"demo-agency", "demo-operator", "demo-directory-admin"} <= set(keys)
    agency_key = keys["demo-agency"]["key"]
    assert agency_key in out  # demo keys are shown in the summary
    intake = f"https://127.0.0.1:{run.env['SAFEPASSAGE_INTAKE_PORT']}"
    ca = run.state_dir / "kafka" / "security" / "ca.pem"
    survivor = uuid.uuid4()
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=15) as client:
        answer = client.get(
            f"{intake}/v1/survivors/{survivor}/status",
            headers={"Authorization": f"Bearer {agency_key}"},
        )
        refused = client.get(
            f"{intake}/v1/survivors/{survivor}/status",
            headers={"Authorization": "Bearer sp_agency_not-a-key-of-this-platform"},
        )
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"/agencies/{keys['demo-agency']['agency_id']}",
            "type": "risk.assessed",
            "time": "2026-03-05T08:00:00.000Z",
            "subject": str(survivor),
            "data": {
                "occurred_at": "2026-03-05T08:00:00.000Z",
                "survivor_id": str(survivor),
                "agency_id": keys["demo-agency"]["agency_id"],
                "level": "HIGH",
                "immediate_needs": ["EMERGENCY_SHELTER"],
            },
        }
        published = client.post(
            f"{intake}/v1/events",
            json=event,
            headers={
                "Authorization": f"Bearer {agency_key}",
                "Content-Type": "application/cloudevents+json",
            },
        )
    assert answer.status_code in {404, 503}, answer.text  # authenticated: no case (yet)
    assert refused.status_code == 401
    assert published.status_code == 202, published.text  # through the intake onto Kafka
    logs = run.state_dir / "logs"
    for service in SERVICES:
        assert (logs / f"{service}.log").stat().st_size > 0
    assert "aiokafka" not in out and "faust" not in out.lower()  # children's output is in logs


def test_a_second_run_on_the_same_state_dir_is_refused_in_one_line(run: Run) -> None:
    wait_for(run, "SafePassage is running", READY_TIMEOUT_S + 120)
    second = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "run", "--state-dir", str(run.state_dir)],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 3  # "already running": make run tells it apart
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"already running on {run.state_dir} (pid {run.process.pid})" in lines[0]
    # The README's command says so in one line too, with no line of make's own.
    made = subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=REPO,
        env=run.env | {"SAFEPASSAGE_RUN_STATE_DIR": str(run.state_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    made_lines = (made.stdout + made.stderr).strip().splitlines()
    assert made.returncode == 0 and len(made_lines) == 1, made_lines
    assert "already running" in made_lines[0]


def test_sigint_with_the_pipe_reader_gone_stops_everything_it_started(run: Run) -> None:
    wait_for(run, "SafePassage is running", READY_TIMEOUT_S + 120)
    run.remember_family()
    assert any("java" in line for line in alive(run.family))  # the broker is in the tree
    assert listening(run.ports), "the run's ports should be listening before the stop"
    took = stop_and_check(run)
    assert took < STOP_BOUND_S

"""`safepassage console serve` as a supervisor runs it: HTTPS from the local CA, /healthz,
and a clean exit within seconds of SIGTERM or SIGINT, even with an event stream open."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors.auth import Role, add_key
from connectors.console.cli import GRACE_S
from streams.provisioning import provision
from streams.settings import KafkaSettings
from tests.integration.conftest import REPO, free_port
from tests.integration.waits import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STOP_WITHIN_S = GRACE_S + 8.0
"""The grace uvicorn gives open requests, and the Kafka readers' stop, with room to spare."""


def _healthz(url: str, trust: ssl.SSLContext) -> dict[str, object] | None:
    try:
        answer = httpx.get(f"{url}/healthz", verify=trust, timeout=5)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_console_serves_https_and_stops_promptly_on_a_signal(
    kafka_settings: KafkaSettings, tmp_path: Path, signum: signal.Signals
) -> None:
    provision(kafka_settings)
    keys_file = tmp_path / "api-keys.yaml"
    key, _ = add_key(keys_file, role=Role.OPERATOR, principal="night-shift")
    port = free_port()
    env = {
        **os.environ,
        "SAFEPASSAGE_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "SAFEPASSAGE_TOPIC_NAMESPACE": kafka_settings.topic_namespace,
        "SAFEPASSAGE_API_KEYS_FILE": str(keys_file),
        "SAFEPASSAGE_BROKER_STATE_DIR": str(tmp_path / "kafka"),  # its CA issues the certificate
        "SAFEPASSAGE_CONSOLE_STATE_DIR": str(tmp_path / "console"),
        "SAFEPASSAGE_CONSOLE_PORT": str(port),
        "SAFEPASSAGE_LOG_FORMAT": "json",
    }
    log = (tmp_path / "console.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "console", "serve"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        ca = tmp_path / "kafka" / "security" / "ca.pem"
        wait_until(ca.exists, "the console to issue its certificate from the local CA")
        trust = ssl.create_default_context(cafile=ca)
        health = wait_until(
            lambda: (h := _healthz(url, trust)) and h.get("escalations") and h,
            "the console to serve /healthz and catch up",
            on_timeout=lambda: (tmp_path / "console.log").read_text()[-3000:],
        )
        assert health == {"status": "ok", "escalations": True, "funnel": True, "directory": True}

        with httpx.Client(base_url=url, verify=trust, timeout=30) as client:
            assert client.post("/api/session", json={"key": key}).status_code == 201
            with client.stream("GET", "/api/escalations/stream") as stream:
                lines = stream.iter_lines()
                while next(lines) != "event: history-end":
                    pass
                asked = time.monotonic()
                process.send_signal(signum)  # with the stream still open
                code = process.wait(timeout=STOP_WITHIN_S + 20)
                took = time.monotonic() - asked
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()

    assert code == 0, (tmp_path / "console.log").read_text()[-3000:]
    assert took < STOP_WITHIN_S, f"stopped after {took:.1f} s"
    output = (tmp_path / "console.log").read_text()
    assert key not in output  # the key is never logged
    assert "Traceback" not in output  # the open stream was ended, not cancelled
    assert '"console.signed_in"' in output or "console.signed_in" in output

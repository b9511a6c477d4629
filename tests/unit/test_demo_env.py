"""The demo platform's shell variables: what the documentation's examples read."""

from __future__ import annotations

import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from connectors.auth import Role
from connectors.platform.demo import DemoKey
from connectors.platform.demo_env import demo_environment, write_demo_env

HOUSING, HEALTH = uuid.uuid4(), uuid.uuid4()
KEYS = [
    DemoKey(principal="demo-agency", role=Role.AGENCY, key="sp_agency_a", agency_id="agency:demo"),
    DemoKey(principal="housing", role=Role.PROVIDER, key="sp_provider_h", provider_id=HOUSING),
    DemoKey(principal="health", role=Role.PROVIDER, key="sp_provider_x", provider_id=HEALTH),
    DemoKey(principal="demo-operator", role=Role.OPERATOR, key="sp_operator_o"),
    DemoKey(principal="admin", role=Role.DIRECTORY_ADMIN, key="sp_directory-admin_d"),
]


def test_urls_ca_and_the_first_key_of_each_role(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    env = demo_environment(KEYS, intake_url="https://127.0.0.1:1", console_url="https://c", ca=ca)
    assert env["SAFEPASSAGE_INTAKE_URL"] == "https://127.0.0.1:1"
    assert env["SSL_CERT_FILE"] == env["CURL_CA_BUNDLE"] == env["SAFEPASSAGE_CA_FILE"] == str(ca)
    assert (env["AGENCY_KEY"], env["AGENCY_ID"]) == ("sp_agency_a", "agency:demo")
    assert (env["PROVIDER_KEY"], env["PROVIDER_ID"]) == ("sp_provider_h", str(HOUSING))
    assert env["OPERATOR_KEY"] == "sp_operator_o"
    assert env["SAFEPASSAGE_DIRECTORY_API_KEY"] == env["DIRECTORY_ADMIN_KEY"]
    assert env["SAFEPASSAGE_DIRECTORY_URL"] == "https://127.0.0.1:1"


def test_each_process_kinds_probe_server_has_a_url() -> None:
    metrics = {"worker": "http://127.0.0.1:9464", "offers-relay": "http://127.0.0.1:9467"}
    env = demo_environment(
        KEYS, intake_url="https://i", console_url="https://c", ca=None, metrics=metrics
    )
    assert env["WORKER_METRICS_URL"] == "http://127.0.0.1:9464"
    assert env["OFFERS_RELAY_METRICS_URL"] == "http://127.0.0.1:9467"


def test_without_a_local_ca_the_system_trust_store_is_left_alone() -> None:
    env = demo_environment(KEYS, intake_url="https://i", console_url="https://c", ca=None)
    assert "SSL_CERT_FILE" not in env and "CURL_CA_BUNDLE" not in env


def test_the_file_is_owner_only_and_a_shell_reads_back_the_same_values(tmp_path: Path) -> None:
    env = demo_environment(KEYS, intake_url="https://i:8080", console_url="https://c", ca=None)
    path = write_demo_env(tmp_path / "demo.env", env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    script = f"set -a; . {path}; set +a; env"
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    seen = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    assert {name: seen[name] for name in env} == env


@pytest.mark.parametrize("value", ["a b", "$(rm -rf ~)", "x'y", 'x"y', "a`b`"])
def test_a_value_that_would_need_quoting_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="quoting"):
        write_demo_env(tmp_path / "demo.env", {"X": value})

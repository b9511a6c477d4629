"""The worker's one frozen settings object: read once, refused in one line, never echoing values."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from connectors.cli import main
from connectors.worker import WorkerSettings
from processors.settings import ClockMode
from streams.exceptions import SettingsError


def test_every_part_comes_from_the_environment_and_the_object_is_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFEPASSAGE_TOPIC_NAMESPACE", "ns-7")
    monkeypatch.setenv("SAFEPASSAGE_ROUTER_STALL_TIMEOUT_S", "12")
    monkeypatch.setenv("SAFEPASSAGE_ESCALATION_CLOCK", "external")

    settings = WorkerSettings.load("group-7", tmp_path)

    assert settings.kafka.topic_namespace == "ns-7"
    assert settings.router.stall_timeout_s == 12
    assert settings.escalation.clock is ClockMode.EXTERNAL
    assert settings.policy.sla == settings.router.sla()  # the SLA file, loaded once
    assert (settings.app_id, settings.data_dir) == ("group-7", tmp_path)
    with pytest.raises(ValidationError):
        settings.app_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SAFEPASSAGE_PARTITIONS", "not-a-number-7f3a"),
        ("SAFEPASSAGE_ROUTER_STALL_TIMEOUT_S", "1"),
        ("SAFEPASSAGE_ESCALATION_CLOCK", "sundial-7f3a"),
    ],
)
def test_a_bad_variable_is_named_in_one_line_without_its_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        WorkerSettings.load(None, tmp_path)
    message = str(caught.value)
    assert variable in message
    assert value not in message  # a value may be a password
    assert "\n" not in message


def test_the_worker_command_refuses_a_bad_variable_before_starting_anything(
    tmp_path: Path,
) -> None:
    env = {"SAFEPASSAGE_ROUTER_STALL_TIMEOUT_S": "-5"}
    result = CliRunner().invoke(main, ["worker", "--data-dir", str(tmp_path / "w")], env=env)
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: invalid settings: SAFEPASSAGE_ROUTER_STALL_TIMEOUT_S: ")
    assert not (tmp_path / "w").exists()


def test_any_command_refuses_a_bad_kafka_variable_in_one_line(tmp_path: Path) -> None:
    env = {"SAFEPASSAGE_PARTITIONS": "lots-7f3a"}
    result = CliRunner().invoke(main, ["topics", "list"], env=env)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: invalid settings: SAFEPASSAGE_PARTITIONS: ")
    assert "lots-7f3a" not in result.stderr


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT"])
def test_the_router_refuses_the_production_profile_unauthenticated_or_in_clear(
    tmp_path: Path, protocol: str
) -> None:
    env = {
        "SAFEPASSAGE_PROFILE": "production",
        "SAFEPASSAGE_SECURITY_PROTOCOL": protocol,
        "SAFEPASSAGE_SASL_MECHANISM": "SCRAM-SHA-512",
        "SAFEPASSAGE_SASL_USERNAME": "router",
        "SAFEPASSAGE_SASL_PASSWORD": "secret-7f3a",
    }
    result = CliRunner().invoke(main, ["worker", "--data-dir", str(tmp_path / "w")], env=env)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "production profile needs SAFEPASSAGE_SECURITY_PROTOCOL=SASL_SSL" in line
    assert protocol in line and "secret-7f3a" not in line
    assert not (tmp_path / "w").exists()


def test_the_production_profile_over_sasl_ssl_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "PROFILE": "production",
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "SCRAM-SHA-512",
        "SASL_USERNAME": "router",
        "SASL_PASSWORD": "secret",
    }.items():
        monkeypatch.setenv(f"SAFEPASSAGE_{name}", value)
    assert WorkerSettings.load(None, tmp_path).kafka.security_protocol == "SASL_SSL"

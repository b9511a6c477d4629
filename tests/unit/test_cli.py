"""The command line translates errors into a message and an exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.cli import docs, main
from infra.registry import SchemaRegistry
from schemas.exceptions import SchemaLoadError


def test_help_lists_the_command_groups() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("kafka", "topics", "run"):
        assert command in result.output


def test_missing_java_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = {
        "SAFEPASSAGE_BROKER_JAVA": "/nonexistent/java",
        "SAFEPASSAGE_BROKER_STATE_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(main, ["kafka", "start"], env=env)
    assert result.exit_code == 1
    assert "java was not found" in result.output
    assert "Traceback" not in result.output


def test_status_of_a_stopped_broker_exits_3(tmp_path: Path) -> None:
    env = {"SAFEPASSAGE_BROKER_STATE_DIR": str(tmp_path), "SAFEPASSAGE_BROKER_PORT": "1"}
    result = CliRunner().invoke(main, ["kafka", "status"], env=env)
    assert result.exit_code == 3
    assert "Apache Kafka 4." in result.output


def test_a_bad_sla_policy_file_stops_the_worker_with_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    """The SLA policy is loaded before Faust starts; its error is one line and exit code 1."""
    sla = tmp_path / "sla.yaml"
    sla.write_text("version: 1\nacknowledge: {emergency: 0h}\n", encoding="utf-8")
    keys = tmp_path / "keys.yaml"
    keys.write_text("", encoding="utf-8")  # no key yet, but a file: no open-page warning
    env = {"SAFEPASSAGE_ROUTER_SLA_POLICY": str(sla), "SAFEPASSAGE_API_KEYS_FILE": str(keys)}

    result = CliRunner().invoke(main, ["worker", "--data-dir", str(tmp_path / "w")], env=env)

    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: invalid SLA policy {sla}: ")
    assert "acknowledge.emergency: must be positive" in line
    assert "start_service: missing (required key)" in line  # every problem, on the same line


def test_an_error_of_any_package_is_one_line_that_rich_does_not_wrap_or_interpret(
    tmp_path: Path,
) -> None:
    """A long message with brackets comes out whole: no markup eaten, no wrapping."""
    folder = tmp_path / ("d" * 120) / ("e" * 120)
    folder.mkdir(parents=True)
    sla = folder / "[bold]sla.yaml"
    env = {"SAFEPASSAGE_ROUTER_SLA_POLICY": str(sla), "SAFEPASSAGE_API_KEYS_FILE": str(sla)}
    sla.write_text("", encoding="utf-8")  # an empty keys file; an empty policy

    result = CliRunner().invoke(main, ["worker", "--data-dir", str(tmp_path / "w")], env=env)

    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: invalid SLA policy {sla}: (top level): must be a mapping")


def test_docs_asyncapi_shows_an_error_as_one_line_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docs asyncapi`` keeps the promise of every other command: no traceback."""

    def broken_contract() -> str:
        raise SchemaLoadError("schemas/avro/case.closed.avsc is not valid JSON:\n  line 1")

    monkeypatch.setattr(docs, "render", broken_contract)
    output = tmp_path / "asyncapi.yaml"

    result = CliRunner().invoke(main, ["docs", "asyncapi", "--output", str(output)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: schemas/avro/case.closed.avsc is not valid JSON: line 1"
    ]
    assert not output.exists()


def test_registry_build_builds_only_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``registry build`` (run beside ``make test``) leaves a current build alone."""
    monkeypatch.setattr(SchemaRegistry, "needs_build", lambda self: False)
    result = CliRunner().invoke(main, ["registry", "build"])
    assert result.exit_code == 0
    assert "already built" in result.output

"""The command line translates errors into a message and an exit code."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from connectors.cli import main


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

"""The schema registry launcher's pure parts: settings, command lines, PID files.

Nothing here starts a process or runs Maven.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from infra.exceptions import InfraError, RegistryBuildError, ToolMissingError
from infra.registry import (
    PROJECT_DIR,
    RegistrySettings,
    SchemaRegistry,
    build_command,
    explain_build_failure,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A stand-in for infra/registry/: a POM and no build yet."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "pom.xml").write_text("<project>v1</project>\n", encoding="utf-8")
    return directory


@pytest.fixture
def launcher(tmp_path: Path, project: Path) -> SchemaRegistry:
    settings = RegistrySettings(state_dir=tmp_path / "state", port=18081)
    return SchemaRegistry(settings, project_dir=project)


def _unused_pid() -> int:
    pid = max(psutil.pids()) + 1000
    while psutil.pid_exists(pid):
        pid += 1000
    return pid


def test_settings_defaults() -> None:
    settings = RegistrySettings()

    assert settings.state_dir == Path(".state/registry")
    assert settings.host == "127.0.0.1"
    assert settings.port == 8081
    assert settings.heap == "512m"


def test_settings_come_from_the_environment_and_are_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFEPASSAGE_REGISTRY_PORT", "18999")
    monkeypatch.setenv("SAFEPASSAGE_REGISTRY_HEAP", "256m")
    monkeypatch.setenv("SAFEPASSAGE_REGISTRY_STATE_DIR", str(tmp_path))

    settings = RegistrySettings()

    assert (settings.port, settings.heap, settings.state_dir) == (18999, "256m", tmp_path)
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_port_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError):
        RegistrySettings(port=70000)


def test_urls(launcher: SchemaRegistry) -> None:
    assert launcher.url == "http://127.0.0.1:18081"
    assert launcher.ccompat_url == "http://127.0.0.1:18081/apis/ccompat/v7"


def test_command_line(launcher: SchemaRegistry, tmp_path: Path) -> None:
    command = launcher.command("/usr/bin/java")

    assert command[0] == "/usr/bin/java"
    assert "-Xmx512m" in command
    assert f"-Dsafepassage.registry.state={(tmp_path / 'state').resolve()}" in command
    assert launcher.marker in command
    assert "-Dquarkus.http.host=127.0.0.1" in command
    assert "-Dquarkus.http.port=18081" in command
    assert "-Dquarkus.datasource.jdbc.url=jdbc:h2:mem:registry_db" in command
    assert command[-2:] == ["-jar", str(launcher.runner_jar)]
    assert launcher.runner_jar.name == "quarkus-run.jar"


def test_default_project_is_the_repository_pom() -> None:
    registry = SchemaRegistry(RegistrySettings())

    assert registry.pom == PROJECT_DIR / "pom.xml"
    assert registry.pom.exists()
    assert "apicurio-registry-app" in registry.pom.read_text(encoding="utf-8")


def test_build_command_is_quiet_batch_package(project: Path) -> None:
    command = build_command("/usr/bin/mvn", project / "pom.xml")

    assert command[:3] == ["/usr/bin/mvn", "-B", "-q"]
    assert command[-1] == "package"
    assert str(project / "pom.xml") in command


def test_needs_build_until_the_jar_exists_and_matches_the_pom(
    launcher: SchemaRegistry, project: Path
) -> None:
    assert launcher.needs_build()

    launcher.runner_jar.parent.mkdir(parents=True)
    launcher.runner_jar.write_bytes(b"")
    assert launcher.needs_build()  # no stamp: built by hand, unknown POM

    launcher.build_stamp.write_text(launcher.pom_digest() + "\n", encoding="utf-8")
    assert not launcher.needs_build()
    assert not launcher.build()  # nothing to do, so Maven is not even looked for

    (project / "pom.xml").write_text("<project>v2</project>\n", encoding="utf-8")
    assert launcher.needs_build()


def test_no_pid_file_means_not_running(launcher: SchemaRegistry) -> None:
    assert launcher.pid() is None
    assert not launcher.is_running()
    assert launcher.stop() is None
    status = launcher.status()
    assert status.pid is None
    assert not status.answering


@pytest.mark.parametrize("content", ["", "not-a-pid\n"])
def test_unreadable_pid_file_is_cleared(launcher: SchemaRegistry, content: str) -> None:
    launcher.directory.mkdir(parents=True)
    launcher.pid_file.write_text(content, encoding="utf-8")

    assert launcher.pid() is None
    assert not launcher.pid_file.exists()


def test_pid_of_a_gone_process_is_stale(launcher: SchemaRegistry) -> None:
    launcher.directory.mkdir(parents=True)
    launcher.pid_file.write_text(f"{_unused_pid()}\n", encoding="utf-8")

    assert launcher.pid() is None
    assert not launcher.pid_file.exists()


def test_pid_of_another_process_is_never_signalled(
    launcher: SchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[int, signal.Signals]] = []
    monkeypatch.setattr("infra.process.send_signal", lambda pid, sig: sent.append((pid, sig)))
    launcher.directory.mkdir(parents=True)
    # This test's own process: alive, but its command line is not the registry's.
    launcher.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")

    assert launcher.stop() is None
    assert sent == []
    assert not launcher.pid_file.exists()


def test_pid_of_a_registry_from_another_state_folder_is_not_ours(
    tmp_path: Path, project: Path
) -> None:
    one = SchemaRegistry(RegistrySettings(state_dir=tmp_path / "one"), project_dir=project)
    other = SchemaRegistry(RegistrySettings(state_dir=tmp_path / "other"), project_dir=project)

    assert one.marker != other.marker
    assert one.marker not in other.command("java")


def test_missing_java_is_one_paragraph(tmp_path: Path, project: Path) -> None:
    settings = RegistrySettings(state_dir=tmp_path / "state", java="no-such-java-here")
    registry = SchemaRegistry(settings, project_dir=project)

    with pytest.raises(ToolMissingError) as caught:
        registry.start()

    message = str(caught.value)
    assert "Java was not found" in message
    assert "SAFEPASSAGE_REGISTRY_JAVA" in message
    assert "\n" not in message
    assert not registry.pid_file.exists()


def test_missing_maven_is_one_paragraph(tmp_path: Path, project: Path) -> None:
    settings = RegistrySettings(state_dir=tmp_path / "state", mvn="no-such-mvn-here")
    registry = SchemaRegistry(settings, project_dir=project)

    with pytest.raises(ToolMissingError) as caught:
        registry.build()

    assert "SAFEPASSAGE_REGISTRY_MVN" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreachable_central_is_explained_in_one_paragraph() -> None:
    output = (
        "\x1b[1;31m[ERROR]\x1b[m Failed to execute goal on project schema-registry: Could not "
        "resolve dependencies for project org.safepassage.infra:schema-registry:jar:1: "
        "Could not transfer artifact io.apicurio:apicurio-registry-app:pom:2.4.2.Final from/to "
        "central (https://repo.maven.apache.org/maven2): Unknown host repo.maven.apache.org\n"
        "[ERROR] \n[ERROR] To see the full stack trace of the errors, re-run Maven with -e.\n"
    )

    message = explain_build_failure(output)

    assert message.startswith("Could not build the schema registry")
    assert "Maven Central could not be reached" in message
    assert "Unknown host" in message
    assert "\n" not in message
    assert "\x1b" not in message


def test_other_build_failures_are_not_blamed_on_the_network() -> None:
    message = explain_build_failure("[ERROR] Build step ArcProcessor#validate threw\n")

    assert "Maven failed" in message
    assert "ArcProcessor" in message


def test_build_errors_are_infra_errors() -> None:
    assert issubclass(RegistryBuildError, InfraError)

"""Run a real schema registry (Apicurio Registry) on loopback.

Apicurio Registry is a Quarkus application; the Maven project
``infra/registry/`` builds it from the jars on Maven Central into
``infra/registry/target/quarkus-app/quarkus-run.jar`` (git-ignored). The
build runs once, and again only when the POM changes. The registry keeps its
data in memory (H2), so every start begins empty: fine for development and
tests, never for data that must survive a restart.

Clients use its Confluent-compatible API at :attr:`SchemaRegistry.ccompat_url`
(``http://127.0.0.1:8081/apis/ccompat/v7`` by default), for example with
``confluent_kafka.schema_registry.SchemaRegistryClient``.

The state folder (default ``.state/registry``, git-ignored) holds the JVM's
output and its PID file; the JVM's command line names that folder, which is
how :mod:`infra.process` recognises it before signalling a PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.exceptions import (
    RegistryBuildError,
    RegistryStartError,
    RegistryStopError,
)
from infra.maven import explain_maven_failure, require_tool
from infra.process import port_in_use, read_pid, spawn, stop_pid, tail

__all__ = [
    "PROJECT_DIR",
    "RegistrySettings",
    "RegistryStatus",
    "SchemaRegistry",
    "StartResult",
]

PROJECT_DIR = Path(__file__).resolve().parent / "registry"
CCOMPAT_PATH = "/apis/ccompat/v7"
_MARKER_PROPERTY = "safepassage.registry.state"


class RegistrySettings(BaseSettings):
    """Where and how the development schema registry runs.

    Every field can be set by the environment variable named in its
    description; the defaults fit one developer machine.
    """

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_REGISTRY_", frozen=True)

    state_dir: Path = Field(
        default=Path(".state/registry"),
        description="SAFEPASSAGE_REGISTRY_STATE_DIR: JVM output and PID file (git-ignored).",
    )
    host: str = Field(default="127.0.0.1", description="SAFEPASSAGE_REGISTRY_HOST: loopback only.")
    port: int = Field(
        default=8081, ge=1, le=65535, description="SAFEPASSAGE_REGISTRY_PORT: HTTP port."
    )
    heap: str = Field(default="512m", description="SAFEPASSAGE_REGISTRY_HEAP: JVM -Xmx.")
    start_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="SAFEPASSAGE_REGISTRY_START_TIMEOUT_S: wait for the API (build not counted).",
    )
    stop_timeout_s: float = Field(
        default=30.0, gt=0, description="SAFEPASSAGE_REGISTRY_STOP_TIMEOUT_S: then SIGKILL."
    )
    build_timeout_s: float = Field(
        default=1200.0,
        gt=0,
        description="SAFEPASSAGE_REGISTRY_BUILD_TIMEOUT_S: the Maven build (first one downloads).",
    )
    java: str = Field(default="java", description="SAFEPASSAGE_REGISTRY_JAVA: java executable.")
    mvn: str = Field(default="mvn", description="SAFEPASSAGE_REGISTRY_MVN: Maven executable.")


@dataclass(frozen=True)
class RegistryStatus:
    """What ``status`` reports."""

    url: str
    pid: int | None
    answering: bool


@dataclass(frozen=True)
class StartResult:
    """Outcome of ``start``."""

    url: str
    pid: int
    already_running: bool
    built: bool


class SchemaRegistry:
    """One Apicurio Registry JVM, with its state folder and PID file."""

    def __init__(
        self, settings: RegistrySettings | None = None, project_dir: Path = PROJECT_DIR
    ) -> None:
        self.settings = settings or RegistrySettings()
        self.project_dir = project_dir
        self.directory = self.settings.state_dir.resolve()

    # ----- paths and addresses -------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the registry (its own REST API lives under /apis/registry/v2)."""
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def ccompat_url(self) -> str:
        """URL of the Confluent-compatible API: what Confluent clients are given."""
        return self.url + CCOMPAT_PATH

    @property
    def pom(self) -> Path:
        """The Maven project that builds the registry."""
        return self.project_dir / "pom.xml"

    @property
    def runner_jar(self) -> Path:
        """The runnable jar the Quarkus build writes."""
        return self.project_dir / "target" / "quarkus-app" / "quarkus-run.jar"

    @property
    def build_stamp(self) -> Path:
        """Hash of the POM the current build was made from."""
        return self.project_dir / "target" / "safepassage-pom.sha256"

    @property
    def pid_file(self) -> Path:
        return self.directory / "registry.pid"

    @property
    def stdout_path(self) -> Path:
        """Everything the JVM prints (Quarkus logs to the console)."""
        return self.directory / "stdout.log"

    @property
    def marker(self) -> str:
        """The argument that identifies this registry's JVM in the process table."""
        return f"-D{_MARKER_PROPERTY}={self.directory}"

    # ----- build -----------------------------------------------------------------

    def pom_digest(self) -> str:
        """SHA-256 of the POM, to notice when the build must be redone."""
        return hashlib.sha256(self.pom.read_bytes()).hexdigest()

    def needs_build(self) -> bool:
        """True when the runnable jar is missing or was built from another POM."""
        if not self.runner_jar.exists() or not self.build_stamp.exists():
            return True
        return self.build_stamp.read_text(encoding="utf-8").strip() != self.pom_digest()

    def build(self, force: bool = False) -> bool:
        """Build the runnable registry with Maven if needed; True if a build ran.

        Offline first (no network once ~/.m2 holds everything), then online.
        A lock file keeps two launchers from building at the same time.
        """
        if not force and not self.needs_build():
            return False
        mvn = _require_tool("Maven", "mvn", self.settings.mvn)
        with self._build_lock():
            if not force and not self.needs_build():  # built by someone else meanwhile
                return False
            digest = self.pom_digest()
            self.build_stamp.unlink(missing_ok=True)
            base = build_command(mvn, self.pom)
            offline = self._run_maven([base[0], "-o", *base[1:]])
            if offline.returncode != 0:
                online = self._run_maven(base)
                if online.returncode != 0:
                    raise RegistryBuildError(explain_build_failure(online.stdout + online.stderr))
            if not self.runner_jar.exists():
                raise RegistryBuildError(
                    f"Maven built the schema registry but {self.runner_jar} is missing; check "
                    f"the Quarkus build configuration in {self.pom}."
                )
            self.build_stamp.write_text(digest + "\n", encoding="utf-8")
        return True

    def _run_maven(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                command,
                check=False,
                capture_output=True,
                text=True,
                cwd=self.project_dir,
                timeout=self.settings.build_timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise RegistryBuildError(
                f"Building the schema registry with Maven took longer than "
                f"{self.settings.build_timeout_s:.0f} s and was stopped. The first build "
                f"downloads a few hundred jars from Maven Central into ~/.m2; on a slow "
                f"network raise SAFEPASSAGE_REGISTRY_BUILD_TIMEOUT_S and run the command again."
            ) from exc

    @contextlib.contextmanager
    def _build_lock(self) -> Iterator[None]:
        target = self.project_dir / "target"
        target.mkdir(parents=True, exist_ok=True)
        with (target / ".safepassage-build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ----- process -------------------------------------------------------------

    def command(self, java: str) -> list[str]:
        """The JVM's command line (pure: starts nothing)."""
        return [
            java,
            f"-Xmx{self.settings.heap}",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            self.marker,
            f"-Dquarkus.http.host={self.settings.host}",
            f"-Dquarkus.http.port={self.settings.port}",
            # Always in memory, whatever REGISTRY_DATASOURCE_URL says in the environment.
            "-Dquarkus.datasource.jdbc.url=jdbc:h2:mem:registry_db",
            "-Dquarkus.log.console.color=false",
            "-jar",
            str(self.runner_jar),
        ]

    def pid(self) -> int | None:
        """PID of this registry's running JVM, or None; clears a stale PID file."""
        return read_pid(self.pid_file, self.marker)

    def is_running(self) -> bool:
        """Whether this registry's JVM is alive (it may still be starting)."""
        return self.pid() is not None

    def answers(self, timeout_s: float = 2.0) -> bool:
        """Whether GET <ccompat>/subjects answers 200."""
        try:
            with urllib.request.urlopen(  # noqa: S310 - the URL is built from settings: http only
                self.ccompat_url + "/subjects", timeout=timeout_s
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            return False

    def status(self) -> RegistryStatus:
        """PID and whether the API answers."""
        pid = self.pid()
        return RegistryStatus(self.url, pid, pid is not None and self.answers())

    def start(self) -> StartResult:
        """Build if needed, start the registry, and return once its API answers.

        Idempotent: a registry already running from this state folder is
        reported as such (after waiting until it answers) and left alone.
        """
        pid = self.pid()
        if pid is not None:
            self._wait_ready(None, time.monotonic() + self.settings.start_timeout_s)
            return StartResult(self.url, pid, already_running=True, built=False)
        java = _require_tool("Java", "java", self.settings.java)
        built = self.build()
        if port_in_use(self.settings.host, self.settings.port):
            raise RegistryStartError(
                f"Cannot start the schema registry: port {self.settings.port} on "
                f"{self.settings.host} is taken by a process that is not this registry (state "
                f"folder {self.directory}). Stop that process or choose another port with "
                f"SAFEPASSAGE_REGISTRY_PORT."
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        process = spawn(self.command(java), self.stdout_path, self.pid_file, self.directory)
        try:
            self._wait_ready(process, time.monotonic() + self.settings.start_timeout_s)
        except RegistryStartError:
            self._terminate(process.pid)  # do not leave a half-started JVM behind
            self.pid_file.unlink(missing_ok=True)
            raise
        return StartResult(self.url, process.pid, already_running=False, built=built)

    def stop(self) -> int | None:
        """Stop the registry (SIGTERM, then SIGKILL after the timeout).

        Returns the PID that was stopped, or None if it was not running.
        """
        pid = self.pid()
        if pid is None:
            return None
        self._terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def _terminate(self, pid: int) -> None:
        if not stop_pid(pid, self.settings.stop_timeout_s):
            raise RegistryStopError(
                f"The schema registry (PID {pid}) did not exit even after SIGKILL."
            )

    def _wait_ready(self, process: subprocess.Popen[bytes] | None, deadline: float) -> None:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise RegistryStartError(
                    f"The schema registry exited with code {process.returncode} while "
                    f"starting. Last log lines:\n{self.tail()}"
                )
            if process is None and self.pid() is None:
                raise RegistryStartError(
                    f"The schema registry started from {self.directory} exited while starting. "
                    f"Last log lines:\n{self.tail()}"
                )
            if self.answers(timeout_s=1.0):
                return
            time.sleep(0.25)
        raise RegistryStartError(
            f"The schema registry did not answer GET {self.ccompat_url}/subjects within "
            f"{self.settings.start_timeout_s:.0f} s. Last log lines:\n{self.tail()}"
        )

    def tail(self, lines: int = 15) -> str:
        """The last lines of the JVM's output, to explain a failed start."""
        return tail((self.stdout_path,), lines)


def build_command(mvn: str, pom: Path) -> list[str]:
    """The Maven command that builds the registry (pure: runs nothing)."""
    return [mvn, "-B", "-q", "-f", str(pom), "-Dstyle.color=never", "package"]


def explain_build_failure(output: str) -> str:
    """Turn Maven's output into one paragraph: what failed, why, what to do."""
    return explain_maven_failure(
        output, "build the schema registry (Apicurio Registry, infra/registry/pom.xml)"
    )


def _require_tool(name: str, setting: str, executable: str) -> str:
    return require_tool(
        name,
        executable,
        setting=setting,
        purpose="The local schema registry (Apicurio Registry) runs on Java 17 or newer and is "
        "built with Maven",
        env_prefix="SAFEPASSAGE_REGISTRY_",
    )

"""The services of the local platform, one entry each: what ``safepassage run`` supervises.

Each entry names the ``safepassage`` command the service runs, the Kafka
principal it runs as (its credentials reach it as ``SAFEPASSAGE_*``
variables, see :func:`connectors.cli.kafka.principal_environment`), how its
readiness is probed, and the port setting it listens on, if any. Every
process but the console also serves its probes and metrics on a port of its
own (:mod:`streams.metrics`); the run gives each its port explicitly
(``SAFEPASSAGE_METRICS_PORT``, from ``SAFEPASSAGE_RUN_METRICS_BASE_PORT``),
so it knows where to ask ``/readyz``, and checks them all free before
anything starts (a clash names the variable to change).

Adding a service is one line in :func:`platform_services` (positional: name,
command, Kafka principal, readiness probe, watched, port, URL).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors.console.settings import ConsoleSettings
from connectors.intake.settings import IntakeSettings
from connectors.platform.probes import https_probe
from connectors.platform.supervisor import Probe, Service
from streams.metrics import DEFAULT_PORTS
from streams.settings import KafkaSettings

__all__ = ["METRICS_BASE", "Platform", "PlatformService", "PortSetting", "platform_services"]

METRICS_BASE = DEFAULT_PORTS["worker"]
"""The first of the processes' default probe ports; the run keeps their order from its base."""


@dataclass(frozen=True)
class PortSetting:
    """A port the platform listens on, and the variable that sets it."""

    setting: str
    host: str
    port: int


@dataclass(frozen=True)
class Platform:
    """What the services of one run share: where things are, how to reach Kafka as whom."""

    state_dir: Path
    intake: IntakeSettings
    console: ConsoleSettings
    kafka: KafkaSettings
    """Namespace and the rest of the clients' settings (the bootstrap comes from the broker)."""
    ca: Path | None
    """The local CA that signs the intake's certificate (None: the system's trust store)."""
    webhooks_file: Path
    environment: Callable[[str], Mapping[str, str]]
    """The ``SAFEPASSAGE_*`` variables with which a service reaches the broker as a principal."""
    metrics_base_port: int = METRICS_BASE
    metrics_host: str = "127.0.0.1"

    @property
    def intake_url(self) -> str:
        scheme = "http" if self.intake.plaintext else "https"
        return f"{scheme}://{self.intake.host}:{self.intake.port}"

    @property
    def console_url(self) -> str:
        scheme = "http" if self.console.plaintext else "https"
        return f"{scheme}://{self.console.host}:{self.console.port}"

    @property
    def worker_dir(self) -> Path:
        return self.state_dir / "worker"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def metrics_port(self, kind: str) -> PortSetting:
        """The probe port of a process of ``kind`` (a key of ``DEFAULT_PORTS``) in this run."""
        port = self.metrics_base_port + DEFAULT_PORTS[kind] - METRICS_BASE
        return PortSetting("SAFEPASSAGE_RUN_METRICS_BASE_PORT", self.metrics_host, port)


@dataclass(frozen=True)
class PlatformService:
    """One service of the platform, as the summary and the supervisor see it."""

    name: str
    command: tuple[str, ...]
    """The ``safepassage`` command line it runs (without ``safepassage``)."""
    principal: str
    """The Kafka principal it runs as."""
    ready: Probe | None = None
    """How readiness is probed; None: ``GET /readyz`` on its probe port answers 200."""
    watch: bool = False
    """Probe it again while it runs and report unreachable / back (HTTP services)."""
    port: PortSetting | None = None
    url: str = ""
    """Where people reach it, for the summary."""
    env: Mapping[str, str] = field(default_factory=dict)
    probes: str | None = ""
    """Its kind in :data:`~streams.metrics.DEFAULT_PORTS` (default: its name); None: no probe
    server (the console)."""

    def metrics(self, platform: Platform) -> PortSetting | None:
        if self.probes is None:
            return None
        return platform.metrics_port(self.probes or self.name)

    def ports(self, platform: Platform) -> list[PortSetting]:
        """Every port it listens on, checked free before the run starts anything."""
        return [port for port in (self.port, self.metrics(platform)) if port is not None]

    def service(self, platform: Platform) -> Service:
        """The supervisor's view: ``python -m connectors.cli <command>`` as its principal."""
        env = {**platform.environment(self.principal), **self.env}
        probe = self.ready
        metrics = self.metrics(platform)
        if metrics is not None:
            env["SAFEPASSAGE_METRICS_HOST"] = metrics.host
            env["SAFEPASSAGE_METRICS_PORT"] = str(metrics.port)
            if probe is None:
                probe = https_probe(f"http://{metrics.host}:{metrics.port}/readyz", None)
        return Service(
            name=self.name,
            argv=(sys.executable, "-m", "connectors.cli", *self.command),
            env=env,
            probe=probe,
            watch=self.watch,
            description=self.url,
        )


def _https(  # noqa: PLR0917 - one positional entry per service keeps the list one line each
    name: str,
    command: tuple[str, ...],
    principal: str,
    port: PortSetting,
    url: str,
    ca: Path | None,
    env: Mapping[str, str] | None = None,
    probes: str | None = "",
) -> PlatformService:
    """An HTTPS service: ready when ``/healthz`` answers on its URL, watched while it runs."""
    ready = https_probe(f"{url}/healthz", ca)
    return PlatformService(name, command, principal, ready, True, port, url, env or {}, probes)


def platform_services(p: Platform) -> list[PlatformService]:
    """Every service ``safepassage run`` starts, in start order; one entry per service.

    The consumers are ready when their ``/readyz`` says so (the worker: the
    directory replayed and partitions assigned; a relay: it consumes); the
    HTTP services when their ``/healthz`` answers over HTTPS on the address
    people use, watched while they run (the console serves no probe port).
    """
    intake = PortSetting("SAFEPASSAGE_INTAKE_PORT", p.intake.host, p.intake.port)
    console = PortSetting("SAFEPASSAGE_CONSOLE_PORT", p.console.host, p.console.port)
    to_intake = {"SAFEPASSAGE_CONSOLE_INTAKE_URL": p.intake_url}
    worker = ("worker", "--data-dir", str(p.worker_dir))
    console_serve = ("console", "serve")
    return [
        PlatformService("router", worker, "router", probes="worker"),
        _https("intake", ("intake", "serve"), "intake", intake, p.intake_url, p.ca),
        PlatformService("webhooks", ("deliver", "webhooks"), "delivery"),
        PlatformService("offers-relay", ("deliver", "kafka"), "delivery"),
        PlatformService("inbound-relay", ("intake", "relay"), "intake"),
        _https("console", console_serve, "console", console, p.console_url, p.ca, to_intake, None),
    ]

"""The services of the local platform, one entry each: what ``safepassage run`` supervises.

Each entry names the ``safepassage`` command the service runs, the Kafka
principal it runs as (its credentials reach it as ``SAFEPASSAGE_*``
variables, see :func:`connectors.cli.kafka.principal_environment`), how its
readiness is probed, and the port setting it listens on, if any (checked
free before anything starts; a clash names the variable to change).
Adding a service is one line in :func:`platform_services`, e.g. the
operators' console once ``safepassage console serve`` exists::

    PlatformService("console", ("console", "serve"), "operator", console_healthz, True,
                    PortSetting("SAFEPASSAGE_CONSOLE_PORT", host, port), console_url),

(positional: name, command, Kafka principal, readiness: a probe or a text of its
own log, watched, port, URL).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors.intake.settings import IntakeSettings
from connectors.platform.probes import https_probe, log_probe
from connectors.platform.supervisor import Probe, Service
from streams.settings import KafkaSettings

__all__ = ["Platform", "PlatformService", "PortSetting", "platform_services"]


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
    kafka: KafkaSettings
    """Namespace and the rest of the clients' settings (the bootstrap comes from the broker)."""
    ca: Path | None
    """The local CA that signs the intake's certificate (None: the system's trust store)."""
    webhooks_file: Path
    environment: Callable[[str], Mapping[str, str]]
    """The ``SAFEPASSAGE_*`` variables with which a service reaches the broker as a principal."""

    @property
    def intake_url(self) -> str:
        scheme = "http" if self.intake.plaintext else "https"
        return f"{scheme}://{self.intake.host}:{self.intake.port}"

    @property
    def worker_dir(self) -> Path:
        return self.state_dir / "worker"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def logged(self, service: str, marker: str) -> Probe:
        return log_probe(self.log_dir / f"{service}.log", marker)


@dataclass(frozen=True)
class PlatformService:
    """One service of the platform, as the summary and the supervisor see it."""

    name: str
    command: tuple[str, ...]
    """The ``safepassage`` command line it runs (without ``safepassage``)."""
    principal: str
    """The Kafka principal it runs as."""
    ready: Probe | str
    """How readiness is probed; a text: when it appears in the service's own log."""
    watch: bool = False
    """Probe it again while it runs and report unreachable / back (HTTP services)."""
    port: PortSetting | None = None
    url: str = ""
    """Where people reach it, for the summary."""
    env: Mapping[str, str] = field(default_factory=dict)

    def service(self, platform: Platform) -> Service:
        """The supervisor's view: ``python -m connectors.cli <command>`` as its principal."""
        return Service(
            name=self.name,
            argv=(sys.executable, "-m", "connectors.cli", *self.command),
            env={**platform.environment(self.principal), **self.env},
            probe=platform.logged(self.name, self.ready)
            if isinstance(self.ready, str)
            else self.ready,
            watch=self.watch,
            description=self.url,
        )


def platform_services(p: Platform) -> list[PlatformService]:
    """Every service ``safepassage run`` starts, in start order; one entry per service.

    A consumer is ready when its log shows it started (see :mod:`.probes` for why
    not by its consumer group).
    """
    intake = PortSetting("SAFEPASSAGE_INTAKE_PORT", p.intake.host, p.intake.port)
    healthz = https_probe(f"{p.intake_url}/healthz", p.ca)
    worker = ("worker", "--data-dir", str(p.worker_dir))
    return [
        PlatformService("router", worker, "router", "[^Worker]: Ready"),
        PlatformService(
            "intake", ("intake", "serve"), "intake", healthz, True, intake, p.intake_url
        ),
        PlatformService("webhooks", ("deliver", "webhooks"), "delivery", "webhooks.started"),
        PlatformService("offers-relay", ("deliver", "kafka"), "delivery", "offers_relay.started"),
        PlatformService("inbound-relay", ("intake", "relay"), "intake", "inbound_relay.started"),
    ]

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

With ``--demo`` (:attr:`Platform.demo`) the router reads the demo SLA policy
(720 times faster), ticks every half second and lets referrals cross the
demo directory's borders, and two more services run: the provider
simulator (``demo-providers``, at the demo webhook URL) and the scenario
streamer (``demo-stream``). Both are *late*: the run starts them once the
others are ready and the demo directory is imported, so the first
survivor finds its providers (docs/demo.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from connectors.console.settings import ConsoleSettings
from connectors.demo.plan import CROSS_BORDER_PAIRS, DEMO_SLA_POLICY, DEMO_TICK_INTERVAL_S
from connectors.intake.settings import IntakeSettings
from connectors.platform.probes import https_probe
from connectors.platform.supervisor import Probe, Service
from streams.metrics import DEFAULT_PORTS
from streams.settings import KafkaSettings

__all__ = [
    "METRICS_BASE",
    "Platform",
    "PlatformService",
    "PortSetting",
    "demo_services",
    "demo_webhook_port",
    "platform_services",
]

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
    demo: bool = False
    """``safepassage run --demo``: the demo's router settings and its two services."""
    demo_webhook_url: str = "http://127.0.0.1:8090/webhooks"
    """Where the demo providers' webhooks go (the provider simulator listens there)."""
    demo_interval_s: float = 4.0
    """Seconds between two survivors of the scenario streamer."""

    @property
    def credentials_file(self) -> Path:
        """The demo keys (owner-only)."""
        return self.state_dir / "demo" / "credentials.yaml"

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
    principal: str | None
    """The Kafka principal it runs as; None: it does not use Kafka (the demo's services)."""
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
    late: bool = False
    """Started once the others are ready and the demo directory is imported (the demo's)."""

    def metrics(self, platform: Platform) -> PortSetting | None:
        if self.probes is None:
            return None
        return platform.metrics_port(self.probes or self.name)

    def ports(self, platform: Platform) -> list[PortSetting]:
        """Every port it listens on, checked free before the run starts anything."""
        return [port for port in (self.port, self.metrics(platform)) if port is not None]

    def service(self, platform: Platform) -> Service:
        """The supervisor's view: ``python -m connectors.cli <command>`` as its principal."""
        kafka = platform.environment(self.principal) if self.principal else {}
        env = {**kafka, **self.env}
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
    router = _demo_router() if p.demo else {}
    services = [
        PlatformService("router", worker, "router", env=router, probes="worker"),
        _https("intake", ("intake", "serve"), "intake", intake, p.intake_url, p.ca),
        PlatformService("webhooks", ("deliver", "webhooks"), "delivery"),
        PlatformService("offers-relay", ("deliver", "kafka"), "delivery"),
        PlatformService("inbound-relay", ("intake", "relay"), "intake"),
        _https("console", console_serve, "console", console, p.console_url, p.ca, to_intake, None),
    ]
    return services + (demo_services(p) if p.demo else [])


def _demo_router() -> dict[str, str]:
    """The router of a demo run: the demo SLA policy, a short tick, the directory's borders."""
    return {
        "SAFEPASSAGE_ROUTER_SLA_POLICY": str(DEMO_SLA_POLICY),
        "SAFEPASSAGE_ESCALATION_TICK_INTERVAL_S": str(DEMO_TICK_INTERVAL_S),
        "SAFEPASSAGE_ROUTER_CROSS_BORDER_PAIRS": json.dumps([list(p) for p in CROSS_BORDER_PAIRS]),
    }


def demo_webhook_port(p: Platform) -> PortSetting:
    """Where the provider simulator listens: the host and port of the demo webhook URL."""
    where = urlsplit(p.demo_webhook_url)
    port = where.port or (443 if where.scheme == "https" else 80)
    return PortSetting("SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL", where.hostname or "127.0.0.1", port)


def demo_services(p: Platform) -> list[PlatformService]:
    """The demo's two services: the provider simulator, then the scenario streamer (both late).

    Neither uses Kafka: the simulator receives webhooks and answers through
    the intake with each provider's key, the streamer sends through the
    intake with each agency's key, both over HTTPS checked against the CA.
    """
    listen = demo_webhook_port(p)
    health = f"http://{listen.host}:{listen.port}/healthz"
    intake = ("--intake", p.intake_url, "--credentials", str(p.credentials_file))
    trust = ("--ca", str(p.ca)) if p.ca else ()
    simulator = ("demo", "providers", "--listen", p.demo_webhook_url, *intake, *trust)
    stream = ("demo", "stream", "--interval-s", f"{p.demo_interval_s:g}", *intake, *trust)
    return [
        PlatformService(
            "demo-providers",
            simulator,
            None,
            https_probe(health, None),
            True,
            listen,
            p.demo_webhook_url,
            probes=None,
            late=True,
        ),
        PlatformService("demo-stream", stream, None, probes=None, late=True),
    ]

"""``safepassage run``: the broker, its topics, ACLs and credentials, demo keys, every service.

The terminal shows a progress line per slow step, one summary once every
service is ready, then one line per change of a service's state; each
service's output goes to ``<state>/logs/<service>.log``. Ctrl-C or SIGTERM
stops every service (each in its own process group, SIGKILL after
``SAFEPASSAGE_RUN_STOP_TIMEOUT_S``) and the broker if this run started it;
a broker that was already running is left running, and the summary says so.

Every path derives from one state directory (``--state-dir``, default
``.state``): the broker's (``kafka/``), the intake's (``intake/``), the
worker's tables (``worker/``), the API keys file, the logs and the demo
credentials. A variable set explicitly (``SAFEPASSAGE_BROKER_STATE_DIR``
...) still wins; the children inherit the same environment, so every
process agrees on every path and port. ``SAFEPASSAGE_BROKER_PORT`` sets the
broker's port and, through each principal's environment, every client's
bootstrap address.

Once the intake is ready, every run imports the demo directory
(``infra/demo/directory.hsds.json``, 33 fictional providers) through the
intake's directory API with the demo directory-admin key: the first run
registers them, every later one updates them to the same entries. With
``--demo`` (:attr:`RunSettings.demo`) the demo's two services then start
(the provider simulator and the scenario streamer, docs/demo.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.markup import escape

from connectors.auth import Role
from connectors.cli.acl import apply_matrix
from connectors.cli.kafka import principal_environment, principal_settings
from connectors.console.settings import ConsoleSettings
from connectors.directory.client import DirectoryClient, load_directory
from connectors.directory.demo import DEMO_FILE
from connectors.exceptions import ConnectorsError, DirectoryClientError
from connectors.intake.settings import IntakeSettings
from connectors.platform.demo import (
    DEMO_PRINCIPALS,
    DemoKey,
    ensure_demo_keys,
    ensure_demo_webhooks,
)
from connectors.platform.demo_env import demo_environment, write_demo_env
from connectors.platform.lock import RunLock
from connectors.platform.probes import tcp_probe
from connectors.platform.services import (
    METRICS_BASE,
    Platform,
    PlatformService,
    PortSetting,
    platform_services,
)
from connectors.platform.supervisor import Backoff, Change, State, Supervisor
from infra import Deployment, InfraError, single_node
from infra.maven import resolve_classpath
from infra.settings import BrokerSettings
from streams.acls import load_matrix
from streams.logs import configure_logging
from streams.metrics import DEFAULT_PORTS
from streams.provisioning import provision
from streams.settings import KafkaSettings, LogFormat, read_settings

__all__ = ["PortInUseError", "RunSettings", "run_platform"]


class PortInUseError(ConnectorsError):
    """A port the platform needs is taken by another program."""


class RunSettings(BaseSettings):
    """How ``safepassage run`` runs (prefix ``SAFEPASSAGE_RUN_``)."""

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_RUN_", frozen=True)

    state_dir: Path = Field(
        default=Path(".state"),
        description="SAFEPASSAGE_RUN_STATE_DIR: every path of the run derives from it.",
    )
    ready_timeout_s: float = Field(
        default=240.0, gt=0, description="SAFEPASSAGE_RUN_READY_TIMEOUT_S: wait for readiness."
    )
    stop_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="SAFEPASSAGE_RUN_STOP_TIMEOUT_S: SIGTERM, then SIGKILL to a service's group.",
    )
    metrics_base_port: int = Field(
        default=METRICS_BASE,
        ge=1,
        le=65000,
        description=(
            "SAFEPASSAGE_RUN_METRICS_BASE_PORT: the services' probe and metrics ports, in the "
            "order of their defaults (router, intake, inbound relay, offers relay, webhooks)."
        ),
    )
    demo_webhook_url: str = Field(
        default="http://127.0.0.1:8090/webhooks",
        description=(
            "SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL: where the demo providers' webhooks go "
            "(<url>/<provider id>), written once into <state>/demo/webhooks.yaml; with --demo "
            "the provider simulator listens there."
        ),
    )
    demo: bool = Field(
        default=False,
        description=(
            "SAFEPASSAGE_RUN_DEMO (or --demo): also run the live demo, a provider simulator and "
            "a scenario streamer, with the router on the demo SLA policy (docs/demo.md)."
        ),
    )
    demo_interval_s: float = Field(
        default=4.0,
        ge=0.1,
        description="SAFEPASSAGE_RUN_DEMO_INTERVAL_S: seconds between two survivors of the demo.",
    )


def derive_environment(state_dir: Path) -> None:
    """Point every component's paths into ``state_dir``, unless a variable is set already.

    Set in this process's environment, which every child inherits.
    """
    defaults = {
        "SAFEPASSAGE_BROKER_STATE_DIR": state_dir / "kafka",
        "SAFEPASSAGE_INTAKE_STATE_DIR": state_dir / "intake",
        "SAFEPASSAGE_CONSOLE_STATE_DIR": state_dir / "console",
        "SAFEPASSAGE_API_KEYS_FILE": state_dir / "api-keys.yaml",
        "SAFEPASSAGE_WEBHOOKS_FILE": state_dir / "demo" / "webhooks.yaml",
    }
    for name, path in defaults.items():
        os.environ.setdefault(name, str(path))


# ------------------------------------------------------------------ the terminal


class _PipeSafeConsole(Console):
    """rich's console, but a reader gone from the pipe ends the output, not the process.

    rich's default raises ``SystemExit(1)`` there: ``make run | cat`` and
    Ctrl-C end ``cat`` first, and the run would exit with its services and
    broker still running.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


class Output:
    """The run's terminal: progress of slow steps, the summary, one line per change.

    Writes survive a closed pipe (``make run | cat`` after Ctrl-C ends ``cat``
    first): the rest goes to /dev/null, so the stop still completes.
    """

    def __init__(self) -> None:
        wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
        self.console = _PipeSafeConsole(width=200 if wide else None, highlight=False)
        self.live = sys.stdout.isatty()

    def say(self, text: str) -> None:
        try:
            self.console.print(text, soft_wrap=True)
        except OSError:  # a write rich does not guard; same remedy
            self.console.on_broken_pipe()

    def change(self, change: Change) -> None:
        style = {
            State.READY: "green",
            State.BACK: "green",
            State.EXITED: "red",
            State.UNREACHABLE: "yellow",
            State.RESTARTED: "yellow",
        }.get(change.state, "")
        state = f"[{style}]{change.state.value}[/]" if style else change.state.value
        detail = f"  {escape(change.detail)}" if change.detail else ""
        self.say(f"{time.strftime('%H:%M:%S')} {change.service:<14} {state}{detail}")

    @contextlib.contextmanager
    def waiting(self, title: str) -> Iterator[None]:
        """A spinner on a terminal while waiting (change lines print above it); a line in a pipe."""
        if self.live:
            with self.console.status(title):
                yield
        else:
            self.say(f"… {title}")
            yield

    @contextlib.contextmanager
    def step(self, title: str, hint: str = "") -> Iterator[None]:
        """A slow step: a spinner on a terminal, a line before and after in a pipe.

        ``hint`` (how long it may take) is shown while it runs.
        """
        begun = time.monotonic()
        try:
            with self.waiting(f"{title} [dim]({hint})[/]" if hint else title):
                yield
        except BaseException:
            self.say(f"[red]✗[/] {title}")
            raise
        self.say(f"[green]✓[/] {title} ({time.monotonic() - begun:.1f} s)")


# ------------------------------------------------------------------------ ports


def check_ports(ports: Sequence[PortSetting]) -> None:
    """Every port free, or one line naming the port and the variable that moves it."""
    for wanted in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((wanted.host, wanted.port))
            except OSError:
                raise PortInUseError(
                    f"port {wanted.port} on {wanted.host} is in use by another program: "
                    f"set {wanted.setting} to a free port"
                ) from None


def broker_ports(settings: BrokerSettings) -> list[PortSetting]:
    host = settings.host
    ports = [PortSetting("SAFEPASSAGE_BROKER_PORT", host, settings.port)]
    ports.append(
        PortSetting("SAFEPASSAGE_BROKER_CONTROLLER_PORT", host, settings.resolved_controller_port)
    )
    if settings.secured:
        ports.append(
            PortSetting("SAFEPASSAGE_BROKER_INTERNAL_PORT", host, settings.resolved_internal_port)
        )
    return ports


# -------------------------------------------------------------------------- run


def _terminate_as_interrupt(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM during the set-up ends it like Ctrl-C (the broker started so far is stopped)."""
    raise KeyboardInterrupt


def run_platform(settings: RunSettings) -> None:
    """Bring the platform up, supervise it until SIGINT/SIGTERM, stop what was started."""
    state_dir = settings.state_dir.resolve()
    derive_environment(state_dir)
    out = Output()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    # This process's own log lines (probes' HTTP requests, client libraries) are
    # not for the terminal either: the terminal has the summary and the changes.
    own_log = (state_dir / "logs" / "run.log").open("a", encoding="utf-8")
    kafka_settings = read_settings(KafkaSettings)
    configure_logging(LogFormat.JSON, kafka_settings.log_level, own_log)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per readiness probe is noise
    with RunLock(state_dir / "run.lock") as lock:
        if lock.stale_pid is not None:
            out.say(f"(the previous run, pid {lock.stale_pid}, ended without stopping)")
        broker = read_settings(BrokerSettings)
        deployment = single_node(broker)
        intake = read_settings(IntakeSettings)
        was_running = any(node.pid() is not None for node in deployment.nodes)
        kafka = read_settings(KafkaSettings)
        platform = Platform(
            state_dir=state_dir,
            intake=intake,
            console=read_settings(ConsoleSettings),
            kafka=kafka,
            # The intake serves TLS from the local CA, unless given a certificate of its own.
            ca=None if intake.tls_certfile else broker.security_dir / "ca.pem",
            webhooks_file=Path(os.environ["SAFEPASSAGE_WEBHOOKS_FILE"]),
            environment=lambda principal: principal_environment(deployment, principal),
            metrics_base_port=settings.metrics_base_port,
            demo=settings.demo,
            demo_webhook_url=settings.demo_webhook_url,
            demo_interval_s=settings.demo_interval_s,
        )
        services = platform_services(platform)
        check_ports(
            [
                *([] if was_running else broker_ports(broker)),
                *(port for service in services for port in service.ports(platform)),
            ]
        )
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        try:
            _bring_up(out, deployment, platform, was_running)
            keys = _demo_keys(out, platform, settings)
            _run_services(out, settings, deployment, platform, services, keys, was_running)
        except KeyboardInterrupt:
            out.say("interrupted: stopping what was started")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop runs to its end
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if not was_running:
                _stop_broker(out, deployment)
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)


_BROKER_LIFECYCLE = threading.Lock()
"""Held while the broker watch starts the broker again: the final stop waits for that start,
so a broker restarted in the last seconds of a run is stopped too, not left behind."""


def _start_broker(deployment: Deployment) -> None:
    with _BROKER_LIFECYCLE:
        deployment.start()


def _stop_broker(out: Output, deployment: Deployment) -> None:
    """Stop the broker this run started (after a restart in progress, if any)."""
    with _BROKER_LIFECYCLE:
        if any(node.pid() is not None for node in deployment.nodes):
            with out.step(f"Stopping Kafka on {deployment.bootstrap}", "a few seconds"):
                deployment.stop()


def _admin(deployment: Deployment, kafka: KafkaSettings) -> KafkaSettings:
    """The ``admin`` principal's client settings (the address alone on a plaintext broker)."""
    if deployment.settings.secured:
        return principal_settings(deployment, "admin", kafka)
    return kafka.model_copy(update={"bootstrap_servers": deployment.bootstrap})


def _bring_up(out: Output, deployment: Deployment, platform: Platform, was_running: bool) -> None:
    broker = deployment.settings
    with out.step("Broker jars (Maven, from ~/.m2)", "first run: downloads ~60 MB, 1-3 min"):
        resolve_classpath(broker.state_dir, broker.mvn)
    verb = "Checking the running" if was_running else "Starting"
    with out.step(f"{verb} Kafka on {deployment.bootstrap}", "about 10-30 s"):
        deployment.start()
    admin = _admin(deployment, platform.kafka)
    with out.step("Topics of the catalog"):
        the_plan, created = provision(admin)
    out.say(f"  {len(the_plan.create) + len(the_plan.in_order)} topics, {len(created)} created")
    if broker.secured:
        # The plan's line per binding is not for this terminal; the summary counts them.
        with (
            out.step("ACLs of streams/acl_matrix.yaml and the principals' credentials"),
            contextlib.redirect_stdout(io.StringIO()) as plan_lines,
        ):
            apply_matrix(admin, load_matrix())
        changed = sum(
            1
            for line in plan_lines.getvalue().splitlines()
            if line.startswith(("added", "removed", "created"))
        )
        out.say(f"  ACLs as in the matrix, {changed} binding(s) or party topic(s) changed")


def _demo_keys(out: Output, platform: Platform, settings: RunSettings) -> list[DemoKey]:
    with out.step("Demo API keys and webhook endpoints"):
        keys = ensure_demo_keys(platform.intake.api_keys_file, platform.credentials_file)
        ensure_demo_webhooks(platform.webhooks_file, keys, settings.demo_webhook_url)
        probes = {kind: platform.metrics_port(kind) for kind in DEFAULT_PORTS}
        environment = demo_environment(
            keys,
            intake_url=platform.intake_url,
            console_url=platform.console_url,
            ca=platform.ca,
            metrics={kind: f"http://{p.host}:{p.port}" for kind, p in probes.items()},
        )
        write_demo_env(platform.state_dir / "demo" / "demo.env", environment)
    return keys


DIRECTORY_PATIENCE_S = 120.0
"""How long the import of the demo directory waits for an intake still catching up (503)."""


def import_demo_directory(
    platform: Platform,
    keys: Sequence[DemoKey],
    cancelled: threading.Event,
    client: DirectoryClient | None = None,
    retry_every_s: float = 2.0,
) -> dict[str, Any]:
    """Import the demo directory through the intake's API as the demo directory administrator.

    Blocking (a thread of the run). An intake whose copy of the directory is
    still catching up answers 503, one not answering yet is unreachable:
    both are asked again every 2 s within :data:`DIRECTORY_PATIENCE_S`.
    Importing again updates every provider to the same entry. ``client``
    and ``retry_every_s`` stand in for the platform's (tests).
    """
    if client is None:
        admin = next(key.key for key in keys if key.role is Role.DIRECTORY_ADMIN)
        verify = ssl.create_default_context(cafile=str(platform.ca)) if platform.ca else True
        client = DirectoryClient(platform.intake_url, admin, verify=verify, timeout_s=30.0)
    deadline = time.monotonic() + DIRECTORY_PATIENCE_S
    while True:
        try:
            return load_directory(client, DEMO_FILE)
        except DirectoryClientError as exc:
            if exc.status not in {None, 503} or time.monotonic() > deadline:
                raise
        if cancelled.wait(retry_every_s):
            raise DirectoryClientError("the run was stopped before the directory was imported")


def _run_services(  # noqa: PLR0917 - the run's parts, handed over once
    out: Output,
    settings: RunSettings,
    deployment: Deployment,
    platform: Platform,
    services: Sequence[PlatformService],
    keys: Sequence[DemoKey],
    was_running: bool,
) -> None:
    supervisor = Supervisor(
        [service.service(platform) for service in services if not service.late],
        platform.log_dir,
        out.change,
        stop_timeout_s=settings.stop_timeout_s,
    )
    asyncio.run(
        _supervise(out, settings, supervisor, deployment, platform, services, keys, was_running)
    )


async def _supervise(  # noqa: PLR0917 - as above
    out: Output,
    settings: RunSettings,
    supervisor: Supervisor,
    deployment: Deployment,
    platform: Platform,
    services: Sequence[PlatformService],
    keys: Sequence[DemoKey],
    was_running: bool,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    watch: asyncio.Task[None] | None = None
    cancelled = threading.Event()
    try:
        await supervisor.start()
        names = ", ".join(service.name for service in services if not service.late)
        if not await _ready_or_stopped(out, settings, supervisor, stop, names, platform):
            return
        with out.waiting("Importing the demo directory through the intake"):
            directory = await _until_stopped(
                stop,
                asyncio.to_thread(_directory_line, platform, keys, cancelled),
            )
        if directory is None:
            return
        late = [service.service(platform) for service in services if service.late]
        if late:
            await supervisor.add(late)
            names = ", ".join(service.name for service in late)
            if not await _ready_or_stopped(out, settings, supervisor, stop, names, platform):
                return
        _summary(out, deployment, platform, services, keys, was_running, directory)
        watch = asyncio.create_task(_watch_broker(out, deployment, ours=not was_running))
        await stop.wait()
    finally:
        cancelled.set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if watch is not None:
            watch.cancel()
        out.say("stopping the services")
        await supervisor.stop()


async def _until_stopped(stop: asyncio.Event, work: Any) -> Any:
    """The awaitable's result, or None when the run is stopped first (the work is cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        task.cancel()
        return None
    stopped.cancel()
    return await task


async def _ready_or_stopped(  # noqa: PLR0917 - the run's parts, handed over once
    out: Output,
    settings: RunSettings,
    supervisor: Supervisor,
    stop: asyncio.Event,
    names: str,
    platform: Platform,
) -> bool:
    """Wait for every service started so far; False if the run was stopped meanwhile."""
    with out.waiting(f"Waiting for {names} to be ready"):
        late = await _until_stopped(stop, supervisor.wait_ready(settings.ready_timeout_s))
    if late is None:
        return False
    if late:
        out.say(
            f"[yellow]not ready after {settings.ready_timeout_s:.0f} s:[/] {', '.join(late)} "
            f"(see {platform.state_dir / 'logs'}); the others run on"
        )
    return True


def _directory_line(platform: Platform, keys: Sequence[DemoKey], cancelled: threading.Event) -> str:
    """The summary's line about the demo directory's import (its failure included: the run goes
    on, the directory can be imported by hand)."""
    try:
        report = import_demo_directory(platform, keys, cancelled)
    except DirectoryClientError as exc:
        return f"[yellow]not imported[/]: {escape(exc.one_line())} (docs/directory.md)"
    registered = len(report.get("registered") or ())
    updated = len(report.get("updated") or ())
    return (
        f"{registered + updated} providers of {DEMO_FILE.name} imported through the intake "
        f"({registered} registered, {updated} updated)"
    )


async def _watch_broker(
    out: Output,
    deployment: Deployment,
    ours: bool,
    interval_s: float = 5.0,
    backoff: Backoff | None = None,
) -> None:
    """One line when the broker stops answering on its port, one when it is back.

    A broker this run started whose JVM is gone (a crash, ``kill -9``) is
    started again with backoff, as a service would be; the services
    reconnect by themselves. One stopped by hand (``make stop``) is gone as
    well, and comes back: Ctrl-C is how a run is stopped.
    """
    node = deployment.nodes[0]
    probe = tcp_probe(node.host, node.port)
    backoff = backoff or Backoff(initial_s=2.0)
    up, restarts = True, 0
    while True:
        await asyncio.sleep(interval_s)
        answers = await probe()
        if answers != up:
            up = answers
            out.change(Change("kafka", State.BACK if up else State.UNREACHABLE, node.bootstrap))
        if up or not ours or node.pid() is not None:
            continue
        restarts += 1
        delay = backoff.delay(restarts)
        out.change(Change("kafka", State.EXITED, f"its JVM is gone; restart in {delay:.0f} s"))
        await asyncio.sleep(delay)
        try:
            await asyncio.to_thread(_start_broker, deployment)
        except InfraError as exc:
            out.change(Change("kafka", State.EXITED, exc.one_line()))
            continue
        out.change(Change("kafka", State.RESTARTED, f"{node.bootstrap}, restart {restarts}"))


def _summary(  # noqa: PLR0917 - the run's parts, handed over once
    out: Output,
    deployment: Deployment,
    platform: Platform,
    services: Sequence[PlatformService],
    keys: Sequence[DemoKey],
    was_running: bool,
    directory: str,
) -> None:
    broker = deployment.settings
    state = platform.state_dir
    security = "SASL_SSL/SCRAM-SHA-512, ACLs" if broker.secured else "PLAINTEXT (tests only)"
    version = deployment.nodes[0].kafka_version() or "?"
    lines = [
        "",
        f"[bold]SafePassage is running[/] (state: {state})",
        f"  Kafka        {deployment.bootstrap}  {security}, Apache Kafka {version}",
    ]
    if broker.secured:
        clients = broker.security_dir / "clients"
        lines += [
            f"               client files: {clients}/<principal>.properties and .env (owner-only)",
            f"               CA: {broker.security_dir / 'ca.pem'}",
        ]
    intake = platform.intake_url
    for service in services:
        if service.url:
            lines.append(f"  {service.name:<12} {service.url}")
        if service.url == intake:
            lines.append(f"               API docs: {intake}/docs")
    lines += [
        f"  Services     {', '.join(s.name for s in services)}",
        f"  Logs         {state / 'logs'}/<service>.log",
        f"  Directory    {directory}",
        f"  Demo keys    {platform.credentials_file} (owner-only; demo keys of this local "
        "platform)",
    ]
    shown = {principal.name for principal in DEMO_PRINCIPALS}
    for key in keys:
        if key.principal not in shown:
            continue
        ids = f"agency_id {key.agency_id}" if key.agency_id else ""
        ids = f"provider_id {key.provider_id}" if key.provider_id else ids
        lines.append(f"    {key.principal:<22} {key.role.value:<15} {key.key}  {ids}")
    others = len(keys) - len(shown & {key.principal for key in keys})
    if others:
        lines.append(
            f"    demo-provider-<slug>   provider        {others} keys, one per demo directory "
            "provider (in the file)"
        )
    lines.append(f"  Webhooks     {platform.webhooks_file} (demo providers' endpoints)")
    lines.append(
        f"  Shell        set -a; . {platform.state_dir / 'demo' / 'demo.env'}; set +a"
        "   (URLs, CA, a demo key per role: what the docs' examples read)"
    )
    if platform.demo:
        lines.append(
            f"  Demo         a fictional survivor every {platform.demo_interval_s:g} s "
            f"(demo-stream), providers answering at {platform.demo_webhook_url} "
            "(demo-providers), SLA time 720 times faster: docs/demo.md"
        )
    agency = next((k.key for k in keys if k.agency_id), "<agency key>")
    ca = f"--cacert {platform.ca} " if platform.ca else ""
    lines += [
        f"  Try          curl {ca}-H 'Authorization: Bearer {agency}' "
        f"{intake}/v1/survivors/{uuid.uuid4()}/status",
        "               (404 until that survivor has a case; events to post: docs/running.md)",
    ]
    lines.append(
        "  Stop         Ctrl-C stops every service"
        + (
            f"; Kafka was already running and stays up (safepassage kafka stop, with "
            f"SAFEPASSAGE_BROKER_STATE_DIR={broker.state_dir})"
            if was_running
            else " and Kafka"
        )
    )
    for line in lines:
        out.say(line)

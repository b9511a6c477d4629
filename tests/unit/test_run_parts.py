"""What ``safepassage run`` does without a broker: lock, ports, demo keys, services, output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from connectors.auth import ApiKeyStore, Role, load_keys
from connectors.console.settings import ConsoleSettings
from connectors.delivery.settings import load_providers
from connectors.directory.client import DirectoryClient
from connectors.exceptions import DirectoryClientError
from connectors.intake.settings import IntakeSettings
from connectors.platform.demo import (
    ALL_DEMO_PRINCIPALS,
    DEMO_PRINCIPALS,
    DIRECTORY_PRINCIPALS,
    DemoPrincipal,
    ensure_demo_keys,
    ensure_demo_webhooks,
)
from connectors.platform.lock import AlreadyRunningError, RunLock
from connectors.platform.run import (
    PortInUseError,
    check_ports,
    derive_environment,
    import_demo_directory,
)
from connectors.platform.services import Platform, PortSetting, platform_services
from streams.settings import KafkaSettings

# ------------------------------------------------------------------------ lock


def test_a_second_lock_on_the_same_state_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from connectors.platform.lock import RunLock; "
            f"lock = RunLock(Path({str(path)!r})).acquire(); "
            "print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunningError, match=rf"\(pid {holder.pid}\)"):
            RunLock(path).acquire()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    # The holder died without releasing: its lock is stale and taken over.
    lock = RunLock(path).acquire()
    assert lock.stale_pid == holder.pid
    assert path.read_text().strip() == str(os.getpid())
    lock.release()
    assert path.read_text() == ""  # released: no PID left behind
    with RunLock(path) as again:
        assert again.stale_pid is None


# ----------------------------------------------------------------------- ports


def test_a_taken_port_is_one_line_naming_the_setting_to_change() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            check_ports([PortSetting("SAFEPASSAGE_INTAKE_PORT", "127.0.0.1", port)])
    message = caught.value.one_line()
    assert message == (
        f"port {port} on 127.0.0.1 is in use by another program: "
        "set SAFEPASSAGE_INTAKE_PORT to a free port"
    )
    check_ports([PortSetting("SAFEPASSAGE_INTAKE_PORT", "127.0.0.1", port)])  # free again


# ------------------------------------------------------------------- demo keys


def test_demo_keys_are_made_once_kept_owner_only_and_open_the_intake(tmp_path: Path) -> None:
    keys_file, credentials = tmp_path / "api-keys.yaml", tmp_path / "demo" / "credentials.yaml"
    first = ensure_demo_keys(keys_file, credentials)
    assert [k.principal for k in first] == [p.name for p in ALL_DEMO_PRINCIPALS]
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert credentials.parent.stat().st_mode & 0o777 == 0o700
    store = ApiKeyStore(keys_file)
    for key in first:
        principal = store.authenticate(key.key)
        assert principal is not None
        assert (principal.name, principal.role) == (key.principal, key.role)
    providers = [k for k in first if k.role is Role.PROVIDER]
    assert providers and all(k.provider_id is not None for k in providers)
    assert yaml.safe_load(credentials.read_text())["keys"][0]["key"] == first[0].key
    # A second run keeps every key (a tester's saved key still works), adds no entry.
    assert ensure_demo_keys(keys_file, credentials) == first
    assert len(load_keys(keys_file)) == len(ALL_DEMO_PRINCIPALS)
    # Every provider of the demo directory has a key under its directory id.
    ids = {k.principal: k.provider_id for k in first}
    assert all(ids[p.name] == p.provider_id for p in DIRECTORY_PRINCIPALS)


def test_a_demo_key_the_keys_file_lost_is_made_anew_with_the_same_provider_id(
    tmp_path: Path,
) -> None:
    keys_file, credentials = tmp_path / "api-keys.yaml", tmp_path / "credentials.yaml"
    first = ensure_demo_keys(keys_file, credentials)
    keys_file.unlink()
    second = ensure_demo_keys(keys_file, credentials)
    assert all(a.key != b.key for a, b in zip(first, second, strict=True))
    assert [k.provider_id for k in first] == [k.provider_id for k in second]
    assert ApiKeyStore(keys_file).authenticate(second[0].key) is not None


def test_one_more_demo_principal_is_one_more_entry(tmp_path: Path) -> None:
    extra = (*DEMO_PRINCIPALS, DemoPrincipal("demo-second-operator", Role.OPERATOR))
    keys = ensure_demo_keys(tmp_path / "k.yaml", tmp_path / "c.yaml", extra)
    assert keys[-1].principal == "demo-second-operator"


def test_the_demo_webhooks_file_serves_the_delivery_and_keeps_what_is_there(
    tmp_path: Path,
) -> None:
    keys = ensure_demo_keys(tmp_path / "k.yaml", tmp_path / "c.yaml")
    path = tmp_path / "demo" / "webhooks.yaml"
    ensure_demo_webhooks(path, keys, "http://127.0.0.1:18090/webhooks")
    assert path.stat().st_mode & 0o777 == 0o600
    providers = load_providers(path)  # the delivery's own loader accepts it
    ids = {k.provider_id for k in keys if k.provider_id is not None}
    assert set(providers) == ids
    before = path.read_text()
    ensure_demo_webhooks(path, keys, "http://elsewhere.invalid/")
    assert path.read_text() == before  # secrets and edited URLs stay


# -------------------------------------------------------------------- services


def test_every_path_derives_from_the_state_dir_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BROKER_STATE_DIR", "INTAKE_STATE_DIR", "API_KEYS_FILE", "WEBHOOKS_FILE"):
        monkeypatch.delenv(f"SAFEPASSAGE_{name}", raising=False)
    monkeypatch.setenv("SAFEPASSAGE_API_KEYS_FILE", "/elsewhere/keys.yaml")
    derive_environment(tmp_path)
    assert os.environ["SAFEPASSAGE_BROKER_STATE_DIR"] == str(tmp_path / "kafka")
    assert os.environ["SAFEPASSAGE_INTAKE_STATE_DIR"] == str(tmp_path / "intake")
    assert os.environ["SAFEPASSAGE_WEBHOOKS_FILE"] == str(tmp_path / "demo" / "webhooks.yaml")
    assert os.environ["SAFEPASSAGE_API_KEYS_FILE"] == "/elsewhere/keys.yaml"  # explicit wins


def test_each_service_runs_as_its_principal_with_the_brokers_address(tmp_path: Path) -> None:
    def environment(principal: str) -> dict[str, str]:
        return {
            "SAFEPASSAGE_BOOTSTRAP_SERVERS": "127.0.0.1:19692",
            "SAFEPASSAGE_SASL_USERNAME": principal,
        }

    platform = Platform(
        state_dir=tmp_path,
        intake=IntakeSettings(port=19680),
        console=ConsoleSettings(port=19643),
        kafka=KafkaSettings(),
        ca=tmp_path / "ca.pem",
        webhooks_file=tmp_path / "webhooks.yaml",
        environment=environment,
        metrics_base_port=19664,
    )
    services = {s.name: s for s in platform_services(platform)}
    assert list(services) == [
        "router",
        "intake",
        "webhooks",
        "offers-relay",
        "inbound-relay",
        "console",
    ]
    children = {name: s.service(platform) for name, s in services.items()}
    principals = {name: c.env["SAFEPASSAGE_SASL_USERNAME"] for name, c in children.items()}
    assert principals == {
        "router": "router",
        "intake": "intake",
        "webhooks": "delivery",
        "offers-relay": "delivery",
        "inbound-relay": "intake",
        "console": "console",
    }
    for child in children.values():
        assert child.argv[:3] == (sys.executable, "-m", "connectors.cli")
        assert child.env["SAFEPASSAGE_BOOTSTRAP_SERVERS"] == "127.0.0.1:19692"
    # Each process's probe port from the run's base, in the order of their defaults.
    metrics = {name: c.env.get("SAFEPASSAGE_METRICS_PORT") for name, c in children.items()}
    assert metrics == {
        "router": "19664",
        "intake": "19665",
        "inbound-relay": "19666",
        "offers-relay": "19667",
        "webhooks": "19668",
        "console": None,  # serves no probe port
    }
    assert services["intake"].ports(platform) == [
        PortSetting("SAFEPASSAGE_INTAKE_PORT", "127.0.0.1", 19680),
        PortSetting("SAFEPASSAGE_RUN_METRICS_BASE_PORT", "127.0.0.1", 19665),
    ]
    assert services["intake"].url == "https://127.0.0.1:19680"
    assert services["console"].ports(platform) == [
        PortSetting("SAFEPASSAGE_CONSOLE_PORT", "127.0.0.1", 19643)
    ]
    assert children["console"].env["SAFEPASSAGE_CONSOLE_INTAKE_URL"] == "https://127.0.0.1:19680"
    assert children["console"].description == "https://127.0.0.1:19643"


# ---------------------------------------------------------------------- output


def test_output_survives_the_pipes_reader_going_away() -> None:
    """``make run | cat``, Ctrl-C: cat ends first; the run must go on to stop its services."""
    script = (
        "from connectors.platform.run import Output\n"
        "import sys, time\n"
        "out = Output()\n"
        "out.say('first')\n"
        "time.sleep(1.0)\n"  # the reader is gone by now
        "for i in range(50): out.say('after the reader left')\n"
        "sys.stderr.write('still here\\n')\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline().strip() == "first"
    child.stdout.close()
    _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert err == "still here\n"


def test_a_change_is_one_line() -> None:
    from connectors.platform.supervisor import Change, State  # noqa: PLC0415

    script = (
        "from connectors.platform.run import Output\n"
        "from connectors.platform.supervisor import Change, State\n"
        f"Output().change(Change('router', State.EXITED, {'exit code 1; restart in 2 s'!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.count("\n") == 1
    assert out.split(maxsplit=1)[1].split() == [
        "router",
        "exited",
        "exit",
        "code",
        "1;",
        "restart",
        "in",
        "2",
        "s",
    ]
    assert Change("x", State.READY).detail == ""


# ----------------------------------------------------------------- the broker


class _Node:
    def __init__(self, port: int) -> None:
        self.host, self.port = "127.0.0.1", port
        self.bootstrap = f"127.0.0.1:{port}"
        self.listener: socket.socket | None = None

    def pid(self) -> int | None:
        return 1 if self.listener is not None else None


class _Deployment:
    """A broker that died: nothing listens; ``start`` brings a listener back."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.nodes = [_Node(port)]
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        listener = socket.socket()
        listener.bind(("127.0.0.1", self.nodes[0].port))
        listener.listen()
        self.nodes[0].listener = listener


async def test_a_broker_the_run_started_that_died_is_started_again_and_reported() -> None:
    import asyncio  # noqa: PLC0415

    from connectors.platform.run import _watch_broker  # noqa: PLC0415
    from connectors.platform.supervisor import Backoff, Change, State  # noqa: PLC0415

    seen: list[Change] = []

    class _Out:
        def change(self, change: Change) -> None:
            seen.append(change)

    deployment = _Deployment()
    watch = asyncio.create_task(
        _watch_broker(_Out(), deployment, ours=True, interval_s=0.05, backoff=Backoff(0.05))  # type: ignore[arg-type]
    )
    try:
        while State.BACK not in [c.state for c in seen]:
            await asyncio.sleep(0.05)
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        listener = deployment.nodes[0].listener
        if listener is not None:
            listener.close()
    assert [c.state for c in seen] == [State.UNREACHABLE, State.EXITED, State.RESTARTED, State.BACK]
    assert deployment.starts == 1


async def test_a_broker_that_was_running_before_the_run_is_only_reported() -> None:
    import asyncio  # noqa: PLC0415

    from connectors.platform.run import _watch_broker  # noqa: PLC0415
    from connectors.platform.supervisor import Change  # noqa: PLC0415

    seen: list[Change] = []

    class _Out:
        def change(self, change: Change) -> None:
            seen.append(change)

    deployment = _Deployment()
    watch = asyncio.create_task(_watch_broker(_Out(), deployment, ours=False, interval_s=0.05))  # type: ignore[arg-type]
    await asyncio.sleep(0.5)
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    assert [c.state.value for c in seen] == ["unreachable"]
    assert deployment.starts == 0


def test_the_demo_adds_two_late_services_without_kafka_and_the_demo_router(
    tmp_path: Path,
) -> None:
    def platform(demo: bool) -> Platform:
        return Platform(
            state_dir=tmp_path,
            intake=IntakeSettings(port=19680),
            console=ConsoleSettings(port=19643),
            kafka=KafkaSettings(),
            ca=tmp_path / "ca.pem",
            webhooks_file=tmp_path / "webhooks.yaml",
            environment=lambda principal: {"SAFEPASSAGE_SASL_USERNAME": principal},
            metrics_base_port=19664,
            demo=demo,
            demo_webhook_url="http://127.0.0.1:19690/webhooks",
        )

    plain = {s.name: s for s in platform_services(platform(False))}
    assert "demo-providers" not in plain
    assert "SAFEPASSAGE_ROUTER_SLA_POLICY" not in plain["router"].service(platform(False)).env
    demo = platform(True)
    services = {s.name: s for s in platform_services(demo)}
    assert list(services)[-2:] == ["demo-providers", "demo-stream"]
    assert [s.name for s in services.values() if s.late] == ["demo-providers", "demo-stream"]
    router = services["router"].service(demo).env
    assert Path(router["SAFEPASSAGE_ROUTER_SLA_POLICY"]).name == "sla-policy.yaml"
    assert float(router["SAFEPASSAGE_ESCALATION_TICK_INTERVAL_S"]) <= 1
    assert ["MD", "RO"] in json.loads(router["SAFEPASSAGE_ROUTER_CROSS_BORDER_PAIRS"])
    simulator, stream = services["demo-providers"], services["demo-stream"]
    assert simulator.ports(demo) == [
        PortSetting("SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL", "127.0.0.1", 19690)
    ]
    assert stream.ports(demo) == []
    for service in (simulator, stream):
        child = service.service(demo)
        assert "SAFEPASSAGE_SASL_USERNAME" not in child.env  # no Kafka: the intake only
        assert child.argv[3] == "demo"
        argv = list(child.argv)
        assert argv[argv.index("--intake") + 1] == "https://127.0.0.1:19680"
        assert argv[argv.index("--ca") + 1] == str(tmp_path / "ca.pem")
        assert argv[argv.index("--credentials") + 1] == str(demo.credentials_file)
    assert simulator.service(demo).probe is not None  # its /healthz


def test_the_demo_directory_import_waits_for_an_intake_catching_up_and_no_longer(
    tmp_path: Path,
) -> None:
    answers = iter([503, 503, 200])
    seen: list[str] = []

    def intake(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        status = next(answers)
        if status == 503:
            return httpx.Response(503, json={"title": "Directory unavailable", "status": 503})
        return httpx.Response(200, json={"registered": [], "updated": ["x"] * 33})

    platform = Platform(
        state_dir=tmp_path,
        intake=IntakeSettings(port=19680),
        console=ConsoleSettings(port=19643),
        kafka=KafkaSettings(),
        ca=None,
        webhooks_file=tmp_path / "webhooks.yaml",
        environment=lambda _principal: {},
    )
    client = DirectoryClient(
        "https://intake.test", "sp_directory-admin_x", transport=httpx.MockTransport(intake)
    )
    report = import_demo_directory(platform, [], threading.Event(), client, retry_every_s=0.01)
    assert len(report["updated"]) == 33
    assert seen == ["POST /v1/providers/import"] * 3

    def refusing(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"title": "Forbidden", "status": 403})

    client.transport = httpx.MockTransport(refusing)
    with pytest.raises(DirectoryClientError, match="403"):  # not a wait: said at once
        import_demo_directory(platform, [], threading.Event(), client)
    answers = iter([503] * 100)
    client.transport = httpx.MockTransport(intake)
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(DirectoryClientError, match="stopped"):
        import_demo_directory(platform, [], stopped, client)

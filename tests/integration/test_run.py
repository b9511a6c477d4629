"""``safepassage run`` end to end: up, ready, answering, refusing a second run, gone after Ctrl-C.

The run gets ports of its own (the broker's three, the intake's) and a
state directory of its own, and its stdout is a pipe, as in ``make run |
cat``. Once the summary is out, the intake must answer over HTTPS, checked
against the run's CA, with the demo agency's key from the owner-only
credentials file. A second run on the same state directory is refused in
one line. Then the reader of the pipe goes away (as ``cat`` does on
Ctrl-C) and the run gets SIGINT: it must end within a bound, leaving no
process of its tree (children and grandchildren, the broker's JVM
included) and no port of its listening.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ("router", "intake", "webhooks", "offers-relay", "inbound-relay", "console")
READY_TIMEOUT_S = 240.0
STOP_BOUND_S = 45.0
"""SIGTERM, then SIGKILL after 10 s per service group, and the broker's clean stop."""


@dataclass
class Run:
    """A ``safepassage run`` in the background and what it printed so far."""

    process: subprocess.Popen[bytes]
    pipe: int
    """The read end of the run's stdout (a pipe, as in ``make run | cat``)."""
    state_dir: Path
    env: dict[str, str]
    ports: list[int]
    lines: list[str] = field(default_factory=list)
    family: set[int] = field(default_factory=set)
    reading: threading.Event = field(default_factory=threading.Event)
    reader_gone: threading.Event = field(default_factory=threading.Event)
    """Every PID seen in the run's process tree (the broker's JVM included)."""

    def output(self) -> str:
        return "\n".join(self.lines)

    def remember_family(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(self.process.pid)
            self.family |= {parent.pid, *(p.pid for p in parent.children(recursive=True))}


def _read_lines(run: Run) -> None:
    """Collect the run's lines until told to stop reading; then close the pipe, as ``cat`` dies."""
    pending = b""
    try:
        while run.reading.is_set():
            ready, _, _ = select.select([run.pipe], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(run.pipe, 65536)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            run.lines.extend(line.decode("utf-8", "replace") for line in complete)
    finally:
        os.close(run.pipe)
        run.reader_gone.set()


def _wait_for(run: Run, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in run.output():
        if run.process.poll() is not None:
            pytest.fail(f"safepassage run ended with {run.process.returncode}:\n{run.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} within {timeout_s:.0f} s:\n{run.output()}")
        run.remember_family()
        time.sleep(0.5)


def _alive(pids: set[int]) -> list[str]:
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(process.cmdline())[:120]}")
    return alive


def _listening(ports: list[int]) -> list[int]:
    taken = {
        c.laddr.port
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr
    }
    return [port for port in ports if port in taken]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    state_dir = tmp_path_factory.mktemp("run-state")
    broker, intake, console, webhook = free_port(3), free_port(), free_port(), free_port()
    metrics = free_port(5)  # the probe ports of the five processes that serve one
    env = {
        **os.environ,
        "SAFEPASSAGE_BROKER_PORT": str(broker),
        "SAFEPASSAGE_BROKER_CONTROLLER_PORT": str(broker + 1),
        "SAFEPASSAGE_BROKER_INTERNAL_PORT": str(broker + 2),
        "SAFEPASSAGE_INTAKE_PORT": str(intake),
        "SAFEPASSAGE_CONSOLE_PORT": str(console),
        "SAFEPASSAGE_RUN_METRICS_BASE_PORT": str(metrics),
        "SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL": f"http://127.0.0.1:{webhook}/webhooks",
        "SAFEPASSAGE_RUN_READY_TIMEOUT_S": str(READY_TIMEOUT_S),
        "COLUMNS": "250",
    }
    for name in (
        "SAFEPASSAGE_BROKER_STATE_DIR",
        "SAFEPASSAGE_INTAKE_STATE_DIR",
        "SAFEPASSAGE_CONSOLE_STATE_DIR",
        "SAFEPASSAGE_CONSOLE_INTAKE_URL",
        "SAFEPASSAGE_METRICS_PORT",
        "SAFEPASSAGE_API_KEYS_FILE",
        "SAFEPASSAGE_WEBHOOKS_FILE",
        "SAFEPASSAGE_BOOTSTRAP_SERVERS",
        "SAFEPASSAGE_BROKER_SECURITY",
    ):
        env.pop(name, None)
    command = [sys.executable, "-m", "connectors.cli", "run", "--state-dir", str(state_dir)]
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        command, env=env, stdout=write_end, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    os.close(write_end)
    ports = [broker, broker + 1, broker + 2, intake, console, *range(metrics, metrics + 5)]
    handle = Run(process, read_end, state_dir, env, ports)
    handle.reading.set()
    reader = threading.Thread(target=_read_lines, args=(handle,), daemon=True)
    reader.start()
    try:
        yield handle
    finally:
        # Whatever a failed test left: nothing of this run may outlive the module.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_BOUND_S)
        for line in _alive(handle.family):
            pid = int(line.split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait(10)
        handle.reading.clear()
        reader.join(5)


def test_the_summary_names_every_service_and_the_intake_answers_the_demo_agency_over_https(
    run: Run,
) -> None:
    _wait_for(run, "SafePassage is running", READY_TIMEOUT_S + 120)
    run.remember_family()
    out = run.output()
    for service in SERVICES:
        assert any(service in line and "ready" in line for line in run.lines), out
    console = f"https://127.0.0.1:{run.env['SAFEPASSAGE_CONSOLE_PORT']}"
    assert console in out  # the console's URL in the summary
    assert "Traceback" not in out
    credentials = run.state_dir / "demo" / "credentials.yaml"
    assert credentials.stat().st_mode & 0o777 == 0o600
    keys = {k["principal"]: k for k in yaml.safe_load(credentials.read_text())["keys"]}
    assert {"demo-agency", "demo-operator", "demo-directory-admin"} <= set(keys)
    agency_key = keys["demo-agency"]["key"]
    assert agency_key in out  # demo keys are shown in the summary
    intake = f"https://127.0.0.1:{run.env['SAFEPASSAGE_INTAKE_PORT']}"
    ca = run.state_dir / "kafka" / "security" / "ca.pem"
    survivor = uuid.uuid4()
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=15) as client:
        answer = client.get(
            f"{intake}/v1/survivors/{survivor}/status",
            headers={"Authorization": f"Bearer {agency_key}"},
        )
        refused = client.get(
            f"{intake}/v1/survivors/{survivor}/status",
            headers={"Authorization": "Bearer sp_agency_not-a-key-of-this-platform"},
        )
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"/agencies/{keys['demo-agency']['agency_id']}",
            "type": "risk.assessed",
            "time": "2026-03-05T08:00:00.000Z",
            "subject": str(survivor),
            "data": {
                "occurred_at": "2026-03-05T08:00:00.000Z",
                "survivor_id": str(survivor),
                "agency_id": keys["demo-agency"]["agency_id"],
                "level": "HIGH",
                "immediate_needs": ["EMERGENCY_SHELTER"],
            },
        }
        published = client.post(
            f"{intake}/v1/events",
            json=event,
            headers={
                "Authorization": f"Bearer {agency_key}",
                "Content-Type": "application/cloudevents+json",
            },
        )
    assert answer.status_code in {404, 503}, answer.text  # authenticated: no case (yet)
    assert refused.status_code == 401
    assert published.status_code == 202, published.text  # through the intake onto Kafka
    logs = run.state_dir / "logs"
    for service in SERVICES:
        assert (logs / f"{service}.log").stat().st_size > 0
    assert "aiokafka" not in out and "faust" not in out.lower()  # children's output is in logs


def test_a_second_run_on_the_same_state_dir_is_refused_in_one_line(run: Run) -> None:
    _wait_for(run, "SafePassage is running", READY_TIMEOUT_S + 120)
    second = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "run", "--state-dir", str(run.state_dir)],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"already running on {run.state_dir} (pid {run.process.pid})" in lines[0]


def test_sigint_with_the_pipe_reader_gone_stops_everything_it_started(run: Run) -> None:
    _wait_for(run, "SafePassage is running", READY_TIMEOUT_S + 120)
    run.remember_family()
    assert any("java" in line for line in _alive(run.family))  # the broker is in the tree
    assert _listening(run.ports), "the run's ports should be listening before the stop"
    run.reading.clear()  # the reader of the pipe goes away, as `cat` does on Ctrl-C
    assert run.reader_gone.wait(5)
    begun = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    code = run.process.wait(STOP_BOUND_S)
    took = time.monotonic() - begun
    assert code == 0
    assert took < STOP_BOUND_S
    deadline = time.monotonic() + 10
    while (_alive(run.family) or _listening(run.ports)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(run.family) == []
    assert _listening(run.ports) == []

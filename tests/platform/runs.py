"""A ``safepassage run`` in the background for the platform tier, and what to check of it.

The run gets ports of its own (the broker's three, the intake's, the
console's, the probe servers') and a state directory of its own, and its
stdout is a pipe, as in ``make run | cat``. One run serves the tier (a
session fixture, ``tests/platform/conftest.py``): the documentation's
examples run against it, then ``test_run.py`` checks it and stops it last.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import free_port

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


@contextlib.contextmanager
def started_run(state_dir: Path, *extra: str) -> Iterator[Run]:
    """``safepassage run [extra...]`` on ports of its own; whatever is left of it ends after."""
    broker, intake, console, webhook = free_port(3), free_port(), free_port(), free_port()
    metrics = free_port(6)  # the probe ports of the six processes that serve one
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
    command = [sys.executable, "-m", "connectors.cli", "run", "--state-dir", str(state_dir), *extra]
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        command, env=env, stdout=write_end, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    os.close(write_end)
    ports = [broker, broker + 1, broker + 2, intake, console, *range(metrics, metrics + 6)]
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

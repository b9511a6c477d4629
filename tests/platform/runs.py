"""``safepassage run`` as a test starts it: own ports, own state dir, stdout a pipe; and its end.

Shared by the platform tier: the run (``test_run.py``, and the docs'
examples against it) and its demo (``test_demo.py``). :func:`start_run`
starts the run in the background with free ports of its own and collects
what it prints; :func:`end_run` makes sure nothing of it outlives the test
module; :func:`alive` and :func:`listening` are what a stop is judged by.
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import free_port

__all__ = ["STOP_BOUND_S", "Run", "alive", "end_run", "listening", "start_run", "wait_for"]

STOP_BOUND_S = 45.0
"""SIGTERM, then SIGKILL after 10 s per service group, and the broker's clean stop."""

_INHERITED = (
    "SAFEPASSAGE_BROKER_STATE_DIR",
    "SAFEPASSAGE_INTAKE_STATE_DIR",
    "SAFEPASSAGE_CONSOLE_STATE_DIR",
    "SAFEPASSAGE_CONSOLE_INTAKE_URL",
    "SAFEPASSAGE_METRICS_PORT",
    "SAFEPASSAGE_API_KEYS_FILE",
    "SAFEPASSAGE_WEBHOOKS_FILE",
    "SAFEPASSAGE_BOOTSTRAP_SERVERS",
    "SAFEPASSAGE_BROKER_SECURITY",
)
"""Variables of the test's own environment that must not reach the run."""


@dataclass
class Run:
    """A ``safepassage run`` in the background and what it printed so far."""

    process: subprocess.Popen[bytes]
    pipe: int
    """The read end of the run's stdout (a pipe, as in ``make run | cat``)."""
    state_dir: Path
    env: dict[str, str]
    ports: list[int]
    metrics_base: int
    lines: list[str] = field(default_factory=list)
    family: set[int] = field(default_factory=set)
    """Every PID seen in the run's process tree (the broker's JVM included)."""
    reading: threading.Event = field(default_factory=threading.Event)
    reader_gone: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    def output(self) -> str:
        return "\n".join(self.lines)

    def remember_family(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(self.process.pid)
            self.family |= {parent.pid, *(p.pid for p in parent.children(recursive=True))}

    def url(self, setting: str) -> str:
        return f"https://127.0.0.1:{self.env[setting]}"


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


def start_run(state_dir: Path, args: Sequence[str] = (), ready_timeout_s: float = 240.0) -> Run:
    """``safepassage run [args]`` with free ports of its own, its stdout a pipe being read."""
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
        "SAFEPASSAGE_RUN_READY_TIMEOUT_S": str(ready_timeout_s),
        "COLUMNS": "250",
    }
    for name in _INHERITED:
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "connectors.cli",
        "run",
        "--state-dir",
        str(state_dir),
        *args,
    ]
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        command, env=env, stdout=write_end, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    os.close(write_end)
    ports = [broker, broker + 1, broker + 2, intake, console, webhook]
    ports += range(metrics, metrics + 6)
    handle = Run(process, read_end, state_dir, env, ports, metrics)
    handle.reading.set()
    handle.reader = threading.Thread(target=_read_lines, args=(handle,), daemon=True)
    handle.reader.start()
    return handle


def end_run(run: Run) -> None:
    """Whatever a failed test left: nothing of this run may outlive the module."""
    if run.process.poll() is None:
        run.process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.process.wait(STOP_BOUND_S)
    for line in alive(run.family):
        pid = int(line.split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if run.process.poll() is None:
        run.process.kill()
        run.process.wait(10)
    run.reading.clear()
    if run.reader is not None:
        run.reader.join(5)


def wait_for(run: Run, text: str, timeout_s: float) -> None:
    """Until the run printed ``text``; fails with its output if it ended or took too long."""
    deadline = time.monotonic() + timeout_s
    while text not in run.output():
        if run.process.poll() is not None:
            pytest.fail(f"safepassage run ended with {run.process.returncode}:\n{run.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} within {timeout_s:.0f} s:\n{run.output()}")
        run.remember_family()
        time.sleep(0.5)


def alive(pids: set[int]) -> list[str]:
    """The PIDs (with their command lines) still running, zombies aside."""
    running = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(f"{pid} {' '.join(process.cmdline())[:120]}")
    return running


def listening(ports: list[int]) -> list[int]:
    """Those of ``ports`` something listens on."""
    taken = {
        c.laddr.port
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr
    }
    return [port for port in ports if port in taken]


def stop_and_check(run: Run) -> float:
    """SIGINT with the pipe's reader gone; the stop's duration once nothing of the run is left."""
    run.remember_family()
    run.reading.clear()  # the reader of the pipe goes away, as `cat` does on Ctrl-C
    assert run.reader_gone.wait(5)
    begun = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    code = run.process.wait(STOP_BOUND_S)
    took = time.monotonic() - begun
    assert code == 0
    deadline = time.monotonic() + 10
    while (alive(run.family) or listening(run.ports)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(run.family) == []
    assert listening(run.ports) == []
    return took

"""Start and stop real router workers (``safepassage worker`` subprocesses) for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import REPO


@dataclass
class RunningWorker:
    """A router worker process and its log file (it serves no HTTP: status is read through
    the intake, from ``case-status.v1``; see :mod:`tests.integration.intake`)."""

    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL: Faust sometimes hangs while shutting down."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL the worker's whole process group: a crash, nothing flushed."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_worker(bootstrap: str, namespace: str, folder: Path, **env: str) -> RunningWorker:
    """One `safepassage worker` on the namespace, with its own data folder.

    The escalation clock is external unless ``env`` says otherwise: test
    events are dated in the past, and a wall clock would escalate them all
    at once; tests that want time to pass publish ticks.
    """
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "worker.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connectors.cli",
                "worker",
                "--data-dir",
                str(folder / "data"),
            ],
            cwd=REPO,
            env={
                **os.environ,
                "SAFEPASSAGE_BOOTSTRAP_SERVERS": bootstrap,
                "SAFEPASSAGE_TOPIC_NAMESPACE": namespace,
                "SAFEPASSAGE_ESCALATION_CLOCK": "external",
                # A stalled partition restarts the worker well within the tests' waits.
                "SAFEPASSAGE_ROUTER_STALL_TIMEOUT_S": "20",
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningWorker(process, log)

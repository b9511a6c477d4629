"""Start and stop real router workers (``safepassage worker`` subprocesses) for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from connectors.auth import Role, add_key
from tests.integration.conftest import REPO, free_port


@dataclass
class RunningWorker:
    """A router worker process with its web port and log file."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    operator_key: str
    """An operator's API key: the status page answers 401 without one."""
    keys_file: Path

    @property
    def auth(self) -> dict[str, str]:
        """Headers of an authenticated status request."""
        return {"Authorization": f"Bearer {self.operator_key}"}

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
    """One `safepassage worker` on the namespace, with its own data folder and port.

    The escalation clock is external unless ``env`` says otherwise: test
    events are dated in the past, and a wall clock would escalate them all
    at once; tests that want time to pass publish ticks.
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "worker.log"
    # Workers of one group must share their keys (Faust forwards a request, with its
    # Authorization header, to the worker owning the survivor): one file per parent folder.
    keys_file, key_file = folder.parent / "api-keys.yaml", folder.parent / "operator.key"
    if not key_file.exists():
        key, _ = add_key(keys_file, role=Role.OPERATOR, principal="test-operator")
        key_file.write_text(key)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connectors.cli",
                "worker",
                "--web-port",
                str(port),
                "--data-dir",
                str(folder / "data"),
            ],
            cwd=REPO,
            env={
                **os.environ,
                "SAFEPASSAGE_BOOTSTRAP_SERVERS": bootstrap,
                "SAFEPASSAGE_TOPIC_NAMESPACE": namespace,
                "SAFEPASSAGE_ESCALATION_CLOCK": "external",
                "SAFEPASSAGE_API_KEYS_FILE": str(keys_file),
                # A stalled partition restarts the worker well within the tests' waits.
                "SAFEPASSAGE_ROUTER_STALL_TIMEOUT_S": "30",
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningWorker(process, port, log, key_file.read_text(), keys_file)

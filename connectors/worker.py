"""The router worker's composition root: settings, the Faust worker, its supervisor.

The worker serves no HTTP (status is read through the intake, from
``case-status.v1``), so it needs no API keys.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel, ConfigDict

from connectors.exceptions import ConnectorsError
from connectors.private import owner_only_files, private_dir
from processors.policy import RoutingPolicy
from processors.settings import EscalationSettings, RouterSettings
from streams.clients import require_authenticated
from streams.logs import configure_logging, dict_config, exit_at_once, get_logger
from streams.metrics import serve_probes
from streams.settings import KafkaSettings, read_settings
from streams.stall import EXIT_STALLED

__all__ = ["WorkerSettings", "WorkerStoppedError", "run_worker", "supervise"]

_log = get_logger(__name__)


LOOP_SILENCE_S = 60.0
"""How long the worker's event loop may go without its health timer before /livez says no."""


class WorkerStoppedError(ConnectorsError):
    """The router worker stopped on its own with a failure (a bug, or a bad configuration)."""


class WorkerSettings(BaseModel):
    """Everything a worker is configured with, read once from the environment and frozen.

    The child hands its parts down, so no module of the router reads the environment.
    """

    model_config = ConfigDict(frozen=True)

    kafka: KafkaSettings
    router: RouterSettings
    escalation: EscalationSettings
    policy: RoutingPolicy
    """The routing policy of :attr:`router`, with its SLA policy file loaded and checked."""
    app_id: str | None = None
    data_dir: Path

    @classmethod
    def load(cls, app_id: str | None, data_dir: Path) -> WorkerSettings:
        """Raise a one-line SafePassageError on an invalid variable or SLA policy file."""
        router = read_settings(RouterSettings)
        return cls(
            kafka=require_authenticated(read_settings(KafkaSettings)),
            router=router,
            escalation=read_settings(EscalationSettings),
            policy=router.to_policy(),
            app_id=app_id,
            data_dir=data_dir,
        )


def run_worker(app_id: str | None, data_dir: Path) -> None:
    """Run the router worker in the foreground until Ctrl-C; start it again after a stall.

    The Faust worker runs in a child process (``python -m connectors.worker``):
    one stopped by its stall watchdog (:data:`~streams.stall.EXIT_STALLED`)
    is started again and resumes from the committed offsets; any other
    failure raises :class:`WorkerStoppedError`. A bad configuration is
    refused here, in one line, before any child starts.
    """
    WorkerSettings.load(app_id, data_dir)  # refuse a bad configuration now
    command = [sys.executable, "-m", "connectors.worker", "--data-dir", str(data_dir)]
    command += ["--app-id", app_id] if app_id else []
    code = supervise(command)
    if code != 0:
        raise WorkerStoppedError(f"the router worker stopped with exit code {code} (see its log)")


def supervise(
    command: list[str],
    *,
    backoff_s: Callable[[int], float] = lambda restarts: min(2.0**restarts, 30.0),
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``command`` until it exits with anything but EXIT_STALLED; return that code.

    SIGTERM and SIGINT are passed on to the child, and no restart follows
    them. The backoff counts restarts since the last child that ran for ten
    minutes, so a worker stalling on every start is not restarted in a tight loop.
    """
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def pass_on(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGTERM, signal.SIGINT)}
    restarts = 0
    try:
        while True:
            started = time.monotonic()
            child = subprocess.Popen(command)
            code = child.wait()
            if code != EXIT_STALLED or stopping:
                return code
            restarts = 0 if time.monotonic() - started > 600 else restarts + 1
            delay = backoff_s(restarts)
            _log.warning("worker.restarting", exit_code=code, restarts=restarts, delay_s=delay)
            sleep(delay)
            if stopping:
                return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(config: WorkerSettings) -> NoReturn:
    """The child: one Faust worker; exits with EXIT_STALLED when its watchdog stopped it."""
    import faust  # noqa: PLC0415

    from processors.router import build_router, declare_changelogs  # noqa: PLC0415

    settings = config.kafka
    configure_logging(settings.log_format, settings.log_level)
    owner_only_files()
    private_dir(config.data_dir)  # RocksDB holds case state: the owner's alone
    router = build_router(
        settings,
        policy=config.policy,
        app_id=config.app_id,
        data_dir=config.data_dir,
        clock=config.escalation,
        stall_timeout_s=config.router.stall_timeout_s,
    )
    declare_changelogs(router.tables, settings)
    app = router.app
    # Written on the event loop, read by the probe thread: a loop that stopped
    # turning stops the heartbeat, and /livez says so.
    health = {"ready": False, "beat": time.monotonic()}

    @app.timer(2.0)  # type: ignore[untyped-decorator]
    async def observe_health() -> None:
        """Routing: the directory replayed, partitions assigned, no rebalance under way."""
        health["beat"] = time.monotonic()
        assigned = bool(app.consumer.assignment())
        health["ready"] = router.view.ready.is_set() and assigned and not app.rebalancing

    serve_probes(
        "worker",
        ready=lambda: bool(health["ready"]),
        live=lambda: time.monotonic() - health["beat"] < LOOP_SILENCE_S,
    )
    parent = os.getppid()

    @router.app.timer(2.0)  # type: ignore[untyped-decorator]
    async def stop_when_orphaned() -> None:
        """The supervisor was killed (SIGKILL): a worker nobody supervises must not run on."""
        if os.getppid() != parent:
            _log.warning("worker.orphaned", parent_pid=parent)
            exit_at_once(1)

    worker = faust.Worker(
        router.app,
        loglevel=settings.log_level.lower(),
        logging_config=dict_config(settings.log_format, settings.log_level),
    )
    worker.execute_from_commandline()  # exits; a stall exits with EXIT_STALLED from inside


def _main(argv: list[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="python -m connectors.worker")
    parser.add_argument("--app-id", default=None)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    _serve(WorkerSettings.load(args.app_id, args.data_dir))


if __name__ == "__main__":
    _main()

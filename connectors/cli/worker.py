"""``safepassage worker`` and ``safepassage run``: the router worker, alone or with a broker.

Two top-level commands, not a group, sharing their options; the worker
itself is :func:`connectors.worker.run_worker`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from connectors.cli.acl import apply_matrix
from connectors.cli.common import console
from connectors.cli.kafka import principal_environment, principal_settings, print_started
from connectors.cli.topics import print_plan
from infra import single_node
from streams.acls import load_matrix
from streams.provisioning import provision
from streams.settings import KafkaSettings, read_settings

__all__ = ["run", "worker"]

P = ParamSpec("P")
R = TypeVar("R")


def _run_worker(app_id: str | None, data_dir: Path) -> None:
    """Run the router's Faust worker in the foreground until Ctrl-C (see connectors.worker)."""
    # Imported here: the worker's composition root pulls in the router, and most
    # commands need neither.
    from connectors.worker import run_worker  # noqa: PLC0415

    run_worker(app_id, data_dir)


def _worker_options(func: Callable[P, R]) -> Callable[P, R]:
    """``--app-id`` and ``--data-dir``, declared once for ``worker`` and ``run``."""
    data_dir = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=Path(".state/worker"),
        show_default=True,
        help="Table stores (one folder per worker on a machine).",
    )
    app_id = click.option(
        "--app-id", default=None, help="Consumer group (default <namespace>-router)."
    )
    return app_id(data_dir(func))


@click.command("worker")
@_worker_options
def worker(app_id: str | None, data_dir: Path) -> None:
    """Run one router worker (start several, each with its own data dir, to scale)."""
    _run_worker(app_id, data_dir)


@click.command("run")
@_worker_options
def run(app_id: str | None, data_dir: Path) -> None:
    """Bring the platform up locally: broker, catalog topics, the two relays, a router worker.

    The broker is secured unless SAFEPASSAGE_BROKER_SECURITY=plaintext: topics
    and ACLs are provisioned as ``admin``, the worker runs as ``router``.
    """
    deployment = single_node()
    print_started(deployment.start())
    security = "SASL_SSL/SCRAM-SHA-512, ACLs" if deployment.settings.secured else "PLAINTEXT"
    console().print(f"Apache Kafka {deployment.nodes[0].kafka_version()}, KRaft mode, {security}")
    admin = principal_settings(deployment, "admin", read_settings(KafkaSettings))
    the_plan, created = provision(admin)
    print_plan(the_plan, created)
    if deployment.settings.secured:
        apply_matrix(admin, load_matrix())
        console().print(
            f"credentials and client files: {deployment.settings.security_dir} (owner-only)"
        )
    # The relays: offers out to each provider's own topic, parties' own topics in.
    relays = [
        subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", *command],
            env=os.environ | principal_environment(deployment, principal),
        )
        for command, principal in (
            (("deliver", "kafka"), "delivery"),
            (("intake", "relay"), "intake"),
        )
    ]
    os.environ.update(principal_environment(deployment, "router"))
    console().print(
        "Started the offers and inbound relays; starting the router worker (it serves no "
        "HTTP: operators read status through `safepassage intake serve`). Ctrl-C stops them; "
        "`safepassage kafka stop` stops the broker."
    )
    try:
        _run_worker(app_id, data_dir)
    finally:
        for relay in relays:
            relay.terminate()
        for relay in relays:
            try:
                relay.wait(15)
            except subprocess.TimeoutExpired:
                relay.kill()

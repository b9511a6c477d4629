"""``safepassage worker`` and ``safepassage run``: the router worker, alone or with a broker.

Two top-level commands, not a group, sharing their options; the worker
itself is :func:`connectors.worker.run_worker`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from connectors.cli.common import console
from connectors.cli.kafka import print_started
from connectors.cli.topics import print_plan
from infra import single_node
from streams.provisioning import provision
from streams.settings import KafkaSettings

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
    """Bring the platform up locally: broker, every catalog topic, then a router worker."""
    deployment = single_node()
    print_started(deployment.start())
    console().print(f"Apache Kafka {deployment.nodes[0].kafka_version()}, KRaft mode")
    the_plan, created = provision(KafkaSettings(bootstrap_servers=deployment.bootstrap))
    print_plan(the_plan, created)
    console().print(
        "Starting the router worker (it serves no HTTP: operators read status through "
        "`safepassage intake serve`). Ctrl-C stops it; `safepassage kafka stop` stops the broker."
    )
    _run_worker(app_id, data_dir)

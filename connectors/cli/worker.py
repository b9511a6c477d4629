"""``safepassage worker`` and ``safepassage run``: the router worker, alone or with a broker.

One module per command group (DESIGN.md); these two are top-level commands,
not a group, and share their options (:data:`WORKER_OPTIONS`, the one place
that declares ``--app-id`` and ``--data-dir``).
:func:`register` adds both to the ``safepassage`` command in
:mod:`connectors.cli`. The worker itself is :func:`connectors.worker.run_worker`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from connectors.cli.common import console, friendly_errors
from connectors.cli.kafka import print_started
from connectors.cli.topics import print_plan
from infra import single_node
from streams.provisioning import provision
from streams.settings import KafkaSettings

__all__ = ["WORKER_OPTIONS", "register", "run", "worker"]

P = ParamSpec("P")
R = TypeVar("R")


def _run_worker(app_id: str | None, data_dir: Path) -> None:
    """Run the router's Faust worker in the foreground until Ctrl-C (see connectors.worker)."""
    # Imported here: the worker's composition root pulls in the router, and most
    # commands need neither.
    from connectors.worker import run_worker  # noqa: PLC0415

    run_worker(app_id, data_dir)


WORKER_OPTIONS = [
    click.option("--app-id", default=None, help="Consumer group (default <namespace>-router)."),
    click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=Path(".state/worker"),
        show_default=True,
        help="Table stores (one folder per worker on a machine).",
    ),
]
"""The options of ``worker`` and ``run``, in the order ``--help`` shows them."""


def _with_worker_options(func: Callable[P, R]) -> Callable[P, R]:
    for option in reversed(WORKER_OPTIONS):
        func = option(func)
    return func


@click.command("worker")
@_with_worker_options
@friendly_errors
def worker(app_id: str | None, data_dir: Path) -> None:
    """Run one router worker (start several, each with its own data dir, to scale)."""
    _run_worker(app_id, data_dir)


@click.command("run")
@_with_worker_options
@friendly_errors
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


def register(main_group: click.Group) -> None:
    """Add the ``worker`` and ``run`` commands to the ``safepassage`` command."""
    main_group.add_command(worker)
    main_group.add_command(run)

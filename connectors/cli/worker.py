"""``safepassage worker``: one router worker (``safepassage run`` starts one under its supervisor).

The worker itself is :func:`connectors.worker.run_worker`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

__all__ = ["worker"]

P = ParamSpec("P")
R = TypeVar("R")


def _run_worker(app_id: str | None, data_dir: Path) -> None:
    """Run the router's Faust worker in the foreground until Ctrl-C (see connectors.worker)."""
    # Imported here: the worker's composition root pulls in the router, and most
    # commands need neither.
    from connectors.worker import run_worker  # noqa: PLC0415

    run_worker(app_id, data_dir)


def _worker_options(func: Callable[P, R]) -> Callable[P, R]:
    """``--app-id`` and ``--data-dir``."""
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

"""``safepassage registry build|start|stop|status``: the local schema registry (Apicurio)."""

from __future__ import annotations

import sys

import click

from connectors.cli.common import console
from infra.registry import SchemaRegistry

__all__ = ["registry"]


@click.group("registry")
def registry() -> None:
    """Run the local schema registry (Apicurio, Confluent-compatible API)."""


@registry.command("build")
def registry_build() -> None:
    """Build it with Maven if the runnable jar is missing or stale (start does this too).

    Ahead of time, so the first start is quick; ``make test`` runs it beside the tests.
    """
    built = SchemaRegistry().build()
    console().print("schema registry built" if built else "schema registry already built")


@registry.command("start")
def registry_start() -> None:
    """Build it with Maven if needed, start it, wait until it answers."""
    result = SchemaRegistry().start()
    state = "already running" if result.already_running else "started"
    console().print(f"schema registry {state} (pid {result.pid})")
    console().print(f"Confluent-compatible API: {SchemaRegistry().ccompat_url}")


@registry.command("stop")
def registry_stop() -> None:
    """Stop the registry by its PID."""
    pid = SchemaRegistry().stop()
    console().print(f"stopped schema registry (pid {pid})" if pid else "registry is not running")


@registry.command("status")
def registry_status() -> None:
    """PID and whether the API answers; exit 3 when it is not running."""
    status = SchemaRegistry().status()
    answers = "answers" if status.answering else "does not answer"
    console().print(f"schema registry at {status.url}: pid {status.pid or '-'}, {answers}")
    if status.pid is None:
        sys.exit(3)

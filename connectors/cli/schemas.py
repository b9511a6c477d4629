"""``safepassage schemas check|release``: the event contract's compatibility and releases."""

from __future__ import annotations

import sys

import click

from connectors.cli.common import console
from schemas.compatibility import check, release
from schemas.registry import EventSchemas

__all__ = ["schemas"]


@click.group("schemas")
def schemas() -> None:
    """The event contract (schemas/avro): compatibility and releases."""


@schemas.command("check")
def schemas_check() -> None:
    """Check every schema is FULL_TRANSITIVE compatible with its released versions."""
    contract = EventSchemas()
    broken = 0
    for event_type, problems in check(contract).items():
        releases = len(contract.released(event_type))
        if not problems:
            console().print(f"ok      {event_type} (against {releases} released version(s))")
        for problem in problems:
            broken += 1
            console().print(f"[red]BREAKS[/]  {problem}", highlight=False)
    if broken:
        console(stderr=True).print(
            f"[bold red]error:[/] {broken} incompatibilit{'y' if broken == 1 else 'ies'}: "
            "add defaults to new fields, keep removed fields' defaults, never rename "
            "records, enum symbols or fields without aliases."
        )
        sys.exit(1)


@schemas.command("release")
@click.argument("event_types", nargs=-1)
def schemas_release(event_types: tuple[str, ...]) -> None:
    """Record changed schemas as their next released version (after a check)."""
    contract = EventSchemas()
    for event_type in event_types or contract.event_types:
        try:
            version = release(contract, event_type)
        except ValueError as exc:
            console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(1)
        if version is not None:
            console().print(f"released {event_type} v{version}")

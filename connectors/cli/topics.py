"""``safepassage topics provision|list``: the topic catalog on the broker.

:func:`print_plan` is shared with ``safepassage run``, which provisions the catalog too.
"""

from __future__ import annotations

import sys

import click
from rich.table import Table

from connectors.cli.common import console
from streams.provisioning import Plan, describe, provision
from streams.settings import KafkaSettings
from streams.topics import catalog

__all__ = ["print_plan", "topics"]


def print_plan(plan: Plan, created: tuple[str, ...]) -> None:
    """What provisioning created, what was already right, and what drifts from the catalog."""
    for name in created:
        console().print(f"[green]created[/] {name}")
    for name in plan.in_order:
        console().print(f"ok      {name}")
    for drift in plan.drift:
        console().print(
            f"[yellow]drift[/]   {drift.topic}: {drift.setting} is {drift.actual}, "
            f"catalog says {drift.expected} → {drift.remedy}",
            highlight=False,
        )


@click.group("topics")
def topics() -> None:
    """The topic catalog: provision and inspect."""


@topics.command("provision")
@click.option("--check", is_flag=True, help="Exit 2 if anything drifts from the catalog.")
def topics_provision(check: bool) -> None:
    """Create missing catalog topics; report drift; never delete or recreate."""
    the_plan, created = provision(KafkaSettings())
    print_plan(the_plan, created)
    if check and the_plan.drift:
        sys.exit(2)


@topics.command("list")
def topics_list() -> None:
    """Show the namespace's topics with partitions, replication and configs."""
    settings = KafkaSettings()
    specs = {spec.name: spec for spec in catalog(settings)}
    keys = sorted({key for spec in specs.values() for key in spec.config()})
    observed = describe(settings, config_keys=keys)
    table = Table(
        "topic", "key", "partitions", "replication", *keys, title=settings.bootstrap_servers
    )
    for name in sorted(set(specs) | set(observed)):
        topic = observed.get(name)
        spec = specs.get(name)
        if topic is None:
            table.add_row(name, spec.key if spec else "", "[red]missing[/]", "", *[""] * len(keys))
            continue
        table.add_row(
            name,
            spec.key if spec else "(not in catalog)",
            str(topic.partitions),
            str(topic.replication_factor),
            *[topic.config.get(key, "") for key in keys],
        )
    console().print(table)

"""The ``safepassage`` command line: the operator's edge onto infra and streams.

Every :class:`~schemas.exceptions.SafePassageError` (the root of the errors
of every package) is translated here into one line on stderr and exit
code 1, never a stack trace.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.delivery import register as register_delivery
from connectors.escalations import EscalationFilter, FollowStats, follow
from connectors.intake import register as register_intake
from infra import BrokerSettings, Deployment, cluster, single_node
from infra.maven import pinned_kafka_version
from infra.registry import SchemaRegistry
from schemas.compatibility import check, release
from schemas.exceptions import SafePassageError
from schemas.registry import EventSchemas
from schemas.types import ServiceCategory
from streams.asyncapi import DOCUMENT, render
from streams.logs import configure_logging
from streams.provisioning import Plan, describe, provision
from streams.settings import KafkaSettings
from streams.ticks import publish_ticks, tick_topic
from streams.topics import catalog

P = ParamSpec("P")
R = TypeVar("R")


def _console(*, stderr: bool = False) -> Console:
    """A console that does not squeeze tables when output goes to a file or pipe."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=250 if wide else None)


def _friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Show every SafePassage error as one line on stderr and exit 1, not a traceback.

    The messages carry no personal data (the root's promise), so they are
    shown as they are; folded onto one line, escaped from rich's markup and
    never wrapped, so that a script can read the line back.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SafePassageError as exc:
            _console(stderr=True).print(
                f"[bold red]error:[/] {escape(exc.one_line())}", highlight=False, soft_wrap=True
            )
            sys.exit(1)

    return wrapper


@click.group()
@click.version_option(package_name="safepassage")
def main() -> None:
    """SafePassage: referral and service coordination for survivors of trafficking."""
    settings = KafkaSettings()
    configure_logging(settings.log_format, settings.log_level)


# --------------------------------------------------------------------------- kafka


def _deployment(use_cluster: bool) -> Deployment:
    settings = BrokerSettings()
    return cluster(settings) if use_cluster else single_node(settings)


_cluster_option = click.option(
    "--cluster", "use_cluster", is_flag=True, help="The three-node cluster instead of one node."
)
_node_option = click.option(
    "--node", "nodes", type=int, multiple=True, help="Only this node (repeatable; cluster mode)."
)


@main.group()
def kafka() -> None:
    """Run the local Apache Kafka broker (KRaft mode, loopback only)."""


@kafka.command("start")
@_cluster_option
@_node_option
@_friendly_errors
def kafka_start(use_cluster: bool, nodes: tuple[int, ...]) -> None:
    """Start the broker (idempotent) and wait until it answers."""
    deployment = _deployment(use_cluster)
    for result in deployment.start(nodes or None):
        state = "already running" if result.already_running else "started"
        _console().print(
            f"kafka node {result.node_id} {state} on {result.bootstrap} (pid {result.pid})"
        )
    _console().print(f"bootstrap servers: {deployment.bootstrap}")


@kafka.command("stop")
@_cluster_option
@_node_option
@_friendly_errors
def kafka_stop(use_cluster: bool, nodes: tuple[int, ...]) -> None:
    """Stop the broker cleanly by its PID."""
    deployment = _deployment(use_cluster)
    stopped = deployment.stop(nodes or None)
    if stopped:
        _console().print("stopped kafka node(s): " + ", ".join(map(str, stopped)))
    else:
        _console().print("kafka is not running")


@kafka.command("status")
@_cluster_option
@_friendly_errors
def kafka_status(use_cluster: bool) -> None:
    """Show each node's PID and whether it answers; exit 3 when none runs."""
    deployment = _deployment(use_cluster)
    statuses = deployment.status()
    table = Table("node", "bootstrap", "pid", "answers", title=f"kafka ({deployment.name})")
    for status in statuses:
        table.add_row(
            str(status.node_id),
            status.bootstrap,
            str(status.pid) if status.pid else "-",
            "yes" if status.answering else "no",
        )
    _console().print(table)
    _console().print(f"Apache Kafka {pinned_kafka_version()} (pinned in infra/kafka/pom.xml)")
    if not any(status.pid for status in statuses):
        sys.exit(3)


@main.group()
def registry() -> None:
    """Run the local schema registry (Apicurio, Confluent-compatible API)."""


@registry.command("start")
@_friendly_errors
def registry_start() -> None:
    """Build it with Maven if needed, start it, wait until it answers."""
    result = SchemaRegistry().start()
    state = "already running" if result.already_running else "started"
    _console().print(f"schema registry {state} (pid {result.pid})")
    _console().print(f"Confluent-compatible API: {SchemaRegistry().ccompat_url}")


@registry.command("stop")
@_friendly_errors
def registry_stop() -> None:
    """Stop the registry by its PID."""
    pid = SchemaRegistry().stop()
    _console().print(f"stopped schema registry (pid {pid})" if pid else "registry is not running")


@registry.command("status")
@_friendly_errors
def registry_status() -> None:
    """PID and whether the API answers; exit 3 when it is not running."""
    status = SchemaRegistry().status()
    answers = "answers" if status.answering else "does not answer"
    _console().print(f"schema registry at {status.url}: pid {status.pid or '-'}, {answers}")
    if status.pid is None:
        sys.exit(3)


# -------------------------------------------------------------------------- topics


@main.group()
def topics() -> None:
    """The topic catalog: provision and inspect."""


def _print_plan(plan: Plan, created: tuple[str, ...]) -> None:
    for name in created:
        _console().print(f"[green]created[/] {name}")
    for name in plan.in_order:
        _console().print(f"ok      {name}")
    for drift in plan.drift:
        _console().print(
            f"[yellow]drift[/]   {drift.topic}: {drift.setting} is {drift.actual}, "
            f"catalog says {drift.expected} → {drift.remedy}",
            highlight=False,
        )


@topics.command("provision")
@click.option("--check", is_flag=True, help="Exit 2 if anything drifts from the catalog.")
@_friendly_errors
def topics_provision(check: bool) -> None:
    """Create missing catalog topics; report drift; never delete or recreate."""
    the_plan, created = provision(KafkaSettings())
    _print_plan(the_plan, created)
    if check and the_plan.drift:
        sys.exit(2)


@topics.command("list")
@_friendly_errors
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
    _console().print(table)


# ------------------------------------------------------------------------- schemas


@main.group()
def schemas() -> None:
    """The event contract (schemas/avro): compatibility and releases."""


@schemas.command("check")
@_friendly_errors
def schemas_check() -> None:
    """Check every schema is FULL_TRANSITIVE compatible with its released versions."""
    contract = EventSchemas()
    broken = 0
    for event_type, problems in check(contract).items():
        releases = len(contract.released(event_type))
        if not problems:
            _console().print(f"ok      {event_type} (against {releases} released version(s))")
        for problem in problems:
            broken += 1
            _console().print(f"[red]BREAKS[/]  {problem}", highlight=False)
    if broken:
        _console(stderr=True).print(
            f"[bold red]error:[/] {broken} incompatibilit{'y' if broken == 1 else 'ies'}: "
            "add defaults to new fields, keep removed fields' defaults, never rename "
            "records, enum symbols or fields without aliases."
        )
        sys.exit(1)


@schemas.command("release")
@click.argument("event_types", nargs=-1)
@_friendly_errors
def schemas_release(event_types: tuple[str, ...]) -> None:
    """Record changed schemas as their next released version (after a check)."""
    contract = EventSchemas()
    for event_type in event_types or contract.event_types:
        try:
            version = release(contract, event_type)
        except ValueError as exc:
            _console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(1)
        if version is not None:
            _console().print(f"released {event_type} v{version}")


# ---------------------------------------------------------------------------- docs


@main.group()
def docs() -> None:
    """Documents generated from the code."""


@docs.command("asyncapi")
@click.option("--check", is_flag=True, help="Exit 1 if docs/asyncapi.yaml is out of date.")
@click.option("--output", type=click.Path(path_type=Path), default=DOCUMENT, show_default=True)
def docs_asyncapi(check: bool, output: Path) -> None:
    """Write the AsyncAPI 3.0 document of topics, messages and headers."""
    text = render()
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            _console(stderr=True).print(
                f"[bold red]error:[/] {output} is out of date: run `safepassage docs asyncapi`."
            )
            sys.exit(1)
        _console().print(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    _console().print(f"wrote {output}")


# --------------------------------------------------------------------- escalations


@main.group()
def escalations() -> None:
    """What operators and coordinators watch."""


_LEVEL_STYLE = {1: "yellow", 2: "bold yellow", 3: "bold red"}


@escalations.command("follow")
@click.option("--level", "levels", type=click.IntRange(1, 3), multiple=True, help="Repeatable.")
@click.option("--jurisdiction", "jurisdictions", multiple=True, help="ISO 3166 code; repeatable.")
@click.option(
    "--category",
    "categories",
    type=click.Choice([c.value for c in ServiceCategory if c is not ServiceCategory.UNKNOWN]),
    multiple=True,
    help="Repeatable.",
)
@click.option("--from-beginning", is_flag=True, help="Replay the topic before following it.")
@click.option("--max", "max_events", type=int, default=None, help="Stop after N escalations.")
@click.option(
    "--idle-timeout",
    type=float,
    default=None,
    help="Stop after S quiet seconds (counted from joining the topic).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_friendly_errors
def escalations_follow(  # noqa: PLR0917 - click passes every option positionally
    levels: tuple[int, ...],
    jurisdictions: tuple[str, ...],
    categories: tuple[str, ...],
    from_beginning: bool,
    max_events: int | None,
    idle_timeout: float | None,
    as_json: bool,
) -> None:
    """Stream escalations live in the terminal, filtered by level, jurisdiction, category."""
    which = EscalationFilter(
        levels=frozenset(levels),
        jurisdictions=frozenset(j.upper() for j in jurisdictions),
        categories=frozenset(ServiceCategory(c) for c in categories),
    )
    stats = FollowStats()
    console = _console()
    for event in follow(
        KafkaSettings(),
        which,
        from_beginning=from_beginning,
        max_events=max_events,
        idle_timeout_s=idle_timeout,
        stats=stats,
    ):
        if as_json:
            click.echo(event.model_dump_json())
            continue
        missed = event.missed_deadline.isoformat() if event.missed_deadline else "-"
        console.print(
            f"{event.occurred_at:%Y-%m-%d %H:%M:%S}Z "
            f"[{_LEVEL_STYLE[event.level]}]L{event.level}[/] {event.reason.value:<16} "
            f"{event.jurisdiction:<5} {(event.category.value if event.category else '-'):<17} "
            f"survivor {event.survivor_id} referral {event.referral_id or '-'} missed {missed}",
            highlight=False,
        )
    _console(stderr=True).print(
        f"{stats.shown} shown, {stats.filtered_out} filtered out, {stats.undecodable} undecodable"
        f", {stats.copies} copies dropped",
        highlight=False,
    )


@escalations.command("tick")
@click.option(
    "--at",
    "at",
    default="now",
    show_default=True,
    help="The instant (ISO 8601 with a zone, e.g. 2026-03-05T08:00:00Z) or 'now'.",
)
@_friendly_errors
def escalations_tick(at: str) -> None:
    """Tell the workers it is now AT, so they escalate what is due.

    For workers run with SAFEPASSAGE_ESCALATION_CLOCK=external (demos, drills).
    """
    try:
        now = (
            datetime.now(UTC) if at == "now" else datetime.fromisoformat(at.replace("Z", "+00:00"))
        )
    except ValueError as exc:
        raise click.BadParameter(f"{at!r} is not an ISO 8601 instant", param_hint="--at") from exc
    if now.tzinfo is None:
        raise click.BadParameter("give the instant a zone, e.g. Z or +01:00", param_hint="--at")
    settings = KafkaSettings()
    count = publish_ticks(settings, now)
    _console().print(f"ticked {count} partitions of {tick_topic(settings)} at {now.isoformat()}")


# -------------------------------------------------------------------------- worker


def _run_worker(app_id: str | None, web_port: int, data_dir: Path) -> None:
    """Run the router's Faust worker in the foreground until Ctrl-C (see connectors.worker)."""
    # Imported here: the worker's composition root pulls in the router, and most
    # commands need neither.
    from connectors.worker import run_worker  # noqa: PLC0415

    run_worker(
        app_id,
        web_port,
        data_dir,
        warn=lambda message: _console(stderr=True).print(f"[yellow]{message}[/]"),
    )


_worker_options = [
    click.option("--app-id", default=None, help="Consumer group (default <namespace>-router)."),
    click.option("--web-port", type=int, default=6066, show_default=True),
    click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=Path(".state/worker"),
        show_default=True,
        help="Table stores (one folder per worker on a machine).",
    ),
]


def _with_worker_options(func: Callable[P, R]) -> Callable[P, R]:
    for option in reversed(_worker_options):
        func = option(func)
    return func


@main.command("worker")
@_with_worker_options
@_friendly_errors
def worker(app_id: str | None, web_port: int, data_dir: Path) -> None:
    """Run one router worker (start several with other ports and data dirs to scale)."""
    _run_worker(app_id, web_port, data_dir)


# ----------------------------------------------------------------------------- run


@main.command("run")
@_with_worker_options
@_friendly_errors
def run(app_id: str | None, web_port: int, data_dir: Path) -> None:
    """Bring the platform up locally: broker, every catalog topic, then a router worker."""
    deployment = single_node()
    for result in deployment.start():
        state = "already running" if result.already_running else "started"
        _console().print(
            f"kafka node {result.node_id} {state} on {result.bootstrap} (pid {result.pid})"
        )
    _console().print(f"Apache Kafka {deployment.nodes[0].kafka_version()}, KRaft mode")
    the_plan, created = provision(KafkaSettings(bootstrap_servers=deployment.bootstrap))
    _print_plan(the_plan, created)
    _console().print(
        f"Starting the router worker (status at http://127.0.0.1:{web_port}/v1/survivors/<id>"
        "/status). Ctrl-C stops it; `safepassage kafka stop` stops the broker."
    )
    _run_worker(app_id, web_port, data_dir)


register_delivery(main)  # safepassage deliver webhooks
register_intake(main)  # safepassage intake serve, safepassage keys add

if __name__ == "__main__":
    main()

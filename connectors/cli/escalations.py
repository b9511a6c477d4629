"""``safepassage escalations follow|tick``: what operators and coordinators watch.

The reading itself is :mod:`connectors.escalations`; this module only
filters, formats and counts.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from connectors.cli.common import console
from connectors.escalations import EscalationFilter, FollowStats, follow
from schemas.types import ServiceCategory
from streams.settings import KafkaSettings
from streams.ticks import publish_ticks, tick_topic

__all__ = ["escalations"]


@click.group("escalations")
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
    out = console()
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
        out.print(
            f"{event.occurred_at:%Y-%m-%d %H:%M:%S}Z "
            f"[{_LEVEL_STYLE[event.level]}]L{event.level}[/] {event.reason.value:<16} "
            f"{event.jurisdiction:<5} {(event.category.value if event.category else '-'):<17} "
            f"survivor {event.survivor_id} referral {event.referral_id or '-'} missed {missed}",
            highlight=False,
        )
    console(stderr=True).print(
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
    console().print(f"ticked {count} partitions of {tick_topic(settings)} at {now.isoformat()}")

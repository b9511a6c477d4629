"""``safepassage deliver webhooks|kafka|new-secret``: the two ways offers reach providers.

Kept apart from the connector so the connector stays usable from code and
tests without click. Every SafePassage error (a bad webhooks file, the
broker, the codec) comes out as one line and exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from uuid import UUID

import click
from confluent_kafka import KafkaException

from connectors.delivery.connector import WebhookDelivery
from connectors.delivery.jobs import DeliveryStats
from connectors.delivery.settings import ProviderEndpoint, WebhookSettings, load_providers
from connectors.offers_relay import OffersRelay
from connectors.relay import run_until_signalled
from connectors.webhooks import new_secret
from schemas.exceptions import SafePassageError
from streams.metrics import serve_probes
from streams.settings import KafkaSettings, read_settings

__all__ = ["deliver", "register"]


async def _run_until_signalled(
    kafka: KafkaSettings, settings: WebhookSettings, providers: Mapping[UUID, ProviderEndpoint]
) -> DeliveryStats:
    """Run the connector until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    connector = WebhookDelivery(kafka, settings, providers)
    probes = serve_probes("webhooks", ready=lambda: connector.running)
    try:
        await connector.run(stop)
    finally:
        probes.close()
    return connector.stats


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Any package's error (no personal data in it) and Kafka's as one line and exit code 1."""
    try:
        yield
    except SafePassageError as exc:
        raise click.ClickException(exc.one_line()) from None
    except KafkaException as exc:
        raise click.ClickException(f"Kafka: {exc.args[0]}") from None


@click.group("deliver")
def deliver() -> None:
    """Deliver offers and cancellations to providers: signed webhooks, or their own topic."""


@deliver.command("webhooks")
@click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Webhooks file (default: SAFEPASSAGE_WEBHOOKS_FILE).",
)
@click.option("--check", is_flag=True, help="Validate the webhooks file, print a summary, exit.")
def webhooks(file: Path | None, check: bool) -> None:
    """POST offers and cancellations as signed webhooks; dead-letter and report failures."""
    with _one_line_errors():
        settings = read_settings(WebhookSettings, file=file)
        providers = load_providers(settings.file)
        if check:
            click.echo(f"{settings.file}: {len(providers)} provider(s) OK")
            for provider, endpoint in sorted(providers.items()):
                click.echo(f"  {provider}  {len(endpoint.secrets)} secret(s)")
            return
        stats = asyncio.run(_run_until_signalled(KafkaSettings(), settings, providers))
    click.echo(
        f"{stats.delivered} delivered, {stats.dead_lettered} dead-lettered, "
        f"{stats.reported} reported undelivered, {stats.skipped} skipped, {stats.attempts} attempts"
    )


@deliver.command("kafka")
def kafka_topics() -> None:
    """Copy offers and cancellations onto each provider's own topic (offers.<id>.v1).

    For providers that use the Kafka SDK: the broker lets each read its own
    topic only. Runs as the ``delivery`` principal.
    """
    with _one_line_errors():
        stats = run_until_signalled(OffersRelay(KafkaSettings()))
    click.echo(
        f"{stats.relayed} relayed, {stats.dead_lettered} dead-lettered, "
        f"{stats.topics_created} provider topics created"
    )


@deliver.command("new-secret")
def new_webhook_secret() -> None:
    """Print a fresh webhook secret (whsec_..., Standard Webhooks) for the webhooks file."""
    click.echo(new_secret())


def register(main_group: click.Group) -> None:
    """Add the ``deliver`` group (``webhooks``, ``kafka``, ``new-secret``) to ``safepassage``."""
    main_group.add_command(deliver)

"""``safepassage demo providers|stream``: the two services ``safepassage run --demo`` adds.

``providers`` is the provider simulator (:mod:`connectors.demo.simulator`),
``stream`` the scenario streamer (:mod:`connectors.demo.streamer`). The run
starts both with the paths of its state directory; by hand, point them at
a running platform's intake, CA and demo keys (docs/demo.md).
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import click

from connectors.demo.simulator import Simulator, load_simulated, serve
from connectors.demo.streamer import Streamer, agency_clients, run_streamer
from connectors.exceptions import ConnectorsError

__all__ = ["demo"]


class DemoError(ConnectorsError):
    """A demo service's option is unusable (its CA file, say)."""


def _verify(ca: Path | None) -> ssl.SSLContext | bool:
    if ca is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise DemoError(f"cannot load the CA file {ca} ({type(exc).__name__})") from None


_INTAKE = click.option(
    "--intake", "intake_url", required=True, help="The intake's URL, e.g. https://127.0.0.1:8080."
)
_CA = click.option(
    "--ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The CA the intake's certificate is from (the local one: .state/kafka/security/ca.pem).",
)
_CREDENTIALS = click.option(
    "--credentials",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=Path(".state/demo/credentials.yaml"),
    show_default=True,
    help="The demo keys safepassage run keeps (owner-only).",
)


@click.group("demo")
def demo() -> None:
    """The live demo's services: simulated providers and a stream of fictional survivors."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request buries the story


@demo.command("providers")
@click.option(
    "--listen",
    default="http://127.0.0.1:8090/webhooks",
    show_default=True,
    help="The demo webhook URL (SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL): where to receive webhooks.",
)
@click.option(
    "--webhooks",
    "webhooks_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="SAFEPASSAGE_WEBHOOKS_FILE",
    required=True,
    help="The demo webhooks file (secrets); default SAFEPASSAGE_WEBHOOKS_FILE.",
)
@_INTAKE
@_CA
@_CREDENTIALS
def providers(
    listen: str, webhooks_file: Path, intake_url: str, ca: Path | None, credentials: Path
) -> None:
    """Answer the demo providers' webhooks as each provider's behaviour says, until Ctrl-C."""
    simulated = load_simulated(credentials, webhooks_file, intake_url, _verify(ca))
    serve(Simulator(simulated), listen)


@demo.command("stream")
@click.option(
    "--interval-s",
    type=click.FloatRange(min=0.1),
    default=4.0,
    show_default=True,
    help="Seconds between two survivors.",
)
@_INTAKE
@_CA
@_CREDENTIALS
def stream(interval_s: float, intake_url: str, ca: Path | None, credentials: Path) -> None:
    """Send a fictional survivor every few seconds through the intake, until Ctrl-C."""
    clients = agency_clients(credentials, intake_url, _verify(ca))
    run_streamer(Streamer(clients, interval_s=interval_s))

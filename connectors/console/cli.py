"""``safepassage console serve``: the operator console, HTTPS, in the foreground.

uvicorn handles SIGINT and SIGTERM: it stops accepting, gives open requests
(event streams included) :data:`GRACE_S` seconds, then stops the Kafka
readers, so a supervisor sees the process exit within seconds.
"""

from __future__ import annotations

import click
import uvicorn

from connectors.console.app import create_app
from connectors.console.settings import ConsoleSettings
from connectors.intake.cli import friendly, tls_files
from infra.settings import BrokerSettings
from streams.settings import KafkaSettings

__all__ = ["GRACE_S", "register", "serve"]

GRACE_S = 2
"""Seconds open requests get on shutdown: event streams never end by themselves."""


def serve(settings: ConsoleSettings | None = None, kafka: KafkaSettings | None = None) -> None:
    """Run the console with uvicorn until SIGINT or SIGTERM.

    Its certificate comes like the intake's (:func:`connectors.intake.cli.tls_files`);
    an ``https`` intake is trusted through the same local CA unless
    ``SAFEPASSAGE_CONSOLE_INTAKE_CA_FILE`` names another bundle.
    """
    settings = settings or ConsoleSettings()
    broker = BrokerSettings()
    certfile, keyfile = tls_files(settings, broker, common_name="safepassage-console")
    local_ca = broker.security_dir / "ca.pem"
    app = create_app(
        settings,
        kafka=kafka or KafkaSettings(),
        intake_ca=str(local_ca) if local_ca.exists() else None,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=GRACE_S,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )


def register(main_group: click.Group) -> None:
    """Add ``console serve`` to the ``safepassage`` command line."""

    @main_group.group("console")
    def console() -> None:
        """The operators' web console (escalations, status lookups, funnel, directory)."""

    @console.command("serve")
    @click.option("--host", default=None, help="Interface (default SAFEPASSAGE_CONSOLE_HOST).")
    @click.option(
        "--port", type=int, default=None, help="Port (default SAFEPASSAGE_CONSOLE_PORT, 8443)."
    )
    @friendly
    def console_serve(host: str | None, port: int | None) -> None:
        """Serve the console over HTTPS; GET /healthz for supervisors."""
        overrides = {name: value for name, value in (("host", host), ("port", port)) if value}
        serve(ConsoleSettings(**overrides))  # type: ignore[arg-type]

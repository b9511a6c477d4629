"""``safepassage console serve``: the operator console, HTTPS, in the foreground.

On SIGINT or SIGTERM the server stops accepting, ends every open event
stream itself (browsers reconnect to whichever console runs next), gives
other requests up to :data:`GRACE_S` seconds, stops the Kafka readers and
exits 0, so a supervisor sees the process end within seconds. (uvicorn
alone would wait for the streams, which never end, then kill them with a
traceback, and re-raise the signal so the exit status says "killed".)
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator

import click
import uvicorn

from connectors.console.app import create_app
from connectors.console.escalation_feed import EscalationFeed
from connectors.console.settings import ConsoleSettings
from connectors.intake.cli import friendly, tls_files
from infra.settings import BrokerSettings
from streams.settings import KafkaSettings

__all__ = ["GRACE_S", "ConsoleServer", "register", "serve"]

GRACE_S = 3
"""Seconds other open requests (a status lookup waiting for the intake) get on shutdown."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ConsoleServer(uvicorn.Server):
    """uvicorn's server, ending the console's event streams first when asked to stop."""

    def __init__(self, config: uvicorn.Config, feed: EscalationFeed) -> None:
        super().__init__(config)
        self._feed = feed

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM ask for the graceful stop; the process then exits 0."""
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._feed.end_all()
        await super().shutdown(sockets)


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
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=GRACE_S,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    ConsoleServer(config, app.state.parts.feed).run()


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

"""The intake's command line: ``safepassage intake serve|relay`` and ``safepassage keys add``.

:func:`register` adds the commands to the ``safepassage`` group of
:mod:`connectors.cli`. Start-up and key-file errors come out as one line and
exit code 1, not a traceback, because operators read them, not developers.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar
from uuid import UUID

import click
import uvicorn
from pydantic import ValidationError

from connectors.auth import Role, add_key
from connectors.inbound_relay import InboundRelay
from connectors.intake.app import create_app
from connectors.intake.keys import KeyDirectory
from connectors.intake.settings import IntakeSettings
from connectors.relay import run_until_signalled
from infra.settings import BrokerSettings
from infra.tls import ensure_node_tls
from schemas.exceptions import SafePassageError
from streams.keystore import FileKeystore
from streams.logs import get_logger
from streams.settings import KafkaSettings

__all__ = ["TlsServed", "friendly", "register", "serve", "tls_files"]


_log = get_logger("connectors.intake")


def serve(settings: IntakeSettings | None = None, kafka: KafkaSettings | None = None) -> None:
    """Run the intake API in the foreground with uvicorn until interrupted.

    Logging is left as :func:`streams.logs.configure_logging` set it up
    (``log_config=None``), so uvicorn's lines come out as the same JSON.
    """
    settings = settings or IntakeSettings()
    certfile, keyfile = tls_files(settings)
    app = create_app(settings, kafka=kafka or KafkaSettings())
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=int(settings.publish_timeout_s) + 5,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )


class TlsServed(Protocol):
    """The settings of a served HTTPS edge (the intake's, the operator console's)."""

    @property
    def host(self) -> str: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def plaintext(self) -> bool: ...
    @property
    def tls_certfile(self) -> Path | None: ...
    @property
    def tls_keyfile(self) -> Path | None: ...


def tls_files(
    settings: TlsServed,
    broker: BrokerSettings | None = None,
    *,
    common_name: str = "safepassage-intake",
) -> tuple[str | None, str | None]:
    """uvicorn's certificate and key files: the configured ones, else from the local CA.

    Bearer keys and personal data cross this connection, so TLS is the
    default; only ``plaintext`` (loopback only, checked by the settings)
    turns it off. The local CA is the one ``make run`` made for the broker
    (clients trust ``ca.pem`` in its security directory); the certificate
    (``common_name``: the intake's, or the console's) names the host it
    binds and the loopback names.
    """
    if settings.plaintext:
        return None, None
    if settings.tls_certfile is not None:
        keyfile = settings.tls_keyfile
        return str(settings.tls_certfile), str(keyfile) if keyfile is not None else None
    security_dir = (broker or BrokerSettings()).security_dir
    hosts = tuple(dict.fromkeys((settings.host, "127.0.0.1", "localhost")))
    files = ensure_node_tls(security_dir, settings.state_dir, common_name, hosts)
    _log.info(
        "tls.certificate", name=common_name, certificate=str(files.keystore), trust=str(files.ca)
    )
    return str(files.keystore), None


P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Start-up and key-file errors as one line and exit code 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SafePassageError as exc:  # any package's: their messages carry no personal data
            click.echo(f"error: {exc.one_line()}", err=True)
            sys.exit(1)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            click.echo(f"error: invalid settings: {problems}", err=True)
            sys.exit(1)

    return wrapper


def register(main_group: click.Group) -> None:
    """Add ``intake serve`` and ``keys add`` to the ``safepassage`` command line."""

    @main_group.group("intake")
    def intake() -> None:
        """The HTTP intake API for agencies and providers."""

    @intake.command("serve")
    @click.option("--host", default=None, help="Interface (default SAFEPASSAGE_INTAKE_HOST).")
    @click.option("--port", type=int, default=None, help="Port (default SAFEPASSAGE_INTAKE_PORT).")
    @friendly
    def intake_serve(host: str | None, port: int | None) -> None:
        """Serve POST /v1/events, the operators' status read, /healthz and /docs."""
        overrides = {name: value for name, value in (("host", host), ("port", port)) if value}
        serve(IntakeSettings(**overrides))  # type: ignore[arg-type]

    @intake.command("relay")
    @friendly
    def intake_relay() -> None:
        """Move what parties write on their own Kafka topics onto intake, held to its rules.

        Runs as the ``intake`` principal; see SECURITY.md (parties on Kafka).
        """
        kafka, settings = KafkaSettings(), IntakeSettings()
        directory = KeyDirectory(kafka, FileKeystore(settings.keystore_path))
        stats = run_until_signalled(InboundRelay(kafka, directory=directory))
        click.echo(f"{stats.relayed} relayed, {stats.dead_lettered} dead-lettered")

    @main_group.group("keys")
    def keys() -> None:
        """API keys of the intake API (only their hashes are stored)."""

    @keys.command("add")
    @click.option(
        "--role", type=click.Choice([role.value for role in Role]), required=True, help="Role."
    )
    @click.option("--principal", required=True, help="Name of the caller, no spaces (logged).")
    @click.option("--provider-id", type=click.UUID, default=None, help="Providers: their id.")
    @click.option("--agency-id", default=None, help="Agencies: the agency_id of their events.")
    @friendly
    def keys_add(
        role: str, principal: str, provider_id: UUID | None, agency_id: str | None
    ) -> None:
        """Create a key, store its hash, print the key once (on stdout, alone)."""
        path = IntakeSettings().api_keys_file
        key, entry = add_key(
            path,
            role=Role(role),
            principal=principal,
            provider_id=provider_id,
            agency_id=agency_id,
            now=datetime.now(UTC),
        )
        click.echo(key)
        click.echo(
            f"added {entry.key_id} for {entry.principal} ({entry.role.value}) to {path}; "
            "this key is shown only now, store it safely",
            err=True,
        )

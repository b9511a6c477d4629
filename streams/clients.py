"""The one client factory: confluent-kafka, aiokafka and Faust configurations from one settings.

The cluster address and its security (protocol, SASL, the brokers' CA)
reach every client alike, spelt each library's way. Producers are
idempotent with ``acks=all`` and use ``murmur2_random``, the partitioner of
the Java client and of aiokafka (Faust): librdkafka's default would put a
survivor on another partition than the stream processors expect. Consumers
commit only what was processed and read only committed data.

librdkafka's own log lines go to :data:`streams.quiet.LIBRDKAFKA_LOG`, a
Python logger, instead of raw onto stderr: there they share the process's
format and its throttle of repeats (a broker outage would otherwise print a
connect failure every ~50 ms per client). ``log.connection.close`` is off:
a broker closing an idle connection is routine, not a warning.
"""

import logging
import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context
from confluent_kafka.admin import AdminClient

from streams.exceptions import StreamsError
from streams.quiet import LIBRDKAFKA_LOG
from streams.settings import KafkaSettings, Profile

__all__ = [
    "PARTITIONER",
    "SECURITY_PROTOCOLS",
    "ClientConfigError",
    "admin_client",
    "aiokafka_config",
    "broker_urls",
    "consumer_config",
    "faust_config",
    "faust_credentials",
    "producer_config",
    "require_authenticated",
]

_admin_log = logging.getLogger("streams.librdkafka.admin")
_admin_log.addHandler(logging.NullHandler())
# One-shot admin calls report failure through their exceptions; librdkafka's
# own connection-retry lines would only repeat them many times a second.
_admin_log.propagate = False

PARTITIONER = "murmur2_random"

SECURITY_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
"""The protocols all three client libraries understand (Kafka's names)."""


class ClientConfigError(StreamsError):
    """The settings name a security set-up the clients cannot be configured for."""


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Configuration for a durable, ordered, idempotent producer."""
    return {
        **_librdkafka(settings),
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": PARTITIONER,
        "compression.type": "zstd",
        "linger.ms": 5,
        **overrides,
    }


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Configuration for an at-least-once consumer that commits explicitly."""
    return {
        **_librdkafka(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        **overrides,
    }


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An admin client (topic provisioning) whose failures surface as exceptions only."""
    config = _librdkafka(settings)
    config["logger"] = _admin_log
    return AdminClient(config)


def _librdkafka(settings: KafkaSettings) -> dict[str, Any]:
    """The settings' librdkafka properties, once the security set-up is checked.

    With the logging set-up every client shares (a caller's ``logger`` override wins).
    """
    _protocol(settings)
    return {**settings.client_config(), "logger": LIBRDKAFKA_LOG, "log.connection.close": False}


def _protocol(settings: KafkaSettings) -> str:
    protocol = settings.security_protocol.strip().upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ClientConfigError(
            f"security_protocol {settings.security_protocol!r} is not one of "
            f"{', '.join(sorted(SECURITY_PROTOCOLS))}"
        )
    if protocol.startswith("SASL_") and not (
        settings.sasl_mechanism and settings.sasl_username and settings.sasl_password
    ):
        raise ClientConfigError(
            f"security_protocol {protocol} needs sasl_mechanism, sasl_username and sasl_password"
        )
    if settings.profile is Profile.PRODUCTION and protocol != "SASL_SSL":
        raise ClientConfigError(
            f"the production profile needs SAFEPASSAGE_SECURITY_PROTOCOL=SASL_SSL, not {protocol}"
        )
    return protocol


def require_authenticated(settings: KafkaSettings) -> KafkaSettings:
    """``settings``, unless no client could be built from them (checked before any starts).

    Every client factory here refuses the same: an unknown protocol, SASL
    without credentials, and the production profile on anything but
    SASL_SSL (PLAINTEXT and SSL name no principal the broker's ACLs could
    judge; SASL_PLAINTEXT sends the credentials and survivors' events in clear).
    """
    _protocol(settings)
    return settings


def _ssl_context(settings: KafkaSettings, protocol: str) -> ssl.SSLContext | None:
    if protocol not in {"SSL", "SASL_SSL"}:
        return None
    cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
    context: ssl.SSLContext = create_ssl_context(cafile=cafile)
    return context


def broker_urls(settings: KafkaSettings) -> list[str]:
    """The bootstrap servers as Faust's ``kafka://host:port`` URLs."""
    return [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]


def aiokafka_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client (``AIOKafkaConsumer(*topics, **config)``).

    aiokafka names SASL credentials ``sasl_plain_*`` for SCRAM too.
    """
    protocol = _protocol(settings)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": protocol,
    }
    if protocol.startswith("SASL_"):
        assert settings.sasl_password is not None  # noqa: S101 - checked by _protocol
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    context = _ssl_context(settings, protocol)
    if context is not None:
        config["ssl_context"] = context
    return {**config, **overrides}


def faust_credentials(
    settings: KafkaSettings,
) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's ``broker_credentials`` for the settings' protocol; None for PLAINTEXT.

    ``SASLCredentials`` with an SSL context is Faust's SASL_SSL, without one SASL_PLAINTEXT.
    """
    protocol = _protocol(settings)
    context = _ssl_context(settings, protocol)
    if protocol.startswith("SASL_"):
        assert settings.sasl_password is not None  # noqa: S101 - checked by _protocol
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def faust_config(settings: KafkaSettings) -> dict[str, Any]:
    """Faust app settings naming the settings' cluster, client id and security."""
    config: dict[str, Any] = {
        "broker": broker_urls(settings),
        "broker_client_id": settings.client_id,
    }
    credentials = faust_credentials(settings)
    if credentials is not None:
        config["broker_credentials"] = credentials
    return config

"""The one client factory: confluent-kafka, aiokafka and Faust configurations from one settings.

Every Kafka client of SafePassage is configured here, from one
:class:`~streams.settings.KafkaSettings`, so that the cluster address and
its security (``security_protocol``, SASL mechanism and credentials, the CA
of the brokers' certificates) reach every client alike, and a change to
them is made once. The three libraries spell the same settings three ways:
librdkafka's dotted properties (:func:`producer_config`,
:func:`consumer_config`, :func:`admin_client`), aiokafka's keyword
arguments (:func:`aiokafka_config`) and Faust's app settings with
``broker_credentials`` (:func:`faust_config`).

Guarantees of the confluent-kafka configurations:

* Producers are idempotent with ``acks=all``: a record acknowledged is on
  every in-sync replica, and retries never duplicate or reorder it.
* Producers use the ``murmur2_random`` partitioner, the one of the Java
  client and of aiokafka (which Faust uses). librdkafka's default
  (``consistent_random``, CRC32) would put the same survivor on another
  partition than the stream processors expect, breaking per-survivor order
  and co-partitioning.
* Consumers commit only what was processed (auto-commit off) and read only
  committed data.
"""

import logging
import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context
from confluent_kafka.admin import AdminClient

from streams.exceptions import StreamsError
from streams.settings import KafkaSettings

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
        **settings.client_config(),
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
        **settings.client_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        **overrides,
    }


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An admin client (topic provisioning) whose failures surface as exceptions only."""
    return AdminClient(settings.client_config(), logger=_admin_log)


def _protocol(settings: KafkaSettings) -> str:
    """The security protocol in Kafka's spelling; :class:`ClientConfigError` if unknown."""
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
    return protocol


def _ssl_context(settings: KafkaSettings, protocol: str) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (the CA file, or the system's trust store)."""
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

    The same cluster and security as :func:`consumer_config`: SASL
    credentials as ``sasl_plain_username``/``sasl_plain_password`` (aiokafka
    uses these names for SCRAM too) and, over TLS, an ``ssl_context``
    trusting ``ssl_cafile``.
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

    ``SASLCredentials`` with an SSL context is Faust's SASL_SSL, without one
    its SASL_PLAINTEXT; ``SSLCredentials`` is plain TLS.
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

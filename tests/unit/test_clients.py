"""The one client factory: the same cluster and security for confluent-kafka, aiokafka and Faust.

A worker started with ``SAFEPASSAGE_SECURITY_PROTOCOL=SASL_PLAINTEXT`` and
credentials must hand them to every client it builds; before the factory,
the Faust app and the directory's aiokafka consumer ignored them. These
tests read the real configuration objects each library is given.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from faust.types.auth import AuthProtocol, SASLMechanism
from pydantic import SecretStr

from streams.app import SESSION_TIMEOUT_S, create_app
from streams.clients import (
    ClientConfigError,
    admin_client,
    aiokafka_config,
    consumer_config,
    faust_config,
    producer_config,
)
from streams.settings import KafkaSettings, Profile

PASSWORD = "scram-unit-test-password"


UNIT_CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBlDCCATmgAwIBAgIUGHXz3cJfiZCl33TdC2EnshnVnIAwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTc2FmZXBhc3NhZ2UtdW5pdC1jYTAgFw0yNjEyMDExMTIwNTNa
GA8yMTI2MTEwNzExMjA1M1owHjEcMBoGA1UEAwwTc2FmZXBhc3NhZ2UtdW5pdC1j
YTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABA0JPO71LpCuf2z/6lcVU0/KMaT9
QKKb2i7FL1v/uo/seOafcomL7Soeup/14cWtIwdmDN1/UHl278m9pUrWGeCjUzBR
MB0GA1UdDgQWBBTtj1NHtG4FolIiFbY75+WzgCY+SDAfBgNVHSMEGDAWgBTtj1NH
tG4FolIiFbY75+WzgCY+SDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kA
MEYCIQCH2O49bu9SmG7HNCHUY4Ozf9XZP3lJOURuKx0H1I1S4wIhAIguQgZexElY
PPMNdlR4Svu40boSEh2s3Fl5nrx7KP7l
-----END CERTIFICATE-----
"""
"""A self-signed CA certificate (CN safepassage-unit-ca, no key kept) for a TLS context to load."""


@pytest.fixture
def secured(monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    """Settings read from the environment, as a worker reads them."""
    monkeypatch.setenv("SAFEPASSAGE_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("SAFEPASSAGE_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SAFEPASSAGE_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SAFEPASSAGE_SASL_USERNAME", "router")
    monkeypatch.setenv("SAFEPASSAGE_SASL_PASSWORD", PASSWORD)
    return KafkaSettings()


def test_confluent_producer_and_consumer_carry_the_credentials(secured: KafkaSettings) -> None:
    for config in (producer_config(secured), consumer_config(secured, "g")):
        assert config["bootstrap.servers"] == "k1:9093,k2:9093"
        assert config["security.protocol"] == "SASL_PLAINTEXT"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.username"] == "router"
        assert config["sasl.password"] == PASSWORD


async def test_aiokafka_config_carries_the_credentials_into_a_real_consumer(
    secured: KafkaSettings,
) -> None:
    config = aiokafka_config(secured)
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "router"
    assert config["sasl_plain_password"] == PASSWORD
    assert "ssl_context" not in config
    # aiokafka accepts the keywords (it checks them at construction) and keeps them.
    consumer = AIOKafkaConsumer("t", **config)
    try:
        client = consumer._client
        assert client._security_protocol == "SASL_PLAINTEXT"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "router"
        assert client._sasl_plain_password == PASSWORD
        assert client._bootstrap_servers == "k1:9093,k2:9093"
    finally:
        await consumer.stop()  # never started: only releases it


def test_faust_app_from_create_app_has_the_credentials(
    secured: KafkaSettings, tmp_path: Path
) -> None:
    app = create_app(secured, "unit-secured", data_dir=tmp_path, store="memory://")
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert credentials.username == "router"
    assert credentials.password == PASSWORD
    assert [str(url) for url in app.conf.broker] == ["kafka://k1:9093", "kafka://k2:9093"]


def test_sasl_ssl_trusts_the_configured_ca_in_every_library(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text(UNIT_CA_PEM)
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="router",
        sasl_password=PASSWORD,
        ssl_cafile=cafile,
    )
    assert producer_config(settings)["ssl.ca.location"] == str(cafile)
    context = aiokafka_config(settings)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "safepassage-unit-ca"),),)
    credentials = faust_config(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.ssl_context is not None


def test_plaintext_gives_faust_no_credentials_and_aiokafka_no_tls() -> None:
    settings = KafkaSettings()
    assert "broker_credentials" not in faust_config(settings)
    config = aiokafka_config(settings)
    assert config["security_protocol"] == "PLAINTEXT"
    assert "sasl_mechanism" not in config and "ssl_context" not in config


@pytest.mark.parametrize(
    "fields",
    [
        {"security_protocol": "KERBEROS"},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"},
    ],
)
def test_a_set_up_the_clients_cannot_share_is_refused(fields: dict[str, str]) -> None:
    settings = KafkaSettings(**fields)  # type: ignore[arg-type]
    with pytest.raises(ClientConfigError):
        aiokafka_config(settings)
    with pytest.raises(ClientConfigError):
        faust_config(settings)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT"])
def test_no_client_of_the_production_profile_is_built_unauthenticated_or_in_clear(
    protocol: str,
) -> None:
    settings = KafkaSettings(
        profile=Profile.PRODUCTION,
        security_protocol=protocol,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="router",
        sasl_password=SecretStr("secret"),
    )
    builders: list[Callable[[], object]] = [
        lambda: producer_config(settings),
        lambda: consumer_config(settings, "g"),
        lambda: admin_client(settings),
        lambda: aiokafka_config(settings),
        lambda: faust_config(settings),
    ]
    for build in builders:
        with pytest.raises(ClientConfigError, match=r"production profile needs .*SASL_SSL"):
            build()
    secured = settings.model_copy(update={"security_protocol": "SASL_SSL"})
    assert producer_config(secured)["security.protocol"] == "SASL_SSL"


def test_a_dead_worker_gives_up_its_partitions_within_seconds_not_a_minute(
    tmp_path: Path,
) -> None:
    app = create_app(KafkaSettings(), "t-session", data_dir=tmp_path, store="memory://")
    assert app.conf.broker_session_timeout == SESSION_TIMEOUT_S <= 15
    assert app.conf.broker_heartbeat_interval * 4 <= SESSION_TIMEOUT_S
